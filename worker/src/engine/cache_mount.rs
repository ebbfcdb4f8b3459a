//! `RUN --mount=type=cache`: the step's view of a persistent cache directory.
//!
//! Role: [`prepare`] turns a cache directory of the store into what a step mounts: a new
//! cache is seeded from its `from=` filesystem and given the mount's owner and mode (BuildKit
//! seeds a new cache the same way, from a `mkdir` with them); `source=` selects a directory
//! inside it; `sharing` becomes a lock held for the step ([`CacheLock`]).
//!
//! Key decisions:
//! - Sharing is an advisory `flock` on the cache directory: `shared` takes it shared,
//!   `locked` exclusive (the step waits for other users), `private` exclusive without
//!   waiting; a busy private cache gives the step a fresh directory that is dropped after it
//!   (BuildKit makes another instance; this one is not kept).
//! - A cache directory holds what earlier steps wrote, so `source=` is walked without
//!   following symlinks: a link planted by one build can never aim a later mount at the host.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use strata_solver::op::CacheSharing;

/// A lock on a cache directory, released when dropped.
#[derive(Debug)]
pub struct CacheLock {
    _file: Option<File>,
}

/// What a step mounts for one cache mount.
#[derive(Debug)]
pub struct PreparedCache {
    /// The host directory to bind at the target.
    pub dir: PathBuf,
    /// Held while the step runs.
    pub lock: CacheLock,
}

/// The options of one cache mount.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions<'a> {
    /// `sharing=`; `None` when this step already holds the cache's lock (a second mount
    /// of the same cache must not wait for the first).
    pub sharing: Option<CacheSharing>,
    /// Mode, owner and group of a new cache's root.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `source=`: a path inside the cache (`/` for all of it).
    pub source: &'a str,
}

/// Prepares cache directory `dir` (just created when `new`; `seed` fills a new one) for a
/// step. `private_dir` is where a busy private cache's stand-in is made. Blocks while a
/// `locked` cache is in use.
pub fn prepare(
    dir: &Path,
    new: bool,
    options: CacheOptions<'_>,
    seed: impl FnOnce(&Path) -> io::Result<()>,
    private_dir: &Path,
) -> io::Result<PreparedCache> {
    let file = File::open(dir)?;
    let (root, lock) = match options.sharing {
        None => (dir.to_path_buf(), None),
        Some(CacheSharing::Shared) => {
            file.lock_shared()?;
            (dir.to_path_buf(), Some(file))
        }
        Some(CacheSharing::Locked) => {
            file.lock()?;
            (dir.to_path_buf(), Some(file))
        }
        Some(CacheSharing::Private) => match file.try_lock() {
            Ok(()) => (dir.to_path_buf(), Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::fs::create_dir_all(private_dir)?;
                init_root(private_dir, options)?;
                (private_dir.to_path_buf(), None)
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        },
    };
    if new {
        seed(&root)?;
        init_root(&root, options)?;
    }
    Ok(PreparedCache {
        dir: subdir(&root, options.source)?,
        lock: CacheLock { _file: lock },
    })
}

/// Owner and mode of a new cache's root, when the mount selects no `source=` (BuildKit
/// applies them only then).
fn init_root(dir: &Path, options: CacheOptions<'_>) -> io::Result<()> {
    if options.source.trim_matches('/').is_empty() {
        std::os::unix::fs::chown(dir, Some(options.uid), Some(options.gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(options.mode))?;
    }
    Ok(())
}

/// `source` inside `root`, made when missing; refuses symlinks and `..` on the way.
fn subdir(root: &Path, source: &str) -> io::Result<PathBuf> {
    let mut path = root.to_path_buf();
    for c in Path::new(source).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                path.push(name);
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_symlink() => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("cache mount source {source:?}: a symlink on the way"),
                        ))
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        std::fs::create_dir(&path)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cache mount source {source:?}: must stay inside the cache"),
                ))
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdir_stays_inside_and_refuses_links() {
        let root = std::env::temp_dir().join(format!("strata-cache-sub-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        assert_eq!(subdir(&root, "/a/b").unwrap(), root.join("a/b"));
        assert!(root.join("a/b").is_dir());
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert!(subdir(&root, "/link/x").is_err());
        assert!(subdir(&root, "../x").is_err());
        assert_eq!(subdir(&root, "/").unwrap(), root);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn sharing_locks() {
        let base = std::env::temp_dir().join(format!("strata-cache-lock-{}", std::process::id()));
        let dir = base.join("cache");
        std::fs::create_dir_all(&dir).unwrap();
        let opts = |sharing| CacheOptions {
            sharing: Some(sharing),
            mode: 0o755,
            uid: 0,
            gid: 0,
            source: "/",
        };
        let held = prepare(
            &dir,
            false,
            opts(CacheSharing::Private),
            |_| Ok(()),
            &base.join("p1"),
        )
        .unwrap();
        assert_eq!(held.dir, dir);
        // Busy: a second private user gets a stand-in.
        let other = prepare(
            &dir,
            false,
            opts(CacheSharing::Private),
            |_| Ok(()),
            &base.join("p2"),
        )
        .unwrap();
        assert_eq!(other.dir, base.join("p2"));
        drop(held);
        let again = prepare(
            &dir,
            false,
            opts(CacheSharing::Private),
            |_| Ok(()),
            &base.join("p3"),
        )
        .unwrap();
        assert_eq!(again.dir, dir);
        let _ = std::fs::remove_dir_all(&base);
    }
}
