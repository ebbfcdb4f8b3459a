//! Image archives: OCI image layouts (a directory or a tar of one) and `docker save`
//! archives.
//!
//! Writing ([`write_oci_layout`], [`write_oci_archive`], [`write_docker_archive`]) copies an
//! image's blobs from a [`BlobSource`] (a content store) and re-hashes every byte on the way,
//! so a corrupt store never produces a valid-looking archive. Docker archives are written
//! the way Docker ≥ 25 and BuildKit write them: an OCI layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus `manifest.json` (`Config`, `RepoTags`, `Layers` as paths into
//! `blobs/`) and `repositories`, which `docker load`, `podman load` and
//! `skopeo … docker-archive:` all read. Tars are deterministic (sorted, mtime 0, root-owned).
//!
//! Reading ([`read_archive`] for tars — OCI or Docker, optionally gzip/zstd-compressed,
//! entries in any order; [`read_oci_layout`] for directories) streams every blob into a
//! [`BlobSink`] while hashing it: a blob stored as `blobs/sha256/<hex>` must hash to `<hex>`,
//! a descriptor's size must match, every manifest, config and layer an image refers to must
//! be present, and each layer's uncompressed digest must equal the config's
//! `rootfs.diff_ids` entry (compressed layers are decompressed in the same pass to check
//! this). For Docker archives without an OCI index, a Docker schema 2 manifest is
//! synthesised and stored too, so every loaded image is named by a manifest digest.

mod read;
mod store;
mod write;

use std::io;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::digest::{Digest, DigestError};
use crate::manifest::{Descriptor, ManifestError};

pub use read::{read_archive, read_oci_layout, LoadedImage};
pub use store::{BlobSink, BlobSource, OciDir, PendingBlob};
pub use write::{
    write_docker_archive, write_oci_archive, write_oci_layout, ArchiveWriter, ExportImage,
    StreamedBlob,
};

/// `imageLayoutVersion` written to and accepted in `oci-layout`.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// Errors reading or writing archives.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A filesystem operation on a layout directory failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the archive stream failed.
    #[error("cannot {action}: {source}")]
    Stream {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A blob could not be read from the source or stored in the sink.
    #[error("cannot {action} blob {digest}: {source}")]
    Blob {
        /// What was being done.
        action: &'static str,
        /// The blob.
        digest: Digest,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A blob's content does not hash to its name.
    #[error("blob {path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// Where the blob was found (archive path or digest).
        path: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The actual size.
        actual: u64,
    },
    /// A referenced blob is not in the archive.
    #[error("blob {digest} ({media_type}) is referenced but missing")]
    MissingBlob {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A file named in `manifest.json` is not in the archive.
    #[error("manifest.json refers to {path}, which is not in the archive")]
    MissingFile {
        /// The path.
        path: String,
    },
    /// A layer's uncompressed digest differs from the config's diff ID.
    #[error("layer {layer} has uncompressed digest {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// The layer (archive path or digest).
        layer: String,
        /// The config's diff ID.
        expected: Digest,
        /// The layer's actual uncompressed digest.
        actual: Digest,
    },
    /// The config lists a different number of layers than the manifest.
    #[error("image {image} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCount {
        /// The manifest or config involved.
        image: String,
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// A JSON document of the archive is invalid.
    #[error("invalid {what} in archive: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A blob that must be a JSON document (manifest, index, config) is not one, or is
    /// too large to be one.
    #[error("blob {digest} should be a json {what} but is not")]
    NotJson {
        /// The blob.
        digest: Digest,
        /// What it should be.
        what: &'static str,
    },
    /// A blob path names an unusable digest (`blobs/sha512/…`, bad hex).
    #[error("invalid blob path {path}: {source}")]
    BlobPath {
        /// The path.
        path: String,
        /// Why the digest is invalid.
        #[source]
        source: DigestError,
    },
    /// The `oci-layout` file is missing or names an unsupported version.
    #[error("{path} is not an OCI layout: {reason}")]
    Layout {
        /// The layout (directory or archive).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The tar holds neither `index.json` nor `manifest.json`.
    #[error("archive has neither index.json nor manifest.json")]
    NotAnArchive,
    /// An archive path climbs out of the archive root.
    #[error("archive entry {path:?} escapes the archive root")]
    UnsafePath {
        /// The entry name.
        path: String,
    },
    /// Docker archives hold single-platform images; an index was given.
    #[error("{digest} is an image index; docker archives hold single-platform images (choose a platform)")]
    IndexInDockerArchive {
        /// The index digest.
        digest: Digest,
    },
    /// A manifest or index could not be decoded or encoded.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A config could not be decoded.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Files of an image archive that are not blobs.
const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const DOCKER_MANIFEST_FILE: &str = "manifest.json";
const REPOSITORIES_FILE: &str = "repositories";
/// Largest JSON document (manifest, index, config) kept in memory while reading.
const MAX_JSON: u64 = 16 << 20;

/// The `blobs/sha256/<hex>` path of a blob inside a layout.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

/// Splits an image name into repository and tag: `reg:5000/a/b:1.0` → (`reg:5000/a/b`,
/// `Some("1.0")`); digest references (`a@sha256:…`) have no tag.
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    if let Some(at) = name.find('@') {
        return (&name[..at], None);
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(colon) => (
            &name[..last_slash + colon],
            Some(&name[last_slash + colon + 1..]),
        ),
        None => (name, None),
    }
}

fn layer_descriptors(manifest_layers: &[Descriptor]) -> impl Iterator<Item = &Descriptor> {
    manifest_layers
        .iter()
        .filter(|d| crate::media_type::is_layer(&d.media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(split_tag("alpine"), ("alpine", None));
        assert_eq!(split_tag("alpine:3.19"), ("alpine", Some("3.19")));
        assert_eq!(
            split_tag("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b", Some("v1"))
        );
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", None)
        );
        assert_eq!(split_tag("a/b@sha256:abc"), ("a/b", None));
    }

    #[test]
    fn blob_paths() {
        let d = Digest::of(b"");
        assert_eq!(blob_path(&d), format!("blobs/sha256/{}", d.hex()));
    }
}
