//! Cache mounts: the persistent directories behind `RUN --mount=type=cache`.
//!
//! Main types: [`CacheMountRecord`] and the [`CacheMounts`] view. A mount is named by the
//! caller (BuildKit uses the mount's `id=`, defaulting to its target path); its directory is
//! `v1/mounts/cache/<first 32 hex digits of sha256(name)>`, so any name maps to a safe,
//! fixed-length directory name.
//!
//! Key decision: cache mounts are mutable, shared state, not snapshots. They are created
//! atomically (staged, then renamed with `RENAME_NOREPLACE`, so racing builds end up with the
//! same directory), leased while a build uses them, and only removed by `prune` with
//! `all` (or explicitly). Serializing concurrent writers (`sharing=locked`) is the worker's
//! job.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use redb::ReadableTable;

use crate::db::{DbError, DbResult, CACHE_MOUNTS};
use crate::digest::Digest;
use crate::durable::{fsync_dir, random_hex, remove_tree, rename_noreplace};
use crate::encoding::{from_millis, now_millis, to_millis, Decoder, Encoder};
use crate::lease::{read_live, GcLock, Lease, LeaseError, Resource};
use crate::store::Store;

/// A cache mount failure.
#[derive(Debug, thiserror::Error)]
pub enum CacheMountError {
    /// The name is empty or has a NUL.
    #[error("invalid cache mount name {name:?}")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A live lease holds the mount.
    #[error("cannot remove cache mount {name}: a running build uses it")]
    InUse {
        /// The mount's name.
        name: String,
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

/// A cache mount directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMountRecord {
    /// The caller's name for it.
    pub name: String,
    /// Its directory name under `v1/mounts/cache/`.
    pub id: String,
    /// When it was created.
    pub created: SystemTime,
    /// When a build last used it (as of the last flush).
    pub last_used: SystemTime,
}

const RECORD_VERSION: u8 = 1;

impl CacheMountRecord {
    fn encode(&self) -> Vec<u8> {
        Encoder::new(RECORD_VERSION)
            .str(&self.name)
            .u64(to_millis(self.created))
            .u64(to_millis(self.last_used))
            .finish()
    }

    pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<CacheMountRecord, DbError> {
        let corrupt = |source| DbError::Corrupt {
            table: "cache_mounts",
            key: id.to_owned(),
            source,
        };
        let mut r = Decoder::new(bytes, RECORD_VERSION).map_err(corrupt)?;
        let name = r.str().map_err(corrupt)?.to_owned();
        let created = from_millis(r.u64().map_err(corrupt)?);
        let last_used = from_millis(r.u64().map_err(corrupt)?);
        r.finish().map_err(corrupt)?;
        Ok(CacheMountRecord {
            name,
            id: id.to_owned(),
            created,
            last_used,
        })
    }
}

/// The directory id of the mount named `name`.
pub fn mount_id(name: &str) -> String {
    Digest::of(name.as_bytes()).hex()[..32].to_owned()
}

/// Applies last-used times noted in memory (part of `Store::flush`).
pub(crate) fn apply_touches(
    table: &mut redb::Table<&'static str, &'static [u8]>,
    touches: &HashMap<String, u64>,
) -> Result<(), DbError> {
    for (id, at) in touches {
        let record = match table.get(id.as_str()).op("read cache mount")? {
            Some(bytes) => CacheMountRecord::decode(id, bytes.value())?,
            None => continue,
        };
        if to_millis(record.last_used) < *at {
            let record = CacheMountRecord {
                last_used: from_millis(*at),
                ..record
            };
            table
                .insert(id.as_str(), record.encode().as_slice())
                .op("update cache mount")?;
        }
    }
    Ok(())
}

/// The cache mounts view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct CacheMounts<'a> {
    store: &'a Store,
}

