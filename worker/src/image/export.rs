//! Exporting a build result as an image in the store: snapshots → layers, the lowered config
//! → an OCI config, an OCI manifest, and tags.
//!
//! Main items: [`export_image`], [`ExportOptions`], [`ExportedImage`].
//!
//! Layers are the snapshot chain, bottom to top, one layer per snapshot that has content:
//! - a snapshot whose layer blob is known (it was unpacked from one, or exported before)
//!   reuses that blob as is — base layers keep their digests, and a rebuild never re-tars;
//! - otherwise its diff directory (an overlay upper dir: overlay whiteouts become OCI
//!   whiteouts) is written as a canonical, *uncompressed* tar straight into the content
//!   store, and remembered for the snapshot;
//! - a snapshot with an empty diff gives no layer, and the history entry of the step that
//!   made it is marked `empty_layer`.
//!
//! Key decisions:
//! - Uncompressed layers in the local store, as BuildKit inside dockerd keeps them: the tar
//!   is written once with no CPU spent on compression, its digest is the diff id, and
//!   compression happens once, when an image leaves the machine (`save --compression`, push).
//! - Deterministic: the same snapshots, config and [`ExportOptions`] give the same layer,
//!   config and manifest digests (canonical tars and JSON, no clock read here: the caller
//!   passes the creation time).
//! - `SOURCE_DATE_EPOCH` ([`ExportOptions::source_date_epoch`]): config and history times
//!   later than it become it, and from the first layer that is not the base image's (by
//!   diff id, as BuildKit's `rewrite-timestamp`) the diff dirs are written again with
//!   mtimes clamped to it, remembered per epoch beside the unclamped layer, so a build
//!   without the epoch keeps its image id and one with it is reproducible across roots.
//! - History and layers always agree: each layer is matched to the history entry of the
//!   step that produced it; base entries take the base layers in order; a layer no entry
//!   claims gets a generated entry, and an entry without a layer becomes `empty_layer`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use strata_cache::{
    ImageError, ImageTarget, LeaseError, SnapshotError, SnapshotId, StagedBlob, Store,
};
use strata_frontend::lower::config as lower;
use strata_oci::config::{format_timestamp, ConfigError, History};
use strata_oci::layer::{write_layer, SourceKind, WriteError, WriteOptions};
use strata_oci::manifest::ManifestError;
use strata_oci::{media_type, Compression, CompressionKind, Descriptor, Digest, ImageManifest};
use strata_solver::VertexId;

use super::config::to_oci_config;
use super::layer_record::{self, LayerRecord, LayerRecordError};
use super::names::{normalize_tag, NameError};
use super::store_blobs::{StoreBlobError, StoreBlobs};

/// History comment of entries the exporter adds for layers no step claims.
pub const EXPORTER_COMMENT: &str = "strata.exporter.image.v0";

/// Why an image could not be exported. Nothing was tagged.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A name to tag is invalid.
    #[error("cannot export as {name:?}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: Box<NameError>,
    },
    /// The snapshot chain cannot be read or leased.
    #[error("cannot {action} snapshot {snapshot}")]
    Snapshot {
        /// `lease`, `read the chain of`.
        action: &'static str,
        /// The snapshot.
        snapshot: SnapshotId,
        /// The cause.
        #[source]
        source: Box<SnapshotError>,
    },
    /// A snapshot or blob could not be leased.
    #[error("cannot lease {what}")]
    Lease {
        /// What.
        what: String,
        /// The cause.
        #[source]
        source: Box<LeaseError>,
    },
    /// A diff directory could not be read.
    #[error("cannot read diff directory {path}")]
    Diff {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a layer tar failed.
    #[error("cannot write the layer of snapshot {snapshot}")]
    Layer {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The cause.
        #[source]
        source: Box<WriteError>,
    },
    /// Storing a blob failed.
    #[error("cannot store the {what}")]
    Blob {
        /// `layer of snapshot …`, `config`, `manifest`.
        what: String,
        /// The cause.
        #[source]
        source: Box<StoreBlobError>,
    },
    /// The config could not be encoded.
    #[error("cannot encode the image config")]
    Config {
        /// The cause.
        #[source]
        source: Box<ConfigError>,
    },
    /// The manifest could not be encoded.
    #[error("cannot encode the image manifest")]
    Manifest {
        /// The cause.
        #[source]
        source: Box<ManifestError>,
    },
    /// Storing a small blob failed.
    #[error("cannot store the image {what}")]
    Content {
        /// `config`, `manifest`.
        what: &'static str,
        /// The cause.
        #[source]
        source: Box<strata_cache::ContentError>,
    },
    /// The snapshot → layer record failed.
    #[error(transparent)]
    Record(#[from] LayerRecordError),
    /// Tagging failed.
    #[error("cannot tag {name}")]
    Tag {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: Box<ImageError>,
    },
}

/// How to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// The image's creation time (RFC 3339), also given to history entries that have none.
    /// `None`: the lowered config's own `created` (set from `SOURCE_DATE_EPOCH`), if any.
    pub created: Option<String>,
    /// `SOURCE_DATE_EPOCH` (Unix seconds): the config's and history's times later than it
    /// become it, and so do the file mtimes of the layers the build made (BuildKit's
    /// `rewrite-timestamp`); the base image's layers keep their blobs.
    pub source_date_epoch: Option<i64>,
}

