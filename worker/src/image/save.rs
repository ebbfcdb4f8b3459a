//! Saving stored images as archives: `docker save` tars and OCI layout tars, with the
//! layers compressed on the way out when asked.
//!
//! Main items: [`save_images_to_file`] (what the CLI calls), [`save_images_seekable`],
//! [`save_images`], [`SaveOptions`], [`ArchiveFormat`], [`SaveImage`], and
//! [`LayerCompression`] (which pushing shares).
//!
//! Key decision: layers are kept uncompressed in the store, so compression happens here, once
//! per save: each layer [`LayerCompression`] says to convert is decompressed and
//! recompressed (parallel gzip or zstd) and the manifest is rewritten to name the new blobs
//! (the config is unchanged: diff ids do not depend on compression, so the image id stays
//! the same). Into a regular file the compressed bytes go straight into their archive entry
//! (its tar header is written in place once digest and size are known); into a pipe they
//! go to a scratch directory outside the store first, since an entry's header must precede
//! its bytes. When nothing is converted nothing is copied besides the archive itself.
//!
//! Which layers are converted follows BuildKit's exporter options: `compression=` applies
//! to uncompressed layers (the ones built here); layers stored compressed with another
//! codec (pulled base layers) keep their blobs unless `force-compression=true`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use strata_cache::Store;
use strata_oci::archive::{ArchiveError, ArchiveWriter, BlobSource, ExportImage};
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

/// Where the layers a save converts go: a scratch directory (when the archive goes to a
/// pipe) or straight into the archive (a seekable file).
trait LayerSink {
    /// Compresses `plain` as `compression` into a new blob; returns its digest and size.
    fn put(&mut self, plain: &mut dyn Read, compression: Compression) -> io::Result<(Digest, u64)>;
}

/// Compresses `plain` into `out` on every core.
fn compress_into(
    out: &mut dyn Write,
    plain: &mut dyn Read,
    compression: Compression,
) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut encoder = Encoder::new(out, compression, threads).map_err(io::Error::other)?;
    encoder.copy_from(plain)?;
    encoder.finish()?;
    Ok(())
}

impl<W: Write + Seek> LayerSink for ArchiveWriter<W> {
    fn put(&mut self, plain: &mut dyn Read, compression: Compression) -> io::Result<(Digest, u64)> {
        let mut blob = self.begin_blob().map_err(io::Error::other)?;
        compress_into(&mut blob, plain, compression)?;
        blob.finish().map_err(io::Error::other)
    }
}

/// A scratch directory outside the store for converted layers (one file per blob, named
/// by digest), made on first use and removed when dropped.
///
/// Its blobs live only as long as one save, so they are neither fsynced nor renamed into an
/// OCI layout (syncing a 200 MB layer cost more than a second of export on this machine's
/// disk).
#[derive(Debug)]
struct Scratch {
    base: Option<PathBuf>,
    root: Option<PathBuf>,
    next: u32,
    /// The blobs written, in order.
    blobs: Vec<(Digest, u64)>,
}

impl Scratch {
    fn new(base: Option<&Path>) -> Self {
        Scratch {
            base: base.map(Path::to_path_buf),
            root: None,
            next: 0,
            blobs: Vec::new(),
        }
    }

