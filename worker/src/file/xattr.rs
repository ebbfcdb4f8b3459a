//! Extended attributes of host paths, never following a final symlink (`l*xattr`), and
//! which of them travel with a copied entry.
//!
//! Key decision: overlayfs' own attributes (`trusted.overlay.*`, `user.overlay.*`: opaque
//! markers, redirects, the upper dir's uuid) are never content. A mounted overlay hides
//! them from readers and refuses to set them, so a copy neither reads nor writes them.

use std::io;
use std::path::Path;

use super::source::Xattr;

/// Prefixes of the attributes overlayfs keeps for itself.
const OVERLAY_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// Whether `name` is one of overlayfs' private attributes.
pub(crate) fn is_overlay_private(name: &[u8]) -> bool {
    OVERLAY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Errors meaning "this filesystem has no extended attributes here".
fn is_unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS
}

/// The attribute names of `path`.
pub(crate) fn list(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(size) => size,
            Err(e) if is_unsupported(e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        buf.resize(size, 0);
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                break;
            }
            // The list grew between the two calls.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(buf
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// One attribute of `path`; `None` when it is not set.
pub(crate) fn get(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(size) => size,
            Err(e) if e == rustix::io::Errno::NODATA || is_unsupported(e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        buf.resize(size, 0);
        if size == 0 {
            return Ok(Some(buf));
        }
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets one attribute on `path`.
pub(crate) fn set(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The attributes of `path` that are content (overlayfs' own left out).
pub(crate) fn read_content(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in list(path)? {
        if is_overlay_private(&name) {
            continue;
        }
        if let Some(value) = get(path, &name)? {
            out.push(Xattr { name, value });
        }
    }
    Ok(out)
}

/// Writes `xattrs` on `path`, skipping overlayfs' own. Failures are ignored, as BuildKit's
/// copy does (it logs them): a destination may not support a namespace the source had.
pub(crate) fn write_best_effort(path: &Path, xattrs: &[Xattr]) {
    for x in xattrs {
        if !is_overlay_private(&x.name) {
            let _ = set(path, &x.name, &x.value);
        }
    }
}
