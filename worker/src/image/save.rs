//! Saving stored images as archives: `docker save` tars and OCI layout tars, with the
//! layers compressed on the way out when asked.
//!
//! Main items: [`save_images`], [`SaveOptions`], [`ArchiveFormat`], [`SaveImage`], and
//! [`LayerCompression`] with [`compress_image_layers`], [`ScratchLayout`] and
//! [`LayeredBlobs`], which pushing shares.
//!
//! Key decision: layers are kept uncompressed in the store, so compression happens here, once
//! per save: each layer [`LayerCompression`] says to convert is decompressed and
//! recompressed (parallel gzip / multithreaded zstd) into a scratch directory outside the
//! store, with a manifest naming the new blobs; the archive writer (or a push) then reads
//! that directory first and the store for everything else (the config is unchanged: diff ids
//! do not depend on compression, so the image id stays the same). When nothing is
//! converted nothing is copied besides the archive itself.
//!
//! Which layers are converted follows BuildKit's exporter options: `compression=` applies
//! to uncompressed layers (the ones built here); layers stored compressed with another
//! codec (pulled base layers) keep their blobs unless `force-compression=true`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use strata_cache::Store;
use strata_oci::archive::{self, ArchiveError, BlobSource, ExportImage};
use strata_oci::compression::{self, CompressionError, Encoder};
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

/// Why `compression=`, `compression-level=` or `force-compression=` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CompressionOptionError {
    /// An unknown codec name.
    #[error("unsupported compression type {value} (supported: uncompressed, gzip, zstd)")]
    Codec {
        /// The value given.
        value: String,
    },
    /// A level that is not an integer.
    #[error("non-integer value {value} specified for compression-level")]
    Level {
        /// The value given.
        value: String,
    },
    /// A level out of the codec's range.
    #[error(transparent)]
    Range(#[from] CompressionError),
    /// A `force-compression` that is not a boolean.
    #[error("non-bool value {value} specified for force-compression")]
    Force {
        /// The value given.
        value: String,
    },
}

/// How layers are compressed when an image leaves the store (archive or push): BuildKit's
/// exporter options `compression`, `compression-level` and `force-compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    /// Codec and level of the layers that are converted.
    pub compression: Compression,
    /// Also convert layers stored compressed with another codec (pulled base layers);
    /// without it only uncompressed layers are converted.
    pub force: bool,
}

impl Default for LayerCompression {
    /// gzip at the default level ([`strata_oci::compression::DEFAULT_GZIP_LEVEL`]), not forced.
    fn default() -> Self {
        LayerCompression {
            compression: Compression::gzip(),
            force: false,
        }
    }
}

impl LayerCompression {
    /// Every layer as stored.
    pub const AS_STORED: LayerCompression = LayerCompression {
        compression: Compression::None,
        force: false,
    };

    /// Reads the exporter options' values (each `None` when not given): `compression`
    /// is `uncompressed`, `gzip` or `zstd` (default gzip), `compression-level` an integer
    /// in the codec's range, `force-compression` a boolean (empty: true).
    pub fn parse(
        compression: Option<&str>,
        level: Option<&str>,
        force: Option<&str>,
    ) -> Result<Self, CompressionOptionError> {
        let kind = match compression {
            None | Some("gzip") => CompressionKind::Gzip,
            Some("zstd") => CompressionKind::Zstd,
            Some("uncompressed") => CompressionKind::None,
            Some(other) => {
                return Err(CompressionOptionError::Codec {
                    value: other.to_owned(),
                })
            }
        };
        let level = level
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| CompressionOptionError::Level {
                        value: v.to_owned(),
                    })
            })
            .transpose()?;
        let force = match force {
            None => false,
            Some("" | "true" | "1" | "t" | "T" | "TRUE" | "True") => true,
            Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
            Some(other) => {
                return Err(CompressionOptionError::Force {
                    value: other.to_owned(),
                })
            }
        };
        Ok(LayerCompression {
            compression: Compression::with_level(kind, level)?,
            force,
        })
    }

    /// The compression a layer stored as `stored` is converted to, or `None` to keep it.
    pub fn target(&self, stored: CompressionKind) -> Option<Compression> {
        let wanted = self.compression.kind();
        if stored == wanted || (stored != CompressionKind::None && !self.force) {
            None
        } else {
            Some(self.compression)
        }
    }

    /// Whether any layer could be converted.
    fn converts_anything(&self) -> bool {
        self.compression != Compression::None || self.force
    }
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
    /// Layer compression in the archive ([`LayerCompression::AS_STORED`]: as stored).
    pub compression: LayerCompression,
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

