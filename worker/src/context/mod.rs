//! The build context: a client directory the worker reads safely and checksums cheaply.
//!
//! Role: everything the worker does with a `SourceOp::Local` — open the directory once
//! ([`Context::open`], with the `.dockerignore` patterns), select what a step reads
//! ([`Selection`] → [`Context::select`] → [`Selected`], fsutil's filtered walk), compute
//! the content part of its cache key ([`Context::checksum`]: a blake3 Merkle digest of
//! exactly the selected entries), and give the file actions confined reads
//! ([`Context::entries`], [`Context::open_entry`], [`Selected::resolve`],
//! [`Context::open_file`]).
//!
//! Files: `archive.rs` (a context given as a tar on stdin, unpacked under the store root),
//! `confine.rs` (path normalization, symlink resolution, `openat2` beneath the
//! root), `walk.rs` (the parallel filtered walk), `follow.rs` (follow paths),
//! `selection.rs` ([`Selection`], [`Selected`]), `checksum.rs` (file hashing and the
//! Merkle digest), `stat_cache.rs` (hashes reused across builds), `entry.rs`, `error.rs`.
//!
//! Key decisions:
//! - **Confined by descriptors.** The context is held as an open directory; every read is
//!   relative to it and refuses symlinks the kernel would follow (see `confine.rs`). A
//!   symlink is followed only where BuildKit follows one — a COPY source's intermediate
//!   components and, with `follow_symlinks`, its final one; follow paths — and one leading
//!   outside the context (absolute, or climbing above the root) is an error naming the
//!   path. A `..` escaping the root in a requested path is an error too. Copying a symlink
//!   copies the symlink.
//! - **Checksum = selection.** The digest covers exactly what [`Context::select`] returns
//!   (include patterns, follow-path targets, parents of kept entries, minus excludes), so
//!   editing an unselected file never changes a step's key; the COPY must then read through
//!   the same [`Selected`] so it never reads what the key does not cover.
//! - **No-op rebuilds read no file.** Content hashes are kept in a stat cache
//!   (`stat_cache.rs`) keyed by (context, path) and trusted only when size, mtime, ctime,
//!   inode, device and mode all match; it lives in a file under the store root, loaded once
//!   and rewritten only when something changed. A warm checksum is one parallel walk
//!   (`getdents` + `statx`) plus a Merkle fold.
//! - **BuildKit's owner rule**: uid/gid are not part of the checksum (BuildKit's client
//!   sends context files as 0:0); [`Metadata`] still reports them.

pub mod archive;
mod checksum;
mod confine;
mod entry;
mod error;
mod follow;
mod selection;
mod stat_cache;
mod walk;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use rustix::fs::{openat, statx, AtFlags, Mode, OFlags, StatxFlags, CWD};
use strata_frontend::ignore::{FilterOptions, WalkFilter};
use strata_solver::Digest;

pub use archive::{is_context_archive, ContextArchive, ContextArchiveError};
pub use confine::{normalize, MAX_SYMLINKS};
pub use entry::{Entry, EntryKind, Metadata, Timestamp};
pub use error::ContextError;
pub use selection::{Entries, Selected, Selection};
pub use stat_cache::STAT_CACHE_DIR;

use confine::{fd_kind, fd_link_target, is_symlink_or_file_on_the_way, open_beneath, LiveTree};
use stat_cache::{Record, StatCache};

/// How a [`Context`] keeps its stat cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOptions {
    /// Directory of the persistent stat cache files; `None` keeps hashes in memory only
    /// (for this `Context`'s life).
    pub stat_cache_dir: Option<PathBuf>,
    /// A file whose mtime or ctime is less than this before the walk started is hashed
    /// but not cached: it could still change within the same timestamp tick.
    pub racy_window: Duration,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            stat_cache_dir: None,
            racy_window: Duration::from_secs(1),
        }
    }
}

impl ContextOptions {
    /// The stat cache kept under a store root: `<root>/v1/context-stat/`.
    pub fn in_store_root(root: &Path) -> ContextOptions {
        ContextOptions {
            stat_cache_dir: Some(root.join(STAT_CACHE_DIR)),
            ..ContextOptions::default()
        }
    }

