//! Where blobs come from and go to: the [`BlobSource`] and [`BlobSink`] traits, and
//! [`OciDir`], an OCI image layout directory implementing both with atomic writes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::canonical_json;
use crate::digest::Digest;
use crate::manifest::ImageIndex;

use super::{blob_path, ArchiveError, INDEX_FILE, OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION};

/// Read access to blobs by digest (a content store, a layout directory).
pub trait BlobSource {
    /// Opens a blob. `NotFound` when it is absent.
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>>;
}

/// Write access to blobs, in two phases so the digest can be checked before a blob is
/// stored: [`BlobSink::begin_blob`] gives a writer, [`BlobSink::commit_blob`] stores what was
/// written under its (verified) digest. Dropping the writer without committing discards it.
pub trait BlobSink {
    /// The writer of one blob in progress.
    type Writer: Write;

    /// Whether the sink already holds `digest` (its bytes are then still read and
    /// verified, but not written).
    fn has_blob(&self, _digest: &Digest) -> bool {
        false
    }

    /// Starts a new blob.
    fn begin_blob(&mut self) -> io::Result<Self::Writer>;

    /// Stores the blob written to `writer`, whose content hashes to `digest` and has `size`
    /// bytes.
    fn commit_blob(&mut self, writer: Self::Writer, digest: &Digest, size: u64) -> io::Result<()>;
}

/// The `oci-layout` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayoutHeader {
    pub image_layout_version: String,
}

/// An OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
///
/// Every write is atomic: data goes to a temp file in the layout root, is synced, then
/// renamed into place.
#[derive(Debug, Clone)]
pub struct OciDir {
    root: PathBuf,
}

/// A blob being written into an [`OciDir`]; removed unless committed.
#[derive(Debug)]
pub struct PendingBlob {
    file: Option<File>,
    path: PathBuf,
}

impl Write for PendingBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("blob already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ArchiveError {
    let path = path.to_owned();
    move |source| ArchiveError::Io {
        action,
        path,
        source,
    }
}

impl OciDir {
    /// Opens an existing layout, checking its `oci-layout` file.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ArchiveError> {
        let root = root.into();
        let header_path = root.join(OCI_LAYOUT_FILE);
        let bytes = fs::read(&header_path).map_err(|e| ArchiveError::Layout {
            path: root.display().to_string(),
            reason: format!("cannot read {OCI_LAYOUT_FILE}: {e}"),
        })?;
        check_layout_header(&bytes, &root.display().to_string())?;
        Ok(OciDir { root })
    }

    /// Creates a layout (or opens an existing one): the directories and `oci-layout`.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, ArchiveError> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_error("create", &blobs))?;
        let dir = OciDir { root };
        let header_path = dir.root.join(OCI_LAYOUT_FILE);
        if header_path.exists() {
            return OciDir::open(dir.root);
        }
        let header = canonical_json::to_vec(&LayoutHeader {
            image_layout_version: OCI_LAYOUT_VERSION.to_owned(),
        })
        .map_err(|e| ArchiveError::Stream {
            action: "encode oci-layout",
            source: io::Error::other(e),
        })?;
        dir.write_file(OCI_LAYOUT_FILE, &header)?;
        Ok(dir)
    }

    /// The layout's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `digest` is (or would be) stored.
    pub fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.root.join(blob_path(digest))
    }

    /// Reads `index.json`; an empty OCI index when there is none yet.
    pub fn read_index(&self) -> Result<ImageIndex, ArchiveError> {
        let path = self.root.join(INDEX_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(ImageIndex::from_json(&bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageIndex::oci(Vec::new())),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// Replaces `index.json` atomically.
    pub fn write_index(&self, index: &ImageIndex) -> Result<(), ArchiveError> {
        self.write_file(INDEX_FILE, &index.to_json()?)
    }

    /// Writes a small file in the layout root atomically.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
        let mut pending = self
            .pending()
            .map_err(io_error("create temp file in", &self.root))?;
        let target = self.root.join(name);
        pending
            .write_all(bytes)
            .map_err(io_error("write", &pending.path))?;
        pending.persist(&target).map_err(io_error("write", &target))
    }

    fn pending(&self) -> io::Result<PendingBlob> {
        let path = self.root.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(PendingBlob {
            file: Some(file),
            path,
        })
    }
}

impl PendingBlob {
    /// Syncs and renames into `target`, then syncs the target's directory.
    fn persist(mut self, target: &Path) -> io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let result = (|| {
            file.sync_all()?;
            drop(file);
            fs::rename(&self.path, target)?;
            if let Some(dir) = target.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        result
    }
}

pub(crate) fn check_layout_header(bytes: &[u8], path: &str) -> Result<(), ArchiveError> {
    let header: LayoutHeader = serde_json::from_slice(bytes).map_err(|e| ArchiveError::Layout {
        path: path.to_owned(),
        reason: format!("invalid {OCI_LAYOUT_FILE}: {e}"),
    })?;
    if header.image_layout_version != OCI_LAYOUT_VERSION {
        return Err(ArchiveError::Layout {
            path: path.to_owned(),
            reason: format!(
                "unsupported imageLayoutVersion {:?} (expected {OCI_LAYOUT_VERSION})",
                header.image_layout_version
            ),
        });
    }
    Ok(())
}

impl BlobSource for OciDir {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(File::open(self.blob_file(digest))?))
    }
}

impl BlobSink for OciDir {
    type Writer = PendingBlob;

    fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_file(digest).is_file()
    }

    fn begin_blob(&mut self) -> io::Result<PendingBlob> {
        self.pending()
    }

    fn commit_blob(&mut self, writer: PendingBlob, digest: &Digest, _size: u64) -> io::Result<()> {
        writer.persist(&self.blob_file(digest))
    }
}

impl<T: BlobSource + ?Sized> BlobSource for &T {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        (**self).open_blob(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_dir_round_trip() {
        let root = std::env::temp_dir().join(format!(
            "strata-oci-store-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut dir = OciDir::create(&root).unwrap();
        let data = b"blob data";
        let digest = Digest::of(data);
        assert!(!dir.has_blob(&digest));
        let mut w = dir.begin_blob().unwrap();
        w.write_all(data).unwrap();
        dir.commit_blob(w, &digest, data.len() as u64).unwrap();
        assert!(dir.has_blob(&digest));
        let mut back = Vec::new();
        dir.open_blob(&digest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);

        // Abandoned blobs leave nothing behind.
        let mut w = dir.begin_blob().unwrap();
        w.write_all(b"junk").unwrap();
        drop(w);
        let leftovers: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());

        assert_eq!(
            fs::read_to_string(root.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        assert!(OciDir::open(&root).is_ok());
        fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
        assert!(matches!(
            OciDir::open(&root),
            Err(ArchiveError::Layout { .. })
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}
