//! `--cache-from`: cache configs loaded before a solve, and records turned into snapshots
//! when a lookup asks for them.
//!
//! Main item: [`ImportedCache`] — [`ImportedCache::load`] reads each cache's manifest and
//! config (nothing else), [`ImportedCache::materialise`] makes a record's snapshot chain.
//!
//! A layer of a chain is, in order of preference: a snapshot the store already has for that
//! blob or diff id on the same parent; an unpack of a blob the store already has (the
//! uncompressed tar, or the same blob); an unpack of the blob fetched from the cache (a
//! local file or a registry download, digest-verified while it streams into the store).
//! A fetched layer is unpacked while its uncompressed tar is written into the store too and
//! recorded as the snapshot's layer, with the fetched gzip blob remembered as its push
//! form: the image exported from imported snapshots is byte for byte the one the exporting
//! root made, and pushing it compresses nothing.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_cache::{CacheKey, CacheValue, Lease, LeaseError, SnapshotId, Store};
use strata_oci::layer::{apply_layer, ApplyOptions, WhiteoutMode};
use strata_oci::registry::Client;
use strata_oci::{compression, media_type, Compression, CompressionKind, Descriptor, Digest};
use strata_oci::{ImageIndex, ImageManifest};

use super::format::{decode_hex, parse_key, CacheConfig, CacheLayer, CONFIG_MEDIA_TYPE};
use super::{CacheFrom, CacheIoError, CacheLocation};
use crate::image::layer_record::{self, LayerRecord};
use crate::image::push::memo_key;
use crate::image::store_blobs::{StoreBlobWriter, StoreBlobs};

/// The OCI annotation naming a manifest in a layout's `index.json`.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest manifest or `index.json` read from a cache.
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// A record of an imported cache.
#[derive(Debug)]
struct ImportedRecord {
    chain: Vec<CacheLayer>,
    payload: Vec<u8>,
    source: Arc<CacheLocation>,
}

/// What happened during the build, for the client to show.
#[derive(Debug, Default)]
struct Notes {
    warnings: Vec<String>,
    fetched: Vec<Digest>,
    refused: HashSet<CacheKey>,
}

/// Cache configs loaded for one build (see the module docs).
#[derive(Debug)]
pub struct ImportedCache {
    records: HashMap<CacheKey, ImportedRecord>,
    client: Arc<Client>,
    notes: Mutex<Notes>,
}

impl ImportedCache {
    /// Loads the config of each cache. A cache that cannot be read (missing, unreachable,
    /// invalid) is skipped with a warning, as buildx does; the first cache listed wins a
    /// key both have.
    pub async fn load(from: &[CacheFrom], client: Arc<Client>) -> ImportedCache {
        let mut records = HashMap::new();
        let mut notes = Notes::default();
        for cache in from {
            let source = Arc::new(cache.location.clone());
            let config = match read_config(&cache.location, &client).await {
                Ok(config) => config,
                Err(e) => {
                    notes.warnings.push(format!("cache import ignored: {e}"));
                    continue;
                }
            };
            for record in config.records {
                // `CacheConfig::parse` checked keys, indexes and payloads.
                let (Some(key), Some(payload)) =
                    (parse_key(&record.key), decode_hex(&record.payload))
                else {
                    continue;
                };
                let chain = record
                    .chain
                    .iter()
                    .map(|&i| config.layers[i].clone())
                    .collect();
                records.entry(key).or_insert(ImportedRecord {
                    chain,
                    payload,
                    source: source.clone(),
                });
            }
        }
        ImportedCache {
            records,
            client,
            notes: Mutex::new(notes),
        }
    }

    /// How many records were loaded.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was loaded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Warnings so far (caches skipped, records ignored because their blobs were bad).
    pub fn warnings(&self) -> Vec<String> {
        self.notes().warnings.clone()
    }

