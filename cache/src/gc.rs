//! Garbage collection: disk usage and pruning.
//!
//! Main items: [`DiskUsage`] (from `Store::du`), [`PruneOptions`] and [`PruneReport`] (from
//! `Store::prune`).
//!
//! What is kept: everything reachable from a root. Roots are tagged images (their manifest,
//! config and layer blobs, following indexes to the child manifests that are present), live
//! leases (snapshots, blobs, cache mounts) and the cache records that survive this prune.
//! A snapshot keeps its parent and the layer blobs mapped to it; a record keeps its snapshot
//! and blobs. What is always removed: anything unreachable, and crash leftovers (snapshot or
//! mount directories without a record).
//!
//! Which cache records are removed: those not in use by a live lease, last used before
//! `older_than` if given, least recently used first until usage is at most `keep_storage` if
//! given (all of them otherwise). `all` also makes cache mounts candidates, under the same
//! rules; without it they are kept.
//!
//! Key decision: the whole decision runs in one write transaction while holding the gc lock
//! exclusively, so it sees every lease and every commit; files are moved out of sight (blobs
//! unlinked, directories renamed into staging) before the lock is released, and the slow
//! recursive deletes happen after. Reference counts make `keep_storage` linear: removing a
//! record frees exactly the nodes whose count drops to zero.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use redb::ReadableTable;

use crate::cache_index::{decode_all, CacheKey};
use crate::cache_mount::CacheMountRecord;
use crate::content::ContentError;
use crate::db::{DbError, DbResult, CACHE, CACHE_MOUNTS, IMAGES, LAYERS, SNAPSHOTS};
use crate::digest::Digest;
use crate::durable::{disk_usage, random_hex, remove_tree};
use crate::image_index::{ImageRecord, ManifestRefs};
use crate::lease::{read_live, GcLock, LeaseError, LiveLeases};
use crate::snapshot::{SnapshotError, SnapshotId, SnapshotRecord};
use crate::store::Store;

/// A garbage collection failure.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A file system step failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Listing blobs failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Moving a snapshot out of sight failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Leases could not be read.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A count of items and the bytes they take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// How many.
    pub count: u64,
    /// Bytes (blobs: file sizes; directories: allocated blocks).
    pub bytes: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// Disk usage by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Content store blobs.
    pub blobs: Usage,
    /// Committed snapshots (sizes measured at commit).
    pub snapshots: Usage,
    /// Cache mount directories (measured now).
    pub cache_mounts: Usage,
    /// Cache records.
    pub cache_records: u64,
    /// Tagged images.
    pub images: u64,
}

impl DiskUsage {
    /// Bytes of blobs, snapshots and cache mounts together.
    pub fn total_bytes(&self) -> u64 {
        self.blobs.bytes + self.snapshots.bytes + self.cache_mounts.bytes
    }
}

/// What [`Store::prune`] may remove (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Also remove cache mounts.
    pub all: bool,
    /// Stop once blobs + snapshots + cache mounts take at most this many bytes.
    pub keep_storage: Option<u64>,
    /// Only remove cache records (and mounts) last used longer ago than this.
    pub older_than: Option<Duration>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache records removed.
    pub cache_records: u64,
    /// Snapshots removed.
    pub snapshots: Usage,
    /// Blobs removed.
    pub blobs: Usage,
    /// Cache mounts removed.
    pub cache_mounts: Usage,
    /// Leftovers of crashed processes removed (directories without a record).
    pub orphans: u64,
    /// Things that limited the prune (for example an unreadable image manifest, whose
    /// blobs are then all kept).
    pub warnings: Vec<String>,
}

impl PruneReport {
    /// Bytes freed.
    pub fn freed_bytes(&self) -> u64 {
        self.blobs.bytes + self.snapshots.bytes + self.cache_mounts.bytes
    }
}

