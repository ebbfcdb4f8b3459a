//! Reading OCI layouts and docker archives into a blob sink, verifying everything.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::compression::{self, CompressionKind, DecodingWriter};
use crate::config::ImageConfig;
use crate::digest::{Digest, Hasher, HashingWriter};
use crate::manifest::{
    Descriptor, ImageIndex, ImageManifest, ManifestDocument, ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
};
use crate::media_type;
use crate::tar_format::read::{EntryData, TarReader};

use super::store::{check_layout_header, BlobSink, OciDir};
use super::write::DockerManifestItem;
use super::{
    blob_path, layer_descriptors, ArchiveError, DOCKER_MANIFEST_FILE, INDEX_FILE, MAX_JSON,
    OCI_LAYOUT_FILE, REPOSITORIES_FILE,
};

const CHUNK: usize = 256 * 1024;

/// An image found in an archive; all its blobs are in the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Names the archive gives it (`io.containerd.image.name`, the OCI `ref.name`, or
    /// docker `RepoTags`); may be empty.
    pub names: Vec<String>,
    /// Descriptor of its manifest or index (stored in the sink).
    pub manifest: Descriptor,
}

/// What became of a blob's uncompressed content while it was streamed.
#[derive(Debug, Clone)]
enum Uncompressed {
    /// Not compressed: the uncompressed digest is the blob digest.
    Plain,
    /// Decompressed; its digest.
    Decoded(Digest),
    /// Looked compressed but did not decompress.
    Failed(String),
}

#[derive(Debug, Clone)]
struct BlobInfo {
    size: u64,
    kind: CompressionKind,
    uncompressed: Uncompressed,
}

/// Blobs seen so far, and the JSON documents among them.
#[derive(Default)]
struct Table {
    blobs: HashMap<Digest, BlobInfo>,
    json: HashMap<Digest, Vec<u8>>,
}

/// Streams one blob into the sink, hashing it, decompressing it on the side when it is
/// compressed (to learn its diff ID) and keeping it in memory when it looks like JSON.
fn ingest<K: BlobSink>(
    sink: &mut K,
    reader: &mut dyn Read,
    expected: Option<Digest>,
    label: &str,
    table: &mut Table,
) -> Result<Digest, ArchiveError> {
    let stream_error = |source| ArchiveError::Stream {
        action: "read archive",
        source,
    };
    let mut buffer = vec![0u8; CHUNK];
    // Fill at least the magic bytes before choosing a decoder.
    let mut filled = 0;
    while filled < 4 {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_error(e)),
        }
    }
    let kind = CompressionKind::detect(&buffer[..filled]);
    let first_text = buffer[..filled]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied();
    let mut json = matches!(first_text, Some(b'{' | b'[')).then(Vec::new);

    let skip = expected.is_some_and(|d| sink.has_blob(&d));
    let sink_error = |source| ArchiveError::Stream {
        action: "store blob",
        source,
    };
    let mut writer = if skip {
        None
    } else {
        Some(sink.begin_blob().map_err(sink_error)?)
    };
    let mut hasher = Hasher::new();
    let mut decoder = match kind {
        CompressionKind::None => None,
        _ => Some(DecodingWriter::new(kind, HashingWriter::new(io::sink())).map_err(stream_error)?),
    };
    let mut decode_failure: Option<String> = None;

    let mut chunk_len = filled;
    loop {
        if chunk_len > 0 {
            let chunk = &buffer[..chunk_len];
            hasher.update(chunk);
            if let Some(w) = &mut writer {
                w.write_all(chunk).map_err(sink_error)?;
            }
            if let Some(d) = &mut decoder {
                if let Err(e) = d.write_all(chunk) {
                    decode_failure = Some(e.to_string());
                    decoder = None;
                }
            }
            if let Some(j) = &mut json {
                if (j.len() + chunk.len()) as u64 > MAX_JSON {
                    json = None;
                } else {
                    j.extend_from_slice(chunk);
                }
            }
        }
        chunk_len = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(stream_error(e)),
        };
    }
    let (digest, size) = hasher.finish();
    if let Some(expected) = expected {
        if expected != digest {
            return Err(ArchiveError::DigestMismatch {
                path: label.to_owned(),
                expected,
                actual: digest,
            });
        }
    }
    let uncompressed = match (decoder, decode_failure) {
        (_, Some(failure)) => Uncompressed::Failed(failure),
        (Some(d), None) => match d.finish() {
            Ok(hashing) => Uncompressed::Decoded(hashing.digest()),
            Err(e) => Uncompressed::Failed(e.to_string()),
        },
        (None, None) => Uncompressed::Plain,
    };
    if let Some(w) = writer {
        sink.commit_blob(w, &digest, size).map_err(sink_error)?;
    }
    table.blobs.insert(
        digest,
        BlobInfo {
            size,
            kind,
            uncompressed,
        },
    );
    if let Some(j) = json {
        table.json.insert(digest, j);
    }
    Ok(digest)
}

