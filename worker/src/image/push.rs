//! Pushing stored images to a registry: `strata push`, `build --push`.
//!
//! Main items: [`push_image`], [`PushOptions`], [`PushedImage`], [`PushError`].
//!
//! A push is two halves. The blocking half prepares the manifest: each layer is converted
//! as [`LayerCompression`] says (built layers are stored uncompressed, so by default they
//! are gzip-compressed; pulled layers keep their blobs), and when nothing changes the
//! stored manifest is pushed byte for byte, so its digest is kept. The async half uploads:
//! the config and the layers (a few at a time), each skipped when a `HEAD` finds it in the
//! repository, mounted from another repository of the same registry when the blob is known
//! to be there, uploaded otherwise (monolithic or chunked, streamed from the store's
//! file); the manifest goes last, under the tag.
//!
//! Key decision: a layer is compressed once per codec and level, ever. The compressed blob
//! is written into the content store and remembered under a key derived from the
//! uncompressed blob (its diff id) and the compression (a cache-index record that keeps the
//! blob alive with it), so a second push — to any registry — reuses it; gzip output is
//! deterministic, so a recompression after a prune yields the same digest anyway.

use std::io;
use std::sync::Arc;

use strata_cache::{CacheKey, CacheValue, Lease, Store};
use strata_oci::compression::{self, Encoder};
use strata_oci::registry::{Client, Reference, ReferenceError, RegistryError};
use strata_oci::{media_type, Compression, CompressionKind, Descriptor, Digest, Platform};
use tokio::sync::Semaphore;

use super::blob_sources;
use super::details::{host_platform, read_image, target_descriptor, ReadError};
use super::names::{find_image, NameError};
use super::save::LayerCompression;
use super::store_blobs::{StoreBlobError, StoreBlobs};

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 3;
const KEY_CONTEXT: &str = "strata-worker image compressed-layer v1";

