//! Which layer blob holds a snapshot's diff: remembered when a layer is unpacked into a
//! snapshot or a snapshot is turned into a layer, so neither is ever done twice.
//!
//! Main items: [`LayerRecord`] (the blob's descriptor and the diff id), [`remember`] and
//! [`recall`]; [`remember_clamped`] and [`recall_clamped`] for the layer of a snapshot
//! written with mtimes clamped to a `SOURCE_DATE_EPOCH` (one record per epoch).
//!
//! Key decision: the store maps blob → snapshot (`set_layer_blob` / `by_layer_blob`, which
//! unpacking needs and which keeps the blob alive with the snapshot), but an export needs
//! snapshot → blob. That direction is kept as a cache-index record under a key derived from
//! the snapshot id (a blake3 key with its own context string, so it can never collide with a
//! solver cache key); its payload is the descriptor and diff id. Like any cache record it is
//! dropped by a prune or with its snapshot, and then the layer is simply written again — the
//! tar is canonical, so it comes out with the same digest.

use serde::{Deserialize, Serialize};
use strata_cache::{
    CacheError, CacheKey, CacheValue, LayerBlob, Lease, SnapshotError, SnapshotId, Store,
};
use strata_oci::{Descriptor, Digest};

const KEY_CONTEXT: &str = "strata-worker image layer-of-snapshot v1";

/// Why a layer record could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum LayerRecordError {
    /// Mapping the blob to the snapshot failed.
    #[error("cannot record layer blob {digest} for snapshot {snapshot}")]
    Map {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<SnapshotError>,
    },
    /// The cache index failed.
    #[error("cannot {action} the layer record of snapshot {snapshot}")]
    Index {
        /// `store`, `read`.
        action: &'static str,
        /// The snapshot.
        snapshot: SnapshotId,
        /// The cause.
        #[source]
        source: Box<CacheError>,
    },
}

/// The layer blob of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// The blob (media type as stored: OCI or Docker, compressed or not).
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
}

fn key(snapshot: &SnapshotId) -> CacheKey {
    blake3::derive_key(KEY_CONTEXT, snapshot.as_str().as_bytes())
}

/// The key of the layer written with mtimes clamped to `epoch` (`SOURCE_DATE_EPOCH`).
fn clamped_key(snapshot: &SnapshotId, epoch: i64) -> CacheKey {
    blake3::derive_key(
        KEY_CONTEXT,
        format!("{}\0source-date-epoch={epoch}", snapshot.as_str()).as_bytes(),
    )
}

/// Records that `layer` holds the diff of `snapshot` (both directions). The blob must be in
/// the content store and the snapshot committed.
pub fn remember(
    store: &Store,
    snapshot: &SnapshotId,
    layer: &LayerRecord,
) -> Result<(), LayerRecordError> {
    let digest = layer.descriptor.digest;
    // One transaction for both directions (one database sync per layer).
    store
        .snapshots()
        .set_layer_blob_cached(snapshot, &digest, &key(snapshot), &value(snapshot, layer))
        .map_err(|source| LayerRecordError::Map {
            snapshot: snapshot.clone(),
            digest,
            source: Box::new(source),
        })
}

/// [`remember`] for many snapshots in one transaction (the new layers of one export).
pub fn remember_all(
    store: &Store,
    layers: &[(SnapshotId, LayerRecord)],
) -> Result<(), LayerRecordError> {
    let Some((first, layer)) = layers.first() else {
        return Ok(());
    };
    let keys: Vec<CacheKey> = layers.iter().map(|(id, _)| key(id)).collect();
    let values: Vec<CacheValue> = layers.iter().map(|(id, l)| value(id, l)).collect();
    let batch: Vec<LayerBlob<'_>> = layers
        .iter()
        .zip(keys.iter().zip(&values))
        .map(|((id, l), (k, v))| LayerBlob {
            id,
            digest: &l.descriptor.digest,
            cached: Some((k, v)),
        })
        .collect();
    store
        .snapshots()
        .set_layer_blobs(&batch)
        .map_err(|source| LayerRecordError::Map {
            snapshot: first.clone(),
            digest: layer.descriptor.digest,
            source: Box::new(source),
        })
}

/// Records that `layer` holds the diff of `snapshot` with every mtime later than `epoch`
/// clamped to it. Only this direction: unpacking that blob must not reuse the snapshot,
/// whose files keep their real times.
pub fn remember_clamped(
    store: &Store,
    snapshot: &SnapshotId,
    epoch: i64,
    layer: &LayerRecord,
) -> Result<(), LayerRecordError> {
    put(store, &clamped_key(snapshot, epoch), snapshot, layer)
}

/// The layer recorded by [`remember_clamped`] for `snapshot` and `epoch`, leased.
pub fn recall_clamped(
    store: &Store,
    snapshot: &SnapshotId,
    epoch: i64,
    lease: &Lease,
) -> Result<Option<LayerRecord>, LayerRecordError> {
    get(store, &clamped_key(snapshot, epoch), snapshot, lease)
}

/// The cache value of a layer record: the snapshot, the blob, the record as JSON.
fn value(snapshot: &SnapshotId, layer: &LayerRecord) -> CacheValue {
    CacheValue {
        snapshot: Some(snapshot.clone()),
        blobs: vec![layer.descriptor.digest],
        payload: serde_json::to_vec(layer).expect("layer record serializes"),
    }
}

fn put(
    store: &Store,
    key: &CacheKey,
    snapshot: &SnapshotId,
    layer: &LayerRecord,
) -> Result<(), LayerRecordError> {
    store
        .cache()
        .put(key, &value(snapshot, layer))
        .map_err(|source| LayerRecordError::Index {
            action: "store",
            snapshot: snapshot.clone(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// The layer recorded for `snapshot`, with its blob leased, if the record and the blob are
/// still there.
pub fn recall(
    store: &Store,
    snapshot: &SnapshotId,
    lease: &Lease,
) -> Result<Option<LayerRecord>, LayerRecordError> {
    get(store, &key(snapshot), snapshot, lease)
}

fn get(
    store: &Store,
    key: &CacheKey,
    snapshot: &SnapshotId,
    lease: &Lease,
) -> Result<Option<LayerRecord>, LayerRecordError> {
    let found = store
        .cache()
        .get(key, Some(lease))
        .map_err(|source| LayerRecordError::Index {
            action: "read",
            snapshot: snapshot.clone(),
            source: Box::new(source),
        })?;
    let Some(record) = found else {
        return Ok(None);
    };
    // A payload that does not parse (another version wrote it) is treated as absent: the
    // layer is rewritten and the record replaced.
    let Ok(layer) = serde_json::from_slice::<LayerRecord>(&record.value.payload) else {
        return Ok(None);
    };
    if record.value.snapshot.as_ref() != Some(snapshot)
        || !store.content().contains(&layer.descriptor.digest)
    {
        return Ok(None);
    }
    Ok(Some(layer))
}
