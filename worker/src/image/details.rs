//! Reading a stored image: its manifest (chosen from an index by platform), its config and
//! its layers, from the content store.
//!
//! Main items: [`StoredImage`] and [`read_image`]; [`select_platform`] picks an index entry
//! the way containerd's default matcher does (same OS and architecture; the variant must match
//! when one is asked for, `arm64` meaning `arm64/v8`).
//!
//! Key decision: everything is re-parsed from the content store, never cached in the
//! database, so what `images`, `inspect`, `unpack` and `save` see is exactly the stored bytes.

use strata_cache::{ContentError, Store};
use strata_oci::config::ConfigError;
use strata_oci::manifest::{ManifestDocument, ManifestError};
use strata_oci::{media_type, Descriptor, Digest, ImageConfig, ImageManifest, Platform};

/// Why a stored image cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A blob of the image is missing or unreadable.
    #[error("cannot read {what} {digest}")]
    Content {
        /// `manifest`, `config`…
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ContentError>,
    },
    /// The manifest or index does not parse.
    #[error("invalid manifest {digest}")]
    Manifest {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ManifestError>,
    },
    /// The config does not parse.
    #[error("invalid image config {digest}")]
    Config {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ConfigError>,
    },
    /// An index has no manifest for the platform.
    #[error("image index {digest} has no manifest for {wanted} (it has: {available})")]
    NoPlatform {
        /// The index.
        digest: Digest,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has, comma-separated.
        available: String,
    },
    /// Indexes nest deeper than any real image does.
    #[error("image index {digest} nests too deeply")]
    TooDeep {
        /// The innermost index read.
        digest: Digest,
    },
    /// The manifest names a config that is not an image config (an artifact).
    #[error("manifest {digest} is not a container image (config type {media_type})")]
    NotAnImage {
        /// The manifest.
        digest: Digest,
        /// Its config's media type.
        media_type: String,
    },
    /// The manifest and the config disagree on the number of layers.
    #[error("image {digest} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCount {
        /// The manifest.
        digest: Digest,
        /// Layers in the manifest.
        layers: usize,
        /// Diff ids in the config.
        diff_ids: usize,
    },
}

/// A single-platform image as stored: manifest, config and their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// The manifest's descriptor (the one chosen from an index, if the name points at one).
    pub manifest_descriptor: Descriptor,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config digest: Docker's image id.
    pub config_digest: Digest,
    /// The config.
    pub config: ImageConfig,
}

impl StoredImage {
    /// The layer descriptors, bottom first (non-layer entries left out).
    pub fn layers(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifest
            .layers
            .iter()
            .filter(|d| media_type::is_layer(&d.media_type))
    }

    /// Bytes of the layer blobs as stored (what `images` shows as SIZE).
    pub fn size(&self) -> u64 {
        self.layers().map(|d| d.size).sum()
    }
}

/// The platform of this machine (`linux/amd64`…).
pub fn host_platform() -> Platform {
    let host = strata_frontend::instructions::Platform::host();
    Platform {
        architecture: host.architecture,
        os: host.os,
        variant: host.variant,
        ..Platform::default()
    }
}

/// `os/arch[/variant]`.
pub fn format_platform(platform: &Platform) -> String {
    let mut out = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        out.push('/');
        out.push_str(&platform.variant);
    }
    out
}

fn normalized_variant(platform: &Platform) -> &str {
    match (platform.architecture.as_str(), platform.variant.as_str()) {
        ("arm64", "") => "v8",
        ("arm", "") => "v7",
        (_, variant) => variant,
    }
}

/// Whether `candidate` can run where `wanted` is asked for.
pub fn platform_matches(wanted: &Platform, candidate: &Platform) -> bool {
    wanted.os == candidate.os
        && wanted.architecture == candidate.architecture
        && (wanted.variant.is_empty()
            || normalized_variant(wanted) == normalized_variant(candidate))
}

/// The first index entry whose platform matches `wanted` (entries without a platform are
/// attestations and such, never chosen).
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    wanted: &Platform,
) -> Option<&'a Descriptor> {
    manifests.iter().find(|d| {
        let is_image = d.media_type.is_empty()
            || media_type::is_manifest(&d.media_type)
            || media_type::is_index(&d.media_type);
        is_image
            && d.platform
                .as_ref()
                .is_some_and(|p| platform_matches(wanted, p))
    })
}

