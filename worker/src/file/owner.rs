//! `--chown` (and a WORKDIR's USER): user and group names resolved to ids in the
//! destination's `/etc/passwd` and `/etc/group`, as BuildKit's file op reads them.
//!
//! Rules (BuildKit's `readUser`): `root` and decimal numbers are ids as they are (a number
//! alone gives the group too); a name is looked up in the destination — as it stands when
//! the action runs — through `/etc/passwd` (its uid and primary gid) and `/etc/group`,
//! each opened through the view with symlinks confined to it, required to be a regular
//! file of at most 10 MiB. A missing file or an unknown name resolves to 0, silently,
//! exactly as BuildKit does; a group that is not found keeps the user's gid.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;

use strata_solver::op::Owner;

use super::error::FileError;
use super::path::display;
use super::resolve::resolve;
use super::source::{FileKind, SourceFs};

/// BuildKit's limit on `/etc/passwd` and `/etc/group`.
const MAX_USER_FILE: u64 = 10 << 20;

/// A resolved owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolves `owner` in `view` (the destination).
pub(crate) fn resolve_owner(view: &dyn SourceFs, owner: &Owner) -> Result<Ids, FileError> {
    let mut ids = Ids { uid: 0, gid: 0 };
    match parse_id(&owner.user) {
        Some(id) => ids = Ids { uid: id, gid: id },
        // An empty user is BuildKit's "no name given": id 0.
        None if owner.user.is_empty() => {}
        None => {
            if let Some(text) = read_user_file(view, "/etc/passwd")? {
                if let Some(fields) = find(&text, &owner.user) {
                    ids.uid = field_id(fields.get(2));
                    ids.gid = field_id(fields.get(3));
                }
            }
        }
    }
    if !owner.group.is_empty() {
        match parse_id(&owner.group) {
            Some(id) => ids.gid = id,
            None => {
                if let Some(text) = read_user_file(view, "/etc/group")? {
                    if let Some(fields) = find(&text, &owner.group) {
                        ids.gid = field_id(fields.get(2));
                    }
                }
            }
        }
    }
    Ok(ids)
}

/// `root`, or a number as Go's `ParseInt(s, 10, 32)` reads it (negative ids wrap, as
/// BuildKit's uint32 conversion does).
fn parse_id(text: &str) -> Option<u32> {
    if text == "root" {
        return Some(0);
    }
    text.parse::<i32>().ok().map(|id| id as u32)
}

/// A numeric field of a passwd/group line; malformed is 0 (Go's ignored `Atoi` error).
fn field_id(field: Option<&&str>) -> u32 {
    field
        .and_then(|f| f.parse::<i64>().ok())
        .and_then(|id| u32::try_from(id).ok())
        .unwrap_or(0)
}

/// The first line whose first field is `name`, split on `:`.
fn find<'a>(text: &'a str, name: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
}

/// The text of `/etc/passwd` or `/etc/group` in `view`; `None` when missing.
fn read_user_file(view: &dyn SourceFs, name: &str) -> Result<Option<String>, FileError> {
    let path = match resolve(view, Path::new(""), OsStr::new(name), true) {
        Ok(path) => path,
        // A parent that is not a directory counts as "not there", as in BuildKit.
        Err(FileError::Io { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let stat = match view.lstat(&path) {
        Ok(Some(stat)) => stat,
        Ok(None) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Ok(None)
        }
        Err(e) => return Err(FileError::io("open", &path, e)),
    };
    if stat.kind != FileKind::File {
        return Err(FileError::UserFileNotRegular {
            path: display(&path),
        });
    }
    let file = view.open(&path).map_err(FileError::at("open", &path))?;
    let mut bytes = Vec::new();
    file.take(MAX_USER_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::at("read", &path))?;
    if bytes.len() as u64 > MAX_USER_FILE {
        return Err(FileError::UserFileTooLarge {
            path: display(&path),
            limit: MAX_USER_FILE,
        });
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_lines() {
        assert_eq!(parse_id("root"), Some(0));
        assert_eq!(parse_id("1000"), Some(1000));
        assert_eq!(parse_id("-1"), Some(u32::MAX));
        assert_eq!(parse_id("daemon"), None);
        let text = "root:x:0:0::/root:/bin/sh\n  daemon:x:1:1::/:/bin/false \nbad:x:zz\n";
        let daemon = find(text, "daemon").unwrap();
        assert_eq!((field_id(daemon.get(2)), field_id(daemon.get(3))), (1, 1));
        let bad = find(text, "bad").unwrap();
        assert_eq!((field_id(bad.get(2)), field_id(bad.get(3))), (0, 0));
        assert!(find(text, "nobody").is_none());
    }
}