/// A scratch directory outside the store for converted layers (one file per blob, named
/// by digest), removed when dropped.
///
/// Not an OCI layout (`OciDir`): its blobs live only as long as one save or push, so they are
/// neither fsynced nor renamed into a layout (syncing a 200 MB layer cost more than a
/// second of export on this machine's disk).
#[derive(Debug)]
pub struct ScratchLayout {
    root: PathBuf,
}

impl ScratchLayout {
    /// A new empty directory under `base` (default: the system temp dir).
    pub fn create(base: Option<&std::path::Path>) -> Result<Self, SaveError> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = base.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let root = base.join(format!(
            "strata-save-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        fs::create_dir_all(&root).map_err(|source| SaveError::Scratch {
            path: root.clone(),
            source,
        })?;
        Ok(ScratchLayout { root })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.hex())
    }

    /// A new file for a blob being written.
    fn begin(&self) -> io::Result<(fs::File, PathBuf)> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = self.root.join(format!(
            ".partial-{}",
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        Ok((fs::File::create_new(&path)?, path))
    }

    /// Gives a written blob its name.
    fn commit(&self, partial: &std::path::Path, digest: &Digest) -> io::Result<()> {
        fs::rename(partial, self.blob_path(digest))
    }

    /// Reads a blob written here.
    pub fn open_blob(&self, digest: &Digest) -> io::Result<fs::File> {
        fs::File::open(self.blob_path(digest))
    }
}

impl Drop for ScratchLayout {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Blobs from a scratch layout first, then from the store.
#[derive(Debug)]
pub struct LayeredBlobs<'a> {
    scratch: Option<&'a ScratchLayout>,
    store: StoreBlobs<'a>,
}

impl<'a> LayeredBlobs<'a> {
    /// Reads `scratch` (if any) before `store`.
    pub fn new(scratch: Option<&'a ScratchLayout>, store: StoreBlobs<'a>) -> Self {
        LayeredBlobs { scratch, store }
    }
}

