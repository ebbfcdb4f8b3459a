//! Loading image archives into the store: `docker load` / `podman load`.
//!
//! Main items: [`load_archive`] (an OCI layout tar or a `docker save` tar, plain or
//! compressed), [`load_layout`] (an OCI layout directory) and [`LoadedImage`].
//!
//! Every blob is streamed into the content store while `strata-oci`'s reader verifies it
//! (digest, size, and every layer's diff id against its config). Names are tagged only after
//! the whole archive has been read and verified, so no name ever points at an incomplete
//! image: on any error nothing is tagged (blobs already stored may stay — they are
//! content-addressed and unreferenced, so the next prune removes them).
//!
//! Key decision: names are stored normalised (`busybox:latest` →
//! `docker.io/library/busybox:latest`). A bare OCI `ref.name` that is only a tag (`latest`,
//! what `skopeo copy … oci-archive:x.tar:latest` writes) names no repository and is not used,
//! as `docker load` does not use it either.

use std::io::Read;
use std::path::Path;

use strata_cache::{ImageError, ImageRecord, ImageTarget, Store};
use strata_oci::archive::{self, ArchiveError};
use strata_oci::manifest::{ManifestDocument, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use strata_oci::{Descriptor, Digest};

use super::names::{normalize_tag, NameError};
use super::store_blobs::StoreBlobs;

/// Why an archive could not be loaded. Nothing was tagged.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The archive is unreadable, incomplete or fails verification.
    #[error("invalid image archive")]
    Archive {
        /// The cause.
        #[source]
        source: Box<ArchiveError>,
    },
    /// A name in the archive is not a valid image reference.
    #[error("archive names image {manifest} {name:?}")]
    Name {
        /// The name.
        name: String,
        /// The image's manifest.
        manifest: Digest,
        /// Why it is invalid.
        #[source]
        source: Box<NameError>,
    },
    /// The manifest stored a moment ago cannot be read back.
    #[error("cannot read loaded manifest {digest}")]
    Manifest {
        /// The manifest.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Tagging failed; tags made by this load were rolled back.
    #[error("cannot tag {name}")]
    Tag {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: Box<ImageError>,
    },
}

/// An image that was loaded (and tagged with its names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Normalised names it was tagged with (empty: an unnamed image, stored but not tagged).
    pub names: Vec<String>,
    /// Its manifest (or index).
    pub manifest: Descriptor,
    /// Its config digest (the image id), for single-platform images.
    pub config: Option<Digest>,
}

/// Loads an image archive tar from `reader` (see the module docs).
pub fn load_archive(store: &Store, reader: impl Read) -> Result<Vec<LoadedImage>, LoadError> {
    let lease = store.lease();
    let mut sink = StoreBlobs::new(store, &lease);
    let found = archive::read_archive(reader, &mut sink).map_err(|source| LoadError::Archive {
        source: Box::new(source),
    })?;
    finish(store, found)
}

/// Loads every image of an OCI layout directory's `index.json` (see the module docs).
pub fn load_layout(store: &Store, dir: &Path) -> Result<Vec<LoadedImage>, LoadError> {
    let lease = store.lease();
    let mut sink = StoreBlobs::new(store, &lease);
    let found = archive::read_oci_layout(dir, &mut sink).map_err(|source| LoadError::Archive {
        source: Box::new(source),
    })?;
    finish(store, found)
}

/// Names and ids of verified images, then tags them all (or none).
fn finish(store: &Store, found: Vec<archive::LoadedImage>) -> Result<Vec<LoadedImage>, LoadError> {
    let mut loaded = Vec::with_capacity(found.len());
    for image in found {
        let mut manifest = image.manifest;
        let mut names = Vec::new();
        for name in usable_names(&manifest, image.names) {
            let normalized = normalize_tag(&name).map_err(|source| LoadError::Name {
                name: name.clone(),
                manifest: manifest.digest,
                source: Box::new(source),
            })?;
            if !names.contains(&normalized) {
                names.push(normalized);
            }
        }
        // An archive lists an image once per name (index.json entries): one image here.
        if let Some(same) = loaded
            .iter_mut()
            .find(|l: &&mut LoadedImage| l.manifest.digest == manifest.digest)
        {
            for name in names {
                if !same.names.contains(&name) {
                    same.names.push(name);
                }
            }
            continue;
        }
        let (media_type, config) = inspect_manifest(store, &manifest)?;
        if manifest.media_type.is_empty() {
            manifest.media_type = media_type;
        }
        loaded.push(LoadedImage {
            names,
            manifest,
            config,
        });
    }
    tag_all(store, &loaded)?;
    Ok(loaded)
}

/// The archive's names minus a bare OCI `ref.name` tag (see the module docs).
fn usable_names(manifest: &Descriptor, names: Vec<String>) -> Vec<String> {
    let bare_ref = manifest
        .annotations
        .get(ANNOTATION_REF_NAME)
        .filter(|_| !manifest.annotations.contains_key(ANNOTATION_IMAGE_NAME))
        .filter(|r| !r.contains([':', '/']));
    names.into_iter().filter(|n| Some(n) != bare_ref).collect()
}

/// The manifest's own media type and, for a single image, its config digest.
fn inspect_manifest(
    store: &Store,
    manifest: &Descriptor,
) -> Result<(String, Option<Digest>), LoadError> {
    let wrap = |source: Box<dyn std::error::Error + Send + Sync>| LoadError::Manifest {
        digest: manifest.digest,
        source,
    };
    let bytes = store
        .content()
        .read(&manifest.digest)
        .map_err(|e| wrap(Box::new(e)))?;
    match ManifestDocument::from_json(&manifest.media_type, &bytes)
        .map_err(|e| wrap(Box::new(e)))?
    {
        ManifestDocument::Manifest(m) => {
            let media_type = if m.media_type.is_empty() {
                strata_oci::media_type::OCI_MANIFEST.to_owned()
            } else {
                m.media_type
            };
            Ok((media_type, Some(m.config.digest)))
        }
        ManifestDocument::Index(i) => {
            let media_type = if i.media_type.is_empty() {
                strata_oci::media_type::OCI_INDEX.to_owned()
            } else {
                i.media_type
            };
            Ok((media_type, None))
        }
    }
}

/// Tags every name; on failure restores what the names pointed at before.
fn tag_all(store: &Store, loaded: &[LoadedImage]) -> Result<(), LoadError> {
    let images = store.images();
    let mut done: Vec<(String, Option<ImageRecord>)> = Vec::new();
    for image in loaded {
        let target = ImageTarget {
            manifest: image.manifest.digest,
            media_type: image.manifest.media_type.clone(),
            size: image.manifest.size,
            config: image.config,
        };
        for name in &image.names {
            match images.tag(name, &target) {
                Ok(previous) => done.push((name.clone(), previous)),
                Err(source) => {
                    for (name, previous) in done.into_iter().rev() {
                        let _ = match previous {
                            Some(record) => images.tag(&name, &record.target).map(|_| ()),
                            None => images.untag(&name).map(|_| ()),
                        };
                    }
                    return Err(LoadError::Tag {
                        name: name.clone(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }
    Ok(())
}
