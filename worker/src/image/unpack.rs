//! Unpacking a stored image into snapshots: the base of a `FROM`.
//!
//! Main items: [`unpack_image`] (by name, id or digest), [`unpack_manifest`] (by descriptor)
//! and [`UnpackedImage`].
//!
//! Each layer, bottom first, becomes one committed snapshot whose diff directory holds
//! exactly that layer, with OCI whiteouts turned into overlayfs whiteouts
//! ([`WhiteoutMode::Overlay`]), so the chain mounts as overlay lowerdirs and a snapshot
//! exports back to the very same blob. `strata-oci`'s applier never writes outside the diff
//! directory whatever the tar holds; the blob digest and the diff id are checked against the
//! manifest and the config before the snapshot is committed, with the diff id recorded.
//!
//! Key decisions:
//! - Reuse: a layer whose blob (or uncompressed twin, by diff id) already maps to a snapshot
//!   stacked on the same parent is not unpacked again; the existing snapshot is leased
//!   instead. Layers are content-addressed by (parent, blob), so an image unpacks once and
//!   images sharing a base share its snapshots.
//! - Concurrency: everything is leased to the caller's lease as it is found or made, so a
//!   prune cannot remove it mid-way. Two processes unpacking the same image at once may both
//!   unpack a layer (each into its own snapshot: ids are random, commits never collide); both
//!   chains are valid, the blob → snapshot mapping keeps the last one, and the other becomes
//!   garbage once its lease ends. No lock is held across the slow part.

use std::io::BufReader;

use strata_cache::{ContentError, Lease, LeaseError, SnapshotError, SnapshotId, Store};
use strata_frontend::instructions::parse_image_reference;
use strata_oci::layer::{apply_layer, ApplyError, ApplyOptions, WhiteoutMode};
use strata_oci::{Descriptor, Digest, Platform};

use super::details::{read_image, target_descriptor, ReadError, StoredImage};
use super::layer_record::{self, LayerRecord, LayerRecordError};
use super::names::{find_image, NameError};

/// Why an image could not be unpacked. Snapshots committed so far stay (leased) and are
/// reused by the next attempt.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The image is not in the store.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Its manifest or config cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A layer blob is missing or unreadable.
    #[error("cannot read layer {index} ({digest})")]
    Blob {
        /// 0-based layer index.
        index: usize,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ContentError>,
    },
    /// The layer tar is invalid or hostile.
    #[error("cannot unpack layer {index} ({digest})")]
    Apply {
        /// 0-based layer index.
        index: usize,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ApplyError>,
    },
    /// The blob's bytes are not what the manifest names.
    #[error("layer {index} has digest {actual} ({size} bytes), the manifest says {expected}")]
    BlobMismatch {
        /// 0-based layer index.
        index: usize,
        /// The manifest's digest.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
        /// Bytes read.
        size: u64,
    },
    /// The uncompressed layer is not what the config names.
    #[error("layer {index} ({digest}) has diff id {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// 0-based layer index.
        index: usize,
        /// The blob.
        digest: Digest,
        /// The config's diff id.
        expected: Digest,
        /// The diff id of the tar.
        actual: Digest,
    },
    /// A snapshot step failed.
    #[error("cannot {action} snapshot for layer {index}")]
    Snapshot {
        /// `prepare`, `commit`, `look up`.
        action: &'static str,
        /// 0-based layer index.
        index: usize,
        /// The cause.
        #[source]
        source: Box<SnapshotError>,
    },
    /// A blob or snapshot could not be leased.
    #[error("cannot lease layer {index}")]
    Lease {
        /// 0-based layer index.
        index: usize,
        /// The cause.
        #[source]
        source: Box<LeaseError>,
    },
    /// The blob ↔ snapshot record could not be written.
    #[error(transparent)]
    Record(#[from] LayerRecordError),
}

/// An unpacked image.
#[derive(Debug, Clone)]
pub struct UnpackedImage {
    /// The snapshot of its top layer (`None` for an image without layers).
    pub top: Option<SnapshotId>,
    /// Its manifest and config.
    pub image: StoredImage,
    /// Layers unpacked by this call.
    pub unpacked: usize,
    /// Layers found already unpacked.
    pub reused: usize,
}

/// Unpacks the image named `query` — a name (`busybox`, `docker.io/library/busybox:1.36`),
/// a digest reference (`busybox@sha256:…`), an image id or id prefix, or a manifest digest —
/// for `platform`, leasing every snapshot of the chain to `lease`.
pub fn unpack_image(
    store: &Store,
    query: &str,
    platform: &Platform,
    lease: &Lease,
) -> Result<UnpackedImage, UnpackError> {
    let descriptor = match find_image(store, query) {
        Ok(record) => target_descriptor(&record.target),
        Err(NameError::NotFound { .. }) => match digest_in(query) {
            Some(digest) if store.content().contains(&digest) => {
                let size = store
                    .content()
                    .size(&digest)
                    .map_err(|source| ReadError::Content {
                        what: "manifest",
                        digest,
                        source: Box::new(source),
                    })?;
                // The media type is found from the document itself.
                Descriptor::new(String::new(), digest, size)
            }
            _ => {
                return Err(NameError::NotFound {
                    query: query.to_owned(),
                }
                .into())
            }
        },
        Err(e) => return Err(e.into()),
    };
    unpack_manifest(store, &descriptor, platform, lease)
}