    /// Layer blobs fetched from caches so far.
    pub fn fetched(&self) -> Vec<Digest> {
        self.notes().fetched.clone()
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The snapshot of the imported record under `key`, made now (and recorded in the
    /// store's cache index, with the records whose chains are prefixes of it); `None` when
    /// no cache has the key, or when its record could not be used (a warning says why, and
    /// the record is not tried again).
    pub async fn materialise(
        &self,
        store: &Store,
        lease: &Lease,
        key: &CacheKey,
    ) -> Option<SnapshotId> {
        let record = self.records.get(key)?;
        if record.chain.is_empty() || self.notes().refused.contains(key) {
            return None;
        }
        // Blocking steps need a lease they can own; the caller's takes the result before
        // this one ends.
        let inner = Arc::new(store.lease());
        let made = self
            .make_chain(store, &inner, record)
            .await
            .and_then(|ids| {
                let top = ids.last().cloned().expect("the chain is not empty");
                lease.add_snapshot(&top).map_err(|e| CacheIoError::Store {
                    location: record.source.to_string(),
                    reason: format!("cannot lease snapshot {top}: {e}"),
                })?;
                Ok(ids)
            });
        match made {
            Ok(ids) => {
                self.remember_prefixes(store, key, record, &ids);
                ids.last().cloned()
            }
            Err(e) => {
                let mut notes = self.notes();
                notes.refused.insert(*key);
                notes.warnings.push(format!(
                    "cache record {} ignored, the step runs instead: {e}",
                    &super::format::encode_hex(key)[..12]
                ));
                None
            }
        }
    }

    /// Records `key` and every imported record whose chain is a prefix of its chain (the
    /// steps below it, so the exporter matches history entries to layers as on the root
    /// that built them), unless the store has a record for them already.
    fn remember_prefixes(
        &self,
        store: &Store,
        key: &CacheKey,
        record: &ImportedRecord,
        ids: &[SnapshotId],
    ) {
        let digests: Vec<Digest> = record.chain.iter().map(|l| l.blob.digest).collect();
        for (other_key, other) in &self.records {
            let n = other.chain.len();
            let prefix = n > 0
                && n <= digests.len()
                && other
                    .chain
                    .iter()
                    .map(|l| l.blob.digest)
                    .eq(digests[..n].iter().copied());
            if !prefix
                || (other_key != key && matches!(store.cache().get(other_key, None), Ok(Some(_))))
            {
                continue;
            }
            let value = CacheValue {
                snapshot: Some(ids[n - 1].clone()),
                blobs: Vec::new(),
                payload: other.payload.clone(),
            };
            // Losing a record only costs a lookup that misses.
            let _ = store.cache().put(other_key, &value);
        }
    }

    /// Snapshots for each layer of `record`, bottom first.
    async fn make_chain(
        &self,
        store: &Store,
        lease: &Arc<Lease>,
        record: &ImportedRecord,
    ) -> Result<Vec<SnapshotId>, CacheIoError> {
        let location = record.source.to_string();
        let task = |e: tokio::task::JoinError| CacheIoError::Task {
            reason: e.to_string(),
        };
        let mut ids: Vec<SnapshotId> = Vec::with_capacity(record.chain.len());
        for layer in &record.chain {
            let parent = ids.last().cloned();
            let (s, l, lay) = (store.clone(), lease.clone(), layer.clone());
            let reused =
                tokio::task::spawn_blocking(move || reusable(&s, &l, &lay, parent.as_ref()))
                    .await
                    .map_err(task)?;
            if let Some(id) = reused {
                ids.push(id);
                continue;
            }
            let content = store.content();
            let (from, fetched) = if content.contains(&layer.diff_id) {
                (layer.diff_id, false)
            } else if content.contains(&layer.blob.digest) {
                (layer.blob.digest, false)
            } else {
                self.fetch(store, lease, &record.source, &layer.blob)
                    .await?;
                self.notes().fetched.push(layer.blob.digest);
                (layer.blob.digest, true)
            };
            let (s, l, lay, parent, loc) = (
                store.clone(),
                lease.clone(),
                layer.clone(),
                ids.last().cloned(),
                location.clone(),
            );
            let id = tokio::task::spawn_blocking(move || {
                unpack(&s, &l, &lay, parent.as_ref(), from, fetched, &loc)
            })
            .await
            .map_err(task)??;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Brings `blob` from the cache into the content store, verified, leased to `lease`.
    async fn fetch(
        &self,
        store: &Store,
        lease: &Arc<Lease>,
        source: &CacheLocation,
        blob: &Descriptor,
    ) -> Result<(), CacheIoError> {
        let location = source.to_string();
        match source {
            CacheLocation::Local { dir, .. } => {
                let path = blob_path(dir, &blob.digest);
                let (s, l, digest, size, loc) = (
                    store.clone(),
                    lease.clone(),
                    blob.digest,
                    blob.size,
                    location,
                );
                tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path).map_err(|source| CacheIoError::Io {
                        location: loc.clone(),
                        action: "read",
                        path: path.clone(),
                        source,
                    })?;
                    // A file longer than the descriptor says fails the digest check after at
                    // most one byte more, never after reading all of it.
                    let reader = BufReader::new(file).take(size.saturating_add(1));
                    match s.content().ingest(reader, Some(digest), &l) {
                        Ok(_) => Ok(()),
                        Err(strata_cache::ContentError::DigestMismatch {
                            expected,
                            actual,
                            ..
                        }) => Err(CacheIoError::DigestMismatch {
                            location: loc,
                            expected,
                            actual,
                        }),
                        Err(e) => Err(CacheIoError::Store {
                            location: loc,
                            reason: format!("cannot store blob {digest}: {e}"),
                        }),
                    }
                })
                .await
                .map_err(|e| CacheIoError::Task {
                    reason: e.to_string(),
                })?
            }
            CacheLocation::Registry(reference) => {
                crate::image::pull::download_blob(&self.client, store, lease, reference, blob)
                    .await
                    .map(|_| ())
                    .map_err(|e| CacheIoError::Store {
                        location,
                        reason: error_chain(&e),
                    })
            }
        }
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn blob_path(dir: &std::path::Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// A snapshot the store already has for this layer on `parent`, now leased.
fn reusable(
    store: &Store,
    lease: &Lease,
    layer: &CacheLayer,
    parent: Option<&SnapshotId>,
) -> Option<SnapshotId> {
    let snapshots = store.snapshots();
    for blob in [layer.blob.digest, layer.diff_id] {
        let Ok(Some(id)) = snapshots.by_layer_blob(&blob) else {
            continue;
        };
        let Ok(Some(record)) = snapshots.get(&id) else {
            continue;
        };
        if record.parent.as_ref() != parent || record.diff_id != Some(layer.diff_id) {
            continue;
        }
        match lease.add_snapshot(&id) {
            Ok(()) => return Some(id),
            Err(LeaseError::SnapshotNotFound { .. }) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A reader that copies what passes through it into a blob writer.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut StoreBlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        std::io::Write::write_all(self.out, &buf[..n])?;
        Ok(n)
    }
}

/// Unpacks the stored blob `from` (the layer's blob or its uncompressed tar) into a new
/// snapshot on `parent`, checks its digests, commits it and records its layer. With
/// `fetched`, the uncompressed tar is stored while it is unpacked (see the module docs).
fn unpack(
    store: &Store,
    lease: &Lease,
    layer: &CacheLayer,
    parent: Option<&SnapshotId>,
    from: Digest,
    fetched: bool,
    location: &str,
) -> Result<SnapshotId, CacheIoError> {
    let fail = |reason: String| CacheIoError::Store {
        location: location.to_owned(),
        reason,
    };
    lease
        .add_blob(&from)
        .map_err(|e| fail(format!("cannot lease blob {from}: {e}")))?;
    let file = store
        .content()
        .open(&from)
        .map_err(|e| fail(format!("cannot open blob {from}: {e}")))?;
    let prepared = store
        .snapshots()
        .prepare(parent, lease)
        .map_err(|e| fail(format!("cannot prepare a snapshot: {e}")))?;
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    };
    let blobs = StoreBlobs::new(store, lease);
    let applied = (|| -> Result<LayerRecord, CacheIoError> {
        let reader = BufReader::with_capacity(256 * 1024, file);
        if !fetched {
            let applied = apply_layer(reader, &prepared.diff(), &options)
                .map_err(|e| fail(format!("cannot unpack layer {from}: {}", error_chain(&e))))?;
            if applied.digest != from {
                return Err(CacheIoError::DigestMismatch {
                    location: location.to_owned(),
                    expected: from,
                    actual: applied.digest,
                });
            }
            check_diff_id(layer, applied.diff_id, location)?;
            let descriptor = if from == layer.diff_id {
                Descriptor::new(media_type::OCI_LAYER_TAR, from, applied.size)
            } else {
                layer.blob.clone()
            };
            return Ok(LayerRecord {
                descriptor,
                diff_id: layer.diff_id,
            });
        }
        let (_, plain) = compression::decompress(reader)
            .map_err(|e| fail(format!("cannot read layer {from}: {e}")))?;
        let mut writer = blobs
            .writer()
            .map_err(|e| fail(format!("cannot store the tar of layer {from}: {e}")))?;
        let tee = Tee {
            inner: plain,
            out: &mut writer,
        };
        let applied = apply_layer(tee, &prepared.diff(), &options)
            .map_err(|e| fail(format!("cannot unpack layer {from}: {}", error_chain(&e))))?;
        check_diff_id(layer, applied.diff_id, location)?;
        blobs
            .commit(writer, &applied.diff_id, applied.uncompressed_size)
            .map_err(|e| fail(format!("cannot store the tar of layer {from}: {e}")))?;
        remember_compressed(store, layer);
        Ok(LayerRecord {
            descriptor: Descriptor::new(
                media_type::OCI_LAYER_TAR,
                layer.diff_id,
                applied.uncompressed_size,
            ),
            diff_id: layer.diff_id,
        })
    })();
    let record = match applied {
        Ok(record) => record,
        Err(e) => {
            let _ = store.snapshots().abort(prepared);
            return Err(e);
        }
    };
    let committed = store
        .snapshots()
        .commit(prepared, Some(layer.diff_id))
        .map_err(|e| fail(format!("cannot commit the snapshot of layer {from}: {e}")))?;
    layer_record::remember(store, &committed.id, &record).map_err(|e| fail(error_chain(&e)))?;
    Ok(committed.id)
}

fn check_diff_id(layer: &CacheLayer, actual: Digest, location: &str) -> Result<(), CacheIoError> {
    if actual == layer.diff_id {
        return Ok(());
    }
    Err(CacheIoError::Invalid {
        location: location.to_owned(),
        reason: format!(
            "layer {} has diff id {actual}, the cache config says {}",
            layer.blob.digest, layer.diff_id
        ),
    })
}

/// Remembers the fetched gzip blob as the push form of the uncompressed layer (the same
/// memo a push writes after compressing), so a push of the image compresses nothing.
fn remember_compressed(store: &Store, layer: &CacheLayer) {
    if CompressionKind::from_media_type(&layer.blob.media_type) != CompressionKind::Gzip {
        return;
    }
    // Exports compress with the default level, the one a default push asks for.
    let key = memo_key(&layer.diff_id, Compression::gzip());
    let descriptor = Descriptor::new(
        media_type::OCI_LAYER_GZIP,
        layer.blob.digest,
        layer.blob.size,
    );
    let value = CacheValue {
        snapshot: None,
        blobs: vec![layer.blob.digest],
        payload: serde_json::to_vec(&descriptor).expect("descriptor serializes"),
    };
    let _ = store.cache().put(&key, &value);
}

/// Reads the cache config `location` holds.
async fn read_config(
    location: &CacheLocation,
    client: &Client,
) -> Result<CacheConfig, CacheIoError> {
    let name = location.to_string();
    let invalid = |reason: String| CacheIoError::Invalid {
        location: name.clone(),
        reason,
    };
    match location {
        CacheLocation::Local { dir, tag } => {
            let read = |path: PathBuf, limit: u64| -> Result<Vec<u8>, CacheIoError> {
                let io = |source| CacheIoError::Io {
                    location: name.clone(),
                    action: "read",
                    path: path.clone(),
                    source,
                };
                let file = std::fs::File::open(&path).map_err(io)?;
                let mut bytes = Vec::new();
                file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
                if bytes.len() as u64 > limit {
                    return Err(invalid(format!(
                        "{} is larger than {limit} bytes",
                        path.display()
                    )));
                }
                Ok(bytes)
            };
            let index_bytes = read(dir.join("index.json"), MAX_MANIFEST_SIZE)?;
            let index = ImageIndex::from_json(&index_bytes)
                .map_err(|e| invalid(format!("index.json is not an OCI index: {e}")))?;
            let entry = index
                .manifests
                .iter()
                .find(|m| m.annotations.get(REF_NAME) == Some(tag))
                .ok_or_else(|| invalid(format!("index.json has no cache tagged {tag:?}")))?;
            let manifest_bytes = read(blob_path(dir, &entry.digest), MAX_MANIFEST_SIZE)?;
            verify(&name, &entry.digest, &manifest_bytes)?;
            let manifest = parse_manifest(&name, &manifest_bytes)?;
            let config_bytes = read(
                blob_path(dir, &manifest.config.digest),
                super::format::MAX_CONFIG_SIZE,
            )?;
            verify(&name, &manifest.config.digest, &config_bytes)?;
            CacheConfig::parse(&config_bytes).map_err(|e| invalid(e.to_string()))
        }
        CacheLocation::Registry(reference) => {
            let registry = |source| CacheIoError::Registry {
                location: name.clone(),
                source: Box::new(source),
            };
            let fetched = client.fetch_manifest(reference).await.map_err(registry)?;
            let manifest = parse_manifest(&name, &fetched.bytes)?;
            let config_bytes = client
                .fetch_blob_bytes(reference, &manifest.config)
                .await
                .map_err(registry)?;
            CacheConfig::parse(&config_bytes).map_err(|e| invalid(e.to_string()))
        }
    }
}

fn verify(location: &str, expected: &Digest, bytes: &[u8]) -> Result<(), CacheIoError> {
    let actual = Digest::of(bytes);
    if actual != *expected {
        return Err(CacheIoError::DigestMismatch {
            location: location.to_owned(),
            expected: *expected,
            actual,
        });
    }
    Ok(())
}

fn parse_manifest(location: &str, bytes: &[u8]) -> Result<ImageManifest, CacheIoError> {
    let manifest = ImageManifest::from_json(bytes).map_err(|e| CacheIoError::Invalid {
        location: location.to_owned(),
        reason: format!("the cache manifest is invalid: {e}"),
    })?;
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(CacheIoError::Invalid {
            location: location.to_owned(),
            reason: format!(
                "not a Strata cache (config media type {:?}, expected {CONFIG_MEDIA_TYPE})",
                manifest.config.media_type
            ),
        });
    }
    Ok(manifest)
}
