//! Leases: what a build is using, which garbage collection must not remove.
//!
//! Main types: [`Lease`] (taken with `Store::lease`, released on drop) and [`Resource`]
//! (a snapshot, a blob or a cache mount). A leased snapshot protects its whole parent chain
//! and the layer blobs recorded for it.
//!
//! Where leases live: in memory in the owning `Store`, mirrored into that owner's lock file
//! (`v1/tmp/<owner>.lock`, see the `owner` module) so that a prune in another process can read
//! them. A lease is exactly as alive as its owner's lock: a crashed process's leases are stale
//! the moment it dies, and the lock file is deleted by the next sweep. The file is rewritten
//! without fsync — after a crash it is meaningless anyway — which keeps taking a lease at a
//! few microseconds instead of a durable database commit (~0.5 ms).
//!
//! Ordering against garbage collection (the `v1/gc.lock` flock): lease changes, and the
//! lookups that take leases, hold it shared; a prune holds it exclusively while it reads the
//! leases, decides and deletes. So a lookup that found a record and leased its snapshot can
//! never have that snapshot deleted under it, and a prune never sees half a lease file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::db::DbError;
use crate::digest::Digest;
use crate::layout::Layout;
use crate::owner::{self, Liveness, OwnerError};
use crate::snapshot::SnapshotId;
use crate::store::Store;

/// A lease failure.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A lock or lease file could not be used.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The snapshot to lease is not committed (or was removed).
    #[error("cannot lease snapshot {id}: it does not exist")]
    SnapshotNotFound {
        /// The snapshot.
        id: SnapshotId,
    },
    /// The blob to lease is not in the content store.
    #[error("cannot lease blob {digest}: it is not in the content store")]
    BlobNotFound {
        /// The blob.
        digest: Digest,
    },
    /// Another owner's lease file cannot be parsed; pruning refuses to guess.
    #[error("corrupt lease file {path} at line {line}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// Checking a dead owner failed.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Something a lease can hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A snapshot (prepared or committed), and so its parent chain and layer blobs.
    Snapshot(SnapshotId),
    /// A blob of the content store.
    Blob(Digest),
    /// A cache mount directory, by directory id.
    CacheMount(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Snapshot(id) => write!(f, "s {id}"),
            Resource::Blob(digest) => write!(f, "b {}", digest.hex()),
            Resource::CacheMount(id) => write!(f, "m {id}"),
        }
    }
}

impl Resource {
    fn parse(line: &str) -> Option<Resource> {
        let (kind, value) = line.split_once(' ')?;
        match kind {
            "s" => value.parse().ok().map(Resource::Snapshot),
            "b" => Digest::from_hex(value).ok().map(Resource::Blob),
            "m" if !value.is_empty() && !value.contains(['/', '\0']) => {
                Some(Resource::CacheMount(value.to_owned()))
            }
            _ => None,
        }
    }
}

const HEADER: &str = "strata-leases 1";

/// The leases of one `Store`, mirrored into its owner lock file.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    next_id: u64,
    leases: BTreeMap<u64, BTreeSet<Resource>>,
}

