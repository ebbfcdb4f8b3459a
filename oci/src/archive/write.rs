//! Writing OCI layouts and docker archives from a blob source.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::canonical_json::{self, null_as_default};
use crate::digest::{Digest, Hasher, HashingReader};
use crate::manifest::{
    Descriptor, ImageIndex, ManifestDocument, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
use crate::tar_format::write::{encode, padding, EntryHeader, Kind};

use super::store::{BlobSink, BlobSource, LayoutHeader, OciDir};
use super::{
    blob_path, layer_descriptors, split_tag, ArchiveError, DOCKER_MANIFEST_FILE, INDEX_FILE,
    MAX_JSON, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION, REPOSITORIES_FILE,
};

/// An image to put into an archive: its manifest (or, for OCI layouts, index) descriptor
/// and the names to tag it with (`registry/repo:tag`; may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportImage {
    /// Descriptor of the image's manifest or index.
    pub manifest: Descriptor,
    /// Names (`repo:tag`) for the image.
    pub names: Vec<String>,
}

/// One entry of a docker archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DockerManifestItem {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_default")]
    pub repo_tags: Vec<String>,
    #[serde(rename = "Layers", default, deserialize_with = "null_as_default")]
    pub layers: Vec<String>,
}

/// A blob to copy, with its bytes when it is a (small) manifest or config.
struct PlannedBlob {
    descriptor: Descriptor,
    bytes: Option<Vec<u8>>,
}

/// What one exported image consists of.
struct PlannedImage {
    export: ExportImage,
    /// Config and layers when the image is a single manifest.
    single: Option<(Descriptor, Vec<Descriptor>)>,
}

struct Plan {
    blobs: Vec<PlannedBlob>,
    images: Vec<PlannedImage>,
}

fn plan<S: BlobSource + ?Sized>(source: &S, images: &[ExportImage]) -> Result<Plan, ArchiveError> {
    let mut plan = Plan {
        blobs: Vec::new(),
        images: Vec::new(),
    };
    let mut seen = HashSet::new();
    for export in images {
        let single = visit(source, &export.manifest, &mut plan.blobs, &mut seen)?;
        plan.images.push(PlannedImage {
            export: export.clone(),
            single,
        });
    }
    Ok(plan)
}

/// Adds a manifest or index and everything it refers to; returns config and layers when
/// it is a single manifest.
fn visit<S: BlobSource + ?Sized>(
    source: &S,
    descriptor: &Descriptor,
    blobs: &mut Vec<PlannedBlob>,
    seen: &mut HashSet<Digest>,
) -> Result<Option<(Descriptor, Vec<Descriptor>)>, ArchiveError> {
    let bytes = read_small(source, descriptor)?;
    let document = ManifestDocument::from_json(&descriptor.media_type, &bytes)?;
    if seen.insert(descriptor.digest) {
        blobs.push(PlannedBlob {
            descriptor: descriptor.clone(),
            bytes: Some(bytes),
        });
    }
    match document {
        ManifestDocument::Index(index) => {
            for child in &index.manifests {
                visit(source, child, blobs, seen)?;
            }
            Ok(None)
        }
        ManifestDocument::Manifest(manifest) => {
            if seen.insert(manifest.config.digest) {
                let config = read_small(source, &manifest.config)?;
                blobs.push(PlannedBlob {
                    descriptor: manifest.config.clone(),
                    bytes: Some(config),
                });
            }
            for layer in &manifest.layers {
                if seen.insert(layer.digest) {
                    blobs.push(PlannedBlob {
                        descriptor: layer.clone(),
                        bytes: None,
                    });
                }
            }
            Ok(Some((manifest.config.clone(), manifest.layers.clone())))
        }
    }
}

