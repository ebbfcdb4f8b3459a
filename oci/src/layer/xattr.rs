//! Extended attributes of paths, never following a final symlink (`l*xattr`), and the
//! rules for which attributes travel in a layer.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::XattrFlags;

/// Prefixes of the attributes overlayfs keeps for itself (whiteouts, opaque dirs,
/// redirects, metacopy, origin, impure…): never content, never written to or read from a
/// layer tar.
pub const OVERLAY_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// Extended attributes as (name, value) pairs.
pub(crate) type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

/// File capabilities.
pub(crate) const CAPABILITY: &[u8] = b"security.capability";

/// Whether `name` is one of overlayfs' private attributes.
pub fn is_overlay_private(name: &[u8]) -> bool {
    OVERLAY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Lists the attribute names of `path` (not following a final symlink).
pub fn list(path: &Path) -> io::Result<Vec<Vec<u8>>> {
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

/// Reads one attribute; `None` when it does not exist.
pub fn get(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(size) => size,
            Err(e) if e == rustix::io::Errno::NODATA || is_unsupported(e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        buf.resize(size, 0);
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

/// Sets one attribute on `path` (not following a final symlink).
pub fn set(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).map_err(Into::into)
}

/// Sets one attribute on an open file.
pub(crate) fn set_fd(fd: impl AsFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()).map_err(Into::into)
}

/// Whether an error means "this filesystem or attribute namespace does not take xattrs"
/// or "not allowed here" (the cases Docker tolerates when unpacking).
pub(crate) fn is_tolerable(error: &io::Error) -> bool {
    matches!(
        error
            .raw_os_error()
            .map(rustix::io::Errno::from_raw_os_error),
        Some(rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM | rustix::io::Errno::ACCESS)
    )
}

fn is_unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::NOTSUP
}

/// Rewrites a `security.capability` value of revision 3 (namespaced, with a root uid) to
/// revision 2, as Docker and containerd do: the root uid means nothing outside the user
/// namespace that wrote it.
pub(crate) fn normalize_capability(value: &mut Vec<u8>) {
    const REVISION_OFFSET: usize = 3;
    const REVISION_3: u8 = 3;
    const REVISION_2: u8 = 2;
    const REVISION_2_LEN: usize = 20;
    if value.len() > REVISION_2_LEN && value[REVISION_OFFSET] == REVISION_3 {
        value[REVISION_OFFSET] = REVISION_2;
        value.truncate(REVISION_2_LEN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_revision_3_becomes_2() {
        let mut v3 = vec![0u8; 24];
        v3[3] = 3;
        v3[4] = 0x20;
        normalize_capability(&mut v3);
        assert_eq!(v3.len(), 20);
        assert_eq!(v3[3], 2);
        assert_eq!(v3[4], 0x20);
        let mut v2 = vec![0u8; 20];
        v2[3] = 2;
        let before = v2.clone();
        normalize_capability(&mut v2);
        assert_eq!(v2, before);
    }

    #[test]
    fn overlay_names() {
        assert!(is_overlay_private(b"trusted.overlay.opaque"));
        assert!(is_overlay_private(b"user.overlay.whiteout"));
        assert!(!is_overlay_private(b"user.overlayish"));
        assert!(!is_overlay_private(CAPABILITY));
    }
}
