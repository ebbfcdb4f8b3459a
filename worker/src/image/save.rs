//! Saving stored images as archives: `docker save` tars and OCI layout tars, with the
//! layers compressed on the way out when asked.
//!
//! Main items: [`save_images`], [`SaveOptions`], [`ArchiveFormat`], [`SaveImage`].
//!
//! Key decision: layers are kept uncompressed in the store, so compression happens here, once
//! per save: each layer not already in the wanted codec is decompressed and recompressed
//! (parallel gzip / multithreaded zstd) into a scratch OCI layout outside the store, with a
//! manifest naming the new blobs; the archive writer then reads that layout first and the
//! store for everything else (the config is unchanged: diff ids do not depend on
//! compression, so the image id stays the same). With `Compression::None` nothing is copied
//! besides the archive itself.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use strata_cache::Store;
use strata_oci::archive::{self, ArchiveError, BlobSink, BlobSource, ExportImage, OciDir};
use strata_oci::compression::{self, Encoder};
use strata_oci::digest::HashingWriter;
use strata_oci::{media_type, Compression, CompressionKind, Descriptor, Digest, Platform};

use super::details::{read_image, ReadError};
use super::store_blobs::StoreBlobs;

/// Why images could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// An image cannot be read from the store.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing the archive failed.
    #[error("cannot write the archive")]
    Archive {
        /// The cause.
        #[source]
        source: Box<ArchiveError>,
    },
    /// Recompressing a layer failed.
    #[error("cannot compress layer {digest}")]
    Compress {
        /// The layer.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The scratch layout could not be made.
    #[error("cannot prepare scratch directory {path}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Which archive to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// A `docker save` tar (also an OCI layout): `docker load`, `podman load`, `skopeo`.
    #[default]
    Docker,
    /// An OCI image layout tar (`oci-archive:`).
    Oci,
}

/// How to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveOptions {
    /// The archive kind.
    pub format: ArchiveFormat,
    /// Layer compression in the archive (`None`: as stored).
    pub compression: Compression,
    /// The platform chosen from multi-platform images (a docker archive holds one).
    pub platform: Platform,
    /// Scratch space for recompressed layers (default: the system temp dir).
    pub scratch: Option<PathBuf>,
}

/// An image to save: its stored manifest (or index) and the names to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    /// The manifest or index, as the store's image record points at it.
    pub manifest: Descriptor,
    /// Names for the archive (`busybox:latest`); may be empty.
    pub names: Vec<String>,
}

/// A scratch layout, removed when dropped.
struct Scratch {
    dir: OciDir,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.dir.root());
    }
}

/// The scratch layout first, then the store.
struct Layered<'a> {
    scratch: Option<&'a OciDir>,
    store: StoreBlobs<'a>,
}

impl BlobSource for Layered<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        if let Some(scratch) = self.scratch {
            match scratch.open_blob(digest) {
                Ok(blob) => return Ok(blob),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.store.open_blob(digest)
    }
}

/// Writes `images` as one archive into `out` and returns `out`.
pub fn save_images<W: Write>(
    store: &Store,
    images: &[SaveImage],
    options: &SaveOptions,
    out: W,
) -> Result<W, SaveError> {
    let lease = store.lease();
    let blobs = StoreBlobs::new(store, &lease);
    let needs_single = options.format == ArchiveFormat::Docker;
    let recompress = options.compression != Compression::None;
    let mut scratch: Option<Scratch> = None;
    let mut exports = Vec::with_capacity(images.len());
    for image in images {
        let mut manifest = image.manifest.clone();
        if needs_single || recompress {
            let stored = read_image(store, &image.manifest, &options.platform)?;
            manifest = stored.manifest_descriptor.clone();
            if recompress {
                let dir = match &mut scratch {
                    Some(s) => s,
                    None => scratch.insert(make_scratch(options)?),
                };
                manifest = recompressed(&blobs, &dir.dir, &stored, options.compression)?;
            }
        }
        manifest.annotations.clear();
        manifest.platform = None;
        exports.push(ExportImage {
            manifest,
            names: image.names.clone(),
        });
    }
    let source = Layered {
        scratch: scratch.as_ref().map(|s| &s.dir),
        store: blobs,
    };
    let written = match options.format {
        ArchiveFormat::Docker => archive::write_docker_archive(out, &source, &exports),
        ArchiveFormat::Oci => archive::write_oci_archive(out, &source, &exports),
    };
    written.map_err(|source| SaveError::Archive {
        source: Box::new(source),
    })
}

fn make_scratch(options: &SaveOptions) -> Result<Scratch, SaveError> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = options.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let path = base.join(format!(
        "strata-save-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let dir = OciDir::create(&path).map_err(|e| SaveError::Scratch {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    Ok(Scratch { dir })
}

/// Writes the layers of `image` not already in `compression`'s codec, compressed, into
/// `scratch`, with a manifest naming them; returns that manifest's descriptor.
fn recompressed(
    blobs: &StoreBlobs<'_>,
    scratch: &OciDir,
    image: &super::details::StoredImage,
    compression: Compression,
) -> Result<Descriptor, SaveError> {
    let docker = image.manifest.media_type == media_type::DOCKER_MANIFEST;
    let mut manifest = image.manifest.clone();
    let mut sink = scratch.clone();
    for layer in manifest.layers.iter_mut() {
        if !media_type::is_layer(&layer.media_type)
            || CompressionKind::from_media_type(&layer.media_type) == compression.kind()
        {
            continue;
        }
        let digest = layer.digest;
        let fail = |source| SaveError::Compress { digest, source };
        let blob = blobs.open_blob(&digest).map_err(fail)?;
        let (_, mut plain) = compression::decompress(blob).map_err(fail)?;
        let pending = sink.begin_blob().map_err(fail)?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let mut encoder = Encoder::new(HashingWriter::new(pending), compression, threads)
            .map_err(|e| fail(io::Error::other(e)))?;
        io::copy(&mut plain, &mut encoder).map_err(fail)?;
        let (pending, new_digest, size) = encoder.finish().map_err(fail)?.finish();
        sink.commit_blob(pending, &new_digest, size).map_err(fail)?;
        *layer = Descriptor::new(
            if docker {
                compression.docker_layer_media_type()
            } else {
                compression.oci_layer_media_type()
            },
            new_digest,
            size,
        );
    }
    let bytes = manifest.to_json().map_err(|e| SaveError::Compress {
        digest: image.manifest_descriptor.digest,
        source: io::Error::other(e),
    })?;
    let descriptor = Descriptor::for_bytes(image.manifest_descriptor.media_type.clone(), &bytes);
    let fail = |source| SaveError::Compress {
        digest: descriptor.digest,
        source,
    };
    let mut pending = sink.begin_blob().map_err(fail)?;
    pending.write_all(&bytes).map_err(fail)?;
    sink.commit_blob(pending, &descriptor.digest, descriptor.size)
        .map_err(fail)?;
    Ok(descriptor)
}