fn read_blob(store: &Store, what: &'static str, digest: &Digest) -> Result<Vec<u8>, ReadError> {
    store
        .content()
        .read(digest)
        .map_err(|source| ReadError::Content {
            what,
            digest: *digest,
            source: Box::new(source),
        })
}

/// Nesting limit for indexes of indexes.
const MAX_DEPTH: usize = 4;

/// Reads the image `manifest` (a manifest or an index, of type `media_type`; empty means
/// "find out") for `platform`.
pub fn read_image(
    store: &Store,
    manifest: &Descriptor,
    platform: &Platform,
) -> Result<StoredImage, ReadError> {
    let mut descriptor = manifest.clone();
    for _ in 0..MAX_DEPTH {
        let bytes = read_blob(store, "manifest", &descriptor.digest)?;
        let document =
            ManifestDocument::from_json(&descriptor.media_type, &bytes).map_err(|source| {
                ReadError::Manifest {
                    digest: descriptor.digest,
                    source: Box::new(source),
                }
            })?;
        match document {
            ManifestDocument::Index(index) => {
                let Some(child) = select_platform(&index.manifests, platform) else {
                    let available: Vec<String> = index
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(format_platform))
                        .collect();
                    return Err(ReadError::NoPlatform {
                        digest: descriptor.digest,
                        wanted: format_platform(platform),
                        available: available.join(", "),
                    });
                };
                descriptor = child.clone();
            }
            ManifestDocument::Manifest(manifest) => {
                let manifest = *manifest;
                let config_type = manifest.config.media_type.as_str();
                if config_type != media_type::OCI_CONFIG && config_type != media_type::DOCKER_CONFIG
                {
                    return Err(ReadError::NotAnImage {
                        digest: descriptor.digest,
                        media_type: config_type.to_owned(),
                    });
                }
                let config_digest = manifest.config.digest;
                let bytes = read_blob(store, "config", &config_digest)?;
                let config =
                    ImageConfig::from_json(&bytes).map_err(|source| ReadError::Config {
                        digest: config_digest,
                        source: Box::new(source),
                    })?;
                if descriptor.media_type.is_empty() {
                    descriptor.media_type = if manifest.media_type.is_empty() {
                        media_type::OCI_MANIFEST.to_owned()
                    } else {
                        manifest.media_type.clone()
                    };
                }
                let image = StoredImage {
                    manifest_descriptor: descriptor,
                    manifest,
                    config_digest,
                    config,
                };
                let layers = image.layers().count();
                if layers != image.config.rootfs.diff_ids.len() {
                    return Err(ReadError::LayerCount {
                        digest: image.manifest_descriptor.digest,
                        layers,
                        diff_ids: image.config.rootfs.diff_ids.len(),
                    });
                }
                return Ok(image);
            }
        }
    }
    Err(ReadError::TooDeep {
        digest: descriptor.digest,
    })
}

/// The descriptor of a stored image's top-level manifest or index.
pub fn target_descriptor(target: &strata_cache::ImageTarget) -> Descriptor {
    Descriptor::new(target.media_type.clone(), target.manifest, target.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(os: &str, arch: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            ..Platform::default()
        }
    }

    #[test]
    fn platforms_match_like_containerd() {
        let arm64 = platform("linux", "arm64", "");
        assert!(platform_matches(&arm64, &platform("linux", "arm64", "v8")));
        assert!(platform_matches(
            &platform("linux", "arm64", "v8"),
            &platform("linux", "arm64", "")
        ));
        assert!(!platform_matches(
            &platform("linux", "arm", "v6"),
            &platform("linux", "arm", "v7")
        ));
        assert!(!platform_matches(&arm64, &platform("linux", "amd64", "")));
        let mut a = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"a"), 1);
        a.platform = Some(platform("linux", "amd64", ""));
        let mut b = Descriptor::new(media_type::OCI_MANIFEST, Digest::of(b"b"), 1);
        b.platform = Some(platform("linux", "arm64", "v8"));
        let list = [a, b];
        assert_eq!(
            select_platform(&list, &arm64).map(|d| d.digest),
            Some(Digest::of(b"b"))
        );
        assert!(select_platform(&list, &platform("windows", "amd64", "")).is_none());
    }
}