    /// The stat cache kept in `store`'s root.
    pub fn for_store(store: &strata_cache::Store) -> ContextOptions {
        ContextOptions::in_store_root(store.root())
    }
}

/// What a [`Context`] has done so far (counters since it was opened).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Regular files read to hash them.
    pub files_hashed: u64,
    /// Bytes read to hash them.
    pub bytes_hashed: u64,
    /// Regular files whose hash came from the stat cache.
    pub cache_hits: u64,
    /// Stat cache files written.
    pub stat_cache_writes: u64,
    /// Stat cache writes that failed (a checksum does not fail for them; see
    /// [`Context::flush`]).
    pub stat_cache_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    cache_hits: AtomicU64,
    stat_cache_writes: AtomicU64,
    stat_cache_errors: AtomicU64,
}

/// An open build context: a client directory and its `.dockerignore` patterns.
///
/// `Send + Sync`: selections and checksums may run from several threads at once.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    root: OwnedFd,
    excludes: Vec<String>,
    cache: StatCache,
    racy_window: Duration,
    counters: Counters,
}

impl Context {
    /// Opens the directory `dir` with `excludes` (the `.dockerignore` patterns, as
    /// [`read_ignore`](strata_frontend::ignore::read_ignore) returns them), keeping hashes
    /// in memory only. Invalid patterns fail here, before anything is walked.
    pub fn open(dir: impl AsRef<Path>, excludes: &[String]) -> Result<Context, ContextError> {
        Context::open_with(dir, excludes, ContextOptions::default())
    }

