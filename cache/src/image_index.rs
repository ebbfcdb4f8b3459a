//! Tagged images: name → manifest, and the OCI layout's `index.json` that lists them.
//!
//! Main types: [`ImageTarget`] (what a name points at: manifest digest, media type and size,
//! and the config digest that Docker calls the image id), [`ImageRecord`] and the [`Images`]
//! view: tag, untag, get, list, and [`Images::resolve`] by name or digest prefix.
//!
//! Key decisions: the database is the truth, and `v1/content/index.json` is a view of it,
//! regenerated under `v1/index.lock` after every change (each regeneration reads the latest
//! commit, so the last writer always writes the complete list). A crash between the commit
//! and the rewrite is repaired at the next open, which regenerates the file whenever it finds
//! a dead owner. Names are stored as given: normalizing references (`alpine` →
//! `docker.io/library/alpine:latest`) is the caller's job.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::db::{DbError, DbResult, IMAGES};
use crate::digest::Digest;
use crate::durable::write_atomic;
use crate::encoding::{from_millis, now_millis, to_millis, Decoder, Encoder};
use crate::lease::{GcLock, LeaseError};
use crate::store::Store;

/// An image index failure.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name is empty, too long, or has control characters.
    #[error("invalid image name {name:?}")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A blob the image needs is not in the content store.
    #[error("cannot tag {name}: blob {digest} not found")]
    BlobNotFound {
        /// The name being tagged.
        name: String,
        /// The missing blob.
        digest: Digest,
    },
    /// No image has that name or digest prefix.
    #[error("image {query} not found")]
    NotFound {
        /// What was looked up.
        query: String,
    },
    /// A digest prefix matches several different images.
    #[error("image reference {query} is ambiguous: it matches {count} images")]
    Ambiguous {
        /// What was looked up.
        query: String,
        /// How many different manifests match.
        count: usize,
    },
    /// A file system step failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The gc lock could not be taken.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an image name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTarget {
    /// The manifest (or index) blob.
    pub manifest: Digest,
    /// Its media type (OCI or Docker manifest, or an index / manifest list).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The config blob (the image id), for single-platform images.
    pub config: Option<Digest>,
}

/// A tagged image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The name, as tagged.
    pub name: String,
    /// What it points at.
    pub target: ImageTarget,
    /// When it was tagged.
    pub created: SystemTime,
}

const RECORD_VERSION: u8 = 1;
const MAX_NAME: usize = 1024;

impl ImageRecord {
    fn encode(&self) -> Vec<u8> {
        Encoder::new(RECORD_VERSION)
            .digest(&self.target.manifest)
            .str(&self.target.media_type)
            .u64(self.target.size)
            .opt_digest(self.target.config.as_ref())
            .u64(to_millis(self.created))
            .finish()
    }

    pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<ImageRecord, DbError> {
        let corrupt = |source| DbError::Corrupt {
            table: "images",
            key: name.to_owned(),
            source,
        };
        let mut r = Decoder::new(bytes, RECORD_VERSION).map_err(corrupt)?;
        let manifest = r.digest().map_err(corrupt)?;
        let media_type = r.str().map_err(corrupt)?.to_owned();
        let size = r.u64().map_err(corrupt)?;
        let config = r.opt_digest().map_err(corrupt)?;
        let created = from_millis(r.u64().map_err(corrupt)?);
        r.finish().map_err(corrupt)?;
        Ok(ImageRecord {
            name: name.to_owned(),
            target: ImageTarget {
                manifest,
                media_type,
                size,
                config,
            },
            created,
        })
    }
}

fn check_name(name: &str) -> Result<(), ImageError> {
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ImageError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The tag of a reference (`registry:5000/app:1.0` → `1.0`), or the whole name if untagged.
fn ref_name(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => name,
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciIndex<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<OciDescriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    annotations: BTreeMap<&'static str, &'a str>,
}

/// The descriptors of a manifest or index that garbage collection follows.
#[derive(Deserialize)]
pub(crate) struct ManifestRefs {
    #[serde(default)]
    pub config: Option<DescriptorRef>,
    #[serde(default)]
    pub layers: Option<Vec<DescriptorRef>>,
    #[serde(default)]
    pub manifests: Option<Vec<DescriptorRef>>,
}

/// A descriptor's digest, as text.
#[derive(Deserialize)]
pub(crate) struct DescriptorRef {
    pub digest: String,
}

/// The images view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Images<'a> {
    store: &'a Store,
}