/// Why an image could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The destination is not a valid reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The destination names a digest, not a tag.
    #[error("cannot push to a digest reference {reference}: give a tag")]
    DigestDestination {
        /// The reference.
        reference: String,
    },
    /// The image is not in the store.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The image cannot be read from the store.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A layer could not be compressed.
    #[error("cannot compress layer {digest}")]
    Compress {
        /// The layer.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A compressed layer could not be stored.
    #[error("cannot store compressed layer of {digest}")]
    Store {
        /// The uncompressed layer.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<StoreBlobError>,
    },
    /// The manifest could not be written.
    #[error("cannot write the manifest: {reason}")]
    Manifest {
        /// Why.
        reason: String,
    },
    /// The registry refused or failed.
    #[error("failed to push {reference}")]
    Registry {
        /// The destination.
        reference: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// A task died.
    #[error("push task failed: {reason}")]
    Task {
        /// What happened.
        reason: String,
    },
}

/// How to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// Which layers are compressed, and how (default: uncompressed layers → gzip).
    pub compression: LayerCompression,
    /// The platform chosen when the stored name points at an index.
    pub platform: Platform,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            compression: LayerCompression::default(),
            platform: host_platform(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The destination (normalised, with its tag).
    pub reference: String,
    /// The pushed manifest.
    pub manifest: Descriptor,
    /// The config digest (the image id).
    pub config: Digest,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs the repository already had.
    pub present: usize,
    /// Layers compressed for this push (0 when every compressed blob was remembered).
    pub compressed: usize,
}

/// The manifest to push and the blobs it needs, made from the store.
#[derive(Debug)]
struct Prepared {
    media_type: String,
    bytes: Vec<u8>,
    config: Digest,
    blobs: Vec<Descriptor>,
    compressed: usize,
}

/// Pushes the stored image `local` (name, id or digest) to `destination` (see the module
/// docs).
pub async fn push_image(
    store: &Store,
    client: &Arc<Client>,
    local: &str,
    destination: &str,
    options: &PushOptions,
) -> Result<PushedImage, PushError> {
    let reference = Reference::parse(destination)?;
    if reference.tag.is_none() {
        return Err(PushError::DigestDestination {
            reference: reference.to_string(),
        });
    }
    let lease = Arc::new(store.lease());
    let prepared = {
        let (store, lease, local, options) = (
            store.clone(),
            lease.clone(),
            local.to_owned(),
            options.clone(),
        );
        tokio::task::spawn_blocking(move || prepare(&store, &lease, &local, &options))
            .await
            .map_err(|e| PushError::Task {
                reason: e.to_string(),
            })??
    };
    let registry_error = |source: RegistryError| PushError::Registry {
        reference: reference.to_string(),
        source: Box::new(source),
    };

    let limit = Arc::new(Semaphore::new(PARALLEL_UPLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for blob in prepared.blobs.clone() {
        let (client, store, reference, limit) = (
            client.clone(),
            store.clone(),
            reference.clone(),
            limit.clone(),
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            push_blob(&client, &store, &reference, &blob).await
        });
    }
    let (mut uploaded, mut mounted, mut present) = (0, 0, 0);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(BlobOutcome::Present)) => present += 1,
            Ok(Ok(BlobOutcome::Mounted)) => mounted += 1,
            Ok(Ok(BlobOutcome::Uploaded)) => uploaded += 1,
            Ok(Err(e)) => {
                if failure.is_none() {
                    failure = Some(registry_error(e));
                    tasks.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failure.get_or_insert(PushError::Task {
                    reason: e.to_string(),
                });
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let digest = client
        .put_manifest(&reference, &prepared.media_type, &prepared.bytes)
        .await
        .map_err(registry_error)?;
    let origin = reference.name();
    for blob in &prepared.blobs {
        blob_sources::remember(store, &blob.digest, &origin);
    }
    Ok(PushedImage {
        reference: reference.to_string(),
        manifest: Descriptor::new(prepared.media_type, digest, prepared.bytes.len() as u64),
        config: prepared.config,
        uploaded,
        mounted,
        present,
        compressed: prepared.compressed,
    })
}

enum BlobOutcome {
    Present,
    Mounted,
    Uploaded,
}

/// HEAD, then mount, then upload (see the module docs).
async fn push_blob(
    client: &Client,
    store: &Store,
    reference: &Reference,
    blob: &Descriptor,
) -> Result<BlobOutcome, RegistryError> {
    if client.has_blob(reference, &blob.digest).await? {
        return Ok(BlobOutcome::Present);
    }
    let here = reference.name();
    let prefix = format!("{}/", reference.registry);
    for source in blob_sources::recall(store, &blob.digest) {
        let Some(repository) = source.strip_prefix(&prefix) else {
            continue;
        };
        if source == here {
            continue;
        }
        if client
            .mount_blob(reference, &blob.digest, repository)
            .await
            .unwrap_or(false)
        {
            return Ok(BlobOutcome::Mounted);
        }
    }
    let path = store.content().path(&blob.digest);
    client.upload_blob(reference, blob, &path).await?;
    Ok(BlobOutcome::Uploaded)
}

/// The blocking half: reads the image and converts its layers (see the module docs).
fn prepare(
    store: &Store,
    lease: &Lease,
    local: &str,
    options: &PushOptions,
) -> Result<Prepared, PushError> {
    let record = find_image(store, local)?;
    let image = read_image(store, &target_descriptor(&record.target), &options.platform)?;
    let docker = image.manifest.media_type == media_type::DOCKER_MANIFEST;
    let mut manifest = image.manifest.clone();
    let mut compressed = 0;
    let mut changed = false;
    for layer in manifest.layers.iter_mut() {
        if !media_type::is_layer(&layer.media_type) {
            continue;
        }
        let stored = CompressionKind::from_media_type(&layer.media_type);
        let Some(target) = options.compression.target(stored) else {
            continue;
        };
        let (mut converted, fresh) = compressed_layer(store, lease, layer, target)?;
        converted.media_type = if docker {
            target.docker_layer_media_type()
        } else {
            target.oci_layer_media_type()
        }
        .to_owned();
        compressed += usize::from(fresh);
        *layer = converted;
        changed = true;
    }
    let media_type = image.manifest_descriptor.media_type.clone();
    let bytes = if changed {
        manifest.to_json().map_err(|e| PushError::Manifest {
            reason: e.to_string(),
        })?
    } else {
        store
            .content()
            .read(&image.manifest_descriptor.digest)
            .map_err(|e| PushError::Manifest {
                reason: e.to_string(),
            })?
    };
    let mut blobs = vec![manifest.config.clone()];
    for layer in &manifest.layers {
        if !blobs.iter().any(|b| b.digest == layer.digest) {
            blobs.push(layer.clone());
        }
    }
    Ok(Prepared {
        media_type,
        bytes,
        config: image.config_digest,
        blobs,
        compressed,
    })
}

pub(crate) fn memo_key(layer: &Digest, compression: Compression) -> CacheKey {
    blake3::derive_key(KEY_CONTEXT, format!("{layer} {compression:?}").as_bytes())
}

/// `layer` in `compression`, from the memo or compressed now into the store; `true` when
/// it was compressed now.
pub(crate) fn compressed_layer(
    store: &Store,
    lease: &Lease,
    layer: &Descriptor,
    compression: Compression,
) -> Result<(Descriptor, bool), PushError> {
    let key = memo_key(&layer.digest, compression);
    if let Ok(Some(record)) = store.cache().get(&key, Some(lease)) {
        if let Ok(found) = serde_json::from_slice::<Descriptor>(&record.value.payload) {
            if store.content().contains(&found.digest) && lease.add_blob(&found.digest).is_ok() {
                return Ok((found, false));
            }
        }
    }
    let digest = layer.digest;
    let fail = |source| PushError::Compress { digest, source };
    let blobs = StoreBlobs::new(store, lease);
    let file = store
        .content()
        .open(&digest)
        .map_err(|e| fail(io::Error::other(e)))?;
    let (_, mut plain) = compression::decompress(file).map_err(fail)?;
    let writer = blobs.writer().map_err(|source| PushError::Store {
        digest,
        source: Box::new(source),
    })?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut encoder =
        Encoder::new(writer, compression, threads).map_err(|e| fail(io::Error::other(e)))?;
    encoder.copy_from(&mut plain).map_err(fail)?;
    let writer = encoder.finish().map_err(fail)?;
    // The store hashes what it writes: that digest names the compressed layer.
    let stored = blobs
        .commit_computed(writer)
        .map_err(|source| PushError::Store {
            digest,
            source: Box::new(source),
        })?;
    let (new_digest, size) = (stored.digest, stored.size);
    let descriptor = Descriptor::new(compression.oci_layer_media_type(), new_digest, size);
    let value = CacheValue {
        snapshot: None,
        blobs: vec![new_digest],
        payload: serde_json::to_vec(&descriptor).expect("descriptor serializes"),
    };
    // Losing the memo only costs a recompression next time.
    let _ = store.cache().put(&key, &value);
    Ok((descriptor, true))
}