    /// [`Context::open`] with a persistent stat cache and other options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        excludes: &[String],
        options: ContextOptions,
    ) -> Result<Context, ContextError> {
        let dir = dir.as_ref();
        let fail = |source: io::Error| ContextError::Open {
            dir: dir.to_owned(),
            source,
        };
        // The descriptor is the authority for every read; the canonical path only names
        // the stat cache.
        let root = openat(
            CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(e.into()))?;
        let canonical = std::fs::canonicalize(dir).map_err(fail)?;
        WalkFilter::new(&FilterOptions {
            exclude_patterns: excludes.to_vec(),
            ..FilterOptions::default()
        })?;
        Ok(Context {
            cache: StatCache::new(options.stat_cache_dir.as_deref(), &canonical),
            dir: canonical,
            root,
            excludes: excludes.to_vec(),
            racy_window: options.racy_window,
            counters: Counters::default(),
        })
    }

    /// The context directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `.dockerignore` patterns.
    pub fn excludes(&self) -> &[String] {
        &self.excludes
    }

    /// The persistent stat cache file of this context, if there is one.
    pub fn stat_cache_path(&self) -> Option<&Path> {
        self.cache.path()
    }

    /// Walks the context and returns what `selection` selects, in fsutil's order: the
    /// entries the include patterns (plus follow-path targets) keep and the excludes do
    /// not drop, with the directories above kept entries. Fails with `"/path": not found`
    /// when an include naming a plain path does not resolve in the result.
    pub fn select(&self, selection: &Selection) -> Result<Selected, ContextError> {
        let walked_at = SystemTime::now();
        let follow_targets = follow::follow_targets(self.root.as_fd(), selection.follow_paths())?;
        let filter = WalkFilter::new(&FilterOptions {
            include_patterns: selection.include().to_vec(),
            exclude_patterns: self.excludes.clone(),
            follow_targets,
        })?;
        let entries = walk::walk(self.root.as_fd(), &filter)?;
        let selected = Selected {
            entries,
            whole: selection.is_all(),
            walked_at,
        };
        for (path, follow) in selection.required_paths() {
            selected.resolve(&path, follow)?;
        }
        Ok(selected)
    }

    /// The selected entries as an iterator (see [`Context::select`]); open a regular file
    /// with [`Context::open_entry`].
    pub fn entries(&self, selection: &Selection) -> Result<Entries, ContextError> {
        Ok(Entries::new(self.select(selection)?.into_entries()))
    }

    /// The content checksum of what `selection` selects: the part of a context vertex's
    /// cache key that depends on files. See [`Context::checksum_selected`].
    pub fn checksum(&self, selection: &Selection) -> Result<Digest, ContextError> {
        let mut selected = self.select(selection)?;
        self.checksum_selected(&mut selected)
    }

    /// The Merkle digest of `selected`; fills each regular file's
    /// [`Entry::content_hash`] (from the stat cache when the file is unchanged, else by
    /// reading it — in parallel, streamed). Depends on paths, kinds, permission bits,
    /// contents and symlink targets only. A file replaced since the walk is hashed as it
    /// is now, with its new metadata.
    pub fn checksum_selected(&self, selected: &mut Selected) -> Result<Digest, ContextError> {
        let racy_limit = racy_limit(selected.walked_at, self.racy_window);
        let mut todo = Vec::new();
        let mut hits = 0u64;
        {
            let records = self.cache.lock();
            for (i, entry) in selected.entries.iter_mut().enumerate() {
                if entry.kind() != EntryKind::File || entry.content_hash.is_some() {
                    continue;
                }
                match records.hash_for(&entry.path, &entry.meta) {
                    Some(hash) => {
                        entry.content_hash = Some(hash);
                        hits += 1;
                    }
                    None => todo.push(i),
                }
            }
        }
        self.counters.cache_hits.fetch_add(hits, Ordering::Relaxed);

        let entries = &selected.entries;
        let root = self.root.as_fd();
        let hashed: Vec<_> = todo
            .par_iter()
            .map(|&i| checksum::hash_file(root, &entries[i]))
            .collect::<Result<_, _>>()?;

        {
            let mut records = self.cache.lock();
            let mut bytes = 0;
            let mut stored = hits;
            for (&i, file) in todo.iter().zip(&hashed) {
                let entry = &mut selected.entries[i];
                entry.meta = file.meta;
                entry.content_hash = Some(file.hash);
                bytes += file.bytes;
                let racy = file.meta.mtime >= racy_limit || file.meta.ctime >= racy_limit;
                if file.stable && !racy {
                    records.insert(&entry.path, Record::new(&file.meta, file.hash));
                    stored += 1;
                } else {
                    records.remove(&entry.path);
                }
            }
            // Every record belongs to a selected file when each was hit or just stored
            // (paths are unique): then there is nothing to drop.
            if selected.whole && records.len() as u64 != stored {
                let present: std::collections::HashSet<&str> = selected
                    .entries
                    .iter()
                    .filter(|e| e.kind() == EntryKind::File)
                    .map(|e| e.path.as_str())
                    .collect();
                records.retain(|p| present.contains(p));
            }
            self.counters
                .files_hashed
                .fetch_add(todo.len() as u64, Ordering::Relaxed);
            self.counters
                .bytes_hashed
                .fetch_add(bytes, Ordering::Relaxed);
        }
        // A cache that cannot be written costs time later, not correctness now.
        match self.cache.persist() {
            Ok(true) => {
                self.counters
                    .stat_cache_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(_) => {
                self.counters
                    .stat_cache_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Digest(checksum::merkle(&selected.entries)))
    }

    /// Writes the stat cache if it changed, reporting a failure (a checksum only counts
    /// them in [`ContextStats::stat_cache_errors`]). Returns whether it wrote.
    pub fn flush(&self) -> Result<bool, ContextError> {
        let wrote = self.cache.persist()?;
        if wrote {
            self.counters
                .stat_cache_writes
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(wrote)
    }

    /// Counters since the context was opened.
    pub fn stats(&self) -> ContextStats {
        let c = &self.counters;
        ContextStats {
            files_hashed: c.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: c.bytes_hashed.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            stat_cache_writes: c.stat_cache_writes.load(Ordering::Relaxed),
            stat_cache_errors: c.stat_cache_errors.load(Ordering::Relaxed),
        }
    }

    /// Resolves `path` in the live directory (not filtered by excludes): intermediate
    /// symlinks followed, the final one when `follow_final`, none allowed to lead outside.
    /// Prefer [`Selected::resolve`] for COPY sources: it resolves in what was checksummed.
    pub fn resolve(&self, path: &str, follow_final: bool) -> Result<String, ContextError> {
        confine::resolve(
            &mut LiveTree {
                root: self.root.as_fd(),
            },
            path,
            follow_final,
        )
    }

    /// `lstat` of `path` (its directories resolved, its final symlink not followed).
    pub fn metadata(&self, path: &str) -> Result<Metadata, ContextError> {
        let resolved = self.resolve(path, false)?;
        let fd = self.open_resolved(&resolved, OFlags::PATH)?;
        statx(
            fd.as_fd(),
            "",
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )
        .map(|st| Metadata::from_statx(&st))
        .map_err(|e| ContextError::io(&resolved, e.into()))
    }

    /// The raw target of the symlink at `path`.
    pub fn read_link(&self, path: &str) -> Result<PathBuf, ContextError> {
        let resolved = self.resolve(path, false)?;
        let fd = self.open_resolved(&resolved, OFlags::PATH)?;
        let kind = fd_kind(fd.as_fd()).map_err(|e| ContextError::io(&resolved, e))?;
        if kind != EntryKind::Symlink {
            return Err(ContextError::io(
                &resolved,
                io::Error::from_raw_os_error(rustix::io::Errno::INVAL.raw_os_error()),
            ));
        }
        let target = fd_link_target(fd.as_fd()).map_err(|e| ContextError::io(&resolved, e))?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(target)))
    }

    /// Opens the regular file at `path` for reading, following symlinks inside the context
    /// (the final one included).
    pub fn open_file(&self, path: &str) -> Result<File, ContextError> {
        let resolved = self.resolve(path, true)?;
        let fd = self.open_resolved(&resolved, OFlags::RDONLY)?;
        let meta = statx(fd.as_fd(), "", AtFlags::EMPTY_PATH, StatxFlags::TYPE)
            .map_err(|e| ContextError::io(&resolved, e.into()))?;
        if EntryKind::from_mode(u32::from(meta.stx_mode)) != EntryKind::File {
            return Err(ContextError::NotAFile { path: resolved });
        }
        Ok(File::from(fd))
    }

    /// Opens the regular file a walk selected, checking it is still the same, unchanged
    /// file — same inode, size, mode, mtime and ctime as the entry records (else
    /// [`ContextError::Changed`]) — so a COPY never stores content other than what its
    /// cache key was computed from. No symlink is followed on the way. (A write racing
    /// the read itself is for the reader to catch: `fstat` again when done.)
    pub fn open_entry(&self, entry: &Entry) -> Result<File, ContextError> {
        if entry.kind() != EntryKind::File {
            return Err(ContextError::NotAFile {
                path: entry.path.clone(),
            });
        }
        let fd = self.open_resolved(&entry.path, OFlags::RDONLY)?;
        let st = statx(fd.as_fd(), "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
            .map_err(|e| ContextError::io(&entry.path, e.into()))?;
        let now = Metadata::from_statx(&st);
        if !now.is_file() || !now.same_file_unchanged(&entry.meta) {
            return Err(ContextError::Changed {
                path: entry.path.clone(),
            });
        }
        Ok(File::from(fd))
    }

    /// Opens a resolved path (no symlinks on the way) beneath the root.
    fn open_resolved(&self, path: &str, flags: OFlags) -> Result<OwnedFd, ContextError> {
        open_beneath(self.root.as_fd(), path, flags).map_err(|e| {
            if is_symlink_or_file_on_the_way(&e) {
                ContextError::Changed {
                    path: path.to_owned(),
                }
            } else {
                ContextError::io(path, e)
            }
        })
    }
}

/// The timestamp from which files count as racy.
fn racy_limit(walked_at: SystemTime, window: Duration) -> Timestamp {
    let limit = walked_at
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: i64::try_from(limit.as_secs()).unwrap_or(i64::MAX),
        nsec: limit.subsec_nanos(),
    }
}