/// Reads a small blob whole, checking digest and size.
fn read_small<S: BlobSource + ?Sized>(
    source: &S,
    descriptor: &Descriptor,
) -> Result<Vec<u8>, ArchiveError> {
    let digest = descriptor.digest;
    if descriptor.size > MAX_JSON {
        return Err(ArchiveError::Blob {
            action: "read",
            digest,
            source: io::Error::new(io::ErrorKind::InvalidData, "document too large"),
        });
    }
    let blob_error = |action| {
        move |source| ArchiveError::Blob {
            action,
            digest,
            source,
        }
    };
    let mut reader = source.open_blob(&digest).map_err(blob_error("open"))?;
    let mut bytes = Vec::with_capacity(descriptor.size as usize);
    reader
        .by_ref()
        .take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(blob_error("read"))?;
    if bytes.len() as u64 != descriptor.size {
        return Err(ArchiveError::SizeMismatch {
            digest,
            expected: descriptor.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(ArchiveError::DigestMismatch {
            path: digest.to_string(),
            expected: digest,
            actual,
        });
    }
    Ok(bytes)
}

/// Copies exactly `descriptor.size` bytes of a blob from `source` into `out`, verifying
/// size and digest.
fn copy_blob<S: BlobSource + ?Sized>(
    source: &S,
    descriptor: &Descriptor,
    out: &mut dyn Write,
) -> Result<(), ArchiveError> {
    let digest = descriptor.digest;
    let blob_error = |action| {
        move |source| ArchiveError::Blob {
            action,
            digest,
            source,
        }
    };
    let reader = source.open_blob(&digest).map_err(blob_error("open"))?;
    let mut hashing = HashingReader::new(reader);
    // 1 MiB at a time, not io::copy's 8 KiB: layers run to hundreds of MB, and this copy
    // is the serial tail of a compressed export (system time of a 500 MB zstd save fell
    // from ~0.45 to ~0.29 s).
    let mut buffer = vec![0u8; 1 << 20];
    let mut limited = (&mut hashing).take(descriptor.size);
    let mut copied = 0u64;
    loop {
        let n = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(blob_error("copy")(e)),
        };
        out.write_all(&buffer[..n]).map_err(blob_error("copy"))?;
        copied += n as u64;
    }
    let mut extra = [0u8; 1];
    let more = hashing.read(&mut extra).map_err(blob_error("read"))?;
    if copied != descriptor.size || more != 0 {
        return Err(ArchiveError::SizeMismatch {
            digest,
            expected: descriptor.size,
            actual: copied + more as u64,
        });
    }
    let actual = hashing.digest();
    if actual != digest {
        return Err(ArchiveError::DigestMismatch {
            path: digest.to_string(),
            expected: digest,
            actual,
        });
    }
    Ok(())
}

/// Whether a blob may be left out: a foreign layer (with URLs) the source does not have.
fn skippable<S: BlobSource + ?Sized>(source: &S, blob: &PlannedBlob) -> bool {
    blob.bytes.is_none()
        && !blob.descriptor.urls.is_empty()
        && matches!(source.open_blob(&blob.descriptor.digest), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

/// `index.json` entries for the exported images: one per name, annotated with the full
/// name and the tag (`org.opencontainers.image.ref.name`, what `skopeo oci:DIR:TAG` and
/// `umoci --image DIR:TAG` look up).
fn index_entries(images: &[ExportImage]) -> Vec<Descriptor> {
    let mut out = Vec::new();
    for image in images {
        if image.names.is_empty() {
            out.push(image.manifest.clone());
        }
        for name in &image.names {
            let mut descriptor = image.manifest.clone();
            descriptor
                .annotations
                .insert(ANNOTATION_IMAGE_NAME.to_owned(), name.clone());
            let (_, tag) = split_tag(name);
            let reference = match tag {
                Some(tag) => tag.to_owned(),
                None if name.contains('@') => name.clone(),
                None => "latest".to_owned(),
            };
            descriptor
                .annotations
                .insert(ANNOTATION_REF_NAME.to_owned(), reference);
            out.push(descriptor);
        }
    }
    out
}

fn ref_name(descriptor: &Descriptor) -> Option<&String> {
    descriptor.annotations.get(ANNOTATION_REF_NAME)
}

/// Writes images into an OCI layout directory (created if needed). Blobs already present
/// are kept; `index.json` entries with the same `ref.name` are replaced, others kept.
pub fn write_oci_layout<S: BlobSource + ?Sized>(
    dir: &Path,
    source: &S,
    images: &[ExportImage],
) -> Result<(), ArchiveError> {
    let mut layout = OciDir::create(dir)?;
    let plan = plan(source, images)?;
    for blob in &plan.blobs {
        let digest = blob.descriptor.digest;
        if layout.has_blob(&digest) || skippable(source, blob) {
            continue;
        }
        let blob_error = |action| {
            move |source| ArchiveError::Blob {
                action,
                digest,
                source,
            }
        };
        let mut pending = layout.begin_blob().map_err(blob_error("store"))?;
        match &blob.bytes {
            Some(bytes) => pending.write_all(bytes).map_err(blob_error("store"))?,
            None => copy_blob(source, &blob.descriptor, &mut pending)?,
        }
        layout
            .commit_blob(pending, &digest, blob.descriptor.size)
            .map_err(blob_error("store"))?;
    }
    let mut index = layout.read_index()?;
    let new_entries = index_entries(images);
    let replaced: HashSet<&String> = new_entries.iter().filter_map(ref_name).collect();
    index
        .manifests
        .retain(|d| ref_name(d).is_none_or(|r| !replaced.contains(r)));
    index.manifests.extend(new_entries);
    layout.write_index(&index)
}

/// Writes images as an OCI layout tar (`oci-archive:`) into `out`; returns `out`.
pub fn write_oci_archive<W: Write, S: BlobSource + ?Sized>(
    out: W,
    source: &S,
    images: &[ExportImage],
) -> Result<W, ArchiveError> {
    ArchiveWriter::new(out)?.finish_oci(source, images)
}

/// Writes single-platform images as a `docker save` archive into `out` (readable by
/// `docker load`, `podman load`, `skopeo … docker-archive:`, and as an OCI layout tar);
/// returns `out`.
pub fn write_docker_archive<W: Write, S: BlobSource + ?Sized>(
    out: W,
    source: &S,
    images: &[ExportImage],
) -> Result<W, ArchiveError> {
    ArchiveWriter::new(out)?.finish_docker(source, images)
}

/// An OCI or docker archive being written: the layout header and the `blobs/` directories
/// first, then any blobs added early ([`ArchiveWriter::add_blob`], or streamed into a
/// seekable output with [`ArchiveWriter::begin_blob`]), then the images
/// ([`ArchiveWriter::finish_oci`] / [`ArchiveWriter::finish_docker`]): index, manifests and
/// every blob not written yet.
///
/// Streaming exists for blobs made while the archive is written (layers compressed on the
/// way out): their digest and size are known only at their end, which a tar header needs
/// first, so the header is written last, in place. That spares a scratch copy of each blob
/// and a second pass over it.
pub struct ArchiveWriter<W: Write> {
    tar: TarOut<W>,
    /// Blobs already in the archive (streamed).
    written: HashSet<Digest>,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("streamed", &self.written.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive in `out` (writes the layout header and the blob directories).
    pub fn new(out: W) -> Result<Self, ArchiveError> {
        let mut tar = TarOut::new(out);
        let header = canonical_json::to_vec(&LayoutHeader {
            image_layout_version: OCI_LAYOUT_VERSION.to_owned(),
        })
        .map_err(stream_encode)?;
        tar.file(OCI_LAYOUT_FILE, &header)?;
        tar.directory("blobs/")?;
        tar.directory("blobs/sha256/")?;
        Ok(ArchiveWriter {
            tar,
            written: HashSet::new(),
        })
    }

    /// Writes the images as an OCI layout tar (`oci-archive:`) and returns the output.
    /// Blobs streamed before are not written again.
    pub fn finish_oci<S: BlobSource + ?Sized>(
        mut self,
        source: &S,
        images: &[ExportImage],
    ) -> Result<W, ArchiveError> {
        let plan = plan(source, images)?;
        self.write_index(images)?;
        self.write_blobs(source, &plan)?;
        self.tar.finish()
    }

    /// Writes single-platform images as a `docker save` archive (see
    /// [`write_docker_archive`]) and returns the output. Blobs streamed before are not
    /// written again.
    pub fn finish_docker<S: BlobSource + ?Sized>(
        mut self,
        source: &S,
        images: &[ExportImage],
    ) -> Result<W, ArchiveError> {
        let plan = plan(source, images)?;
        let mut items = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for image in &plan.images {
            let Some((config, layers)) = &image.single else {
                return Err(ArchiveError::IndexInDockerArchive {
                    digest: image.export.manifest.digest,
                });
            };
            let layer_paths: Vec<String> = layer_descriptors(layers)
                .map(|l| blob_path(&l.digest))
                .collect();
            let top = layers.last().map_or(config.digest, |l| l.digest).hex();
            let mut repo_tags = Vec::new();
            for name in &image.export.names {
                if name.contains('@') {
                    continue;
                }
                let (repo, tag) = split_tag(name);
                let tag = tag.unwrap_or("latest");
                repo_tags.push(format!("{repo}:{tag}"));
                repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(tag.to_owned(), top.clone());
            }
            items.push(DockerManifestItem {
                config: blob_path(&config.digest),
                repo_tags,
                layers: layer_paths,
            });
        }
        self.write_index(images)?;
        let manifest_json = canonical_json::to_vec(&items).map_err(stream_encode)?;
        self.tar.file(DOCKER_MANIFEST_FILE, &manifest_json)?;
        let repositories_json = canonical_json::to_vec(&repositories).map_err(stream_encode)?;
        self.tar.file(REPOSITORIES_FILE, &repositories_json)?;
        self.write_blobs(source, &plan)?;
        self.tar.finish()
    }

    fn write_index(&mut self, images: &[ExportImage]) -> Result<(), ArchiveError> {
        let index = ImageIndex::oci(index_entries(images)).to_json()?;
        self.tar.file(INDEX_FILE, &index)
    }

    fn write_blobs<S: BlobSource + ?Sized>(
        &mut self,
        source: &S,
        plan: &Plan,
    ) -> Result<(), ArchiveError> {
        for blob in &plan.blobs {
            let digest = blob.descriptor.digest;
            debug_assert_eq!(digest.algorithm(), "sha256");
            if self.written.contains(&digest) || skippable(source, blob) {
                continue;
            }
            match &blob.bytes {
                Some(bytes) => self.tar.file(&blob_path(&digest), bytes)?,
                None => self.add_blob(source, &blob.descriptor)?,
            }
        }
        Ok(())
    }

    /// Copies a blob from `source` into the archive now (verifying its size and digest);
    /// finishing will not write it again.
    pub fn add_blob<S: BlobSource + ?Sized>(
        &mut self,
        source: &S,
        descriptor: &Descriptor,
    ) -> Result<(), ArchiveError> {
        let name = blob_path(&descriptor.digest);
        self.tar.header(&name, Kind::Regular, descriptor.size)?;
        copy_blob(source, descriptor, &mut self.tar.out)?;
        self.tar.pad(descriptor.size)?;
        self.written.insert(descriptor.digest);
        Ok(())
    }
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// Starts a blob whose bytes are written into the returned entry; its digest and size
    /// are taken from those bytes when [`StreamedBlob::finish`] is called. Dropping the
    /// entry unfinished leaves the archive invalid (abandon it).
    pub fn begin_blob(&mut self) -> Result<StreamedBlob<'_, W>, ArchiveError> {
        let header_at = self.tar.out.stream_position().map_err(write_error)?;
        // A placeholder (an end-of-archive block until it is replaced).
        self.tar.out.write_all(&[0u8; 512]).map_err(write_error)?;
        Ok(StreamedBlob {
            archive: self,
            hasher: Hasher::new(),
            header_at,
        })
    }
}

/// A blob being streamed into an archive (see [`ArchiveWriter::begin_blob`]).
pub struct StreamedBlob<'a, W: Write + Seek> {
    archive: &'a mut ArchiveWriter<W>,
    hasher: Hasher,
    header_at: u64,
}

impl<W: Write + Seek> std::fmt::Debug for StreamedBlob<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedBlob")
            .field("header_at", &self.header_at)
            .field("written", &self.hasher.count())
            .finish()
    }
}

