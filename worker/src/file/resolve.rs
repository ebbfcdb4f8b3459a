//! Symlink resolution confined to a root, as BuildKit resolves paths in a rootfs
//! (continuity's `fs.RootPath`).
//!
//! Rules: components are resolved from the root; a symlink is replaced by its target —
//! an absolute target starts again at the root, a relative one at the symlink's directory
//! — and the result is cleaned lexically, so `..` never climbs above the root. A component
//! that does not exist ends the resolution (the rest is kept as written). At most 255
//! links are followed. Works over any [`SourceFs`], so the same code resolves sources,
//! the destination, and archive entries (whose root is the extraction directory, like the
//! chroot BuildKit extracts in).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::FileError;
use super::path::{clean_components, display};
use super::source::{FileKind, SourceFs};

/// Links followed before giving up (continuity's limit).
const MAX_LINKS: usize = 255;

/// Resolves `path` (any form; cleaned first) under `root` (an in-view directory without
/// symlinks), following a final symlink only when `follow_final`. The result is an in-view
/// path under `root` whose leading components are not symlinks.
pub(crate) fn resolve(
    fs: &dyn SourceFs,
    root: &Path,
    path: &OsStr,
    follow_final: bool,
) -> Result<PathBuf, FileError> {
    let mut pending: VecDeque<OsString> = clean_components(path.as_bytes()).into();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if pending.is_empty() && !follow_final {
            resolved.push(name);
            break;
        }
        let candidate = under(root, &resolved).join(&name);
        let stat = fs
            .lstat(&candidate)
            .map_err(FileError::at("lstat", &candidate))?;
        if stat.is_none_or(|s| s.kind != FileKind::Symlink) {
            resolved.push(name);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(FileError::TooManyLinks {
                path: display(&under(root, &clean_components(path.as_bytes()))),
            });
        }
        let target = fs
            .read_link(&candidate)
            .map_err(FileError::at("readlink", &candidate))?;
        let target = target.as_os_str().as_bytes();
        let mut next: Vec<OsString> = if target.starts_with(b"/") {
            Vec::new()
        } else {
            std::mem::take(&mut resolved)
        };
        for part in target.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    next.pop();
                }
                name => next.push(OsStr::from_bytes(name).to_owned()),
            }
        }
        // Start again from the root with the link replaced: what was resolved before it
        // is walked again, cheaply, and a `..` in the target stays lexical, as in Go.
        next.extend(pending.drain(..));
        pending = next.into();
        resolved.clear();
    }
    Ok(under(root, &resolved))
}

fn under(root: &Path, components: &[OsString]) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in components {
        out.push(c);
    }
    out
}
