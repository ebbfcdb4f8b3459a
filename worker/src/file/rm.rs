//! `Rm`: deleting from the destination — a deletion of anything visible below becomes a
//! whiteout in the diff (`diff.rs`).
//!
//! Rules (BuildKit's `rm`/`rmPath`): the parent is resolved with symlinks followed, the
//! last component is not (a symlink is removed, not its target); removal is `rm -rf`.
//! Unless `allow_not_found`, the path must exist — checked with the last symlink followed,
//! so a dangling symlink is "not found", as in BuildKit. With `allow_wildcard`, every
//! match is removed and no match at all is no error.

use std::io;
use std::path::Path;

use super::diff::Diff;
use super::error::FileError;
use super::path::{clean, file_name, parent};
use super::resolve::resolve;
use super::source::SourceFs;
use super::wildcard::resolve_wildcards;

/// The `Rm` action.
pub(crate) fn rm(
    dest: &mut Diff,
    path: &str,
    allow_not_found: bool,
    allow_wildcard: bool,
) -> Result<(), FileError> {
    if allow_wildcard {
        for m in resolve_wildcards(dest, path, false)? {
            let m = format!("/{}", m.to_string_lossy());
            rm_path(dest, &m, allow_not_found)?;
        }
        return Ok(());
    }
    rm_path(dest, path, allow_not_found)
}

fn rm_path(dest: &mut Diff, path: &str, allow_not_found: bool) -> Result<(), FileError> {
    let cleaned = clean(path);
    let Some(name) = file_name(&cleaned) else {
        return Err(FileError::EmptyRemovePath {
            path: path.to_string(),
        });
    };
    let dir_path = resolve(dest, Path::new(""), parent(&cleaned).as_os_str(), true)?;
    let target = dir_path.join(name);
    if !allow_not_found {
        // Go's os.Stat: the last symlink is followed.
        let followed = resolve(dest, Path::new(""), target.as_os_str(), true)?;
        match dest.lstat(&followed) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(FileError::io(
                    "stat",
                    &target,
                    io::Error::from(rustix::io::Errno::NOENT),
                ))
            }
            Err(e) => return Err(FileError::io("stat", &target, e)),
        }
    }
    let mut dir = match dest.entry(&dir_path) {
        Ok(Some(e)) => match e.as_dir() {
            Some(dir) => dir,
            None => return Ok(()),
        },
        // Nothing there, so nothing to remove (RemoveAll's success).
        Ok(None) => return Ok(()),
        Err(e) => return Err(FileError::io("unlinkat", &target, e)),
    };
    dest.remove(&mut dir, name)
}
