//! In-view paths: how the file module names entries inside a view, and Go's path rules
//! that BuildKit applies to the paths of file actions.
//!
//! An in-view path is a relative [`PathBuf`] with only normal components; the empty path
//! is the root. It is shown to users as an absolute path (`/a/b`), never as a host path,
//! as BuildKit trims the mount point from its errors.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The normal components of `/` + `path` after Go's `filepath.Clean`: `.` and empty
/// components vanish, `..` removes the previous component and stops at the root.
pub(crate) fn clean_components(path: &[u8]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(OsStr::from_bytes(name).to_owned()),
        }
    }
    out
}

/// `path` as a clean in-view path (see [`clean_components`]).
pub(crate) fn clean(path: &str) -> PathBuf {
    clean_components(path.as_bytes()).into_iter().collect()
}

/// How users see an in-view path: absolute.
pub(crate) fn display(path: &Path) -> String {
    let mut out = String::from("/");
    out.push_str(&path.to_string_lossy());
    out
}

/// Go's `filepath.Split`: everything up to and including the last `/`, and the rest.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// The parent of an in-view path (the root is its own parent).
pub(crate) fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// The last component of an in-view path (`None` for the root).
pub(crate) fn file_name(path: &Path) -> Option<&OsStr> {
    match path.components().next_back() {
        Some(Component::Normal(name)) => Some(name),
        _ => None,
    }
}

/// A path relative to a copy's source root, `/`-separated, for pattern matching.
pub(crate) fn join_components(parent: &str, name: &OsStr) -> String {
    let name = name.to_string_lossy();
    if parent.is_empty() {
        name.into_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_rules() {
        assert_eq!(clean("/a/./b/../c/"), PathBuf::from("a/c"));
        assert_eq!(clean("../../x"), PathBuf::from("x"));
        assert_eq!(clean("/"), PathBuf::from(""));
        assert_eq!(split("/a/b"), ("/a/", "b"));
        assert_eq!(split("/a/b/"), ("/a/b/", ""));
        assert_eq!(split("b"), ("", "b"));
        assert_eq!(display(Path::new("")), "/");
        assert_eq!(display(Path::new("a/b")), "/a/b");
    }
}
