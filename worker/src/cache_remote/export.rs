//! `--cache-to`: the records of a finished build written to a local layout or a registry.
//!
//! Main items: [`export_cache`], [`ExportReport`].
//!
//! The blocking half collects the records (each key's snapshot chain → layer blobs: layers
//! known for a snapshot are reused, the others written from its diff dir, uncompressed ones
//! compressed to gzip once and remembered as a push would) and builds the config and the
//! manifest. The second half copies to the destination only the blobs it lacks.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_cache::{Lease, SnapshotId, Store};
use strata_oci::registry::{Client, RegistryError};
use strata_oci::{media_type, CompressionKind, Descriptor, Digest, ImageIndex, ImageManifest};

use super::format::{encode_hex, CacheConfig, CacheLayer, CacheRecordEntry, CONFIG_MEDIA_TYPE};
use super::{CacheIoError, CacheLocation, CacheMode, CacheTo};
use crate::image::export::layer_of;
use crate::image::push::compressed_layer;
use crate::image::store_blobs::StoreBlobs;
use crate::image::LayerCompression;

/// Blobs uploaded to a registry at once.
const PARALLEL_UPLOADS: usize = 3;

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The cache manifest's digest.
    pub manifest: Digest,
    /// Records exported.
    pub records: usize,
    /// Layer blobs the cache references.
    pub layers: usize,
    /// Blobs copied or uploaded now (layers, config, manifest).
    pub uploaded: usize,
    /// Blobs the destination already had.
    pub present: usize,
}

/// What the blocking half prepared.
struct Prepared {
    config: Vec<u8>,
    manifest: Vec<u8>,
    layers: Vec<Descriptor>,
    records: usize,
}

/// Exports the records of `keys` (every step of a build) to `to`. `top` is the final
/// filesystem: with `mode=min` only records whose snapshot is in its chain go out.
pub async fn export_cache(
    store: &Store,
    client: &Arc<Client>,
    to: &CacheTo,
    keys: &[[u8; 32]],
    top: Option<&SnapshotId>,
) -> Result<ExportReport, CacheIoError> {
    let location = to.location.to_string();
    let lease = Arc::new(store.lease());
    let prepared = {
        let (store, lease, keys, top, mode, location) = (
            store.clone(),
            lease.clone(),
            keys.to_vec(),
            top.cloned(),
            to.mode,
            location.clone(),
        );
        tokio::task::spawn_blocking(move || {
            prepare(&store, &lease, &keys, top.as_ref(), mode, &location)
        })
        .await
        .map_err(|e| CacheIoError::Task {
            reason: e.to_string(),
        })??
    };
    let (uploaded, present) = match &to.location {
        CacheLocation::Local { dir, tag } => {
            let (store, dir, tag, location) =
                (store.clone(), dir.clone(), tag.clone(), location.clone());
            let prepared = Arc::new(prepared);
            let p = prepared.clone();
            let counts =
                tokio::task::spawn_blocking(move || write_local(&store, &dir, &tag, &p, &location))
                    .await
                    .map_err(|e| CacheIoError::Task {
                        reason: e.to_string(),
                    })??;
            return Ok(report(&prepared, counts));
        }
        CacheLocation::Registry(reference) => {
            let registry = |source| CacheIoError::Registry {
                location: location.clone(),
                source: Box::new(source),
            };
            let store_error = |e: strata_cache::ContentError| CacheIoError::Store {
                location: location.clone(),
                reason: e.to_string(),
            };
            // Config and manifest go through the store so they upload from a file like any
            // blob (and are leased while they do).
            let config = store
                .content()
                .write(&prepared.config, &lease)
                .map_err(store_error)?;
            let mut blobs = prepared.layers.clone();
            blobs.push(Descriptor::new(
                CONFIG_MEDIA_TYPE,
                config.digest,
                config.size,
            ));
            // A few blobs at once, as a push does: HEAD, then upload what is missing.
            let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_UPLOADS));
            let mut tasks = tokio::task::JoinSet::new();
            for blob in blobs {
                let (client, reference, limit) = (client.clone(), reference.clone(), limit.clone());
                let path = store.content().path(&blob.digest);
                tasks.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    if client.has_blob(&reference, &blob.digest).await? {
                        return Ok(false);
                    }
                    client.upload_blob(&reference, &blob, &path).await?;
                    Ok::<bool, RegistryError>(true)
                });
            }
            let (mut uploaded, mut present) = (0, 0);
            while let Some(joined) = tasks.join_next().await {
                let sent = joined.map_err(|e| CacheIoError::Task {
                    reason: e.to_string(),
                })?;
                if sent.map_err(registry)? {
                    uploaded += 1;
                } else {
                    present += 1;
                }
            }
            client
                .put_manifest(reference, media_type::OCI_MANIFEST, &prepared.manifest)
                .await
                .map_err(registry)?;
            (uploaded, present)
        }
    };
    Ok(report(&prepared, (uploaded, present)))
}

fn report(prepared: &Prepared, (uploaded, present): (usize, usize)) -> ExportReport {
    ExportReport {
        manifest: Digest::of(&prepared.manifest),
        records: prepared.records,
        layers: prepared.layers.len(),
        uploaded,
        present,
    }
}

