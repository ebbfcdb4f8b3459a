//! Owners: which live `Store` a staging directory and a lease list belong to.
//!
//! Every open `Store` registers an owner: a random id, a lock file `v1/tmp/<id>.lock` on
//! which it holds an exclusive `flock` for its whole life, and a staging directory
//! `v1/tmp/<id>/` for its temp files, prepared snapshots and trash. The lock file also holds
//! the owner's lease list (see [`crate::lease`]).
//!
//! Main items: [`Owner`] (registration, clean release on drop) and [`sweep`] (removal of the
//! entries of dead owners).
//!
//! Key decision: liveness is the lock, not a pid. The kernel drops a `flock` when its holder
//! dies — `kill -9` included — and a pid can be reused by an unrelated process. Locks are
//! per open file description, so two `Store`s in one process are two owners, exactly like
//! two processes. A sweeper that finds a lock free holds it while it deletes the dead
//! owner's directory and then the lock file, so two sweepers never race, and a registering
//! owner re-checks, after locking, that its lock file is still the one at its path.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::durable::{random_hex, remove_tree};
use crate::layout::Layout;

/// Why an owner could not be registered or swept.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// A file system step failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OwnerError {
    let path = path.to_owned();
    move |source| OwnerError::Io {
        action,
        path,
        source,
    }
}

/// A registered, live owner. Dropping it removes its staging directory and lock file.
#[derive(Debug)]
pub struct Owner {
    id: String,
    lock: File,
    lock_path: PathBuf,
    staging: PathBuf,
}

impl Owner {
    /// Registers a new owner in `layout`'s tmp directory.
    pub fn register(layout: &Layout) -> Result<Owner, OwnerError> {
        let tmp = layout.tmp_dir();
        loop {
            let id = random_hex();
            let lock_path = tmp.join(format!("{id}.lock"));
            let lock = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create owner lock", &lock_path)(e)),
            };
            match lock.try_lock() {
                Ok(()) => {}
                // A sweeper took it between our create and lock: it is deleting it.
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(io_err("lock owner file", &lock_path)(e))
                }
            }
            // A sweeper may have locked, judged dead and unlinked the file before we locked
            // it: then our lock is on an orphan inode and the id must not be used.
            let ours = lock
                .metadata()
                .map_err(io_err("stat owner lock", &lock_path))?;
            match fs::metadata(&lock_path) {
                Ok(at_path) if at_path.ino() == ours.ino() && at_path.dev() == ours.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat owner lock", &lock_path)(e)),
            }
            let staging = tmp.join(&id);
            fs::create_dir(&staging).map_err(io_err("create staging directory", &staging))?;
            return Ok(Owner {
                id,
                lock,
                lock_path,
                staging,
            });
        }
    }

    /// The owner's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `v1/tmp/<id>/`: where this owner stages files and directories.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The lock file, which also holds this owner's lease list.
    pub fn lock_file(&self) -> &File {
        &self.lock
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Same order as a sweeper: directory first, then the lock file, lock still held.
        let _ = remove_tree(&self.staging);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// What [`sweep`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Dead owners whose entries were removed (evidence that a process died uncleanly).
    pub dead_owners: usize,
    /// Other entries (not belonging to any owner) removed.
    pub junk: usize,
}

/// The state of the owner whose lock file is `lock_path`.
#[derive(Debug)]
pub enum Liveness {
    /// Its lock is held: the owner is alive.
    Alive(File),
    /// The lock was free and is now held by the caller: the owner is dead.
    Dead(File),
    /// No lock file (released cleanly, or swept meanwhile).
    Gone,
}

/// Checks an owner's liveness through its lock file.
pub fn liveness(lock_path: &Path) -> Result<Liveness, OwnerError> {
    let file = match File::open(lock_path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Liveness::Gone),
        Err(e) => return Err(io_err("open owner lock", lock_path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Liveness::Dead(file)),
        Err(TryLockError::WouldBlock) => Ok(Liveness::Alive(file)),
        Err(TryLockError::Error(e)) => Err(io_err("lock owner file", lock_path)(e)),
    }
}

