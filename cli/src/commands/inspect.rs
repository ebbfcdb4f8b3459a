//! `strata inspect IMAGE...`: the images as `docker image inspect` prints them — a JSON
//! array, four-space indented, one object per image with `Id` (the config digest),
//! `RepoTags`, `RepoDigests`, `Created`, `Author`, `Config`, `Architecture`, `Variant`, `Os`,
//! `Size`, `RootFS` and `Metadata`, in docker's key order. Images that are not found are
//! reported after the ones that are, and the command then fails, as docker does.

use anyhow::{anyhow, Result};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use strata_cache::Store;
use strata_oci::config::ContainerConfig;
use strata_worker::image::details::target_descriptor;
use strata_worker::image::names::repository_and_tag;
use strata_worker::image::{familiar_name, find_image, host_platform, read_image};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images to inspect, by name or id.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

/// Docker's `ImageInspect`, the fields Strata knows.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    docker_version: String,
    author: String,
    config: ContainerConfig,
    architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    variant: String,
    os: String,
    size: u64,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    r#type: String,
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    last_tag_time: String,
}

pub fn run(args: Args, root: Option<&Path>) -> Result<ExitCode> {
    let store = crate::root::open(root)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for query in &args.images {
        match inspect(&store, query) {
            Ok(image) => found.push(image),
            Err(e) => missing.push(e),
        }
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    found.serialize(&mut serializer)?;
    println!("{}", String::from_utf8_lossy(&out));
    if missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for error in &missing {
        crate::report::error(error);
    }
    Ok(ExitCode::FAILURE)
}

fn inspect(store: &Store, query: &str) -> Result<Inspect> {
    let record = find_image(store, query)?;
    let image = read_image(store, &target_descriptor(&record.target), &host_platform())
        .map_err(|e| anyhow!(e).context(format!("cannot read image {query}")))?;
    let id = image.config_digest.to_string();
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    let mut last_tag = record.created;
    for other in store.images().list()? {
        if other.target.config != Some(image.config_digest)
            && other.target.manifest != record.target.manifest
        {
            continue;
        }
        last_tag = last_tag.max(other.created);
        let (repository, tag) = repository_and_tag(&other.name);
        if tag.is_some() {
            repo_tags.push(familiar_name(&other.name));
        }
        let digest = format!("{repository}@{}", other.target.manifest);
        if !repo_digests.contains(&digest) {
            repo_digests.push(digest);
        }
    }
    let config = image.config;
    let last_tag_secs = last_tag
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(Inspect {
        id,
        repo_tags,
        repo_digests,
        parent: String::new(),
        comment: String::new(),
        created: config
            .created
            .clone()
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned()),
        docker_version: String::new(),
        author: config.author.clone(),
        size: image
            .manifest
            .layers
            .iter()
            .filter(|l| strata_oci::media_type::is_layer(&l.media_type))
            .map(|l| l.size)
            .sum(),
        architecture: config.architecture.clone(),
        variant: config.variant.clone(),
        os: config.os.clone(),
        root_fs: RootFs {
            r#type: config.rootfs.kind.clone(),
            layers: config
                .rootfs
                .diff_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
        },
        config: config.config,
        metadata: Metadata {
            last_tag_time: strata_oci::config::format_timestamp(last_tag_secs, 0),
        },
    })
}
