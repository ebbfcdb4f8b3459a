//! The content store: sha256-addressed blobs under `v1/content/blobs/sha256/`.
//!
//! Main types: [`Content`] (a view of the store), [`BlobInfo`] and [`StagedBlob`].
//!
//! Ingest streams a reader into a temp file in the owner's staging directory while hashing,
//! checks the digest against the expected one, fsyncs, and renames into place — so a blob
//! name always holds exactly the bytes it names; on any error nothing is left behind. A blob
//! that already exists is not written again: with an expected digest the reader is not even
//! read. Every ingest leases the blob in the same step (under the gc lock), so a concurrent
//! prune cannot delete it between "it exists" and "the build uses it". Many blobs written
//! together (the layers of an export) can be staged first and published as one batch
//! ([`Content::stage`], [`Content::publish`]): one `syncfs` and one directory `fsync` for
//! all, the same guarantee (no name before its bytes are on disk).
//!
//! Key decision: blobs carry no database record. The file is the truth (a blob exists iff its
//! file does), and what keeps a blob alive is a reference from an image, a cache record, a
//! snapshot's layer mapping or a lease; garbage collection computes that.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::durable::{fsync_dir, sync_filesystem, TempFile};
use crate::lease::{GcLock, Lease, LeaseError, Resource};
use crate::store::Store;

/// A content store failure.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The stream's digest is not the expected one; nothing was stored.
    #[error("digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        /// The digest the caller expected.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
        /// How many bytes were read.
        size: u64,
    },
    /// The blob is not in the store.
    #[error("blob {digest} not found")]
    NotFound {
        /// The blob.
        digest: Digest,
    },
    /// Reading the source stream failed; nothing was stored.
    #[error("cannot read blob source (after {read} bytes)")]
    Source {
        /// Bytes read before the failure.
        read: u64,
        /// The cause.
        #[source]
        source: io::Error,
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
    /// The lease could not be taken.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The lease belongs to another store.
    #[error("lease {lease} belongs to another store handle")]
    ForeignLease {
        /// The lease id.
        lease: u64,
    },
}

/// A stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A blob written into staging, not yet durable or visible ([`Content::stage`]).
#[derive(Debug)]
pub struct StagedBlob {
    temp: TempFile,
    info: BlobInfo,
}

impl StagedBlob {
    /// Its digest and size.
    pub fn info(&self) -> BlobInfo {
        self.info
    }
}

/// Streaming buffer: large enough that hashing, not syscalls, dominates.
const BUFFER: usize = 256 * 1024;

/// The content store view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    store: &'a Store,
}

