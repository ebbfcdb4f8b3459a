//! `strata-cache`: everything Strata keeps on disk between builds.
//!
//! Role: the storage layer under a build root (`--root`), as a synchronous library:
//!
//! - [`content`]: sha256 blobs in an OCI image layout (`v1/content/`);
//! - [`snapshot`]: layer directories used as overlay lowerdirs (`v1/snapshots/<id>/diff`);
//! - [`cache_index`]: cache key → result records;
//! - [`image_index`]: tagged images and the layout's `index.json`;
//! - [`cache_mount`]: `RUN --mount=type=cache` directories;
//! - [`lease`]: what running builds hold, so pruning leaves it alone;
//! - [`gc`]: disk usage and pruning;
//! - [`store`]: [`Store`], the handle that ties them together;
//! - underneath: [`layout`] (paths, version), `db` (redb tables), `encoding` (record
//!   bytes), `owner` (process liveness, staging), `durable` (atomic writes), [`digest`].
//!
//! # Guarantees
//!
//! - Every write is atomic: a name in the store appears only by `rename` of a complete,
//!   fsynced file or directory from the owner's staging area, and a database record only by a
//!   committed transaction. Nothing half-written is ever visible.
//! - `kill -9` at any point leaves a store that opens and works: a dead process's staging
//!   area (temp files, prepared snapshots, trees being deleted) is removed by the next open,
//!   its leases end with it, and redb recovers its own file.
//! - Several processes (and several `Store`s in one process) may use one root at once.
//!
//! # Concurrency
//!
//! - Database: redb in `MultiWriter` mode, kept open by each `Store`: read transactions
//!   (every lookup) run in parallel across processes; write transactions are serialized by
//!   redb's byte-range locks. A lookup costs ~10 µs; a durable commit ~0.5 ms.
//! - Liveness: each `Store` holds a `flock` on `v1/tmp/<owner>.lock` for its life.
//! - Leases vs pruning: `v1/gc.lock`, shared for lease changes, exclusive for a prune
//!   (see [`lease`]).
//! - Lock order, always: gc lock, then the in-process lease table, then a write transaction.
//!   No code waits for the gc lock while holding a write transaction.

#![forbid(unsafe_code)]

pub mod cache_index;
pub mod cache_mount;
pub mod content;
mod db;
pub mod digest;
mod durable;
mod encoding;
pub mod gc;
pub mod image_index;
pub mod layout;
pub mod lease;
mod owner;
pub mod snapshot;
pub mod store;

pub use cache_index::{CacheError, CacheIndex, CacheKey, CacheRecord, CacheValue};
pub use cache_mount::{CacheMountError, CacheMountRecord, CacheMounts};
pub use content::{BlobInfo, Content, ContentError, StagedBlob};
pub use db::{DbError, SCHEMA_VERSION};
pub use digest::{Digest, DigestError};
pub use encoding::DecodeError;
pub use gc::{DiskUsage, GcError, PruneOptions, PruneReport, Usage};
pub use image_index::{ImageError, ImageRecord, ImageTarget, Images};
pub use layout::{Layout, LayoutError, LAYOUT_VERSION};
pub use lease::{Lease, LeaseError, Resource};
pub use owner::OwnerError;
pub use snapshot::{
    LayerBlob, PreparedSnapshot, SnapshotError, SnapshotId, SnapshotRecord, Snapshots,
};
pub use store::{Store, StoreError};
