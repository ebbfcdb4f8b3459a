//! The store: one handle on a build root, shared by every thread of a process.
//!
//! Main type: [`Store`], cheap to clone (an `Arc`), `Send + Sync`. It opens the layout, the
//! database and registers an owner; each concept is reached through a view borrowed from it:
//! [`Store::content`], [`Store::snapshots`], [`Store::cache`], [`Store::images`],
//! [`Store::cache_mounts`], plus [`Store::lease`], [`Store::du`] and [`Store::prune`].
//!
//! Key decision: opening is cheap (well under a millisecond on a warm root: a few `mkdir`s,
//! one directory listing, one lock file, one database open) because it runs on every
//! `strata` invocation. Recovery from crashes is part of it: entries of dead owners in
//! `v1/tmp/` — temp files, prepared snapshots, half-deleted trees — are removed, and when a
//! dead owner is found `content/index.json` is regenerated from the database.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cache_index::{CacheIndex, CacheKey};
use crate::cache_mount::CacheMounts;
use crate::content::Content;
use crate::db::{Db, DbError};
use crate::durable::write_atomic;
use crate::gc::{DiskUsage, GcError, PruneOptions, PruneReport};
use crate::image_index::{ImageError, Images};
use crate::layout::{Layout, LayoutError};
use crate::lease::{Lease, LeaseTable};
use crate::owner::{self, Owner, OwnerError};
use crate::snapshot::Snapshots;

/// Why a store cannot be opened or flushed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The layout is unusable (newer version, permissions).
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Registering this process or sweeping dead ones failed.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The OCI layout files could not be written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Removing snapshots a power cut may have damaged failed.
    #[error(transparent)]
    Recover(#[from] Box<crate::snapshot::SnapshotError>),
    /// A file could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Last-used times recorded in memory and written in one transaction by [`Store::flush`].
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub cache: HashMap<CacheKey, u64>,
    pub cache_mounts: HashMap<String, u64>,
}

pub(crate) struct Inner {
    pub layout: Layout,
    pub db: Db,
    pub owner: Owner,
    pub leases: Mutex<LeaseTable>,
    pub touched: Mutex<Touched>,
    /// This kernel's boot id (unsynced snapshot marks carry it).
    pub boot_id: String,
    /// How stale a cache record's last-used time may get before a lookup rewrites it.
    pub last_used_granularity_ms: std::sync::atomic::AtomicU64,
}

/// Default of [`Store::set_last_used_granularity`]: last-used times only order pruning.
const LAST_USED_GRANULARITY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = crate::cache_index::flush_touched(&self.db, &self.touched);
        // Snapshots committed by this process become durable (`snapshot.rs`, Durability).
        let _ = crate::snapshot::flush_unsynced(&self.db, &self.layout);
    }
}

/// A handle on a build root (see the module docs).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.layout.root())
            .field("owner", &self.inner.owner.id())
            .finish()
    }
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

impl Store {
    /// Opens (creating if needed) the store under `root`.
    ///
    /// Refuses a root holding a newer layout or database schema. Removes what dead processes
    /// left in `v1/tmp/` (never what a live one holds).
    pub fn open(root: impl AsRef<Path>) -> Result<Store, StoreError> {
        let layout = Layout::new(root.as_ref());
        layout.create()?;
        let swept = owner::sweep(&layout)?;
        let owner = Owner::register(&layout)?;
        let db = Db::open(&layout)?;
        let store = Store {
            inner: Arc::new(Inner {
                layout,
                db,
                owner,
                leases: Mutex::new(LeaseTable::default()),
                touched: Mutex::new(Touched::default()),
                boot_id: crate::durable::boot_id(),
                last_used_granularity_ms: std::sync::atomic::AtomicU64::new(
                    LAST_USED_GRANULARITY.as_millis() as u64,
                ),
            }),
        };
        store.snapshots().recover().map_err(Box::new)?;
        let content = store.inner.layout.content_dir();
        let oci_layout = content.join("oci-layout");
        if !oci_layout.exists() {
            write_atomic(store.staging(), &oci_layout, OCI_LAYOUT).map_err(|source| {
                StoreError::Io {
                    path: oci_layout.clone(),
                    source,
                }
            })?;
        }
        // A process that died may have committed an image change without rewriting the index.
        if swept.dead_owners > 0 || !content.join("index.json").exists() {
            store.images().write_oci_index()?;
        }
        Ok(store)
    }

    /// The root given to [`Store::open`].
    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    /// The directory layout.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// This store's owner id (names its lock file and staging directory in `v1/tmp/`).
    pub fn owner_id(&self) -> &str {
        self.inner.owner.id()
    }

    /// This store's staging directory, `v1/tmp/<owner>/`.
    pub(crate) fn staging(&self) -> &Path {
        self.inner.owner.staging()
    }

    /// The content store (blobs).
    pub fn content(&self) -> Content<'_> {
        Content::new(self)
    }

    /// Snapshots (layer directories).
    pub fn snapshots(&self) -> Snapshots<'_> {
        Snapshots::new(self)
    }

    /// The cache index (cache key → result).
    pub fn cache(&self) -> CacheIndex<'_> {
        CacheIndex::new(self)
    }

    /// Tagged images.
    pub fn images(&self) -> Images<'_> {
        Images::new(self)
    }

    /// `RUN --mount=type=cache` directories.
    pub fn cache_mounts(&self) -> CacheMounts<'_> {
        CacheMounts::new(self)
    }

    /// A new, empty lease.
    pub fn lease(&self) -> Lease {
        Lease::new(self.clone())
    }

    /// Disk usage by kind.
    pub fn du(&self) -> Result<DiskUsage, GcError> {
        crate::gc::du(self)
    }

    /// Removes unused data; see [`PruneOptions`].
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport, GcError> {
        crate::gc::prune(self, options)
    }

    /// How stale a cache record's last-used time may get before a lookup rewrites it
    /// (default one hour): a rebuild that hits records used within it writes nothing.
    pub fn set_last_used_granularity(&self, granularity: std::time::Duration) {
        let ms = u64::try_from(granularity.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .last_used_granularity_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the last-used times recorded by lookups (one transaction) and makes unsynced
    /// snapshots durable (one `syncfs`). Also done when the last clone of the store is
    /// dropped.
    pub fn flush(&self) -> Result<(), StoreError> {
        crate::cache_index::flush_touched(&self.inner.db, &self.inner.touched)?;
        self.snapshots().flush().map_err(Box::new)?;
        Ok(())
    }
}