impl<W: Write + Seek> Write for StreamedBlob<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.archive.tar.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.archive.tar.out.flush()
    }
}

impl<W: Write + Seek> StreamedBlob<'_, W> {
    /// Writes the blob's tar header in place and returns its digest and size.
    pub fn finish(self) -> Result<(Digest, u64), ArchiveError> {
        let (digest, size) = self.hasher.finish();
        let tar = &mut self.archive.tar;
        tar.out
            .seek(SeekFrom::Start(self.header_at))
            .map_err(write_error)?;
        tar.header(&blob_path(&digest), Kind::Regular, size)?;
        tar.out
            .seek(SeekFrom::Start(self.header_at + 512 + size))
            .map_err(write_error)?;
        tar.pad(size)?;
        self.archive.written.insert(digest);
        Ok((digest, size))
    }
}

fn stream_encode(e: canonical_json::JsonError) -> ArchiveError {
    ArchiveError::Stream {
        action: "encode archive metadata",
        source: io::Error::other(e),
    }
}

/// A minimal deterministic tar writer for archive files (mode 0644/0755, root, mtime 0).
struct TarOut<W: Write> {
    out: W,
    buffer: Vec<u8>,
}

impl<W: Write> TarOut<W> {
    fn new(out: W) -> Self {
        TarOut {
            out,
            buffer: Vec::with_capacity(1024),
        }
    }

