//! A build context given as a tar (`strata build - < context.tar`), unpacked into a
//! temporary directory under the store root and then read like any directory context.
//!
//! Main type: [`ContextArchive`]; [`is_context_archive`] tells a tar from a Dockerfile by
//! its first bytes, as `docker build -` does (a gzip, bzip2, xz or zstd magic, or a first
//! 512-byte block that reads as a tar header).
//!
//! Key decisions:
//! - The archive is extracted with the same extractor as `ADD` of a local archive (BuildKit
//!   unpacks an uploaded context the same way): names are cleaned and confined, `..` and
//!   absolute names stop at the context root, symlinks on the way resolve inside it, and
//!   hard links never point outside. A hostile tar can only shape the context itself.
//! - The directory is a prepared (never committed) snapshot: it lives in this process's
//!   staging area, is removed when the value is dropped, and a crashed process's copy is
//!   swept at the next open of the store. The context's stat-cache file goes with it.

use super::stat_cache::StatCache;
use super::STAT_CACHE_DIR;
use crate::file::{self, LayeredView, SourceFs};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use strata_cache::{Lease, PreparedSnapshot, Store};
use strata_solver::op::{FileAction, FileOp};

/// Why a context archive could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextArchiveError {
    /// The archive could not be stored before unpacking.
    #[error("failed to read the context archive: {0}")]
    Read(#[source] io::Error),
    /// The bytes are not a (compressed) tar.
    #[error("the context on stdin is not a tar archive (plain, gzip, bzip2, xz or zstd)")]
    NotAnArchive,
    /// An entry could not be extracted.
    #[error("failed to unpack the context archive: {0}")]
    Unpack(#[from] file::FileError),
    /// The staging directory could not be made.
    #[error(transparent)]
    Snapshot(#[from] strata_cache::SnapshotError),
}

/// Whether `head` (the first bytes of stdin, up to 512) starts a context archive rather
/// than a Dockerfile.
pub fn is_context_archive(head: &[u8]) -> bool {
    if file::archive::detect(head) != file::archive::Compression::None {
        return true;
    }
    // A plain tar: its first header block reads (checksum included).
    if head.len() < 512 {
        return false;
    }
    let mut archive = tar::Archive::new(head);
    match archive.entries() {
        Ok(mut entries) => matches!(entries.next(), Some(Ok(_))),
        Err(_) => false,
    }
}

/// An unpacked context archive; removed when dropped.
#[derive(Debug)]
pub struct ContextArchive {
    store: Store,
    dir: PathBuf,
    prepared: Option<PreparedSnapshot>,
    _lease: Lease,
}

impl ContextArchive {
    /// Streams `reader` (a possibly compressed tar) to the store's staging area and unpacks
    /// it there.
    pub fn unpack(store: &Store, mut reader: impl Read) -> Result<Self, ContextArchiveError> {
        let lease = store.lease();
        let prepared = store.snapshots().prepare(None, &lease)?;
        let stash = prepared.work();
        let archive = stash.join("context.tar");
        let mut out = File::create(&archive).map_err(ContextArchiveError::Read)?;
        io::copy(&mut reader, &mut out).map_err(ContextArchiveError::Read)?;
        drop(out);
        let is_archive = File::open(&archive).is_ok_and(file::archive::is_archive);
        if !is_archive {
            return Err(ContextArchiveError::NotAnArchive);
        }
        let dir = prepared.diff();
        let op = FileOp {
            has_base: false,
            actions: vec![FileAction::Copy {
                source_input: 0,
                src: "/context.tar".into(),
                dest: "/".into(),
                owner: None,
                chmod: None,
                follow_symlinks: false,
                dir_contents_only: false,
                allow_wildcard: false,
                allow_empty_wildcard: false,
                exclude: Vec::new(),
                parents: false,
                unpack: true,
                create_dest_path: true,
                mtime: None,
            }],
        };
        let source = LayeredView::plain(&stash);
        let inputs: [&dyn SourceFs; 1] = [&source];
        file::apply(&op, &dir, &[], &inputs)?;
        // The archive is no longer needed; the context may be large.
        let _ = std::fs::remove_file(&archive);
        let dir = dir.canonicalize().unwrap_or(dir);
        Ok(Self {
            store: store.clone(),
            dir,
            prepared: Some(prepared),
            _lease: lease,
        })
    }

    /// The unpacked context directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ContextArchive {
    fn drop(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            let _ = self.store.snapshots().abort(prepared);
        }
        // The stat cache of a directory that never comes back would only pile up.
        let cache = StatCache::new(Some(&self.store.root().join(STAT_CACHE_DIR)), &self.dir);
        if let Some(path) = cache.path() {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(path.with_extension("lock"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn tars_and_compressed_streams_are_archives_dockerfiles_are_not() {
        let tar = tar_of(&[("Dockerfile", b"FROM scratch\n")]);
        assert!(is_context_archive(&tar[..512]));
        assert!(is_context_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(is_context_archive(b"BZh91AY"));
        assert!(is_context_archive(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
        assert!(is_context_archive(&[0x28, 0xb5, 0x2f, 0xfd]));
        assert!(!is_context_archive(b"FROM scratch\nCOPY . /\n"));
        let mut padded = b"FROM scratch\n".to_vec();
        padded.resize(600, b' ');
        assert!(!is_context_archive(&padded));
    }

    #[test]
    fn unpacks_confined_and_cleans_up() {
        let tmp = std::env::temp_dir().join(format!("strata-ctx-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let store = Store::open(tmp.join("root")).unwrap();
        // Climbing names land inside the context, never beside it.
        let header = |kind: tar::EntryType, name: &[u8], size: u64, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            // Written raw: the tar crate refuses `..` in names it sets itself.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
            h.set_cksum();
            h
        };
        let mut builder = tar::Builder::new(Vec::new());
        let escape = header(tar::EntryType::Regular, b"../../escape.txt", 3, 0o644);
        builder.append(&escape, &b"bad"[..]).unwrap();
        let mut link = header(tar::EntryType::Symlink, b"up", 0, 0o777);
        link.set_link_name("/").unwrap();
        link.set_cksum();
        builder.append(&link, io::empty()).unwrap();
        let through = header(tar::EntryType::Regular, b"up/x.txt", 2, 0o644);
        builder.append(&through, &b"x\n"[..]).unwrap();
        let dockerfile = header(tar::EntryType::Regular, b"Dockerfile", 13, 0o644);
        builder.append(&dockerfile, &b"FROM scratch\n"[..]).unwrap();
        let bytes = builder.into_inner().unwrap();

        let unpacked = ContextArchive::unpack(&store, &bytes[..]).unwrap();
        let dir = unpacked.dir().to_path_buf();
        assert_eq!(
            std::fs::read(dir.join("Dockerfile")).unwrap(),
            b"FROM scratch\n"
        );
        assert_eq!(std::fs::read(dir.join("escape.txt")).unwrap(), b"bad");
        assert_eq!(std::fs::read(dir.join("x.txt")).unwrap(), b"x\n");
        assert!(!Path::new("/x.txt").exists());
        assert!(!dir.join("context.tar").exists());
        assert!(dir.starts_with(store.root().canonicalize().unwrap()));
        drop(unpacked);
        assert!(!dir.exists());

        let err = ContextArchive::unpack(&store, &b"FROM scratch\n"[..]).unwrap_err();
        assert!(matches!(err, ContextArchiveError::NotAnArchive), "{err}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
