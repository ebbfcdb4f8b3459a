//! `Mkdir` (WORKDIR, and every directory a copy or an archive creates on its way).
//!
//! Rules (BuildKit's `mkdir` and fsutil's `MkdirAll`): the path is resolved in the
//! destination with symlinks followed (confined to it). With `make_parents`, every missing
//! directory is created with the mode, owner and time given — existing ones are left as
//! they are, and a non-directory on the way is `not a directory`. Without it, an existing
//! entry of any type is success, and a missing parent is an error. Modes are exact (BuildKit
//! runs with umask 0) and keep only the permission bits.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use strata_solver::op::Owner;

use super::diff::Diff;
use super::error::FileError;
use super::owner::{resolve_owner, Ids};
use super::path::{file_name, parent};
use super::resolve::resolve;
use super::source::Timespec;

/// How directories created on the way are made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewDir {
    /// Mode (permission bits).
    pub mode: u32,
    /// Owner; `None` leaves the creator's (root).
    pub owner: Option<Ids>,
    /// Both times; `None` leaves the creation time.
    pub time: Option<Timespec>,
}

/// Creates directory `path` (resolved, in-view) and its missing parents. Returns the
/// directories created, shallowest first.
pub(crate) fn mkdir_all(
    dest: &mut Diff,
    path: &Path,
    new: NewDir,
) -> Result<Vec<PathBuf>, FileError> {
    let mut created = Vec::new();
    let mut dir = dest.root_dir();
    let mut names = path.iter().peekable();
    while let Some(name) = names.next() {
        let entry = dest
            .child(&dir, name)
            .map_err(FileError::at("lstat", &dir.path.join(name)))?;
        if let Some(next) = entry.as_dir() {
            dir = next;
            continue;
        }
        if entry.stat.is_some() {
            // Go reports the path it could not make: the target itself, or the first
            // directory under the non-directory.
            let at = match names.peek() {
                Some(next) => entry.path.join(next),
                None => entry.path.clone(),
            };
            return Err(FileError::io("mkdir", &at, not_a_directory()));
        }
        let next = dest.create_dir(&mut dir, name, new.mode & 0o777)?;
        apply(dest, &next.path, new)?;
        created.push(next.path.clone());
        dir = next;
    }
    Ok(created)
}

fn apply(dest: &mut Diff, path: &Path, new: NewDir) -> Result<(), FileError> {
    if let Some(ids) = new.owner {
        dest.chown(path, ids.uid, ids.gid)?;
    }
    if let Some(time) = new.time {
        dest.utimes(path, time, time)?;
    }
    Ok(())
}

fn not_a_directory() -> io::Error {
    io::Error::from(rustix::io::Errno::NOTDIR)
}

/// The `Mkdir` action.
pub(crate) fn mkdir(
    dest: &mut Diff,
    path: &str,
    mode: u32,
    make_parents: bool,
    owner: Option<&Owner>,
    mtime: Option<i64>,
) -> Result<(), FileError> {
    let target = resolve(dest, Path::new(""), OsStr::new(path), true)?;
    let owner = owner.map(|o| resolve_owner(dest, o)).transpose()?;
    let new = NewDir {
        mode: mode & 0o777,
        owner,
        time: mtime.map(Timespec::from_secs),
    };
    if make_parents {
        let created = mkdir_all(dest, &target, new)?;
        // Making a child touched its parent: give the made ones their time back, as the
        // copy does (BuildKit's exporter clamps them to SOURCE_DATE_EPOCH anyway).
        if let Some(time) = new.time {
            for dir in created.iter().rev() {
                dest.utimes(dir, time, time)?;
            }
        }
        return Ok(());
    }
    let Some(name) = file_name(&target) else {
        return Ok(());
    };
    let parent_path = parent(&target);
    let mut dir = match dest.entry(parent_path) {
        Ok(Some(e)) => e
            .as_dir()
            .ok_or_else(|| FileError::io("mkdir", &target, not_a_directory()))?,
        Ok(None) => {
            return Err(FileError::io(
                "mkdir",
                &target,
                io::Error::from(rustix::io::Errno::NOENT),
            ))
        }
        Err(e) => return Err(FileError::io("mkdir", &target, e)),
    };
    let entry = dest
        .child(&dir, name)
        .map_err(FileError::at("lstat", &target))?;
    if entry.stat.is_some() {
        // EEXIST is success, whatever is there.
        return Ok(());
    }
    let created = dest.create_dir(&mut dir, name, new.mode)?;
    apply(dest, &created.path, new)
}