    fn header(&mut self, name: &str, kind: Kind, size: u64) -> Result<(), ArchiveError> {
        self.buffer.clear();
        encode(
            &EntryHeader {
                name: name.as_bytes(),
                kind,
                link_name: b"",
                mode: if kind == Kind::Directory {
                    0o755
                } else {
                    0o644
                },
                uid: 0,
                gid: 0,
                size,
                mtime: 0,
                device_major: 0,
                device_minor: 0,
                xattrs: &[],
            },
            &mut self.buffer,
        );
        self.out.write_all(&self.buffer).map_err(write_error)
    }

    fn directory(&mut self, name: &str) -> Result<(), ArchiveError> {
        self.header(name, Kind::Directory, 0)
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.header(name, Kind::Regular, bytes.len() as u64)?;
        self.out.write_all(bytes).map_err(write_error)?;
        self.pad(bytes.len() as u64)
    }

    fn pad(&mut self, size: u64) -> Result<(), ArchiveError> {
        self.out
            .write_all(&[0u8; 512][..padding(size)])
            .map_err(write_error)
    }

    fn finish(mut self) -> Result<W, ArchiveError> {
        self.out.write_all(&[0u8; 1024]).map_err(write_error)?;
        self.out.flush().map_err(write_error)?;
        Ok(self.out)
    }
}

fn write_error(source: io::Error) -> ArchiveError {
    ArchiveError::Stream {
        action: "write archive",
        source,
    }
}