/// Stores an in-memory document (a synthesised manifest) in the sink.
fn store_bytes<K: BlobSink>(
    sink: &mut K,
    bytes: &[u8],
    table: &mut Table,
) -> Result<Digest, ArchiveError> {
    let digest = Digest::of(bytes);
    ingest(
        sink,
        &mut &bytes[..],
        Some(digest),
        &digest.to_string(),
        table,
    )
}

/// Splits `blobs/<algorithm>/<hex>` into a digest.
fn digest_of_blob_path(path: &str) -> Result<Option<Digest>, ArchiveError> {
    let Some(rest) = path.strip_prefix("blobs/") else {
        return Ok(None);
    };
    let Some((algorithm, encoded)) = rest.split_once('/') else {
        return Ok(None);
    };
    if encoded.contains('/') {
        return Ok(None);
    }
    format!("{algorithm}:{encoded}")
        .parse()
        .map(Some)
        .map_err(|source| ArchiveError::BlobPath {
            path: path.to_owned(),
            source,
        })
}

/// Normalises an archive path: `./a//b` → `a/b`; `None` when it climbs out.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Reads an image archive tar — an OCI layout tar or a docker archive, plain or gzip/zstd
/// compressed, entries in any order — storing every blob in `sink` and verifying all
/// digests, sizes and diff IDs. Returns the images it holds.
pub fn read_archive<R: Read, K: BlobSink>(
    input: R,
    sink: &mut K,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let stream_error = |source| ArchiveError::Stream {
        action: "read archive",
        source,
    };
    let (_, plain) = compression::decompress(input).map_err(stream_error)?;
    let mut tar = TarReader::new(plain);
    let mut table = Table::default();
    let mut files: HashMap<String, Digest> = HashMap::new();
    let mut aliases: HashMap<String, String> = HashMap::new();
    let mut metadata: HashMap<&'static str, Vec<u8>> = HashMap::new();

    while let Some(entry) = tar.next_entry().map_err(stream_error)? {
        let raw = String::from_utf8_lossy(&entry.name).into_owned();
        let path = normalize(&raw).ok_or_else(|| ArchiveError::UnsafePath { path: raw.clone() })?;
        match entry.kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let known = [
                    OCI_LAYOUT_FILE,
                    INDEX_FILE,
                    DOCKER_MANIFEST_FILE,
                    REPOSITORIES_FILE,
                ]
                .into_iter()
                .find(|name| *name == path);
                if let Some(name) = known {
                    if entry.size > MAX_JSON {
                        return Err(stream_error(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{name} is too large"),
                        )));
                    }
                    let mut bytes = Vec::with_capacity(entry.size as usize);
                    EntryData(&mut tar)
                        .read_to_end(&mut bytes)
                        .map_err(stream_error)?;
                    metadata.insert(name, bytes);
                    continue;
                }
                let expected = digest_of_blob_path(&path)?;
                let digest = ingest(sink, &mut EntryData(&mut tar), expected, &path, &mut table)?;
                files.insert(path, digest);
            }
            tar::EntryType::Symlink => {
                let target = String::from_utf8_lossy(&entry.link_name).into_owned();
                let joined = if target.starts_with('/') {
                    target.clone()
                } else {
                    match path.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target.clone(),
                    }
                };
                let target = normalize(&joined)
                    .ok_or_else(|| ArchiveError::UnsafePath { path: raw.clone() })?;
                aliases.insert(path, target);
            }
            tar::EntryType::Link => {
                let target = String::from_utf8_lossy(&entry.link_name).into_owned();
                let target = normalize(&target)
                    .ok_or_else(|| ArchiveError::UnsafePath { path: raw.clone() })?;
                aliases.insert(path, target);
            }
            _ => {}
        }
    }

    let lookup = |path: &str| -> Option<Digest> {
        let mut current = normalize(path)?;
        for _ in 0..16 {
            if let Some(digest) = files.get(&current) {
                return Some(*digest);
            }
            current = aliases.get(&current)?.clone();
        }
        None
    };

    let docker_items: Vec<DockerManifestItem> = match metadata.get(DOCKER_MANIFEST_FILE) {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
            what: "manifest.json",
            source,
        })?,
        None => Vec::new(),
    };

    if let Some(index_bytes) = metadata.get(INDEX_FILE) {
        if let Some(header) = metadata.get(OCI_LAYOUT_FILE) {
            check_layout_header(header, "archive")?;
        }
        let index = ImageIndex::from_json(index_bytes)?;
        let mut images = Vec::new();
        for descriptor in &index.manifests {
            verify(descriptor, &mut table, &mut |_, _| Ok(()))?;
            images.push(LoadedImage {
                names: names_of(descriptor),
                manifest: descriptor.clone(),
            });
        }
        // Docker archives name images in manifest.json; add those names to index entries
        // that carry none of their own.
        for item in &docker_items {
            let Some(config) = lookup(&item.config) else {
                continue;
            };
            for image in &mut images {
                let unnamed = !image
                    .manifest
                    .annotations
                    .contains_key(ANNOTATION_IMAGE_NAME);
                if unnamed && config_of(&image.manifest, &table) == Some(config) {
                    for tag in &item.repo_tags {
                        if !image.names.contains(tag) {
                            image.names.push(tag.clone());
                        }
                    }
                }
            }
        }
        return Ok(images);
    }

    if metadata.contains_key(DOCKER_MANIFEST_FILE) {
        let mut images = Vec::new();
        for item in &docker_items {
            let find = |path: &str| {
                lookup(path).ok_or_else(|| ArchiveError::MissingFile {
                    path: path.to_owned(),
                })
            };
            let config_digest = find(&item.config)?;
            let config_bytes = table
                .json
                .get(&config_digest)
                .ok_or(ArchiveError::NotJson {
                    digest: config_digest,
                    what: "image config",
                })?;
            let config = ImageConfig::from_json(config_bytes)?;
            let config_descriptor = Descriptor::new(
                media_type::DOCKER_CONFIG,
                config_digest,
                table.blobs[&config_digest].size,
            );
            if item.layers.len() != config.rootfs.diff_ids.len() {
                return Err(ArchiveError::LayerCount {
                    image: item.config.clone(),
                    layers: item.layers.len(),
                    diff_ids: config.rootfs.diff_ids.len(),
                });
            }
            let mut layers = Vec::new();
            for (path, expected) in item.layers.iter().zip(&config.rootfs.diff_ids) {
                let digest = find(path)?;
                let info = &table.blobs[&digest];
                check_diff_id(path, digest, info, *expected)?;
                layers.push(Descriptor::new(
                    info.kind.docker_layer_media_type(),
                    digest,
                    info.size,
                ));
            }
            let manifest = ImageManifest::docker(config_descriptor, layers).to_json()?;
            let digest = store_bytes(sink, &manifest, &mut table)?;
            images.push(LoadedImage {
                names: item.repo_tags.clone(),
                manifest: Descriptor::new(
                    media_type::DOCKER_MANIFEST,
                    digest,
                    manifest.len() as u64,
                ),
            });
        }
        return Ok(images);
    }
    Err(ArchiveError::NotAnArchive)
}

