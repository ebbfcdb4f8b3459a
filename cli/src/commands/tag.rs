//! `strata tag SOURCE_IMAGE TARGET_IMAGE`: gives a stored image another name, as
//! `docker tag` does (silently on success).

use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;
use strata_worker::image::{find_image, normalize_tag};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to tag: a name or an image id.
    source: String,
    /// The new name, `[REGISTRY/]REPOSITORY[:TAG]`.
    target: String,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let image = find_image(&store, &args.source)?;
    let name = normalize_tag(&args.target)?;
    store
        .images()
        .tag(&name, &image.target)
        .with_context(|| format!("cannot tag {} as {}", args.source, args.target))?;
    Ok(ExitCode::SUCCESS)
}
