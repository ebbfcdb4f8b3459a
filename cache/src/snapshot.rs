//! Snapshots: one directory per layer, stacked by overlayfs.
//!
//! Main types: [`SnapshotId`], [`SnapshotRecord`], [`PreparedSnapshot`] and the
//! [`Snapshots`] view.
//!
//! Life of a snapshot: [`Snapshots::prepare`] creates `diff/` and `work/` in the owner's
//! staging directory (`v1/tmp/<owner>/snapshots/<id>/`) — the executor mounts
//! `overlay(lowerdir = prepared.lowerdirs(), upperdir = diff, workdir = work)` or writes
//! into `diff` directly; [`Snapshots::commit`] measures the diff, renames the directory to
//! `v1/snapshots/<id>/` and records it in the database. Only then is it visible. A prepared snapshot that is dropped, aborted, or whose process dies is
//! staging garbage, removed with its owner's staging directory.
//!
//! Durability: a commit does not wait for the diff's files to reach the disk (a `syncfs`
//! per step cost a RUN more than the rest of its commit). It records the snapshot as
//! *unsynced* (with the kernel's boot id) in the same transaction as the snapshot itself;
//! [`Snapshots::flush`] — called when the last handle on the store is dropped, so once per
//! build — makes every unsynced snapshot durable with one `syncfs` and clears the marks.
//! A process killed before that loses nothing (its files are in the page cache, and the
//! next flush covers them), but a snapshot still unsynced under an *earlier* boot may have
//! lost files in a power cut: `Snapshots::recover`, run by `Store::open`, removes those
//! snapshots (and what is built on them) with their cache records, so a later build re-runs
//! the steps instead of trusting a damaged layer.
//!
//! Key decisions: ids are 16 random hex digits (ids are not part of cache keys); the final
//! rename uses `RENAME_NOREPLACE`, so two processes can never commit the same id. Committed
//! snapshots are immutable and carry no `work/`. Deleting one removes its record first and
//! then moves the directory into staging before deleting it, so a crash never leaves a
//! record without its directory.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use redb::{ReadableTable, ReadableTableMetadata};

use crate::db::{DbError, DbResult, CACHE, LAYERS, SNAPSHOTS, UNSYNCED};
use crate::digest::Digest;
use crate::durable::{disk_usage, fsync_dir, random_hex, remove_tree, rename_noreplace};
use crate::encoding::{from_millis, now_millis, DecodeError, Decoder, Encoder};
use crate::lease::{read_live, GcLock, Lease, LeaseError, Resource};
use crate::store::Store;

/// A snapshot failure.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot is not committed (or was removed).
    #[error("snapshot {id} not found")]
    NotFound {
        /// The snapshot.
        id: SnapshotId,
    },
    /// The parent given to prepare is not a committed snapshot.
    #[error("cannot prepare a snapshot on {parent}: parent not found")]
    ParentNotFound {
        /// The parent.
        parent: SnapshotId,
    },
    /// A snapshot's chain refers to a missing ancestor (database damaged by hand).
    #[error("snapshot {id} has a broken parent chain: {missing} is missing")]
    BrokenChain {
        /// The snapshot whose chain was walked.
        id: SnapshotId,
        /// The missing ancestor.
        missing: SnapshotId,
    },
    /// The random id is already taken (never expected: 64 random bits).
    #[error("snapshot id {id} already exists")]
    IdCollision {
        /// The id.
        id: SnapshotId,
    },
    /// Other snapshots are built on this one.
    #[error("cannot remove snapshot {id}: {children} snapshots are built on it")]
    HasChildren {
        /// The snapshot.
        id: SnapshotId,
        /// How many children it has.
        children: usize,
    },
    /// A live lease holds the snapshot (or a descendant).
    #[error("cannot remove snapshot {id}: a running build holds it")]
    InUse {
        /// The snapshot.
        id: SnapshotId,
    },
    /// The layer blob to map is not in the content store.
    #[error("cannot map layer blob {digest} to snapshot {id}: blob not found")]
    BlobNotFound {
        /// The blob.
        digest: Digest,
        /// The snapshot.
        id: SnapshotId,
    },
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
    /// A lease could not be taken or read.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_owned();
    move |source| SnapshotError::Io {
        action,
        path,
        source,
    }
}