    fn root(&mut self) -> io::Result<&Path> {
        if self.root.is_none() {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let base = self.base.clone().unwrap_or_else(std::env::temp_dir);
            let root = base.join(format!(
                "strata-save-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&root)?;
            self.root = Some(root);
        }
        Ok(self.root.as_deref().unwrap_or(Path::new("")))
    }

    fn open_blob(&self, digest: &Digest) -> io::Result<Option<fs::File>> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        match fs::File::open(root.join(digest.hex())) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl LayerSink for Scratch {
    fn put(&mut self, plain: &mut dyn Read, compression: Compression) -> io::Result<(Digest, u64)> {
        let name = format!(".partial-{}", self.next);
        self.next += 1;
        let partial = self.root()?.join(name);
        let file = fs::File::create_new(&partial)?;
        let mut out = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
        compress_into(&mut out, plain, compression)?;
        let (out, digest, size) = out.finish();
        out.into_inner().map_err(|e| e.into_error())?;
        fs::rename(&partial, partial.with_file_name(digest.hex()))?;
        self.blobs.push((digest, size));
        Ok((digest, size))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(root) = &self.root {
            let _ = fs::remove_dir_all(root);
        }
    }
}

/// Manifests a save rewrote (they name converted layers), by digest.
type Documents = BTreeMap<Digest, Vec<u8>>;

/// Blobs for the archive writer: the manifests a save rewrote, then converted layers in
/// the scratch directory (if any), then the store.
struct SavedBlobs<'a> {
    documents: Documents,
    scratch: Option<&'a Scratch>,
    store: StoreBlobs<'a>,
}

impl BlobSource for SavedBlobs<'_> {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        if let Some(bytes) = self.documents.get(digest) {
            return Ok(Box::new(&bytes[..]));
        }
        if let Some(file) = self
            .scratch
            .map(|s| s.open_blob(digest))
            .transpose()?
            .flatten()
        {
            return Ok(Box::new(file));
        }
        self.store.open_blob(digest)
    }
}

/// Writes `images` as one archive into `out` and returns `out`. Converted layers are
/// compressed into a scratch directory first (an archive entry needs its size before its
/// bytes); with a seekable output [`save_images_seekable`] spares that copy. Both write
/// the same bytes: converted layers first, in order, then the rest.
pub fn save_images<W: Write>(
    store: &Store,
    images: &[SaveImage],
    options: &SaveOptions,
    out: W,
) -> Result<W, SaveError> {
    let lease = store.lease();
    let blobs = StoreBlobs::new(store, &lease);
    let mut archive = ArchiveWriter::new(out).map_err(archive_error)?;
    let mut scratch = Scratch::new(options.scratch.as_deref());
    let (exports, documents) = convert_images(&blobs, images, options, &mut scratch)?;
    let source = SavedBlobs {
        documents,
        scratch: Some(&scratch),
        store: blobs,
    };
    for (digest, size) in &scratch.blobs {
        // The media type does not matter to a copy.
        let blob = Descriptor::new(media_type::OCI_LAYER_TAR, *digest, *size);
        archive.add_blob(&source, &blob).map_err(archive_error)?;
    }
    finish_archive(archive, &source, &exports, options.format)
}

/// [`save_images`] into a seekable output (a regular file): converted layers are
/// compressed straight into their archive entries, whose headers are written afterwards.
pub fn save_images_seekable<W: Write + Seek>(
    store: &Store,
    images: &[SaveImage],
    options: &SaveOptions,
    out: W,
) -> Result<W, SaveError> {
    let lease = store.lease();
    let blobs = StoreBlobs::new(store, &lease);
    let mut archive = ArchiveWriter::new(out).map_err(archive_error)?;
    let (exports, documents) = convert_images(&blobs, images, options, &mut archive)?;
    let source = SavedBlobs {
        documents,
        scratch: None,
        store: blobs,
    };
    finish_archive(archive, &source, &exports, options.format)
}

/// [`save_images_seekable`] into `file` when it is a regular file, else [`save_images`]
/// (a pipe, a terminal, a character device).
pub fn save_images_to_file(
    store: &Store,
    images: &[SaveImage],
    options: &SaveOptions,
    file: fs::File,
) -> Result<fs::File, SaveError> {
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    let out = io::BufWriter::new(file);
    let out = if regular {
        save_images_seekable(store, images, options, out)?
    } else {
        save_images(store, images, options, out)?
    };
    out.into_inner().map_err(|e| {
        archive_error(ArchiveError::Stream {
            action: "write archive",
            source: e.into_error(),
        })
    })
}

