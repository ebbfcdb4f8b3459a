//! Layers: directories to tar diffs and back.
//!
//! - [`write_layer`] turns a directory (an overlayfs upper dir or a plain directory) into a
//!   canonical, compressed layer tar, hashing it on the way.
//! - [`apply_layer`] unpacks a (compressed) layer tar onto a directory without ever
//!   touching anything outside it.
//!
//! Whiteouts follow the OCI image-spec: an empty file `.wh.<name>` deletes `<name>` from
//! the layers below; `<dir>/.wh..wh..opq` hides everything below in `<dir>`.

mod apply;
mod write;
pub mod xattr;

pub use apply::{apply_layer, AppliedLayer, ApplyError, ApplyOptions, WhiteoutMode};
pub use write::{write_layer, LayerInfo, SourceKind, WriteError, WriteOptions, XattrPolicy};

/// Prefix of a whiteout file: `.wh.<name>` deletes `<name>`.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Prefix of aufs metadata entries (`.wh..wh.plnk`…), which are not content.
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// The opaque-directory marker.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