/// A snapshot's id: 16 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

/// Why a string is not a snapshot id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot id {input:?}: expected 16 lowercase hex digits")]
pub struct SnapshotIdError {
    /// The rejected input.
    pub input: String,
}

impl SnapshotId {
    fn random() -> SnapshotId {
        SnapshotId(random_hex())
    }

    /// The id as text (also the directory name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SnapshotId {
    type Err = SnapshotIdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.len() == 16
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            Ok(SnapshotId(input.to_owned()))
        } else {
            Err(SnapshotIdError {
                input: input.to_owned(),
            })
        }
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.0)
    }
}

/// One layer blob to record for a snapshot ([`Snapshots::set_layer_blobs`]), with the cache
/// record to store beside it, if any.
#[derive(Debug, Clone, Copy)]
pub struct LayerBlob<'a> {
    /// The snapshot.
    pub id: &'a SnapshotId,
    /// The layer blob made from (or unpacked to) it.
    pub digest: &'a Digest,
    /// A cache key and value to store in the same transaction.
    pub cached: Option<(
        &'a crate::cache_index::CacheKey,
        &'a crate::cache_index::CacheValue,
    )>,
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Its id.
    pub id: SnapshotId,
    /// The snapshot it is stacked on.
    pub parent: Option<SnapshotId>,
    /// The uncompressed layer digest (sha256 of its tar diff), when known.
    pub diff_id: Option<Digest>,
    /// Bytes allocated by `diff/` at commit.
    pub size: u64,
    /// When it was committed.
    pub created: SystemTime,
    /// When a cache lookup last used it (flushed lazily).
    pub last_used: SystemTime,
}

const RECORD_VERSION: u8 = 1;

impl SnapshotRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        Encoder::new(RECORD_VERSION)
            .opt_str(self.parent.as_ref().map(SnapshotId::as_str))
            .opt_digest(self.diff_id.as_ref())
            .u64(self.size)
            .u64(crate::encoding::to_millis(self.created))
            .u64(crate::encoding::to_millis(self.last_used))
            .finish()
    }

    pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<SnapshotRecord, DbError> {
        let corrupt = |source| DbError::Corrupt {
            table: "snapshots",
            key: id.to_owned(),
            source,
        };
        let id: SnapshotId = id
            .parse()
            .map_err(|_| corrupt(DecodeError::InvalidValue { field: "id" }))?;
        let mut r = Decoder::new(bytes, RECORD_VERSION).map_err(corrupt)?;
        let parent = r.opt_str().map_err(corrupt)?;
        let parent = match parent {
            Some(p) => Some(
                p.parse()
                    .map_err(|_| corrupt(DecodeError::InvalidValue { field: "parent" }))?,
            ),
            None => None,
        };
        let diff_id = r.opt_digest().map_err(corrupt)?;
        let size = r.u64().map_err(corrupt)?;
        let created = from_millis(r.u64().map_err(corrupt)?);
        let last_used = from_millis(r.u64().map_err(corrupt)?);
        r.finish().map_err(corrupt)?;
        Ok(SnapshotRecord {
            id,
            parent,
            diff_id,
            size,
            created,
            last_used,
        })
    }
}

/// A snapshot being written: not visible to anyone until committed.
///
/// Dropping it without [`Snapshots::commit`] deletes its directory.
#[derive(Debug)]
pub struct PreparedSnapshot {
    id: SnapshotId,
    parent: Option<SnapshotId>,
    dir: PathBuf,
    lowerdirs: Vec<PathBuf>,
    done: bool,
}