/// What was exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedImage {
    /// The manifest digest.
    pub manifest: Digest,
    /// The config digest (the image id).
    pub config: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// The names it was tagged with, normalised.
    pub names: Vec<String>,
    /// How many layers were written now (the rest were reused).
    pub written: usize,
}

/// A layer of the chain with the snapshot it came from.
pub(crate) struct ChainLayer {
    pub(crate) snapshot: SnapshotId,
    pub(crate) descriptor: Descriptor,
    pub(crate) diff_id: Digest,
}

/// Exports the filesystem `top` (a committed snapshot; `None` for an empty filesystem) with
/// the lowered `config`, and tags it with `names`.
///
/// `layer_of_history` maps the vertex of a history entry ([`lower::History::layer`]) to the
/// snapshot that vertex produced. See the module docs for how layers and history are made.
pub fn export_image(
    store: &Store,
    top: Option<&SnapshotId>,
    config: &lower::Image,
    layer_of_history: impl Fn(VertexId) -> Option<SnapshotId>,
    names: &[String],
    options: &ExportOptions,
) -> Result<ExportedImage, ExportError> {
    let mut tags = Vec::new();
    for name in names {
        let tag = normalize_tag(name).map_err(|source| ExportError::Name {
            name: name.clone(),
            source: Box::new(source),
        })?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    let lease = store.lease();
    let blobs = StoreBlobs::new(store, &lease);
    let mut chain = Vec::new();
    if let Some(top) = top {
        lease
            .add_snapshot(top)
            .map_err(|source| ExportError::Lease {
                what: format!("snapshot {top}"),
                source: Box::new(source),
            })?;
        chain = store
            .snapshots()
            .chain(top)
            .map_err(|source| ExportError::Snapshot {
                action: "read the chain of",
                snapshot: top.clone(),
                source: Box::new(source),
            })?;
        chain.reverse();
    }
    let mut layers = Vec::new();
    let mut written = 0;
    let epoch = options.source_date_epoch;
    // With an epoch, the leading layers that are the base image's stay as they are, as in
    // BuildKit: from the first layer that differs from the base's on, layers are clamped.
    let base_diff_ids = &config.rootfs.diff_ids;
    let mut diverged = epoch.is_none();
    let mut new_layers = NewLayers::default();
    for record in &chain {
        if !diverged {
            let lease = blobs.lease();
            if let Some(known) = layer_record::recall(store, &record.id, lease)? {
                if base_diff_ids.get(layers.len()) == Some(&known.diff_id.to_string()) {
                    layers.push(reused(&record.id, &known));
                    continue;
                }
            }
            diverged = true;
        }
        if let Some((layer, new)) = layer_of(store, &blobs, record, epoch, Some(&mut new_layers))? {
            written += usize::from(new);
            layers.push(layer);
        }
    }
    new_layers.finish(store, &blobs)?;

    let created = options
        .created
        .clone()
        .or_else(|| config.created.clone())
        .or_else(|| epoch.map(|e| format_timestamp(e, 0)));
    let mut image = to_oci_config(config);
    image.created = created.clone();
    image.rootfs.diff_ids = layers.iter().map(|l| l.diff_id).collect();
    image.history = history(config, &layers, &layer_of_history, created.as_deref());
    if let Some(epoch) = epoch {
        image
            .clamp_timestamps(epoch)
            .map_err(|source| ExportError::Config {
                source: Box::new(source),
            })?;
    }
    let config_bytes = image.to_json().map_err(|source| ExportError::Config {
        source: Box::new(source),
    })?;
    let config_info = store
        .content()
        .write(&config_bytes, &lease)
        .map_err(|source| ExportError::Content {
            what: "config",
            source: Box::new(source),
        })?;
    let descriptors: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = ImageManifest::oci(
        Descriptor::new(media_type::OCI_CONFIG, config_info.digest, config_info.size),
        descriptors.clone(),
    );
    let manifest_bytes = manifest.to_json().map_err(|source| ExportError::Manifest {
        source: Box::new(source),
    })?;
    let manifest_info = store
        .content()
        .write(&manifest_bytes, &lease)
        .map_err(|source| ExportError::Content {
            what: "manifest",
            source: Box::new(source),
        })?;
    let target = ImageTarget {
        manifest: manifest_info.digest,
        media_type: media_type::OCI_MANIFEST.to_owned(),
        size: manifest_info.size,
        config: Some(config_info.digest),
    };
    for name in &tags {
        store
            .images()
            .tag(name, &target)
            .map_err(|source| ExportError::Tag {
                name: name.clone(),
                source: Box::new(source),
            })?;
    }
    Ok(ExportedImage {
        manifest: manifest_info.digest,
        config: config_info.digest,
        size: manifest_info.size,
        layers: descriptors,
        names: tags,
        written,
    })
}

/// A known layer blob of `snapshot` as a chain layer.
fn reused(snapshot: &SnapshotId, known: &LayerRecord) -> ChainLayer {
    // The manifest is OCI: a Docker media type of a reused blob is renamed to the OCI one
    // of the same compression (same bytes, same digest).
    let kind = CompressionKind::from_media_type(&known.descriptor.media_type);
    ChainLayer {
        snapshot: snapshot.clone(),
        descriptor: Descriptor::new(
            kind.oci_layer_media_type(),
            known.descriptor.digest,
            known.descriptor.size,
        ),
        diff_id: known.diff_id,
    }
}

/// Layers an export wrote (staged, not yet in the store) and their records: published and
/// recorded together once all are written — one `syncfs`, one directory `fsync` and one
/// database transaction for the export instead of two `fsync`s and a transaction per layer.
#[derive(Debug, Default)]
pub(crate) struct NewLayers {
    staged: Vec<StagedBlob>,
    records: Vec<(SnapshotId, LayerRecord)>,
}

impl NewLayers {
    /// Puts the staged blobs into the store, then records them (a record never names a blob
    /// that is not there).
    fn finish(self, store: &Store, blobs: &StoreBlobs<'_>) -> Result<(), ExportError> {
        blobs
            .publish(self.staged)
            .map_err(|source| ExportError::Blob {
                what: "new layers".into(),
                source: Box::new(source),
            })?;
        layer_record::remember_all(store, &self.records)?;
        Ok(())
    }
}

/// The layer of one snapshot (and whether it was written now), or `None` for an empty diff;
/// with `clamp`, the layer with mtimes later than it clamped (a record of its own). With
/// `batch`, a new unclamped layer is staged there (see [`NewLayers`]) instead of being
/// stored and recorded now.
pub(crate) fn layer_of(
    store: &Store,
    blobs: &StoreBlobs<'_>,
    record: &strata_cache::SnapshotRecord,
    clamp: Option<i64>,
    batch: Option<&mut NewLayers>,
) -> Result<Option<(ChainLayer, bool)>, ExportError> {
    let batch = batch.filter(|_| clamp.is_none());
    let id = &record.id;
    let lease = blobs.lease();
    let known = match clamp {
        None => layer_record::recall(store, id, lease)?,
        Some(epoch) => layer_record::recall_clamped(store, id, epoch, lease)?,
    };
    if let Some(known) = known {
        return Ok(Some((reused(id, &known), false)));
    }
    // The uncompressed tar of a snapshot with a known diff id may be stored already.
    if let (Some(diff_id), None) = (record.diff_id, clamp) {
        if store.content().contains(&diff_id) && lease.add_blob(&diff_id).is_ok() {
            if let Ok(size) = store.content().size(&diff_id) {
                let descriptor = Descriptor::new(media_type::OCI_LAYER_TAR, diff_id, size);
                let layer = LayerRecord {
                    descriptor: descriptor.clone(),
                    diff_id,
                };
                match batch {
                    Some(batch) => batch.records.push((id.clone(), layer)),
                    None => layer_record::remember(store, id, &layer)?,
                }
                return Ok(Some((
                    ChainLayer {
                        snapshot: id.clone(),
                        descriptor,
                        diff_id,
                    },
                    false,
                )));
            }
        }
    }
    let diff = store.snapshots().diff_dir(id);
    let mut entries = fs::read_dir(&diff).map_err(|source| ExportError::Diff {
        path: diff.clone(),
        source,
    })?;
    if entries.next().is_none() {
        return Ok(None);
    }
    let options = WriteOptions {
        compression: Compression::None,
        source: SourceKind::Overlay,
        mtime_clamp: clamp,
        ..WriteOptions::default()
    };
    let blob_error = |source| ExportError::Blob {
        what: format!("layer of snapshot {id}"),
        source: Box::new(source),
    };
    let mut writer = match batch {
        Some(_) => blobs.staging_writer(),
        None => blobs.writer(),
    }
    .map_err(blob_error)?;
    let info = write_layer(&diff, &options, &mut writer).map_err(|source| ExportError::Layer {
        snapshot: id.clone(),
        source: Box::new(source),
    })?;
    let descriptor = info.oci_descriptor();
    let layer = LayerRecord {
        descriptor: descriptor.clone(),
        diff_id: info.diff_id,
    };
    match (batch, clamp) {
        (Some(batch), _) => {
            let staged = blobs
                .finish_staged(writer, &info.digest, info.size)
                .map_err(blob_error)?;
            batch.staged.push(staged);
            batch.records.push((id.clone(), layer));
        }
        (None, None) => {
            blobs
                .commit(writer, &info.digest, info.size)
                .map_err(blob_error)?;
            layer_record::remember(store, id, &layer)?;
        }
        (None, Some(epoch)) => {
            blobs
                .commit(writer, &info.digest, info.size)
                .map_err(blob_error)?;
            layer_record::remember_clamped(store, id, epoch, &layer)?;
        }
    }
    Ok(Some((
        ChainLayer {
            snapshot: id.clone(),
            descriptor,
            diff_id: info.diff_id,
        },
        true,
    )))
}

/// The config's history, matched to `layers` (see the module docs).
fn history(
    config: &lower::Image,
    layers: &[ChainLayer],
    layer_of_history: &dyn Fn(VertexId) -> Option<SnapshotId>,
    created: Option<&str>,
) -> Vec<History> {
    let position: HashMap<&SnapshotId, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (&l.snapshot, i))
        .collect();
    // The layer each step entry claims, if any.
    let claims: Vec<Option<usize>> = config
        .history
        .iter()
        .map(|h| {
            let snapshot = layer_of_history(h.layer?)?;
            position.get(&snapshot).copied()
        })
        .collect();
    let claimed: HashSet<usize> = claims.iter().flatten().copied().collect();
    let stamp = |mut entry: History| {
        if entry.created.is_none() {
            entry.created = created.map(str::to_owned);
        }
        entry
    };
    let filler = || {
        stamp(History {
            comment: EXPORTER_COMMENT.to_owned(),
            ..History::default()
        })
    };
    let mut out = Vec::with_capacity(config.history.len());
    let mut next = 0;
    for (entry, claim) in config.history.iter().zip(claims) {
        let mut item = History {
            created: entry.created.clone(),
            created_by: entry.created_by.clone(),
            author: entry.author.clone(),
            comment: entry.comment.clone(),
            empty_layer: true,
        };
        if entry.layer.is_some() {
            if let Some(k) = claim.filter(|&k| k >= next) {
                out.extend((next..k).map(|_| filler()));
                item.empty_layer = false;
                next = k + 1;
            }
        } else if !entry.empty_layer && next < layers.len() && !claimed.contains(&next) {
            // A base image entry takes the next base layer.
            item.empty_layer = false;
            next += 1;
        }
        out.push(stamp(item));
    }
    out.extend((next..layers.len()).map(|_| filler()));
    out
}