/// The digest a query names: `sha256:…` or `name@sha256:…`.
fn digest_in(query: &str) -> Option<Digest> {
    if let Ok(digest) = query.parse() {
        return Some(digest);
    }
    parse_image_reference(query).ok()?.digest?.parse().ok()
}

/// Unpacks the image whose manifest (or index) is `manifest` (see [`unpack_image`]).
pub fn unpack_manifest(
    store: &Store,
    manifest: &Descriptor,
    platform: &Platform,
    lease: &Lease,
) -> Result<UnpackedImage, UnpackError> {
    let image = read_image(store, manifest, platform)?;
    let layers: Vec<Descriptor> = image.layers().cloned().collect();
    let diff_ids = image.config.rootfs.diff_ids.clone();
    let mut parent: Option<SnapshotId> = None;
    let (mut unpacked, mut reused) = (0, 0);
    for (index, (layer, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        if let Some(id) = reusable(store, index, layer, diff_id, parent.as_ref(), lease)? {
            parent = Some(id);
            reused += 1;
            continue;
        }
        parent = Some(unpack_layer(
            store,
            index,
            layer,
            diff_id,
            parent.as_ref(),
            lease,
        )?);
        unpacked += 1;
    }
    Ok(UnpackedImage {
        top: parent,
        image,
        unpacked,
        reused,
    })
}

/// One step of [`unpack_manifest`]: layer `index` (blob `layer`, uncompressed digest
/// `diff_id`) on `parent` — an existing snapshot reused, or the layer applied and
/// committed; `true` when it was reused. For callers that unpack layers as they arrive
/// (a pull), bottom first.
pub fn unpack_layer_on(
    store: &Store,
    index: usize,
    layer: &Descriptor,
    diff_id: Digest,
    parent: Option<&SnapshotId>,
    lease: &Lease,
) -> Result<(SnapshotId, bool), UnpackError> {
    if let Some(id) = reusable(store, index, layer, diff_id, parent, lease)? {
        return Ok((id, true));
    }
    Ok((
        unpack_layer(store, index, layer, diff_id, parent, lease)?,
        false,
    ))
}

/// An existing snapshot holding this layer on this parent, now leased.
fn reusable(
    store: &Store,
    index: usize,
    layer: &Descriptor,
    diff_id: Digest,
    parent: Option<&SnapshotId>,
    lease: &Lease,
) -> Result<Option<SnapshotId>, UnpackError> {
    let snapshots = store.snapshots();
    let lookup = |source: SnapshotError| UnpackError::Snapshot {
        action: "look up",
        index,
        source: Box::new(source),
    };
    for blob in [layer.digest, diff_id] {
        let Some(id) = snapshots.by_layer_blob(&blob).map_err(lookup)? else {
            continue;
        };
        let Some(record) = snapshots.get(&id).map_err(lookup)? else {
            continue;
        };
        if record.parent.as_ref() != parent || record.diff_id != Some(diff_id) {
            continue;
        }
        match lease.add_snapshot(&id) {
            Ok(()) => return Ok(Some(id)),
            // Pruned since the lookup: unpack it again.
            Err(LeaseError::SnapshotNotFound { .. }) => continue,
            Err(source) => {
                return Err(UnpackError::Lease {
                    index,
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(None)
}

/// Applies one layer into a new snapshot on `parent`, checks it, commits it.
fn unpack_layer(
    store: &Store,
    index: usize,
    layer: &Descriptor,
    diff_id: Digest,
    parent: Option<&SnapshotId>,
    lease: &Lease,
) -> Result<SnapshotId, UnpackError> {
    let snapshots = store.snapshots();
    let blob_error = |source: ContentError| UnpackError::Blob {
        index,
        digest: layer.digest,
        source: Box::new(source),
    };
    match lease.add_blob(&layer.digest) {
        Ok(()) => {}
        Err(LeaseError::BlobNotFound { digest }) => {
            return Err(blob_error(ContentError::NotFound { digest }))
        }
        Err(source) => {
            return Err(UnpackError::Lease {
                index,
                source: Box::new(source),
            })
        }
    }
    let file = store.content().open(&layer.digest).map_err(blob_error)?;
    let prepared = snapshots
        .prepare(parent, lease)
        .map_err(|source| UnpackError::Snapshot {
            action: "prepare",
            index,
            source: Box::new(source),
        })?;
    let options = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    };
    let applied = apply_layer(
        BufReader::with_capacity(256 * 1024, file),
        &prepared.diff(),
        &options,
    )
    .map_err(|source| UnpackError::Apply {
        index,
        digest: layer.digest,
        source: Box::new(source),
    })?;
    if applied.digest != layer.digest || applied.size != layer.size {
        return Err(UnpackError::BlobMismatch {
            index,
            expected: layer.digest,
            actual: applied.digest,
            size: applied.size,
        });
    }
    if applied.diff_id != diff_id {
        return Err(UnpackError::DiffIdMismatch {
            index,
            digest: layer.digest,
            expected: diff_id,
            actual: applied.diff_id,
        });
    }
    let record = snapshots
        .commit(prepared, Some(diff_id))
        .map_err(|source| UnpackError::Snapshot {
            action: "commit",
            index,
            source: Box::new(source),
        })?;
    let descriptor = Descriptor::new(layer.media_type.clone(), layer.digest, layer.size);
    layer_record::remember(
        store,
        &record.id,
        &LayerRecord {
            descriptor,
            diff_id,
        },
    )?;
    Ok(record.id)
}