impl PreparedSnapshot {
    /// The id it will be committed under.
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }

    /// The parent it is stacked on.
    pub fn parent(&self) -> Option<&SnapshotId> {
        self.parent.as_ref()
    }

    /// The directory that becomes the layer (overlay `upperdir`).
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }

    /// Overlay's `workdir` (same file system as [`Self::diff`]; discarded at commit).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// The parent chain's `diff` directories, nearest first (overlay `lowerdir=` order);
    /// empty for a snapshot without parent.
    pub fn lowerdirs(&self) -> &[PathBuf] {
        &self.lowerdirs
    }
}

impl Drop for PreparedSnapshot {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.dir);
        }
    }
}

/// Whether `id` is a committed snapshot.
pub(crate) fn is_committed(store: &Store, id: &SnapshotId) -> Result<bool, DbError> {
    let tx = store.inner.db.read()?;
    let table = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
    Ok(table.get(id.as_str()).op("read snapshot")?.is_some())
}

/// Parent chain walk guard: deeper chains are treated as corrupt (overlayfs itself stops at
/// 500 lower layers).
const MAX_CHAIN: usize = 4096;

/// The snapshots view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Snapshots<'a> {
    store: &'a Store,
}

impl<'a> Snapshots<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Snapshots { store }
    }

    /// Where the committed snapshot `id` keeps its layer.
    pub fn diff_dir(&self, id: &SnapshotId) -> PathBuf {
        self.store
            .inner
            .layout
            .snapshots_dir()
            .join(id.as_str())
            .join("diff")
    }

    /// Prepares a new snapshot on `parent` and leases both (the parent must be committed).
    pub fn prepare(
        &self,
        parent: Option<&SnapshotId>,
        lease: &Lease,
    ) -> Result<PreparedSnapshot, SnapshotError> {
        let id = SnapshotId::random();
        let dir = self.store.staging().join("snapshots").join(id.as_str());
        let prepared = PreparedSnapshot {
            id: id.clone(),
            parent: parent.cloned(),
            dir,
            lowerdirs: Vec::new(),
            done: false,
        };
        fs::create_dir_all(prepared.diff()).map_err(io_err("create", &prepared.diff()))?;
        fs::create_dir_all(prepared.work()).map_err(io_err("create", &prepared.work()))?;
        let mut prepared = prepared;
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        if let Some(parent) = parent {
            let chain = match self.chain(parent) {
                Ok(chain) => chain,
                Err(SnapshotError::NotFound { .. }) => {
                    return Err(SnapshotError::ParentNotFound {
                        parent: parent.clone(),
                    })
                }
                Err(e) => return Err(e),
            };
            prepared.lowerdirs = chain.iter().map(|r| self.diff_dir(&r.id)).collect();
            lease.add_locked([Resource::Snapshot(parent.clone()), Resource::Snapshot(id)])?;
        } else {
            lease.add_locked([Resource::Snapshot(id)])?;
        }
        Ok(prepared)
    }

    /// Discards a prepared snapshot (same as dropping it, but reports errors).
    pub fn abort(&self, mut prepared: PreparedSnapshot) -> Result<(), SnapshotError> {
        prepared.done = true;
        remove_tree(&prepared.dir).map_err(io_err("remove", &prepared.dir))
    }

    /// Commits a prepared snapshot: from now on it is visible, immutable and shared.
    ///
    /// `diff_id` is the digest of the layer's uncompressed tar, when the caller knows it.
    pub fn commit(
        &self,
        prepared: PreparedSnapshot,
        diff_id: Option<Digest>,
    ) -> Result<SnapshotRecord, SnapshotError> {
        self.commit_inner(prepared, diff_id, None)
    }

    /// [`Snapshots::commit`] that also records the snapshot as the cache result of `key`,
    /// in the same transaction: a step's commit costs one database sync, not two.
    pub fn commit_cached(
        &self,
        prepared: PreparedSnapshot,
        key: &crate::cache_index::CacheKey,
    ) -> Result<SnapshotRecord, SnapshotError> {
        self.commit_inner(prepared, None, Some(key))
    }

    fn commit_inner(
        &self,
        mut prepared: PreparedSnapshot,
        diff_id: Option<Digest>,
        cache_key: Option<&crate::cache_index::CacheKey>,
    ) -> Result<SnapshotRecord, SnapshotError> {
        let work = prepared.work();
        remove_tree(&work).map_err(io_err("remove", &work))?;
        let diff = prepared.diff();
        let size = disk_usage(&diff).map_err(io_err("measure", &diff))?;
        let now = now_millis();
        let record = SnapshotRecord {
            id: prepared.id.clone(),
            parent: prepared.parent.clone(),
            diff_id,
            size,
            created: from_millis(now),
            last_used: from_millis(now),
        };
        let snapshots_dir = self.store.inner.layout.snapshots_dir();
        let dest = snapshots_dir.join(record.id.as_str());
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        if !rename_noreplace(&prepared.dir, &dest).map_err(io_err("rename snapshot to", &dest))? {
            return Err(SnapshotError::IdCollision { id: record.id });
        }
        prepared.done = true;
        let committed = (|| {
            fsync_dir(&snapshots_dir).map_err(io_err("fsync", &snapshots_dir))?;
            let tx = self.store.inner.db.write()?;
            {
                let mut table = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
                if let Some(parent) = &record.parent {
                    if table.get(parent.as_str()).op("read snapshot")?.is_none() {
                        return Err(SnapshotError::ParentNotFound {
                            parent: parent.clone(),
                        });
                    }
                }
                table
                    .insert(record.id.as_str(), record.encode().as_slice())
                    .op("insert snapshot")?;
                // Until a flush, the record must not outlive a power cut (module docs).
                let mut unsynced = tx.open_table(UNSYNCED).op("open unsynced table")?;
                unsynced
                    .insert(record.id.as_str(), self.store.inner.boot_id.as_str())
                    .op("mark snapshot unsynced")?;
                if let Some(key) = cache_key {
                    let cached = crate::cache_index::CacheRecord {
                        value: crate::cache_index::CacheValue {
                            snapshot: Some(record.id.clone()),
                            blobs: Vec::new(),
                            payload: Vec::new(),
                        },
                        created: record.created,
                        last_used: record.created,
                    };
                    let mut cache = tx.open_table(CACHE).op("open cache table")?;
                    cache
                        .insert(key.as_slice(), cached.encode().as_slice())
                        .op("insert cache record")?;
                }
            }
            tx.commit().op("commit snapshot")?;
            Ok(())
        })();
        if let Err(e) = committed {
            // Back out of the visible name; the trash is removed here or by a later sweep.
            let trash = self.store.staging().join(format!("trash-{}", random_hex()));
            if fs::rename(&dest, &trash).is_ok() {
                let _ = remove_tree(&trash);
            }
            return Err(e);
        }
        Ok(record)
    }

    /// The committed snapshot `id`.
    pub fn get(&self, id: &SnapshotId) -> Result<Option<SnapshotRecord>, SnapshotError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
        let found = table.get(id.as_str()).op("read snapshot")?;
        Ok(match found {
            Some(bytes) => Some(SnapshotRecord::decode(id.as_str(), bytes.value())?),
            None => None,
        })
    }

    /// `id` and its ancestors, nearest first.
    pub fn chain(&self, id: &SnapshotId) -> Result<Vec<SnapshotRecord>, SnapshotError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
        let mut chain: Vec<SnapshotRecord> = Vec::new();
        let mut next = Some(id.clone());
        while let Some(current) = next {
            if chain.len() >= MAX_CHAIN {
                return Err(SnapshotError::BrokenChain {
                    id: id.clone(),
                    missing: current,
                });
            }
            let Some(bytes) = table.get(current.as_str()).op("read snapshot")? else {
                return Err(if chain.is_empty() {
                    SnapshotError::NotFound { id: current }
                } else {
                    SnapshotError::BrokenChain {
                        id: id.clone(),
                        missing: current,
                    }
                });
            };
            let record = SnapshotRecord::decode(current.as_str(), bytes.value())?;
            next = record.parent.clone();
            chain.push(record);
        }
        Ok(chain)
    }

    /// The `diff` directories of `id` and its ancestors, nearest first: what overlayfs wants
    /// as `lowerdir=` to mount the snapshot read-only, or to stack a new one on it.
    pub fn lowerdirs(&self, id: &SnapshotId) -> Result<Vec<PathBuf>, SnapshotError> {
        Ok(self
            .chain(id)?
            .iter()
            .map(|record| self.diff_dir(&record.id))
            .collect())
    }

    /// Every committed snapshot.
    pub fn list(&self) -> Result<Vec<SnapshotRecord>, SnapshotError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
        let mut out = Vec::with_capacity(table.len().op("count snapshots")? as usize);
        for entry in table.iter().op("list snapshots")? {
            let (key, value) = entry.op("list snapshots")?;
            out.push(SnapshotRecord::decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// Records that the layer blob `digest` was made from (or unpacked to) snapshot `id`.
    /// The snapshot then keeps the blob alive; lookups by blob find the snapshot.
    pub fn set_layer_blob(&self, id: &SnapshotId, digest: &Digest) -> Result<(), SnapshotError> {
        self.set_layer_blobs(&[LayerBlob {
            id,
            digest,
            cached: None,
        }])
    }

    /// [`Snapshots::set_layer_blob`] that also stores `value` under cache key `key` (whose
    /// blobs must be `digest` or already stored), in the same transaction: recording a
    /// layer both ways costs one database sync, not two.
    pub fn set_layer_blob_cached(
        &self,
        id: &SnapshotId,
        digest: &Digest,
        key: &crate::cache_index::CacheKey,
        value: &crate::cache_index::CacheValue,
    ) -> Result<(), SnapshotError> {
        self.set_layer_blobs(&[LayerBlob {
            id,
            digest,
            cached: Some((key, value)),
        }])
    }

    /// Several [`Snapshots::set_layer_blob`] / [`Snapshots::set_layer_blob_cached`] in one
    /// transaction (the layers of one export: one database sync for all). All or nothing.
    pub fn set_layer_blobs(&self, layers: &[LayerBlob<'_>]) -> Result<(), SnapshotError> {
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        for layer in layers {
            let blobs = layer
                .cached
                .map_or(&[][..], |(_, value)| value.blobs.as_slice());
            for blob in std::iter::once(layer.digest).chain(blobs) {
                if !self.store.inner.layout.blob_path(blob).exists() {
                    return Err(SnapshotError::BlobNotFound {
                        digest: *blob,
                        id: layer.id.clone(),
                    });
                }
            }
        }
        let tx = self.store.inner.db.write()?;
        for &LayerBlob { id, digest, cached } in layers {
            let snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
            if snapshots.get(id.as_str()).op("read snapshot")?.is_none() {
                return Err(SnapshotError::NotFound { id: id.clone() });
            }
            let mut table = tx.open_table(LAYERS).op("open layer blobs table")?;
            table
                .insert(digest.as_bytes().as_slice(), id.as_str())
                .op("insert layer blob")?;
            if let Some((key, value)) = cached {
                if let Some(other) = value.snapshot.as_ref().filter(|s| *s != id) {
                    if snapshots.get(other.as_str()).op("read snapshot")?.is_none() {
                        return Err(SnapshotError::NotFound { id: other.clone() });
                    }
                }
                let now = from_millis(now_millis());
                let record = crate::cache_index::CacheRecord {
                    value: value.clone(),
                    created: now,
                    last_used: now,
                };
                let mut cache = tx.open_table(CACHE).op("open cache table")?;
                cache
                    .insert(key.as_slice(), record.encode().as_slice())
                    .op("insert cache record")?;
            }
        }
        tx.commit().op("commit layer blob")?;
        Ok(())
    }

    /// The snapshot a layer blob was recorded for (to skip unpacking a pulled layer).
    pub fn by_layer_blob(&self, digest: &Digest) -> Result<Option<SnapshotId>, SnapshotError> {
        let tx = self.store.inner.db.read()?;
        let layers = tx.open_table(LAYERS).op("open layer blobs table")?;
        let Some(id) = layers
            .get(digest.as_bytes().as_slice())
            .op("read layer blob")?
        else {
            return Ok(None);
        };
        let id = id.value().to_owned();
        Ok(id.parse().ok())
    }

    /// Removes a committed snapshot, with the cache records and layer mappings that refer
    /// to it. Refused if other snapshots are built on it or a live lease holds it.
    pub fn remove(&self, id: &SnapshotId) -> Result<(), SnapshotError> {
        let trash = {
            let _gc = GcLock::exclusive(&self.store.inner.layout)?;
            let live = read_live(&self.store.inner.layout)?;
            if live.snapshots.contains(id) {
                return Err(SnapshotError::InUse { id: id.clone() });
            }
            let tx = self.store.inner.db.write()?;
            {
                let mut snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
                if snapshots.get(id.as_str()).op("read snapshot")?.is_none() {
                    return Err(SnapshotError::NotFound { id: id.clone() });
                }
                let mut children = 0;
                for entry in snapshots.iter().op("list snapshots")? {
                    let (key, value) = entry.op("list snapshots")?;
                    let record = SnapshotRecord::decode(key.value(), value.value())?;
                    if record.parent.as_ref() == Some(id) {
                        children += 1;
                        if live.snapshots.contains(&record.id) {
                            return Err(SnapshotError::InUse { id: id.clone() });
                        }
                    }
                }
                if children > 0 {
                    return Err(SnapshotError::HasChildren {
                        id: id.clone(),
                        children,
                    });
                }
                snapshots.remove(id.as_str()).op("remove snapshot")?;
                let mut layers = tx.open_table(LAYERS).op("open layer blobs table")?;
                layers
                    .retain(|_, snapshot| snapshot != id.as_str())
                    .op("remove layer blobs")?;
                let mut cache = tx.open_table(CACHE).op("open cache table")?;
                cache
                    .retain(|key, value| {
                        crate::cache_index::record_snapshot(key, value).as_deref()
                            != Some(id.as_str())
                    })
                    .op("remove cache records")?;
            }
            tx.commit().op("commit snapshot removal")?;
            self.move_to_trash(id)?
        };
        if let Some(trash) = trash {
            remove_tree(&trash).map_err(io_err("remove", &trash))?;
        }
        Ok(())
    }

    /// Makes every unsynced snapshot durable: one `syncfs` of the file system holding the
    /// snapshots, then the marks of the snapshots it covered are cleared (a snapshot
    /// committed meanwhile keeps its mark for the next flush). Cheap when nothing is marked.
    pub fn flush(&self) -> Result<(), SnapshotError> {
        flush_unsynced(&self.store.inner.db, &self.store.inner.layout)
    }

    /// Removes the snapshots still unsynced from an earlier boot (a power cut or crash of
    /// the machine may have lost their files), everything built on them, and the cache
    /// records and layer mappings that refer to them. Returns how many were removed.
    pub(crate) fn recover(&self) -> Result<usize, SnapshotError> {
        let boot = &self.store.inner.boot_id;
        let stale = {
            let tx = self.store.inner.db.read()?;
            let table = tx.open_table(UNSYNCED).op("open unsynced table")?;
            let mut stale = std::collections::HashSet::new();
            for entry in table.iter().op("list unsynced snapshots")? {
                let (id, at) = entry.op("list unsynced snapshots")?;
                if boot.is_empty() || at.value() != boot.as_str() {
                    stale.insert(id.value().to_owned());
                }
            }
            stale
        };
        if stale.is_empty() {
            return Ok(0);
        }
        let _gc = GcLock::exclusive(&self.store.inner.layout)?;
        let tx = self.store.inner.db.write()?;
        let mut doomed = stale;
        {
            let mut snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
            // Descendants too: a layer on a damaged one is damaged.
            let mut parents: Vec<(String, Option<String>)> = Vec::new();
            for entry in snapshots.iter().op("list snapshots")? {
                let (key, value) = entry.op("list snapshots")?;
                let record = SnapshotRecord::decode(key.value(), value.value())?;
                parents.push((
                    record.id.as_str().to_owned(),
                    record.parent.map(|p| p.as_str().to_owned()),
                ));
            }
            loop {
                let before = doomed.len();
                for (id, parent) in &parents {
                    if parent.as_ref().is_some_and(|p| doomed.contains(p)) {
                        doomed.insert(id.clone());
                    }
                }
                if doomed.len() == before {
                    break;
                }
            }
            for id in &doomed {
                snapshots.remove(id.as_str()).op("remove snapshot")?;
            }
            let mut unsynced = tx.open_table(UNSYNCED).op("open unsynced table")?;
            for id in &doomed {
                unsynced.remove(id.as_str()).op("clear unsynced mark")?;
            }
            let mut layers = tx.open_table(LAYERS).op("open layer blobs table")?;
            layers
                .retain(|_, snapshot| !doomed.contains(snapshot))
                .op("remove layer blobs")?;
            let mut cache = tx.open_table(CACHE).op("open cache table")?;
            cache
                .retain(|key, value| {
                    crate::cache_index::record_snapshot(key, value)
                        .is_none_or(|s| !doomed.contains(&s))
                })
                .op("remove cache records")?;
        }
        tx.commit().op("commit recovery")?;
        for id in &doomed {
            if let Ok(id) = id.parse::<SnapshotId>() {
                if let Some(trash) = self.move_to_trash(&id)? {
                    remove_tree(&trash).map_err(io_err("remove", &trash))?;
                }
            }
        }
        Ok(doomed.len())
    }

    /// Moves a snapshot directory (whose record is gone) into staging, for deletion outside
    /// the gc lock. Returns where it went, or `None` if it was already gone.
    pub(crate) fn move_to_trash(&self, id: &SnapshotId) -> Result<Option<PathBuf>, SnapshotError> {
        let dir = self.store.inner.layout.snapshots_dir().join(id.as_str());
        let trash = self.store.staging().join(format!("trash-{}", random_hex()));
        match fs::rename(&dir, &trash) {
            Ok(()) => Ok(Some(trash)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("move to trash", &dir)(e)),
        }
    }
}

/// [`Snapshots::flush`] on the parts of a store (also run when its last handle drops).
pub(crate) fn flush_unsynced(
    db: &crate::db::Db,
    layout: &crate::layout::Layout,
) -> Result<(), SnapshotError> {
    let marked: Vec<String> = {
        let tx = db.read()?;
        let table = tx.open_table(UNSYNCED).op("open unsynced table")?;
        let mut ids = Vec::new();
        for entry in table.iter().op("list unsynced snapshots")? {
            let (id, _) = entry.op("list unsynced snapshots")?;
            ids.push(id.value().to_owned());
        }
        ids
    };
    if marked.is_empty() {
        return Ok(());
    }
    let dir = layout.snapshots_dir();
    crate::durable::sync_filesystem(&dir).map_err(io_err("sync file system of", &dir))?;
    let tx = db.write()?;
    {
        let mut table = tx.open_table(UNSYNCED).op("open unsynced table")?;
        for id in &marked {
            table.remove(id.as_str()).op("clear unsynced mark")?;
        }
    }
    tx.commit().op("commit unsynced marks")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_records_round_trip() {
        let id = SnapshotId::random();
        assert_eq!(id.as_str().parse::<SnapshotId>().unwrap(), id);
        assert!("ABCDEF0123456789".parse::<SnapshotId>().is_err());
        assert!("../etc".parse::<SnapshotId>().is_err());
        let record = SnapshotRecord {
            id: id.clone(),
            parent: Some(SnapshotId::random()),
            diff_id: Some(Digest::of(b"layer")),
            size: 4096,
            created: from_millis(1_700_000_000_123),
            last_used: from_millis(1_700_000_000_456),
        };
        let decoded = SnapshotRecord::decode(id.as_str(), &record.encode()).unwrap();
        assert_eq!(decoded, record);
        assert!(SnapshotRecord::decode(id.as_str(), &[9]).is_err());
    }
}
