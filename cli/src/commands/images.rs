//! `strata images [REPOSITORY[:TAG]]`: lists tagged images as `docker images` does —
//! `REPOSITORY  TAG  IMAGE ID  CREATED  SIZE`, newest first; `-q` prints only ids.
//!
//! IMAGE ID is the config digest (Docker's image id), CREATED the config's creation time,
//! SIZE the bytes of the layer blobs as stored (uncompressed for images built here).

use crate::human;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use strata_cache::{ImageRecord, Store};
use strata_worker::image::details::target_descriptor;
use strata_worker::image::names::repository_and_tag;
use strata_worker::image::{host_platform, normalize_name, read_image};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only images of this repository (optionally with a tag).
    #[arg(value_name = "REPOSITORY[:TAG]")]
    repository: Option<String>,
    /// Only show image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
}

/// One row of the listing.
struct Row {
    repository: String,
    tag: String,
    manifest: String,
    id: String,
    created: Option<i64>,
    size: u64,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let filter = match &args.repository {
        Some(query) => Some(filter_of(query)?),
        None => None,
    };
    let mut rows: Vec<Row> = store
        .images()
        .list()?
        .iter()
        .map(|record| row(&store, record))
        .filter(|row| match &filter {
            Some((repository, tag)) => {
                row.repository == *repository && tag.as_ref().is_none_or(|t| *t == row.tag)
            }
            None => true,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.repository.cmp(&b.repository))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    let short = |id: &str| -> String {
        if args.no_trunc {
            id.to_owned()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    };
    if args.quiet {
        let mut seen = Vec::new();
        for row in &rows {
            let id = short(&row.id);
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![header(args.digests)];
    for row in &rows {
        let mut cells = vec![row.repository.clone(), row.tag.clone()];
        if args.digests {
            cells.push(row.manifest.clone());
        }
        cells.push(short(&row.id));
        cells.push(row.created.map_or_else(|| "N/A".to_owned(), human::ago));
        cells.push(human::size(row.size));
        table.push(cells);
    }
    print!("{}", human::table(&table));
    Ok(ExitCode::SUCCESS)
}

fn header(digests: bool) -> Vec<String> {
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    header.into_iter().map(str::to_owned).collect()
}

/// The repository (familiar form) and tag a `REPOSITORY[:TAG]` argument selects.
fn filter_of(query: &str) -> Result<(String, Option<String>)> {
    let (repository, tag) = strata_oci::archive::split_tag(query);
    let (repository, _) = repository_and_tag(&normalize_name(repository)?);
    Ok((repository, tag.map(str::to_owned)))
}

fn row(store: &Store, record: &ImageRecord) -> Row {
    let (repository, tag) = repository_and_tag(&record.name);
    let id = record.target.config.unwrap_or(record.target.manifest);
    let stored = read_image(store, &target_descriptor(&record.target), &host_platform()).ok();
    Row {
        repository,
        tag: tag.unwrap_or_else(|| "<none>".to_owned()),
        manifest: record.target.manifest.to_string(),
        id: id.to_string(),
        created: stored
            .as_ref()
            .and_then(|s| human::timestamp(s.config.created.as_deref())),
        size: stored.as_ref().map_or(0, |s| s.size()),
    }
}