/// Collects the records and their layers; builds the config and the manifest.
fn prepare(
    store: &Store,
    lease: &Lease,
    keys: &[[u8; 32]],
    top: Option<&SnapshotId>,
    mode: CacheMode,
    location: &str,
) -> Result<Prepared, CacheIoError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CacheIoError::Store {
        location: location.to_owned(),
        reason: format!("{what}: {e}"),
    };
    let in_image: HashSet<SnapshotId> = match top {
        Some(top) => store
            .snapshots()
            .chain(top)
            .map_err(|e| fail("cannot read the final snapshot chain", &e))?
            .into_iter()
            .map(|r| r.id)
            .collect(),
        None => HashSet::new(),
    };
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    let blobs = StoreBlobs::new(store, lease);
    let mut layers: Vec<CacheLayer> = Vec::new();
    // Snapshot → its layer's index (`None`: empty diff, no layer).
    let mut layer_index: HashMap<SnapshotId, Option<usize>> = HashMap::new();
    let mut records = Vec::new();
    for key in keys {
        let found = store
            .cache()
            .get(&key, Some(lease))
            .map_err(|e| fail("cannot read the cache index", &e))?;
        let Some(snapshot) = found.and_then(|r| r.value.snapshot.map(|s| (s, r.value.payload)))
        else {
            continue;
        };
        let (snapshot, payload) = snapshot;
        if mode == CacheMode::Min && !in_image.contains(&snapshot) {
            continue;
        }
        let Ok(mut chain) = store.snapshots().chain(&snapshot) else {
            continue;
        };
        chain.reverse();
        let mut indexes = Vec::new();
        for record in &chain {
            if let Some(known) = layer_index.get(&record.id) {
                indexes.extend(*known);
                continue;
            }
            let what = format!("cannot export the layer of snapshot {}", record.id);
            let layer = layer_of(store, &blobs, record, None, None).map_err(|e| fail(&what, &e))?;
            let index = match layer {
                None => None,
                Some((layer, _)) => {
                    let stored = CompressionKind::from_media_type(&layer.descriptor.media_type);
                    let blob = match LayerCompression::default().target(stored) {
                        Some(c) => {
                            compressed_layer(store, lease, &layer.descriptor, c)
                                .map_err(|e| fail(&what, &e))?
                                .0
                        }
                        None => Descriptor::new(
                            stored.oci_layer_media_type(),
                            layer.descriptor.digest,
                            layer.descriptor.size,
                        ),
                    };
                    let diff_id = layer.diff_id;
                    let existing = layers.iter().position(|l| l.blob.digest == blob.digest);
                    Some(existing.unwrap_or_else(|| {
                        layers.push(CacheLayer { blob, diff_id });
                        layers.len() - 1
                    }))
                }
            };
            layer_index.insert(record.id.clone(), index);
            indexes.extend(index);
        }
        records.push(CacheRecordEntry {
            key: encode_hex(&key),
            chain: indexes,
            payload: encode_hex(&payload),
        });
    }
    let config = CacheConfig {
        version: super::format::CONFIG_VERSION,
        layers,
        records,
    };
    let config_bytes = config.to_json();
    let descriptors: Vec<Descriptor> = config.layers.iter().map(|l| l.blob.clone()).collect();
    let manifest = ImageManifest::oci(
        Descriptor::for_bytes(CONFIG_MEDIA_TYPE, &config_bytes),
        descriptors.clone(),
    );
    let manifest_bytes = manifest
        .to_json()
        .map_err(|e| fail("cannot encode the cache manifest", &e))?;
    Ok(Prepared {
        config: config_bytes,
        manifest: manifest_bytes,
        layers: descriptors,
        records: config.records.len(),
    })
}

/// Writes the cache into the OCI layout `dir`: blobs it lacks, then `index.json` (the tag
/// replaced, other entries kept); each file is written aside and renamed.
fn write_local(
    store: &Store,
    dir: &Path,
    tag: &str,
    prepared: &Prepared,
    location: &str,
) -> Result<(usize, usize), CacheIoError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        let location = location.to_owned();
        move |source| CacheIoError::Io {
            location,
            action,
            path,
            source,
        }
    };
    let blobs_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs_dir).map_err(io("create", &blobs_dir))?;
    let (mut uploaded, mut present) = (0, 0);
    for layer in &prepared.layers {
        let dest = blobs_dir.join(layer.digest.hex());
        if fs::metadata(&dest).is_ok_and(|m| m.len() == layer.size) {
            present += 1;
            continue;
        }
        let source = store.content().path(&layer.digest);
        let tmp = temp_path(&dest);
        fs::copy(&source, &tmp).map_err(io("copy", &source))?;
        sync_rename(&tmp, &dest).map_err(io("write", &dest))?;
        uploaded += 1;
    }
    for bytes in [&prepared.config, &prepared.manifest] {
        let dest = blobs_dir.join(Digest::of(bytes).hex());
        if fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64) {
            present += 1;
            continue;
        }
        write_atomic(&dest, bytes).map_err(io("write", &dest))?;
        uploaded += 1;
    }
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io("write", &layout))?;
    }
    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(bytes) => ImageIndex::from_json(&bytes).map_err(|e| CacheIoError::Invalid {
            location: location.to_owned(),
            reason: format!("{} is not an OCI index: {e}", index_path.display()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ImageIndex::oci(Vec::new()),
        Err(e) => return Err(io("read", &index_path)(e)),
    };
    let mut entry = Descriptor::for_bytes(media_type::OCI_MANIFEST, &prepared.manifest);
    entry
        .annotations
        .insert(super::import::REF_NAME.to_owned(), tag.to_owned());
    index.manifests.retain(|m| {
        m.annotations
            .get(super::import::REF_NAME)
            .map(String::as_str)
            != Some(tag)
    });
    index.manifests.push(entry);
    let bytes = index.to_json().map_err(|e| CacheIoError::Invalid {
        location: location.to_owned(),
        reason: format!("cannot encode index.json: {e}"),
    })?;
    write_atomic(&index_path, &bytes).map_err(io("write", &index_path))?;
    Ok((uploaded, present))
}

fn temp_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn sync_rename(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    let result = fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(tmp, dest));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

fn write_atomic(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(dest);
    let written = fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_rename(&tmp, dest)
}