impl<'a> Images<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Images { store }
    }

    /// Points `name` at `target` (its manifest and config blobs must be stored) and returns
    /// what the name pointed at before.
    pub fn tag(&self, name: &str, target: &ImageTarget) -> Result<Option<ImageRecord>, ImageError> {
        check_name(name)?;
        let record = ImageRecord {
            name: name.to_owned(),
            target: target.clone(),
            created: from_millis(now_millis()),
        };
        let previous = {
            let _gc = GcLock::shared(&self.store.inner.layout)?;
            for digest in std::iter::once(&target.manifest).chain(target.config.as_ref()) {
                if !self.store.inner.layout.blob_path(digest).exists() {
                    return Err(ImageError::BlobNotFound {
                        name: name.to_owned(),
                        digest: *digest,
                    });
                }
            }
            // Tagging a name with the image it already names changes nothing: no write, no
            // index rewrite (a no-op rebuild's tag).
            {
                let tx = self.store.inner.db.read()?;
                let table = tx.open_table(IMAGES).op("open images table")?;
                if let Some(old) = table.get(name).op("read image")? {
                    let old = ImageRecord::decode(name, old.value())?;
                    if old.target == *target {
                        return Ok(Some(old));
                    }
                }
            }
            let tx = self.store.inner.db.write()?;
            let previous = {
                let mut table = tx.open_table(IMAGES).op("open images table")?;
                let previous = table
                    .insert(name, record.encode().as_slice())
                    .op("insert image")?
                    .map(|old| ImageRecord::decode(name, old.value()));
                previous.transpose()?
            };
            tx.commit().op("commit image")?;
            previous
        };
        self.write_oci_index()?;
        Ok(previous)
    }

    /// Removes the name `name`; returns what it pointed at. The image's blobs become garbage
    /// for the next prune unless something else refers to them.
    pub fn untag(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let tx = self.store.inner.db.write()?;
        let removed = {
            let mut table = tx.open_table(IMAGES).op("open images table")?;
            let removed = table
                .remove(name)
                .op("remove image")?
                .map(|old| ImageRecord::decode(name, old.value()));
            removed.transpose()?
        };
        tx.commit().op("commit image removal")?;
        if removed.is_some() {
            self.write_oci_index()?;
        }
        Ok(removed)
    }

    /// The image tagged `name`.
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(IMAGES).op("open images table")?;
        let found = table.get(name).op("read image")?;
        Ok(match found {
            Some(bytes) => Some(ImageRecord::decode(name, bytes.value())?),
            None => None,
        })
    }

    /// Every tagged image, by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(IMAGES).op("open images table")?;
        let mut out = Vec::new();
        for entry in table.iter().op("list images")? {
            let (name, value) = entry.op("list images")?;
            out.push(ImageRecord::decode(name.value(), value.value())?);
        }
        Ok(out)
    }

    /// Finds an image by exact name, else by a prefix of its manifest or config digest
    /// (`sha256:` optional), as `docker image inspect` accepts image ids.
    pub fn resolve(&self, query: &str) -> Result<ImageRecord, ImageError> {
        if let Some(found) = self.get(query)? {
            return Ok(found);
        }
        let prefix = query.strip_prefix("sha256:").unwrap_or(query);
        let is_hex = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_hex {
            return Err(ImageError::NotFound {
                query: query.to_owned(),
            });
        }
        let matches: Vec<ImageRecord> = self
            .list()?
            .into_iter()
            .filter(|image| {
                image.target.manifest.hex().starts_with(prefix)
                    || image
                        .target
                        .config
                        .is_some_and(|c| c.hex().starts_with(prefix))
            })
            .collect();
        let mut distinct: Vec<Digest> = matches.iter().map(|i| i.target.manifest).collect();
        distinct.sort();
        distinct.dedup();
        match distinct.len() {
            0 => Err(ImageError::NotFound {
                query: query.to_owned(),
            }),
            1 => Ok(matches.into_iter().next().expect("one match")),
            count => Err(ImageError::Ambiguous {
                query: query.to_owned(),
                count,
            }),
        }
    }

    /// Rewrites `content/index.json` from the database (under `index.lock`).
    pub(crate) fn write_oci_index(&self) -> Result<(), ImageError> {
        let layout = &self.store.inner.layout;
        let lock_path = layout.index_lock_path();
        let io_err = |action: &'static str, path: PathBuf| {
            move |source| ImageError::Io {
                action,
                path,
                source,
            }
        };
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", lock_path.clone()))?;
        lock.lock().map_err(io_err("lock", lock_path.clone()))?;
        let images = self.list()?;
        let index = OciIndex {
            schema_version: 2,
            media_type: "application/vnd.oci.image.index.v1+json",
            manifests: images
                .iter()
                .map(|image| OciDescriptor {
                    media_type: &image.target.media_type,
                    digest: image.target.manifest.to_string(),
                    size: image.target.size,
                    annotations: BTreeMap::from([
                        ("io.containerd.image.name", image.name.as_str()),
                        ("org.opencontainers.image.ref.name", ref_name(&image.name)),
                    ]),
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&index).expect("index serializes");
        bytes.push(b'\n');
        let dest = layout.content_dir().join("index.json");
        write_atomic(self.store.staging(), &dest, &bytes).map_err(io_err("write", dest))?;
        drop(lock);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names() {
        assert_eq!(ref_name("docker.io/library/alpine:3.20"), "3.20");
        assert_eq!(ref_name("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(ref_name("localhost:5000/app:v1"), "v1");
        assert_eq!(ref_name("app@sha256:abcd"), "app");
    }

    #[test]
    fn names_are_checked_and_records_round_trip() {
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
        check_name("docker.io/library/alpine:latest").unwrap();
        let record = ImageRecord {
            name: "app:1".into(),
            target: ImageTarget {
                manifest: Digest::of(b"m"),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 12,
                config: Some(Digest::of(b"c")),
            },
            created: from_millis(5),
        };
        assert_eq!(
            ImageRecord::decode("app:1", &record.encode()).unwrap(),
            record
        );
    }
}
