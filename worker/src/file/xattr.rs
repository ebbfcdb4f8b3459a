//! Extended attributes of host paths, never following a final symlink (`l*xattr`), and
//! which of them travel with a copied entry.
//!
//! Key decision: overlayfs' own attributes (`trusted.overlay.*`, `user.overlay.*`: opaque
//! markers, redirects, the upper dir's uuid) are never content. A mounted overlay hides
//! them from readers and refuses to set them, so a copy neither reads nor writes them.

use std::io;
use std::path::Path;

use super::source::Xattr;

// Reading and writing host attributes is the image format's code (the same rules apply
// to layers): reused here.
pub(crate) use strata_oci::layer::xattr::{get, is_overlay_private, list, set};

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
