//! Pulling images from a registry into the store: `strata pull`, and `FROM` an image the
//! store lacks.
//!
//! Main items: [`pull_image`], [`pull_and_unpack`], [`PulledImage`], [`PullError`].
//!
//! The reference is resolved to one manifest (an index or manifest list is followed through
//! the entry for the wanted platform, chosen as [`super::details::select_platform`] does),
//! then the config and the layers are fetched: layers in parallel (a few at a time), each
//! streamed chunk by chunk from the socket into the content store's ingest, and never
//! fetched when the store already holds the blob. Every blob is verified against its
//! descriptor while it streams and is committed only once it matched, so a bad blob never
//! enters the store.
//!
//! [`pull_and_unpack`] (a build's `FROM`) also unpacks while it downloads: each layer
//! becomes a snapshot as soon as it and every layer below it are stored, on the blocking
//! pool, while later layers are still arriving; the `FROM` step then finds every snapshot
//! ready. `strata pull` stores the image only, as `skopeo copy` does.
//!
//! Key decisions:
//! - Blobs are stored as the registry serves them (compressed); the manifest is stored
//!   byte for byte, so the image keeps the digest it has in the registry. Unpacking (at
//!   `FROM`) checks each layer's diff id before it commits a snapshot.
//! - Order of commits: layers first, then the config and the manifest, then the tag. A pull
//!   that fails on any blob stores no config, no manifest and no tag — the store gains at
//!   most verified, unreferenced layer blobs, which the next prune removes.
//! - The name is tagged to the platform's manifest (not to the index), like Docker's classic
//!   store: an index's other platforms are never fetched, so the store never names an image
//!   it cannot read.
//! - Each blob's source repository is remembered ([`super::blob_sources`]) so a later push
//!   to another repository of that registry can mount it instead of uploading it.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use std::collections::HashMap;
use strata_cache::{ContentError, ImageError, ImageTarget, Lease, SnapshotId, Store};
use strata_oci::config::ConfigError;
use strata_oci::registry::{Client, Reference, ReferenceError, RegistryError};
use strata_oci::{media_type, Descriptor, Digest, ImageConfig, Platform};
use tokio::sync::{mpsc, watch, Semaphore};

use super::blob_sources;
use super::details::{format_platform, platform_matches, select_platform};
use super::store_blobs::{StoreBlobError, StoreBlobs};
use super::unpack::{unpack_layer_on, UnpackError};

/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 4;
/// Whole-blob attempts when a download breaks mid-way.
const BLOB_ATTEMPTS: u32 = 3;

/// Why an image could not be pulled. No name was tagged and no manifest stored.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The name is not a valid reference.
    #[error(transparent)]
    Name(#[from] ReferenceError),
    /// The registry failed or served bad content.
    #[error("failed to pull {reference}")]
    Registry {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<RegistryError>,
    },
    /// The manifest is not a container image.
    #[error("{reference} is not a container image (config type {media_type})")]
    NotAnImage {
        /// The reference.
        reference: String,
        /// Its config's media type.
        media_type: String,
    },
    /// The image config does not parse.
    #[error("invalid image config {digest} of {reference}")]
    Config {
        /// The reference.
        reference: String,
        /// The config.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ConfigError>,
    },
    /// A single-platform image for another platform.
    #[error("image {reference} is for {found}, not {wanted}")]
    WrongPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's platform.
        found: String,
    },
    /// Manifest and config disagree.
    #[error("{reference} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCount {
        /// The reference.
        reference: String,
        /// Layers in the manifest.
        layers: usize,
        /// Diff ids in the config.
        diff_ids: usize,
    },
    /// A blob could not be stored.
    #[error("cannot store blob {digest}")]
    Store {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<StoreBlobError>,
    },
    /// A small blob (config, manifest) could not be stored.
    #[error("cannot store {what} {digest}")]
    Content {
        /// `config`, `manifest`.
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<ContentError>,
    },
    /// The name could not be tagged.
    #[error("cannot tag {name}")]
    Tag {
        /// The name.
        name: String,
        /// The cause.
        #[source]
        source: Box<ImageError>,
    },
    /// A layer could not be unpacked.
    #[error("cannot unpack {reference}")]
    Unpack {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<UnpackError>,
    },
    /// A download task died.
    #[error("download task failed: {reason}")]
    Task {
        /// What happened.
        reason: String,
    },
}