impl<'a> CacheMounts<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        CacheMounts { store }
    }

    /// The directory of the mount named `name` (which may not exist yet).
    pub fn path(&self, name: &str) -> PathBuf {
        self.store
            .inner
            .layout
            .cache_mounts_dir()
            .join(mount_id(name))
    }

    /// The directory of the mount named `name`, created empty if needed, and leased.
    pub fn get_or_create(&self, name: &str, lease: &Lease) -> Result<PathBuf, CacheMountError> {
        if name.is_empty() || name.contains('\0') {
            return Err(CacheMountError::InvalidName {
                name: name.to_owned(),
            });
        }
        let id = mount_id(name);
        let dir = self.path(name);
        let io_err = |action: &'static str, path: PathBuf| {
            move |source| CacheMountError::Io {
                action,
                path,
                source,
            }
        };
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        let known = {
            let tx = self.store.inner.db.read()?;
            let table = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
            let found = table.get(id.as_str()).op("read cache mount")?.is_some();
            found
        };
        if !known || !dir.exists() {
            if !dir.exists() {
                let staged = self.store.staging().join(format!("mount-{}", random_hex()));
                fs::create_dir(&staged).map_err(io_err("create", staged.clone()))?;
                let placed =
                    rename_noreplace(&staged, &dir).map_err(io_err("create", dir.clone()))?;
                if !placed {
                    let _ = fs::remove_dir(&staged);
                }
                let parent = self.store.inner.layout.cache_mounts_dir();
                fsync_dir(&parent).map_err(io_err("fsync", parent))?;
            }
            let tx = self.store.inner.db.write()?;
            {
                let mut table = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
                let exists = table.get(id.as_str()).op("read cache mount")?.is_some();
                if !exists {
                    let now = from_millis(now_millis());
                    let record = CacheMountRecord {
                        name: name.to_owned(),
                        id: id.clone(),
                        created: now,
                        last_used: now,
                    };
                    table
                        .insert(id.as_str(), record.encode().as_slice())
                        .op("insert cache mount")?;
                }
            }
            tx.commit().op("commit cache mount")?;
        }
        lease.add_locked([Resource::CacheMount(id.clone())])?;
        self.store
            .inner
            .touched
            .lock()
            .expect("touched set poisoned")
            .cache_mounts
            .insert(id, now_millis());
        Ok(dir)
    }

    /// Every cache mount.
    pub fn list(&self) -> Result<Vec<CacheMountRecord>, CacheMountError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
        let mut out = Vec::new();
        for entry in table.iter().op("list cache mounts")? {
            let (id, value) = entry.op("list cache mounts")?;
            out.push(CacheMountRecord::decode(id.value(), value.value())?);
        }
        Ok(out)
    }

    /// Deletes the mount named `name` and its content; whether it existed. Refused while a
    /// live lease holds it.
    pub fn remove(&self, name: &str) -> Result<bool, CacheMountError> {
        let id = mount_id(name);
        let trash = {
            let _gc = GcLock::exclusive(&self.store.inner.layout)?;
            let live = read_live(&self.store.inner.layout)?;
            if live.cache_mounts.contains(&id) {
                return Err(CacheMountError::InUse {
                    name: name.to_owned(),
                });
            }
            let tx = self.store.inner.db.write()?;
            let existed = {
                let mut table = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
                let existed = table
                    .remove(id.as_str())
                    .op("remove cache mount")?
                    .is_some();
                existed
            };
            tx.commit().op("commit cache mount removal")?;
            let dir = self.path(name);
            let trash = self.store.staging().join(format!("trash-{}", random_hex()));
            match fs::rename(&dir, &trash) {
                Ok(()) => Some((existed, Some(trash))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Some((existed, None)),
                Err(e) => {
                    return Err(CacheMountError::Io {
                        action: "move to trash",
                        path: dir,
                        source: e,
                    })
                }
            }
        };
        let (existed, trash) = trash.expect("set above");
        if let Some(trash) = trash {
            remove_tree(&trash).map_err(|source| CacheMountError::Io {
                action: "remove",
                path: trash.clone(),
                source,
            })?;
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fixed_length_hex() {
        let a = mount_id("/root/.cache/go-build");
        assert_eq!(a.len(), 32);
        assert_ne!(a, mount_id("/root/.cache/pip"));
        assert_eq!(a, mount_id("/root/.cache/go-build"));
    }
}