fn io_err(action: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> GcError {
    move |source| GcError::Io {
        action,
        path,
        source,
    }
}

/// Disk usage by kind.
pub(crate) fn du(store: &Store) -> Result<DiskUsage, GcError> {
    let mut usage = DiskUsage::default();
    for blob in store.content().list()? {
        usage.blobs.add(blob.size);
    }
    let mounts = {
        let tx = store.inner.db.read()?;
        let snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
        for entry in snapshots.iter().op("list snapshots")? {
            let (id, value) = entry.op("list snapshots")?;
            usage
                .snapshots
                .add(SnapshotRecord::decode(id.value(), value.value())?.size);
        }
        let cache = tx.open_table(CACHE).op("open cache table")?;
        usage.cache_records = redb::ReadableTableMetadata::len(&cache).op("count cache")?;
        let images = tx.open_table(IMAGES).op("open images table")?;
        usage.images = redb::ReadableTableMetadata::len(&images).op("count images")?;
        let mounts = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
        let mut ids = Vec::new();
        for entry in mounts.iter().op("list cache mounts")? {
            ids.push(entry.op("list cache mounts")?.0.value().to_owned());
        }
        ids
    };
    let dir = store.inner.layout.cache_mounts_dir();
    for id in mounts {
        let path = dir.join(&id);
        usage
            .cache_mounts
            .add(disk_usage(&path).map_err(io_err("measure", path))?);
    }
    Ok(usage)
}

/// One prunable item: a cache record or (with `all`) a cache mount.
enum Candidate {
    Record(CacheKey),
    Mount(String),
}

/// The reference-counted graph a prune works on.
#[derive(Default)]
struct Graph {
    snapshots: HashMap<SnapshotId, SnapshotRecord>,
    snapshot_refs: HashMap<SnapshotId, u64>,
    blob_sizes: HashMap<Digest, u64>,
    blob_refs: HashMap<Digest, u64>,
    /// Snapshot → layer blobs mapped to it.
    layers_of: HashMap<SnapshotId, Vec<Digest>>,
    freed_snapshots: Vec<SnapshotId>,
    freed_blobs: Vec<Digest>,
    usage: u64,
}

impl Graph {
    fn release_snapshot(&mut self, id: &SnapshotId) {
        let mut stack = vec![id.clone()];
        while let Some(id) = stack.pop() {
            let Some(count) = self.snapshot_refs.get_mut(&id) else {
                continue;
            };
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.snapshot_refs.remove(&id);
                // Only committed snapshots are freed (a lease may name a prepared one).
                let Some(record) = self.snapshots.get(&id) else {
                    continue;
                };
                self.usage = self.usage.saturating_sub(record.size);
                if let Some(parent) = record.parent.clone() {
                    stack.push(parent);
                }
                for blob in self.layers_of.remove(&id).unwrap_or_default() {
                    self.release_blob(&blob);
                }
                self.freed_snapshots.push(id);
            }
        }
    }

    fn release_blob(&mut self, digest: &Digest) {
        let Some(count) = self.blob_refs.get_mut(digest) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.blob_refs.remove(digest);
            if let Some(size) = self.blob_sizes.get(digest) {
                self.usage = self.usage.saturating_sub(*size);
                self.freed_blobs.push(*digest);
            }
        }
    }
}