fn archive_error(source: ArchiveError) -> SaveError {
    SaveError::Archive {
        source: Box::new(source),
    }
}

fn finish_archive<W: Write>(
    archive: ArchiveWriter<W>,
    source: &SavedBlobs<'_>,
    exports: &[ExportImage],
    format: ArchiveFormat,
) -> Result<W, SaveError> {
    match format {
        ArchiveFormat::Docker => archive.finish_docker(source, exports),
        ArchiveFormat::Oci => archive.finish_oci(source, exports),
    }
    .map_err(archive_error)
}

/// Reads each image's manifest, converts its layers into `sink` as `options` say, and
/// returns what to export with the rewritten manifests' bytes.
fn convert_images(
    blobs: &StoreBlobs<'_>,
    images: &[SaveImage],
    options: &SaveOptions,
    sink: &mut dyn LayerSink,
) -> Result<(Vec<ExportImage>, Documents), SaveError> {
    let needs_single = options.format == ArchiveFormat::Docker;
    let recompress = options.compression.converts_anything();
    let mut documents = BTreeMap::new();
    let mut converted = HashMap::new();
    let mut exports = Vec::with_capacity(images.len());
    for image in images {
        let mut manifest = image.manifest.clone();
        if needs_single || recompress {
            let stored = read_image(blobs.store(), &image.manifest, &options.platform)?;
            manifest = stored.manifest_descriptor.clone();
            if recompress {
                if let Some((descriptor, bytes)) =
                    convert_layers(blobs, sink, &mut converted, &stored, &options.compression)?
                {
                    documents.insert(descriptor.digest, bytes);
                    manifest = descriptor;
                }
            }
        }
        manifest.annotations.clear();
        manifest.platform = None;
        exports.push(ExportImage {
            manifest,
            names: image.names.clone(),
        });
    }
    Ok((exports, documents))
}

/// Writes the layers of `image` that `compression` converts into `sink` and returns the
/// rewritten manifest (descriptor and bytes) naming them; `None` when no layer converts.
/// `converted` maps stored layers already converted (in this image or an earlier one) to
/// their new blob: a layer repeated is converted and written once.
fn convert_layers(
    blobs: &StoreBlobs<'_>,
    sink: &mut dyn LayerSink,
    converted: &mut HashMap<(Digest, Compression), (Digest, u64)>,
    image: &super::details::StoredImage,
    compression: &LayerCompression,
) -> Result<Option<(Descriptor, Vec<u8>)>, SaveError> {
    let docker = image.manifest.media_type == media_type::DOCKER_MANIFEST;
    let mut manifest = image.manifest.clone();
    let mut changed = false;
    for layer in manifest.layers.iter_mut() {
        if !media_type::is_layer(&layer.media_type) {
            continue;
        }
        let stored = CompressionKind::from_media_type(&layer.media_type);
        let Some(target) = compression.target(stored) else {
            continue;
        };
        let digest = layer.digest;
        let (new_digest, size) = match converted.entry((digest, target)) {
            Entry::Occupied(done) => *done.get(),
            Entry::Vacant(todo) => {
                let fail = |source| SaveError::Compress { digest, source };
                let blob = blobs.open_blob(&digest).map_err(fail)?;
                let (_, mut plain) = compression::decompress(blob).map_err(fail)?;
                *todo.insert(sink.put(&mut plain, target).map_err(fail)?)
            }
        };
        *layer = Descriptor::new(
            if docker {
                target.docker_layer_media_type()
            } else {
                target.oci_layer_media_type()
            },
            new_digest,
            size,
        );
        changed = true;
    }
    if !changed {
        return Ok(None);
    }
    let bytes = manifest.to_json().map_err(|e| SaveError::Compress {
        digest: image.manifest_descriptor.digest,
        source: io::Error::other(e),
    })?;
    let descriptor = Descriptor::for_bytes(image.manifest_descriptor.media_type.clone(), &bytes);
    Ok(Some((descriptor, bytes)))
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