/// Reads an OCI layout directory, storing every blob its `index.json` refers to in `sink`
/// and verifying digests, sizes and diff IDs. Returns the images of `index.json`.
pub fn read_oci_layout<K: BlobSink>(
    dir: &Path,
    sink: &mut K,
) -> Result<Vec<LoadedImage>, ArchiveError> {
    let layout = OciDir::open(dir)?;
    let index = layout.read_index()?;
    let mut table = Table::default();
    let mut images = Vec::new();
    for descriptor in &index.manifests {
        let mut load = |descriptor: &Descriptor, table: &mut Table| -> Result<(), ArchiveError> {
            if table.blobs.contains_key(&descriptor.digest) {
                return Ok(());
            }
            let path = layout.blob_file(&descriptor.digest);
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => {
                    return Err(ArchiveError::Io {
                        action: "open",
                        path,
                        source,
                    })
                }
            };
            let label = blob_path(&descriptor.digest);
            ingest(sink, &mut file, Some(descriptor.digest), &label, table)?;
            Ok(())
        };
        verify(descriptor, &mut table, &mut load)?;
        images.push(LoadedImage {
            names: names_of(descriptor),
            manifest: descriptor.clone(),
        });
    }
    Ok(images)
}

type Loader<'a> = dyn FnMut(&Descriptor, &mut Table) -> Result<(), ArchiveError> + 'a;

