//! `Mkfile` (heredoc files written by the frontend as inline data).
//!
//! Rules (BuildKit's `mkfile`, i.e. Go's `os.WriteFile`): the path is resolved with
//! symlinks followed; a new file gets the mode (permission bits only); an existing file is
//! truncated and rewritten, keeping its mode and owner — in the diff, a lower file is
//! first copied up without its data; a directory there is `is a directory`. The owner,
//! when given, is applied either way.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;

use strata_solver::op::Owner;

use super::diff::Diff;
use super::error::FileError;
use super::owner::resolve_owner;
use super::path::{display, file_name, parent};
use super::resolve::resolve;
use super::source::FileKind;

/// The `Mkfile` action.
pub(crate) fn mkfile(
    dest: &mut Diff,
    path: &str,
    data: &[u8],
    mode: u32,
    owner: Option<&Owner>,
) -> Result<(), FileError> {
    let target = resolve(dest, Path::new(""), OsStr::new(path), true)?;
    let owner = owner.map(|o| resolve_owner(dest, o)).transpose()?;
    let errno = |e: rustix::io::Errno| io::Error::from(e);
    let Some(name) = file_name(&target) else {
        return Err(FileError::io(
            "open",
            &target,
            errno(rustix::io::Errno::ISDIR),
        ));
    };
    let mut dir = match dest.entry(parent(&target)) {
        Ok(Some(e)) => e
            .as_dir()
            .ok_or_else(|| FileError::io("open", &target, errno(rustix::io::Errno::NOTDIR)))?,
        Ok(None) => {
            return Err(FileError::io(
                "open",
                &target,
                errno(rustix::io::Errno::NOENT),
            ))
        }
        Err(e) => return Err(FileError::io("open", &target, e)),
    };
    let entry = dest
        .child(&dir, name)
        .map_err(FileError::at("lstat", &target))?;
    let mut file = match entry.stat {
        Some(stat) if stat.is_dir() => {
            return Err(FileError::io(
                "open",
                &target,
                errno(rustix::io::Errno::ISDIR),
            ))
        }
        Some(stat) if entry.in_upper && stat.kind == FileKind::File => {
            dest.rewrite_file(&target)?
        }
        Some(stat) => {
            // Rewriting a lower file (or replacing a special one): a new file in the diff
            // with the old one's mode, owner and xattrs, as overlay's copy-up keeps them.
            let xattrs = match &entry.below {
                Some(_) if !entry.in_upper => dest.xattrs_of(&target),
                _ => Vec::new(),
            };
            let file = dest.create_file(&mut dir, name, stat.mode & 0o777)?;
            dest.chown(&target, stat.uid, stat.gid)?;
            dest.chmod(&target, stat.mode)?;
            dest.set_xattrs(&target, &xattrs);
            file
        }
        None => {
            let file = dest.create_file(&mut dir, name, mode & 0o777)?;
            dest.chmod(&target, mode & 0o777)?;
            file
        }
    };
    file.write_all(data)
        .map_err(|source| FileError::CopyContent {
            path: display(&target),
            source,
        })?;
    drop(file);
    if let Some(ids) = owner {
        dest.chown(&target, ids.uid, ids.gid)?;
    }
    Ok(())
}