/// Removes unused data (see the module docs).
pub(crate) fn prune(store: &Store, options: &PruneOptions) -> Result<PruneReport, GcError> {
    let layout = &store.inner.layout;
    let mut report = PruneReport::default();
    let now = SystemTime::now();
    let cutoff = options.older_than.and_then(|d| now.checked_sub(d));
    let is_old = |last_used: SystemTime| cutoff.is_none_or(|cutoff| last_used <= cutoff);

    let mut trash = Vec::new();
    {
        let _gc = GcLock::exclusive(layout)?;
        let live = read_live(layout)?;
        let tx = store.inner.db.write()?;
        let mut graph = Graph::default();
        let mut mount_records = Vec::new();
        let mut removed_mounts = Vec::new();
        let mounts_dir = layout.cache_mounts_dir();
        {
            let mut cache = tx.open_table(CACHE).op("open cache table")?;
            let mut snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
            let mut layers = tx.open_table(LAYERS).op("open layer blobs table")?;
            let images = tx.open_table(IMAGES).op("open images table")?;
            let mut mounts = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;

            // Load everything.
            for entry in snapshots.iter().op("list snapshots")? {
                let (id, value) = entry.op("list snapshots")?;
                let record = SnapshotRecord::decode(id.value(), value.value())?;
                graph.snapshots.insert(record.id.clone(), record);
            }
            for blob in store.content().list()? {
                graph.blob_sizes.insert(blob.digest, blob.size);
            }
            let records = decode_all(&cache)?;
            let mut stale_layers = Vec::new();
            for entry in layers.iter().op("list layer blobs")? {
                let (blob, snapshot) = entry.op("list layer blobs")?;
                let blob_bytes = blob.value();
                let digest = <[u8; 32]>::try_from(blob_bytes)
                    .ok()
                    .map(Digest::from_sha256);
                let id = snapshot.value().parse::<SnapshotId>().ok();
                match (digest, id) {
                    (Some(d), Some(id))
                        if graph.blob_sizes.contains_key(&d)
                            && graph.snapshots.contains_key(&id) =>
                    {
                        graph.layers_of.entry(id).or_default().push(d);
                    }
                    _ => stale_layers.push(blob_bytes.to_vec()),
                }
            }
            for key in stale_layers {
                layers.remove(key.as_slice()).op("remove layer blob")?;
            }
            for entry in mounts.iter().op("list cache mounts")? {
                let (id, value) = entry.op("list cache mounts")?;
                mount_records.push(CacheMountRecord::decode(id.value(), value.value())?);
            }

            // Reference counts. Pins (images, leases) count once and are never released.
            let image_blobs = image_roots(store, &images, &mut report)?;
            match image_blobs {
                Some(blobs) => {
                    for d in blobs {
                        *graph.blob_refs.entry(d).or_default() += 1;
                    }
                }
                None => {
                    for d in graph.blob_sizes.keys() {
                        *graph.blob_refs.entry(*d).or_default() += 1;
                    }
                }
            }
            pin_leases(&mut graph, &live);
            for record in graph.snapshots.values() {
                if let Some(parent) = &record.parent {
                    *graph.snapshot_refs.entry(parent.clone()).or_default() += 1;
                }
            }
            let layer_refs: Vec<Digest> = graph.layers_of.values().flatten().copied().collect();
            for d in layer_refs {
                *graph.blob_refs.entry(d).or_default() += 1;
            }
            for (_, record) in &records {
                if let Some(id) = &record.value.snapshot {
                    *graph.snapshot_refs.entry(id.clone()).or_default() += 1;
                }
                for d in &record.value.blobs {
                    *graph.blob_refs.entry(*d).or_default() += 1;
                }
            }

            // Garbage: whatever nothing refers to.
            let unreferenced: Vec<SnapshotId> = graph
                .snapshots
                .keys()
                .filter(|id| !graph.snapshot_refs.contains_key(*id))
                .cloned()
                .collect();
            for id in unreferenced {
                // Count one reference so that releasing it frees the node and cascades.
                graph.snapshot_refs.insert(id.clone(), 1);
                graph.release_snapshot(&id);
            }
            let unreferenced: Vec<Digest> = graph
                .blob_sizes
                .keys()
                .filter(|d| !graph.blob_refs.contains_key(*d))
                .copied()
                .collect();
            for d in unreferenced {
                graph.blob_refs.insert(d, 1);
                graph.release_blob(&d);
            }

            // Candidates, least recently used first.
            let mut mount_sizes = HashMap::new();
            let mut candidates: Vec<(SystemTime, Candidate)> = Vec::new();
            for (key, record) in &records {
                let in_use = record
                    .value
                    .snapshot
                    .as_ref()
                    .is_some_and(|id| live.snapshots.contains(id));
                if !in_use && is_old(record.last_used) {
                    candidates.push((record.last_used, Candidate::Record(*key)));
                }
            }
            for mount in &mount_records {
                let size = if options.all || options.keep_storage.is_some() {
                    let path = mounts_dir.join(&mount.id);
                    disk_usage(&path).map_err(io_err("measure", path))?
                } else {
                    0
                };
                mount_sizes.insert(mount.id.clone(), size);
                if options.all && !live.cache_mounts.contains(&mount.id) && is_old(mount.last_used)
                {
                    candidates.push((mount.last_used, Candidate::Mount(mount.id.clone())));
                }
            }
            candidates.sort_by_key(|(last_used, _)| *last_used);

            graph.usage = graph
                .snapshots
                .iter()
                .filter(|(id, _)| graph.snapshot_refs.contains_key(*id))
                .map(|(_, r)| r.size)
                .sum::<u64>()
                + graph
                    .blob_sizes
                    .iter()
                    .filter(|(d, _)| graph.blob_refs.contains_key(*d))
                    .map(|(_, size)| *size)
                    .sum::<u64>()
                + mount_sizes.values().sum::<u64>();

            let records_by_key: HashMap<CacheKey, _> = records.into_iter().collect();
            for (_, candidate) in candidates {
                if options.keep_storage.is_some_and(|keep| graph.usage <= keep) {
                    break;
                }
                match candidate {
                    Candidate::Record(key) => {
                        let record = &records_by_key[&key];
                        cache.remove(key.as_slice()).op("remove cache record")?;
                        report.cache_records += 1;
                        if let Some(id) = &record.value.snapshot {
                            graph.release_snapshot(id);
                        }
                        for d in &record.value.blobs {
                            graph.release_blob(d);
                        }
                    }
                    Candidate::Mount(id) => {
                        mounts.remove(id.as_str()).op("remove cache mount")?;
                        let size = mount_sizes.get(&id).copied().unwrap_or(0);
                        graph.usage = graph.usage.saturating_sub(size);
                        report.cache_mounts.add(size);
                        removed_mounts.push(id);
                    }
                }
            }

            // Apply: records of freed snapshots and their layer mappings.
            for id in &graph.freed_snapshots {
                snapshots.remove(id.as_str()).op("remove snapshot")?;
                report.snapshots.add(graph.snapshots[id].size);
            }
            let freed: HashSet<&SnapshotId> = graph.freed_snapshots.iter().collect();
            let freed_blobs: HashSet<&Digest> = graph.freed_blobs.iter().collect();
            layers
                .retain(|blob, snapshot| {
                    let blob_freed = <[u8; 32]>::try_from(blob)
                        .map(|b| freed_blobs.contains(&Digest::from_sha256(b)))
                        .unwrap_or(true);
                    let snapshot_freed = snapshot
                        .parse::<SnapshotId>()
                        .map(|id| freed.contains(&id))
                        .unwrap_or(true);
                    !blob_freed && !snapshot_freed
                })
                .op("remove layer blobs")?;
        }
        tx.commit().op("commit prune")?;
        // The database no longer names them: move freed directories out of sight and
        // unlink freed blobs, still under the lock (an ingest that dedups against a blob
        // must not interleave). A crash from here on leaves only unreferenced files, which
        // the next prune removes.
        let freed: HashSet<&SnapshotId> = graph.freed_snapshots.iter().collect();
        for id in &graph.freed_snapshots {
            if let Some(path) = store.snapshots().move_to_trash(id)? {
                trash.push(path);
            }
        }
        for d in &graph.freed_blobs {
            let path = layout.blob_path(d);
            match fs::remove_file(&path) {
                Ok(()) => report.blobs.add(graph.blob_sizes[d]),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", path)(e)),
            }
        }
        for id in &removed_mounts {
            let path = mounts_dir.join(id);
            let to = store.staging().join(format!("trash-{}", random_hex()));
            match fs::rename(&path, &to) {
                Ok(()) => trash.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("move to trash", path)(e)),
            }
        }

        // Crash leftovers: directories that no record names.
        let known_mounts: HashSet<&str> = mount_records
            .iter()
            .map(|m| m.id.as_str())
            .filter(|id| !removed_mounts.iter().any(|r| r == id))
            .collect();
        for (dir, keep) in [
            (
                layout.snapshots_dir(),
                Box::new(|name: &str| {
                    name.parse::<SnapshotId>()
                        .is_ok_and(|id| graph.snapshots.contains_key(&id) && !freed.contains(&id))
                }) as Box<dyn Fn(&str) -> bool>,
            ),
            (
                mounts_dir.clone(),
                Box::new(|name: &str| known_mounts.contains(name)),
            ),
        ] {
            for entry in fs::read_dir(&dir).map_err(io_err("read", dir.clone()))? {
                let entry = entry.map_err(io_err("read", dir.clone()))?;
                let name = entry.file_name();
                if name.to_str().is_some_and(&keep) {
                    continue;
                }
                let to = store.staging().join(format!("trash-{}", random_hex()));
                match fs::rename(entry.path(), &to) {
                    Ok(()) => {
                        trash.push(to);
                        report.orphans += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("move to trash", entry.path())(e)),
                }
            }
        }
    }
    for path in trash {
        remove_tree(&path).map_err(io_err("remove", path.clone()))?;
    }
    Ok(report)
}

