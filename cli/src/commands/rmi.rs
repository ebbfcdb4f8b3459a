//! `strata rmi [-f] IMAGE...`: removes image names, as `docker rmi` does: by name it
//! untags that name; by id it untags every name of the image (refused without `-f` when
//! several repositories share it). `Deleted:` is printed when no name is left on the image;
//! its blobs are then unreferenced and `strata prune` frees them.

use anyhow::{bail, Result};
use std::path::Path;
use std::process::ExitCode;
use strata_cache::{ImageRecord, Store};
use strata_worker::image::names::is_id_query;
use strata_worker::image::{familiar_name, find_image};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove every name of an image given by id, even when several repositories use it.
    #[arg(short, long)]
    force: bool,
    /// Images to remove, by name or id.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let mut failed = false;
    for query in &args.images {
        match remove(&store, query, args.force) {
            Ok(lines) => print!("{lines}"),
            Err(e) => {
                crate::report::error(&e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The id docker shows for an image: its config digest (its manifest's for an index).
fn image_id(record: &ImageRecord) -> String {
    record
        .target
        .config
        .unwrap_or(record.target.manifest)
        .to_string()
}

fn remove(store: &Store, query: &str, force: bool) -> Result<String> {
    let image = find_image(store, query)?;
    let id = image_id(&image);
    let images = store.images();
    let same: Vec<ImageRecord> = images
        .list()?
        .into_iter()
        .filter(|r| image_id(r) == id)
        .collect();
    let by_id = is_id_query(store, query)?;
    let doomed: Vec<&ImageRecord> = if by_id {
        let repositories: std::collections::BTreeSet<String> = same
            .iter()
            .map(|r| strata_worker::image::names::repository_and_tag(&r.name).0)
            .collect();
        if repositories.len() > 1 && !force {
            let hex = id.strip_prefix("sha256:").unwrap_or(&id);
            bail!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                &hex[..12.min(hex.len())]
            );
        }
        same.iter().collect()
    } else {
        same.iter().filter(|r| r.name == image.name).collect()
    };
    let mut out = String::new();
    for record in &doomed {
        images.untag(&record.name)?;
        out.push_str(&format!("Untagged: {}\n", familiar_name(&record.name)));
    }
    if doomed.len() == same.len() {
        out.push_str(&format!("Deleted: {id}\n"));
    }
    Ok(out)
}
