//! Media type strings for OCI and Docker image objects.
//!
//! OCI names come from the OCI image-spec (`specs-go/v1/mediatype.go`); Docker names from
//! the Docker registry schema 2 and what moby/BuildKit write for zstd.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layout header (`oci-layout` file).
pub const OCI_LAYOUT_HEADER: &str = "application/vnd.oci.layout.header.v1+json";
/// OCI descriptor.
pub const OCI_DESCRIPTOR: &str = "application/vnd.oci.descriptor.v1+json";
/// OCI empty JSON object (`{}`), used as a placeholder config by artifacts.
pub const OCI_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// OCI uncompressed layer tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed layer tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed layer tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable (foreign) layer, uncompressed (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable (foreign) layer, gzip (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable (foreign) layer, zstd (deprecated by the spec).
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer tar.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip-compressed layer tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd-compressed layer tar (as written by BuildKit).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) gzip layer, e.g. Windows base layers.
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Whether `media_type` names a single-image manifest (OCI or Docker schema 2).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// Whether `media_type` names an index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` names a layer (any compression, OCI or Docker).
pub fn is_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert!(is_manifest(OCI_MANIFEST) && is_manifest(DOCKER_MANIFEST));
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(OCI_MANIFEST));
        for t in [
            OCI_LAYER_TAR,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            DOCKER_LAYER_TAR,
            DOCKER_LAYER_GZIP,
            DOCKER_LAYER_ZSTD,
            DOCKER_LAYER_FOREIGN_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        ] {
            assert!(is_layer(t), "{t}");
        }
        assert!(!is_layer(OCI_CONFIG));
    }
}