fn pin_leases(graph: &mut Graph, live: &LiveLeases) {
    for id in &live.snapshots {
        *graph.snapshot_refs.entry(id.clone()).or_default() += 1;
    }
    for d in &live.blobs {
        *graph.blob_refs.entry(*d).or_default() += 1;
    }
}

/// The blobs tagged images reference, or `None` (keep every blob) if a manifest present in
/// the store cannot be parsed.
fn image_roots(
    store: &Store,
    images: &impl ReadableTable<&'static str, &'static [u8]>,
    report: &mut PruneReport,
) -> Result<Option<HashSet<Digest>>, GcError> {
    let mut roots = HashSet::new();
    let mut pending = Vec::new();
    for entry in images.iter().op("list images")? {
        let (name, value) = entry.op("list images")?;
        let image = ImageRecord::decode(name.value(), value.value())?;
        roots.extend(image.target.config);
        pending.push((image.name, image.target.manifest));
    }
    let mut visited = HashSet::new();
    while let Some((name, manifest)) = pending.pop() {
        roots.insert(manifest);
        if !visited.insert(manifest) {
            continue;
        }
        let bytes = match store.content().read(&manifest) {
            Ok(bytes) => bytes,
            // A child manifest of another platform that was never pulled: nothing to keep.
            Err(ContentError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let Ok(refs) = serde_json::from_slice::<ManifestRefs>(&bytes) else {
            report.warnings.push(format!(
                "image {name}: manifest {manifest} is not valid json; no blob was pruned"
            ));
            return Ok(None);
        };
        let mut digests = Vec::new();
        digests.extend(refs.config.iter().map(|d| (&d.digest, false)));
        digests.extend(refs.layers.iter().flatten().map(|d| (&d.digest, false)));
        digests.extend(refs.manifests.iter().flatten().map(|d| (&d.digest, true)));
        for (text, is_manifest) in digests {
            let Ok(digest) = text.parse::<Digest>() else {
                report.warnings.push(format!(
                    "image {name}: manifest {manifest} has an unsupported digest {text}; no blob was pruned"
                ));
                return Ok(None);
            };
            if is_manifest {
                pending.push((name.clone(), digest));
            } else {
                roots.insert(digest);
            }
        }
    }
    Ok(Some(roots))
}
