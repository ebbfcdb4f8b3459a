//! Overlayfs markers in a diff directory: whiteouts (a 0:0 character device deletes the
//! name from the layers below) and opaque directories (`trusted.overlay.opaque=y` hides
//! everything below the directory).
//!
//! Key decision: these are the kernel's own on-disk forms, so a diff written here is an
//! overlay upper/lower dir as is, and the layer exporter (`strata-oci`) turns them into OCI
//! `.wh.` entries. Both `trusted.` and `user.` (rootless, `userxattr`) opaque markers are
//! honoured when reading, as the exporter honours them; `trusted.` is written.

use std::io;
use std::path::Path;

use rustix::fs::{FileType, Mode, CWD};

use super::xattr;

/// The opaque marker this module writes.
pub(crate) const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// The rootless form of the marker, honoured when reading.
const USER_OPAQUE_XATTR: &[u8] = b"user.overlay.opaque";

/// Whether directory `path` (a host path inside a diff) is opaque.
pub(crate) fn is_opaque(path: &Path) -> io::Result<bool> {
    for name in [OPAQUE_XATTR, USER_OPAQUE_XATTR] {
        if xattr::get(path, name)?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Marks directory `path` opaque.
pub(crate) fn set_opaque(path: &Path) -> io::Result<()> {
    xattr::set(path, OPAQUE_XATTR, b"y")
}

/// Creates a whiteout at `path` (which must not exist).
pub(crate) fn create(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0)?;
    Ok(())
}