impl LeaseTable {
    fn encode(&self) -> Vec<u8> {
        let union: BTreeSet<&Resource> = self.leases.values().flatten().collect();
        let mut out = format!("{HEADER}\n");
        for resource in union {
            out.push_str(&resource.to_string());
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// Rewrites the owner's lease list. Callers hold the gc lock shared and the table mutex.
fn write_table(store: &Store, table: &LeaseTable) -> Result<(), LeaseError> {
    let file = store.inner.owner.lock_file();
    let bytes = table.encode();
    let path = || {
        store
            .inner
            .layout
            .tmp_dir()
            .join(format!("{}.lock", store.inner.owner.id()))
    };
    file.set_len(0).map_err(|source| LeaseError::Io {
        action: "truncate lease file",
        path: path(),
        source,
    })?;
    file.write_all_at(&bytes, 0)
        .map_err(|source| LeaseError::Io {
            action: "write lease file",
            path: path(),
            source,
        })
}

/// The lock that orders lease changes against garbage collection.
#[derive(Debug)]
pub(crate) struct GcLock {
    _file: File,
}

impl GcLock {
    fn take(layout: &Layout, exclusive: bool) -> Result<GcLock, LeaseError> {
        let path = layout.gc_lock_path();
        let err = |action| {
            let path = path.clone();
            move |source| LeaseError::Io {
                action,
                path,
                source,
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(err("open gc lock"))?;
        // A fresh open file description per acquisition: flock locks belong to it, so threads
        // of one process take and release theirs independently.
        if exclusive {
            file.lock().map_err(err("lock gc lock"))?;
        } else {
            file.lock_shared().map_err(err("lock gc lock"))?;
        }
        Ok(GcLock { _file: file })
    }

    /// Held while leases change or a lookup takes one.
    pub(crate) fn shared(layout: &Layout) -> Result<GcLock, LeaseError> {
        GcLock::take(layout, false)
    }

    /// Held by garbage collection while it reads leases, decides and deletes.
    pub(crate) fn exclusive(layout: &Layout) -> Result<GcLock, LeaseError> {
        GcLock::take(layout, true)
    }
}

/// A build's hold on snapshots, blobs and cache mounts; released when dropped.
///
/// Take one per build (or per job) with `Store::lease`, and pass it to the calls that create
/// or look up what the build will use: those add to it atomically with respect to pruning.
pub struct Lease {
    store: Store,
    id: u64,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).finish()
    }
}

impl Lease {
    pub(crate) fn new(store: Store) -> Lease {
        let id = {
            let mut table = store.inner.leases.lock().expect("lease table poisoned");
            table.next_id += 1;
            let id = table.next_id;
            table.leases.insert(id, BTreeSet::new());
            id
        };
        Lease { store, id }
    }

    /// This lease's id (unique within its `Store`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What the lease holds.
    pub fn resources(&self) -> Vec<Resource> {
        let table = self
            .store
            .inner
            .leases
            .lock()
            .expect("lease table poisoned");
        table
            .leases
            .get(&self.id)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Leases a committed snapshot (and so its chain and layer blobs).
    pub fn add_snapshot(&self, id: &SnapshotId) -> Result<(), LeaseError> {
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        if !crate::snapshot::is_committed(&self.store, id)? {
            return Err(LeaseError::SnapshotNotFound { id: id.clone() });
        }
        self.add_locked([Resource::Snapshot(id.clone())])
    }

    /// Leases a blob of the content store.
    pub fn add_blob(&self, digest: &Digest) -> Result<(), LeaseError> {
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        if !self.store.inner.layout.blob_path(digest).exists() {
            return Err(LeaseError::BlobNotFound { digest: *digest });
        }
        self.add_locked([Resource::Blob(*digest)])
    }

    /// Adds resources; the caller holds the gc lock shared and has checked they exist.
    pub(crate) fn add_locked(
        &self,
        resources: impl IntoIterator<Item = Resource>,
    ) -> Result<(), LeaseError> {
        let mut table = self
            .store
            .inner
            .leases
            .lock()
            .expect("lease table poisoned");
        let set = table.leases.entry(self.id).or_default();
        let mut changed = false;
        for resource in resources {
            changed |= set.insert(resource);
        }
        if changed {
            write_table(&self.store, &table)?;
        }
        Ok(())
    }

    /// Whether this lease belongs to `store` (same process-level `Store`).
    pub(crate) fn belongs_to(&self, store: &Store) -> bool {
        std::sync::Arc::ptr_eq(&self.store.inner, &store.inner)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let gc = GcLock::shared(&self.store.inner.layout);
        let mut table = self
            .store
            .inner
            .leases
            .lock()
            .expect("lease table poisoned");
        let held = table
            .leases
            .remove(&self.id)
            .is_some_and(|set| !set.is_empty());
        // Without the gc lock the file keeps listing the resources: they stay protected until
        // the next change or until this Store closes, which is the safe direction.
        if held && gc.is_ok() {
            let _ = write_table(&self.store, &table);
        }
    }
}

/// Everything that live leases hold, across all owners.
#[derive(Debug, Default)]
pub(crate) struct LiveLeases {
    pub snapshots: HashSet<SnapshotId>,
    pub blobs: HashSet<Digest>,
    pub cache_mounts: HashSet<String>,
}

/// Reads the leases of every live owner and removes the entries of dead ones. The caller
/// holds the gc lock exclusively.
pub(crate) fn read_live(layout: &Layout) -> Result<LiveLeases, LeaseError> {
    let tmp = layout.tmp_dir();
    let mut live = LiveLeases::default();
    let entries = fs::read_dir(&tmp).map_err(|source| LeaseError::Io {
        action: "read",
        path: tmp.clone(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LeaseError::Io {
            action: "read",
            path: tmp.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".lock"))
            .filter(|id| owner::is_owner_id(id))
        else {
            continue;
        };
        let path = entry.path();
        match owner::liveness(&path)? {
            Liveness::Alive(file) => parse_into(&path, file, &mut live)?,
            Liveness::Dead(lock) => owner::remove_dead(layout, id, lock)?,
            Liveness::Gone => {}
        }
    }
    Ok(live)
}

fn parse_into(path: &Path, mut file: File, live: &mut LiveLeases) -> Result<(), LeaseError> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| LeaseError::Io {
            action: "read lease file",
            path: path.to_owned(),
            source,
        })?;
    // An owner that has not leased anything yet has an empty file.
    let mut lines = text.lines().enumerate();
    match lines.next() {
        None => return Ok(()),
        Some((_, HEADER)) => {}
        Some((n, _)) => {
            return Err(LeaseError::Corrupt {
                path: path.to_owned(),
                line: n + 1,
            })
        }
    }
    for (n, line) in lines {
        match Resource::parse(line) {
            Some(Resource::Snapshot(id)) => {
                live.snapshots.insert(id);
            }
            Some(Resource::Blob(d)) => {
                live.blobs.insert(d);
            }
            Some(Resource::CacheMount(id)) => {
                live.cache_mounts.insert(id);
            }
            None => {
                return Err(LeaseError::Corrupt {
                    path: path.to_owned(),
                    line: n + 1,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_round_trip_through_lines() {
        let table = LeaseTable {
            next_id: 2,
            leases: BTreeMap::from([
                (
                    1,
                    BTreeSet::from([
                        Resource::Snapshot("00112233445566ff".parse().unwrap()),
                        Resource::Blob(Digest::of(b"a")),
                    ]),
                ),
                (2, BTreeSet::from([Resource::CacheMount("abc".into())])),
            ]),
        };
        let text = String::from_utf8(table.encode()).unwrap();
        assert!(text.starts_with("strata-leases 1\n"));
        let resources: Vec<_> = text.lines().skip(1).map(Resource::parse).collect();
        assert!(resources.iter().all(Option::is_some));
        assert_eq!(resources.len(), 3);
        assert!(Resource::parse("x y").is_none());
        assert!(Resource::parse("m ../x").is_none());
    }
}
