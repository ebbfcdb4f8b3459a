//! `strata du`: disk usage of the store, by kind.

use crate::{human, root};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, root_dir: Option<&Path>) -> Result<ExitCode> {
    let store = root::open(root_dir)?;
    let usage = store.du()?;
    let rows = vec![
        vec!["TYPE".into(), "COUNT".into(), "SIZE".into()],
        vec![
            "Blobs (layers, configs, manifests)".into(),
            usage.blobs.count.to_string(),
            human::size(usage.blobs.bytes),
        ],
        vec![
            "Snapshots (build cache)".into(),
            usage.snapshots.count.to_string(),
            human::size(usage.snapshots.bytes),
        ],
        vec![
            "Cache mounts".into(),
            usage.cache_mounts.count.to_string(),
            human::size(usage.cache_mounts.bytes),
        ],
    ];
    print!("{}", human::table(&rows));
    println!(
        "Total: {}  ({} cache records, {} images)",
        human::size(usage.blobs.bytes + usage.snapshots.bytes + usage.cache_mounts.bytes),
        usage.cache_records,
        usage.images
    );
    Ok(ExitCode::SUCCESS)
}