impl BlobSource for LayeredBlobs<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        if let Some(scratch) = self.scratch {
            match scratch.open_blob(digest) {
                Ok(blob) => return Ok(Box::new(blob)),
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
    let recompress = options.compression.converts_anything();
    let mut scratch: Option<ScratchLayout> = None;
    let mut exports = Vec::with_capacity(images.len());
    for image in images {
        let mut manifest = image.manifest.clone();
        if needs_single || recompress {
            let stored = read_image(store, &image.manifest, &options.platform)?;
            manifest = stored.manifest_descriptor.clone();
            if recompress {
                let dir = match &mut scratch {
                    Some(s) => s,
                    None => scratch.insert(ScratchLayout::create(options.scratch.as_deref())?),
                };
                manifest = compress_image_layers(&blobs, dir, &stored, &options.compression)?;
            }
        }
        manifest.annotations.clear();
        manifest.platform = None;
        exports.push(ExportImage {
            manifest,
            names: image.names.clone(),
        });
    }
    let source = LayeredBlobs::new(scratch.as_ref(), blobs);
    let written = match options.format {
        ArchiveFormat::Docker => archive::write_docker_archive(out, &source, &exports),
        ArchiveFormat::Oci => archive::write_oci_archive(out, &source, &exports),
    };
    written.map_err(|source| SaveError::Archive {
        source: Box::new(source),
    })
}

/// Writes the layers of `image` that `compression` converts into `scratch`, with a
/// manifest naming them, and returns that manifest's descriptor; when no layer is
/// converted, returns the stored manifest's descriptor and writes nothing.
pub fn compress_image_layers(
    blobs: &StoreBlobs<'_>,
    scratch: &ScratchLayout,
    image: &super::details::StoredImage,
    compression: &LayerCompression,
) -> Result<Descriptor, SaveError> {
    let docker = image.manifest.media_type == media_type::DOCKER_MANIFEST;
    let mut manifest = image.manifest.clone();
    let mut converted = 0;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for layer in manifest.layers.iter_mut() {
        if !media_type::is_layer(&layer.media_type) {
            continue;
        }
        let stored = CompressionKind::from_media_type(&layer.media_type);
        let Some(target) = compression.target(stored) else {
            continue;
        };
        let digest = layer.digest;
        let fail = |source| SaveError::Compress { digest, source };
        let blob = blobs.open_blob(&digest).map_err(fail)?;
        let (_, mut plain) = compression::decompress(blob).map_err(fail)?;
        let (file, partial) = scratch.begin().map_err(fail)?;
        let out = io::BufWriter::with_capacity(1 << 20, file);
        let mut encoder = Encoder::new(HashingWriter::new(out), target, threads)
            .map_err(|e| fail(io::Error::other(e)))?;
        copy_large(&mut plain, &mut encoder).map_err(fail)?;
        let (out, new_digest, size) = encoder.finish().map_err(fail)?.finish();
        out.into_inner().map_err(|e| fail(e.into_error()))?;
        scratch.commit(&partial, &new_digest).map_err(fail)?;
        *layer = Descriptor::new(
            if docker {
                target.docker_layer_media_type()
            } else {
                target.oci_layer_media_type()
            },
            new_digest,
            size,
        );
        converted += 1;
    }
    if converted == 0 {
        return Ok(image.manifest_descriptor.clone());
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
    let (mut file, partial) = scratch.begin().map_err(fail)?;
    file.write_all(&bytes).map_err(fail)?;
    scratch.commit(&partial, &descriptor.digest).map_err(fail)?;
    Ok(descriptor)
}

/// `io::copy` with a 1 MiB buffer: one read per compression block instead of 128.
fn copy_large(reader: &mut dyn Read, writer: &mut dyn Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buffer[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_options_parse_like_buildkit() {
        let parse = |c, l, f| LayerCompression::parse(c, l, f);
        assert_eq!(
            parse(None, None, None).unwrap(),
            LayerCompression::default()
        );
        assert_eq!(
            parse(Some("zstd"), Some("7"), Some("")).unwrap(),
            LayerCompression {
                compression: Compression::Zstd { level: 7 },
                force: true
            }
        );
        assert_eq!(
            parse(Some("uncompressed"), None, Some("false")).unwrap(),
            LayerCompression::AS_STORED
        );
        let error = |c, l, f| parse(c, l, f).unwrap_err().to_string();
        assert_eq!(
            error(Some("estargz"), None, None),
            "unsupported compression type estargz (supported: uncompressed, gzip, zstd)"
        );
        assert_eq!(
            error(Some("gzip"), Some("fast"), None),
            "non-integer value fast specified for compression-level"
        );
        assert_eq!(
            error(Some("gzip"), Some("12"), None),
            "invalid gzip compression level 12 (valid: 0..=9)"
        );
        assert_eq!(
            error(None, None, Some("yes")),
            "non-bool value yes specified for force-compression"
        );
    }

    #[test]
    fn only_uncompressed_layers_convert_unless_forced() {
        use CompressionKind::{Gzip, None as Plain, Zstd};
        let zstd = LayerCompression {
            compression: Compression::zstd(),
            force: false,
        };
        assert_eq!(zstd.target(Plain), Some(Compression::zstd()));
        assert_eq!(zstd.target(Gzip), None);
        assert_eq!(zstd.target(Zstd), None);
        let forced = LayerCompression {
            force: true,
            ..zstd
        };
        assert_eq!(forced.target(Gzip), Some(Compression::zstd()));
        let plain = LayerCompression {
            force: true,
            ..LayerCompression::AS_STORED
        };
        assert_eq!(plain.target(Gzip), Some(Compression::None));
        assert_eq!(LayerCompression::AS_STORED.target(Gzip), None);
        assert_eq!(LayerCompression::AS_STORED.target(Plain), None);
    }
}