/// Checks that `descriptor`'s blob is present with the right size and, for manifests and
/// indexes, recursively everything they refer to, including diff IDs of image layers.
fn verify(
    descriptor: &Descriptor,
    table: &mut Table,
    load: &mut Loader<'_>,
) -> Result<(), ArchiveError> {
    if !present(descriptor, table, load)? {
        return Ok(());
    }
    let document = match table.json.get(&descriptor.digest) {
        Some(bytes)
            if media_type::is_manifest(&descriptor.media_type)
                || media_type::is_index(&descriptor.media_type)
                || descriptor.media_type.is_empty() =>
        {
            ManifestDocument::from_json(&descriptor.media_type, bytes)?
        }
        _ if media_type::is_manifest(&descriptor.media_type)
            || media_type::is_index(&descriptor.media_type) =>
        {
            return Err(ArchiveError::NotJson {
                digest: descriptor.digest,
                what: "manifest",
            })
        }
        _ => return Ok(()),
    };
    match document {
        ManifestDocument::Index(index) => {
            for child in &index.manifests {
                verify(child, table, load)?;
            }
        }
        ManifestDocument::Manifest(manifest) => {
            present(&manifest.config, table, load)?;
            for layer in &manifest.layers {
                present(layer, table, load)?;
            }
            let image_config = manifest.config.media_type == media_type::OCI_CONFIG
                || manifest.config.media_type == media_type::DOCKER_CONFIG;
            if !image_config {
                return Ok(());
            }
            let Some(bytes) = table.json.get(&manifest.config.digest) else {
                return Err(ArchiveError::NotJson {
                    digest: manifest.config.digest,
                    what: "image config",
                });
            };
            let config = ImageConfig::from_json(bytes)?;
            let layers: Vec<&Descriptor> = layer_descriptors(&manifest.layers).collect();
            if layers.len() != config.rootfs.diff_ids.len() {
                return Err(ArchiveError::LayerCount {
                    image: descriptor.digest.to_string(),
                    layers: layers.len(),
                    diff_ids: config.rootfs.diff_ids.len(),
                });
            }
            for (layer, expected) in layers.into_iter().zip(&config.rootfs.diff_ids) {
                let Some(info) = table.blobs.get(&layer.digest) else {
                    continue; // a foreign layer left out
                };
                check_diff_id(&layer.digest.to_string(), layer.digest, info, *expected)?;
            }
        }
    }
    Ok(())
}

/// Loads and checks one blob; `false` for an absent foreign layer (one with URLs).
fn present(
    descriptor: &Descriptor,
    table: &mut Table,
    load: &mut Loader<'_>,
) -> Result<bool, ArchiveError> {
    load(descriptor, table)?;
    match table.blobs.get(&descriptor.digest) {
        None if !descriptor.urls.is_empty() => Ok(false),
        None => Err(ArchiveError::MissingBlob {
            digest: descriptor.digest,
            media_type: descriptor.media_type.clone(),
        }),
        Some(info) if info.size != descriptor.size => Err(ArchiveError::SizeMismatch {
            digest: descriptor.digest,
            expected: descriptor.size,
            actual: info.size,
        }),
        Some(_) => Ok(true),
    }
}

fn check_diff_id(
    label: &str,
    digest: Digest,
    info: &BlobInfo,
    expected: Digest,
) -> Result<(), ArchiveError> {
    let actual = match &info.uncompressed {
        Uncompressed::Plain => digest,
        Uncompressed::Decoded(d) => *d,
        Uncompressed::Failed(message) => {
            return Err(ArchiveError::Blob {
                action: "decompress layer",
                digest,
                source: io::Error::new(io::ErrorKind::InvalidData, message.clone()),
            })
        }
    };
    if actual != expected {
        return Err(ArchiveError::DiffIdMismatch {
            layer: label.to_owned(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Names an index entry carries.
fn names_of(descriptor: &Descriptor) -> Vec<String> {
    if let Some(name) = descriptor.annotations.get(ANNOTATION_IMAGE_NAME) {
        return vec![name.clone()];
    }
    descriptor
        .annotations
        .get(ANNOTATION_REF_NAME)
        .map(|r| vec![r.clone()])
        .unwrap_or_default()
}

/// The config digest of a single-manifest image, if known.
fn config_of(descriptor: &Descriptor, table: &Table) -> Option<Digest> {
    let bytes = table.json.get(&descriptor.digest)?;
    match ManifestDocument::from_json(&descriptor.media_type, bytes).ok()? {
        ManifestDocument::Manifest(m) => Some(m.config.digest),
        ManifestDocument::Index(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths() {
        assert_eq!(normalize("./blobs//sha256/x").unwrap(), "blobs/sha256/x");
        assert!(normalize("../x").is_none());
        let d = Digest::of(b"a");
        assert_eq!(
            digest_of_blob_path(&format!("blobs/sha256/{}", d.hex())).unwrap(),
            Some(d)
        );
        assert!(digest_of_blob_path("blobs/sha512/abcd").is_err());
        assert!(digest_of_blob_path("blobs/sha256/zz").is_err());
        assert_eq!(digest_of_blob_path("abc/layer.tar").unwrap(), None);
    }
}