/// An image that was pulled and tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The stored (normalised) name.
    pub name: String,
    /// The platform manifest, as stored.
    pub manifest: Descriptor,
    /// The index or manifest list the name pointed at, if any.
    pub index: Option<Digest>,
    /// The config digest (the image id).
    pub config: Digest,
    /// The top snapshot of the unpacked image ([`pull_and_unpack`]; `None` otherwise, or
    /// for an image without layers).
    pub top: Option<SnapshotId>,
    /// Layer blobs downloaded.
    pub layers_fetched: usize,
    /// Layer blobs the store already had.
    pub layers_present: usize,
    /// Bytes downloaded (layers and config).
    pub bytes_fetched: u64,
}

impl PulledImage {
    /// `name@digest` of the manifest: what the image is pinned to.
    pub fn pinned(&self) -> String {
        let name = self.name.split('@').next().unwrap_or(&self.name);
        let repository = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => &name[..i],
            _ => name,
        };
        format!("{repository}@{}", self.manifest.digest)
    }
}

/// Pulls `name` for `platform` into `store` and tags it (see the module docs).
pub async fn pull_image(
    store: &Store,
    client: &Arc<Client>,
    name: &str,
    platform: &Platform,
) -> Result<PulledImage, PullError> {
    pull(store, client, name, platform, false).await
}

/// [`pull_image`], and each layer unpacked into a snapshot as soon as it and the layers
/// below it are in the store, while the others still download (what a `FROM` needs;
/// [`PulledImage::top`] is the top snapshot).
pub async fn pull_and_unpack(
    store: &Store,
    client: &Arc<Client>,
    name: &str,
    platform: &Platform,
) -> Result<PulledImage, PullError> {
    pull(store, client, name, platform, true).await
}