impl<'a> Content<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Content { store }
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.store.inner.layout.blob_path(digest)
    }

    /// Whether the blob is present (advisory: lease it before relying on it).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).exists()
    }

    /// The blob's size.
    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound { digest: *digest })
            }
            Err(source) => Err(ContentError::Io {
                action: "stat",
                path,
                source,
            }),
        }
    }

    /// Opens the blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound { digest: *digest }
            } else {
                ContentError::Io {
                    action: "open",
                    path,
                    source,
                }
            }
        })
    }

    /// Reads a whole (small) blob: manifests, configs.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let mut bytes = Vec::new();
        let path = self.path(digest);
        self.open(digest)?
            .read_to_end(&mut bytes)
            .map_err(|source| ContentError::Io {
                action: "read",
                path,
                source,
            })?;
        Ok(bytes)
    }

    /// Stores the bytes read from `reader` and leases the blob.
    ///
    /// With `expected`, a blob already present is leased without reading `reader`, and a
    /// stream whose digest differs is an error ([`ContentError::DigestMismatch`]) that leaves
    /// nothing behind.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<Digest>,
        lease: &Lease,
    ) -> Result<BlobInfo, ContentError> {
        self.check_lease(lease)?;
        if let Some(digest) = expected {
            if let Some(info) = self.lease_existing(&digest, lease)? {
                return Ok(info);
            }
        }
        let mut staged = self.write_staging(reader, expected)?;
        if let Some(info) = self.lease_existing(&staged.info.digest, lease)? {
            return Ok(info);
        }
        // fsync outside the gc lock (it is the slow part), rename and lease inside it.
        let path = staged.temp.path().to_owned();
        staged
            .temp
            .file()
            .sync_all()
            .map_err(|source| ContentError::Io {
                action: "fsync",
                path,
                source,
            })?;
        Ok(self.publish_synced(vec![staged], lease)?.remove(0))
    }

    /// Writes the blob read from `reader` into the staging directory, hashed but neither
    /// durable nor visible: [`Content::publish`] makes a batch of them both at once (one
    /// `syncfs` and one directory `fsync` for all, where [`Content::ingest`] pays an `fsync`
    /// of the file and of the directory per blob). Dropped unpublished, it is removed.
    pub fn stage(&self, reader: impl Read, lease: &Lease) -> Result<StagedBlob, ContentError> {
        self.check_lease(lease)?;
        self.write_staging(reader, None)
    }

    /// Makes `staged` blobs durable (one `syncfs` of the store's file system) and then
    /// visible under their digests (renames, one `fsync` of the blob directory), leased.
    /// A blob is never visible before its bytes are on disk.
    pub fn publish(
        &self,
        staged: Vec<StagedBlob>,
        lease: &Lease,
    ) -> Result<Vec<BlobInfo>, ContentError> {
        self.check_lease(lease)?;
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        let staging = self.store.staging();
        sync_filesystem(staging).map_err(|source| ContentError::Io {
            action: "syncfs",
            path: staging.to_owned(),
            source,
        })?;
        self.publish_synced(staged, lease)
    }

    /// Renames durable staged blobs into place under the gc lock, leases them, and makes the
    /// names durable.
    fn publish_synced(
        &self,
        staged: Vec<StagedBlob>,
        lease: &Lease,
    ) -> Result<Vec<BlobInfo>, ContentError> {
        let mut out = Vec::with_capacity(staged.len());
        {
            let _gc = GcLock::shared(&self.store.inner.layout)?;
            for blob in staged {
                let dest = self.path(&blob.info.digest);
                blob.temp
                    .persist_synced(&dest, false)
                    .map_err(|source| ContentError::Io {
                        action: "rename blob to",
                        path: dest,
                        source,
                    })?;
                lease.add_locked([Resource::Blob(blob.info.digest)])?;
                out.push(blob.info);
            }
        }
        let dir = self.store.inner.layout.blobs_dir();
        fsync_dir(&dir).map_err(|source| ContentError::Io {
            action: "fsync",
            path: dir,
            source,
        })?;
        Ok(out)
    }

    /// Hashes and writes `reader` into a staging file; checks `expected` if given.
    fn write_staging(
        &self,
        mut reader: impl Read,
        expected: Option<Digest>,
    ) -> Result<StagedBlob, ContentError> {
        let staging = self.store.staging();
        let io_err = |action: &'static str, path: PathBuf| {
            move |source| ContentError::Io {
                action,
                path,
                source,
            }
        };
        let mut temp =
            TempFile::new_in(staging).map_err(io_err("create temp file in", staging.into()))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ContentError::Source { read: size, source }),
            };
            hasher.update(&buf[..n]);
            temp.file()
                .write_all(&buf[..n])
                .map_err(io_err("write", temp.path().to_owned()))?;
            size += n as u64;
        }
        let actual = Digest::from_sha256(hasher.finalize().into());
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ContentError::DigestMismatch {
                    expected,
                    actual,
                    size,
                });
            }
        }
        Ok(StagedBlob {
            temp,
            info: BlobInfo {
                digest: actual,
                size,
            },
        })
    }

    /// Stores `bytes` (a manifest, a config) and leases the blob.
    pub fn write(&self, bytes: &[u8], lease: &Lease) -> Result<BlobInfo, ContentError> {
        self.ingest(bytes, Some(Digest::of(bytes)), lease)
    }

    /// Every blob in the store.
    pub fn list(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let dir = self.store.inner.layout.blobs_dir();
        let io_err = |source| ContentError::Io {
            action: "list",
            path: dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            match entry.metadata() {
                Ok(meta) => out.push(BlobInfo {
                    digest,
                    size: meta.len(),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        Ok(out)
    }

    fn lease_existing(
        &self,
        digest: &Digest,
        lease: &Lease,
    ) -> Result<Option<BlobInfo>, ContentError> {
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        match fs::metadata(self.path(digest)) {
            Ok(meta) => {
                lease.add_locked([Resource::Blob(*digest)])?;
                Ok(Some(BlobInfo {
                    digest: *digest,
                    size: meta.len(),
                }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ContentError::Io {
                action: "stat",
                path: self.path(digest),
                source,
            }),
        }
    }

    fn check_lease(&self, lease: &Lease) -> Result<(), ContentError> {
        if lease.belongs_to(self.store) {
            Ok(())
        } else {
            Err(ContentError::ForeignLease { lease: lease.id() })
        }
    }
}
