//! The versioned directory layout under a store root.
//!
//! ```text
//! <root>/v1/content/                     an OCI image layout: oci-layout, index.json,
//! <root>/v1/content/blobs/sha256/<hex>   blobs (layers, configs, manifests)
//! <root>/v1/snapshots/<id>/diff          committed layer directories (overlay lowerdirs)
//! <root>/v1/mounts/cache/<id>            RUN --mount=type=cache directories
//! <root>/v1/db.redb                      the metadata database
//! <root>/v1/gc.lock, open.lock, index.lock   advisory lock files (flock)
//! <root>/v1/tmp/<owner>.lock             one per live Store: liveness lock + its leases
//! <root>/v1/tmp/<owner>/                 that Store's staging area (temp files, prepared
//!                                        snapshots, trash being deleted)
//! ```
//!
//! Main type: [`Layout`], which only computes paths and creates the directories.
//!
//! Key decision: the version is the directory name. A root that holds `v2/` (or later) was
//! written by a newer Strata, and this one refuses it rather than guessing; a newer Strata may
//! keep `v1/` beside its own directory to migrate it.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// The layout version this crate reads and writes.
pub const LAYOUT_VERSION: u32 = 1;

/// Why the layout cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The root holds a layout written by a newer Strata.
    #[error(
        "store at {root} has layout version {found}, newer than the supported version {supported}: \
         upgrade strata or use another --root"
    )]
    NewerVersion {
        /// The store root.
        root: PathBuf,
        /// The newest version found.
        found: u32,
        /// [`LAYOUT_VERSION`].
        supported: u32,
    },
    /// A directory could not be read or created.
    #[error("cannot prepare store directory {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Paths of everything under `<root>/v1`.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    base: PathBuf,
}

impl Layout {
    /// The layout of `root` (nothing is touched).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let base = root.join(format!("v{LAYOUT_VERSION}"));
        Layout { root, base }
    }

    /// Checks the version and creates the directories that are missing.
    pub fn create(&self) -> Result<(), LayoutError> {
        self.check_version()?;
        for dir in [
            self.blobs_dir(),
            self.snapshots_dir(),
            self.cache_mounts_dir(),
            self.tmp_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| LayoutError::Io { path: dir, source })?;
        }
        Ok(())
    }

    fn check_version(&self) -> Result<(), LayoutError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(LayoutError::Io {
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let newest = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let digits = name.to_str()?.strip_prefix('v')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse::<u32>().ok()
            })
            .max();
        match newest {
            Some(found) if found > LAYOUT_VERSION => Err(LayoutError::NewerVersion {
                root: self.root.clone(),
                found,
                supported: LAYOUT_VERSION,
            }),
            _ => Ok(()),
        }
    }

    /// The store root given to `open`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/v1`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `<root>/v1/content`: the OCI image layout.
    pub fn content_dir(&self) -> PathBuf {
        self.base.join("content")
    }

    /// `<root>/v1/content/blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.base.join("content").join("blobs").join("sha256")
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// `<root>/v1/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.base.join("snapshots")
    }

    /// `<root>/v1/mounts/cache`.
    pub fn cache_mounts_dir(&self) -> PathBuf {
        self.base.join("mounts").join("cache")
    }

    /// `<root>/v1/tmp`.
    pub fn tmp_dir(&self) -> PathBuf {
        self.base.join("tmp")
    }

    /// `<root>/v1/db.redb`.
    pub fn db_path(&self) -> PathBuf {
        self.base.join("db.redb")
    }

    /// The lock that orders lease changes against garbage collection.
    pub fn gc_lock_path(&self) -> PathBuf {
        self.base.join("gc.lock")
    }

    /// The lock held while the database file is created or opened.
    pub fn open_lock_path(&self) -> PathBuf {
        self.base.join("open.lock")
    }

    /// The lock held while `content/index.json` is regenerated.
    pub fn index_lock_path(&self) -> PathBuf {
        self.base.join("index.lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_newer_layout_and_accepts_own() {
        let root = std::env::temp_dir().join(format!("strata-layout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let layout = Layout::new(&root);
        layout.create().unwrap();
        assert!(layout.blobs_dir().is_dir() && layout.tmp_dir().is_dir());
        layout.create().unwrap();
        std::fs::create_dir(root.join("vendor")).unwrap();
        layout.create().unwrap();
        std::fs::create_dir(root.join("v12")).unwrap();
        let err = layout.create().unwrap_err();
        assert!(
            matches!(
                err,
                LayoutError::NewerVersion {
                    found: 12,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("layout version 12"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