async fn pull(
    store: &Store,
    client: &Arc<Client>,
    name: &str,
    platform: &Platform,
    unpack: bool,
) -> Result<PulledImage, PullError> {
    let reference = Reference::parse(name)?;
    let registry_error = |source: RegistryError| PullError::Registry {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let resolved = client
        .resolve_image(&reference, |entries| {
            select_platform(entries, platform)
                .cloned()
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    wanted: format_platform(platform),
                    available: entries
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(format_platform))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .await
        .map_err(registry_error)?;
    let manifest = &resolved.parsed;
    let config_type = manifest.config.media_type.as_str();
    if config_type != media_type::OCI_CONFIG && config_type != media_type::DOCKER_CONFIG {
        return Err(PullError::NotAnImage {
            reference: reference.to_string(),
            media_type: config_type.to_owned(),
        });
    }
    let lease = Arc::new(store.lease());
    let mut bytes_fetched = 0;

    // The config first (small, in memory): a bad one stops the pull before any layer.
    let config_digest = manifest.config.digest;
    let config_bytes = if store.content().contains(&config_digest) {
        store
            .content()
            .read(&config_digest)
            .map_err(|source| PullError::Content {
                what: "config",
                digest: config_digest,
                source: Box::new(source),
            })?
    } else {
        let bytes = client
            .fetch_blob_bytes(&reference, &manifest.config)
            .await
            .map_err(registry_error)?;
        bytes_fetched += bytes.len() as u64;
        bytes
    };
    let config = ImageConfig::from_json(&config_bytes).map_err(|source| PullError::Config {
        reference: reference.to_string(),
        digest: config_digest,
        source: Box::new(source),
    })?;
    // A single-platform image must be for the platform asked for (an index was already
    // matched entry by entry): building on a foreign image fails late and obscurely.
    if resolved.index.is_none()
        && !config.architecture.is_empty()
        && !platform_matches(
            platform,
            &Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                ..Platform::default()
            },
        )
    {
        return Err(PullError::WrongPlatform {
            reference: reference.to_string(),
            wanted: format_platform(platform),
            found: format_platform(&Platform {
                os: config.os.clone(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
                ..Platform::default()
            }),
        });
    }
    let layers: Vec<Descriptor> = manifest
        .layers
        .iter()
        .filter(|d| media_type::is_layer(&d.media_type))
        .cloned()
        .collect();
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(PullError::LayerCount {
            reference: reference.to_string(),
            layers: layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }

    // Layers, in parallel, each only if the store lacks it.
    let blobs = StoreBlobs::new(store, &lease);
    let missing: Vec<Descriptor> = {
        let mut seen = std::collections::HashSet::new();
        layers
            .iter()
            .filter(|d| seen.insert(d.digest))
            .filter(|d| !blob_present(&blobs, &d.digest))
            .cloned()
            .collect()
    };
    let layers_present = layers.len() - missing.len();
    // One "in the store" signal per missing blob; the unpacker waits on them in layer order.
    let mut arrived: HashMap<Digest, watch::Sender<bool>> = missing
        .iter()
        .map(|d| (d.digest, watch::channel(false).0))
        .collect();
    let unpacker = unpack.then(|| {
        let waits: Vec<Option<watch::Receiver<bool>>> = layers
            .iter()
            .map(|d| arrived.get(&d.digest).map(watch::Sender::subscribe))
            .collect();
        let jobs: Vec<(Descriptor, Digest)> = layers
            .iter()
            .cloned()
            .zip(config.rootfs.diff_ids.iter().copied())
            .collect();
        let (store, lease) = (store.clone(), lease.clone());
        tokio::spawn(unpack_in_order(
            store,
            lease,
            reference.to_string(),
            jobs,
            waits,
        ))
    });
    let limit = Arc::new(Semaphore::new(PARALLEL_DOWNLOADS));
    let mut tasks = tokio::task::JoinSet::new();
    for layer in missing.clone() {
        let (client, store, lease, reference, limit) = (
            client.clone(),
            store.clone(),
            lease.clone(),
            reference.clone(),
            limit.clone(),
        );
        let done = arrived.remove(&layer.digest);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let size = download_blob(&client, &store, &lease, &reference, &layer).await?;
            if let Some(done) = done {
                let _ = done.send(true);
            }
            Ok(size)
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(size)) => bytes_fetched += size,
            Ok(Err(e)) => {
                // The first failure ends the pull; the others are cancelled.
                if failure.is_none() {
                    failure = Some(e);
                    tasks.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failure.get_or_insert(PullError::Task {
                    reason: e.to_string(),
                });
            }
        }
    }
    if let Some(e) = failure {
        if let Some(unpacker) = &unpacker {
            unpacker.abort();
        }
        return Err(e);
    }
    let top = match unpacker {
        Some(unpacker) => unpacker.await.map_err(|e| PullError::Task {
            reason: e.to_string(),
        })??,
        None => None,
    };

    // Everything verified: config, manifest, then the name.
    for (what, digest, bytes) in [
        ("config", config_digest, &config_bytes[..]),
        (
            "manifest",
            resolved.manifest.digest,
            &resolved.manifest.bytes[..],
        ),
    ] {
        store
            .content()
            .write(bytes, &lease)
            .map_err(|source| PullError::Content {
                what,
                digest,
                source: Box::new(source),
            })?;
    }
    let origin = reference.name();
    for layer in &layers {
        blob_sources::remember(store, &layer.digest, &origin);
    }
    let stored_name = reference.to_string();
    let target = ImageTarget {
        manifest: resolved.manifest.digest,
        media_type: resolved.manifest.media_type.clone(),
        size: resolved.manifest.bytes.len() as u64,
        config: Some(config_digest),
    };
    store
        .images()
        .tag(&stored_name, &target)
        .map_err(|source| PullError::Tag {
            name: stored_name.clone(),
            source: Box::new(source),
        })?;
    Ok(PulledImage {
        name: stored_name,
        manifest: resolved.manifest.descriptor(),
        index: resolved.index.as_ref().map(|i| i.digest),
        config: config_digest,
        top,
        layers_fetched: missing.len(),
        layers_present,
        bytes_fetched,
    })
}

fn blob_present(blobs: &StoreBlobs<'_>, digest: &Digest) -> bool {
    use strata_oci::archive::BlobSink;
    blobs.has_blob(digest)
}

/// Unpacks `jobs` bottom first, each once its blob is in the store (`waits[i]` is `None`
/// for a blob that was already there). Stops quietly when a download failed (its signal
/// is dropped unsent): the pull reports that failure.
async fn unpack_in_order(
    store: Store,
    lease: Arc<Lease>,
    reference: String,
    jobs: Vec<(Descriptor, Digest)>,
    waits: Vec<Option<watch::Receiver<bool>>>,
) -> Result<Option<SnapshotId>, PullError> {
    let mut parent: Option<SnapshotId> = None;
    for (index, ((layer, diff_id), wait)) in jobs.into_iter().zip(waits).enumerate() {
        if let Some(mut wait) = wait {
            if wait.wait_for(|arrived| *arrived).await.is_err() {
                return Ok(None);
            }
        }
        let (store, lease, below) = (store.clone(), lease.clone(), parent.take());
        let unpacked = tokio::task::spawn_blocking(move || {
            unpack_layer_on(&store, index, &layer, diff_id, below.as_ref(), &lease)
        })
        .await
        .map_err(|e| PullError::Task {
            reason: e.to_string(),
        })?
        .map_err(|source| PullError::Unpack {
            reference: reference.clone(),
            source: Box::new(source),
        })?;
        parent = Some(unpacked.0);
    }
    Ok(parent)
}

enum Piece {
    Chunk(Bytes),
    End,
}

/// Downloads one blob into the store, retrying from the start when the stream breaks;
/// returns its size.
pub(crate) async fn download_blob(
    client: &Client,
    store: &Store,
    lease: &Arc<Lease>,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<u64, PullError> {
    let mut attempt = 0;
    loop {
        match download_once(client, store, lease, reference, descriptor).await {
            Err(PullError::Registry { source, .. })
                if source.is_transient() && attempt + 1 < BLOB_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            other => return other,
        }
    }
}

async fn download_once(
    client: &Client,
    store: &Store,
    lease: &Arc<Lease>,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<u64, PullError> {
    let registry_error = |source: RegistryError| PullError::Registry {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let mut stream = client
        .open_blob(reference, descriptor)
        .await
        .map_err(registry_error)?;
    // The store's ingest is blocking I/O: it runs on the blocking pool, fed through a small
    // channel, and commits only when told the stream ended verified.
    let (tx, mut rx) = mpsc::channel::<Piece>(8);
    let (store2, lease2, digest, size) = (
        store.clone(),
        lease.clone(),
        descriptor.digest,
        descriptor.size,
    );
    let sink = tokio::task::spawn_blocking(move || -> Result<(), StoreBlobError> {
        let blobs = StoreBlobs::new(&store2, &lease2);
        let mut writer = blobs.writer()?;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Chunk(chunk) => {
                    writer
                        .write_all(&chunk)
                        .map_err(|e| StoreBlobError::Thread {
                            reason: e.to_string(),
                        })?
                }
                Piece::End => {
                    blobs.commit(writer, &digest, size)?;
                    return Ok(());
                }
            }
        }
        // The sender went away without `End`: dropping the writer discards the blob.
        Err(StoreBlobError::Thread {
            reason: "download ended early".into(),
        })
    });
    let fed = async {
        while let Some(chunk) = stream.next_chunk().await.map_err(registry_error)? {
            if tx.send(Piece::Chunk(chunk)).await.is_err() {
                return Ok(false);
            }
        }
        Ok::<bool, PullError>(tx.send(Piece::End).await.is_ok())
    }
    .await;
    drop(tx);
    let stored = sink.await.map_err(|e| PullError::Task {
        reason: e.to_string(),
    })?;
    // A download error explains more than the sink's "ended early".
    fed?;
    stored.map_err(|source| PullError::Store {
        digest,
        source: Box::new(source),
    })?;
    Ok(size)
}