/// Removes a dead owner's staging directory and then its lock file; `lock` must be the
/// caller's lock on that file (from [`Liveness::Dead`]).
pub fn remove_dead(layout: &Layout, id: &str, lock: File) -> Result<(), OwnerError> {
    let staging = layout.tmp_dir().join(id);
    remove_tree(&staging).map_err(io_err("remove dead owner staging", &staging))?;
    let lock_path = layout.tmp_dir().join(format!("{id}.lock"));
    match fs::remove_file(&lock_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove dead owner lock", &lock_path)(e)),
    }
    drop(lock);
    Ok(())
}

/// Removes every tmp entry that no live owner holds: the staging directories and lock files
/// of dead owners, and anything else found there.
pub fn sweep(layout: &Layout) -> Result<SweepReport, OwnerError> {
    let tmp = layout.tmp_dir();
    let mut report = SweepReport::default();
    let entries = fs::read_dir(&tmp).map_err(io_err("read", &tmp))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read", &tmp))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            let _ = remove_tree(&entry.path());
            report.junk += 1;
            continue;
        };
        if let Some(id) = name.strip_suffix(".lock").filter(|id| is_owner_id(id)) {
            if let Liveness::Dead(lock) = liveness(&entry.path())? {
                remove_dead(layout, id, lock)?;
                report.dead_owners += 1;
            }
        } else if is_owner_id(name) {
            dirs.push(name.to_owned());
        } else {
            remove_tree(&entry.path()).map_err(io_err("remove", &entry.path()))?;
            report.junk += 1;
        }
    }
    // A staging directory exists only after its lock file, and is removed before it: a
    // directory without a lock file belongs to nobody.
    for id in dirs {
        let lock_path = tmp.join(format!("{id}.lock"));
        if !lock_path.exists() {
            let dir = tmp.join(&id);
            if dir.exists() {
                remove_tree(&dir).map_err(io_err("remove", &dir))?;
                report.dead_owners += 1;
            }
        }
    }
    Ok(report)
}

/// Whether `name` has the shape of an owner id (16 lowercase hex digits).
pub fn is_owner_id(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(name: &str) -> Layout {
        let root = std::env::temp_dir().join(format!(
            "strata-owner-{name}-{}-{}",
            std::process::id(),
            random_hex()
        ));
        let layout = Layout::new(root);
        layout.create().unwrap();
        layout
    }

    #[test]
    fn live_owners_survive_sweeps_and_dead_ones_do_not() {
        let layout = layout("sweep");
        let alive = Owner::register(&layout).unwrap();
        fs::write(alive.staging().join("work"), b"x").unwrap();
        // A dead owner: lock file (unlocked) and staging dir with content.
        let dead = "0123456789abcdef";
        fs::write(layout.tmp_dir().join(format!("{dead}.lock")), b"").unwrap();
        fs::create_dir_all(layout.tmp_dir().join(dead).join("snapshots/x/diff")).unwrap();
        // Junk and an orphan staging directory.
        fs::write(layout.tmp_dir().join("junk"), b"").unwrap();
        fs::create_dir(layout.tmp_dir().join("fedcba9876543210")).unwrap();

        let report = sweep(&layout).unwrap();
        assert_eq!(report.dead_owners, 2);
        assert_eq!(report.junk, 1);
        assert!(alive.staging().join("work").exists());
        let mut left: Vec<_> = fs::read_dir(layout.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![alive.id().to_owned(), format!("{}.lock", alive.id())]
        );

        let id = alive.id().to_owned();
        drop(alive);
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0, "{id}");
        fs::remove_dir_all(layout.root()).unwrap();
    }

    #[test]
    fn two_owners_in_one_process_are_distinct_and_alive() {
        let layout = layout("two");
        let a = Owner::register(&layout).unwrap();
        let b = Owner::register(&layout).unwrap();
        assert_ne!(a.id(), b.id());
        let a_lock = layout.tmp_dir().join(format!("{}.lock", a.id()));
        assert!(matches!(liveness(&a_lock).unwrap(), Liveness::Alive(_)));
        assert_eq!(sweep(&layout).unwrap(), SweepReport::default());
        drop(a);
        assert!(matches!(liveness(&a_lock).unwrap(), Liveness::Gone));
        drop(b);
        fs::remove_dir_all(layout.root()).unwrap();
    }
}
