//! Content checksums: blake3 of each selected file, streamed and in parallel, folded into
//! one Merkle digest of the selection.
//!
//! Role: [`hash_file`] reads one regular file through [`open_beneath`] (never following a
//! symlink) with a fixed buffer, so memory stays flat whatever the file size, and reports
//! whether the file held still while it was read; [`merkle`] turns a walked selection into
//! its digest.
//!
//! The digest covers, per entry: its name (in its parent's list), its kind, its permission
//! bits (`mode & 0o7777`), a regular file's blake3 content hash, a symlink's raw target, a
//! device's number; a directory hashes its header and its selected children in walk
//! order. Left out on purpose: timestamps, inode and device numbers, link counts (so
//! `touch`, a copy or a checkout of the same bytes keeps the key), sizes (the content hash
//! has them), and uid/gid — BuildKit's client resets every context file to 0:0 before it
//! sends it (`resetUIDAndGID` in its filesync), so the owner of a context file can never
//! change a BuildKit cache key either. Extended attributes are not hashed (BuildKit's
//! tarsum header has them; its context transfer keeps them): a difference.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{statx, AtFlags, OFlags, StatxFlags};

use super::confine::{is_symlink_or_file_on_the_way, open_beneath};
use super::entry::{Entry, EntryKind, Metadata};
use super::error::ContextError;

/// Read buffer per thread: large enough for blake3's SIMD paths, small enough to ignore.
const BUFFER_SIZE: usize = 256 * 1024;

/// Domain separation of the whole digest (a new encoding must change it).
const DIGEST_DOMAIN: &[u8] = b"strata context checksum v1\0";

/// The result of reading one file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileHash {
    /// blake3 of the bytes read.
    pub hash: [u8; 32],
    /// The file's metadata when it was opened (what the hash belongs to).
    pub meta: Metadata,
    /// Bytes read.
    pub bytes: u64,
    /// Nothing about the file changed while it was read: the hash may be cached.
    pub stable: bool,
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hashes the regular file `entry` of the context at `root`.
pub(crate) fn hash_file(root: BorrowedFd<'_>, entry: &Entry) -> Result<FileHash, ContextError> {
    let path = entry.path.as_str();
    let fd = open_beneath(root, path, OFlags::RDONLY).map_err(|e| {
        if is_symlink_or_file_on_the_way(&e) {
            ContextError::Changed {
                path: path.to_owned(),
            }
        } else {
            ContextError::io(path, e)
        }
    })?;
    let before = fstat(fd.as_fd(), path)?;
    if !before.is_file() {
        return Err(ContextError::Changed {
            path: path.to_owned(),
        });
    }
    let mut file = File::from(fd);
    let mut hasher = blake3::Hasher::new();
    let bytes = BUFFER
        .with_borrow_mut(|buf| {
            if buf.len() < BUFFER_SIZE {
                buf.resize(BUFFER_SIZE, 0);
            }
            let mut total = 0u64;
            loop {
                match file.read(buf) {
                    Ok(0) => return Ok(total),
                    Ok(n) => {
                        hasher.update(&buf[..n]);
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|e| ContextError::io(path, e))?;
    let after = fstat(file.as_fd(), path)?;
    Ok(FileHash {
        hash: *hasher.finalize().as_bytes(),
        meta: before,
        bytes,
        stable: bytes == before.size && before.same_file_unchanged(&after),
    })
}

fn fstat(fd: BorrowedFd<'_>, path: &str) -> Result<Metadata, ContextError> {
    statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
        .map(|st| Metadata::from_statx(&st))
        .map_err(|e| ContextError::io(path, e.into()))
}

/// The Merkle digest of a walked selection (entries in walk order, every entry's parent
/// directory before it, regular files carrying their content hash).
pub(crate) fn merkle(entries: &[Entry]) -> [u8; 32] {
    // One open hasher per directory on the current path; the root's is first.
    let mut root = blake3::Hasher::new();
    root.update(DIGEST_DOMAIN);
    let mut stack: Vec<(&str, blake3::Hasher)> = vec![("", root)];
    // Leaf headers are small: one-shot hashing of a reused buffer beats a streaming hasher.
    let mut header = Vec::with_capacity(128);
    for entry in entries {
        let depth = entry.depth();
        while stack.len() > depth {
            close_dir(&mut stack);
        }
        debug_assert_eq!(stack.len(), depth, "parent of {} not emitted", entry.path);
        header.clear();
        header.push(entry.kind().tag());
        header.extend_from_slice(&entry.meta.permissions().to_le_bytes());
        match entry.kind() {
            EntryKind::Dir => {
                let mut dir = blake3::Hasher::new();
                dir.update(&header);
                stack.push((entry.name(), dir));
                continue;
            }
            EntryKind::File => {
                debug_assert!(entry.content_hash.is_some(), "{} not hashed", entry.path);
                header.extend_from_slice(&entry.content_hash.unwrap_or_default());
            }
            EntryKind::Symlink => {
                let target = entry
                    .link_target
                    .as_deref()
                    .map_or(&[][..], |t| t.as_os_str().as_encoded_bytes());
                header.extend_from_slice(&(target.len() as u64).to_le_bytes());
                header.extend_from_slice(target);
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                header.extend_from_slice(&entry.meta.rdev.to_le_bytes());
            }
            EntryKind::Fifo | EntryKind::Socket => {}
        }
        let hash = blake3::hash(&header);
        let parent = &mut stack.last_mut().expect("root frame").1;
        add_child(parent, entry.name(), hash.as_bytes());
    }
    while stack.len() > 1 {
        close_dir(&mut stack);
    }
    let (_, root) = stack.pop().expect("root frame");
    *root.finalize().as_bytes()
}

/// Finishes the innermost open directory and records it in its parent.
fn close_dir(stack: &mut Vec<(&str, blake3::Hasher)>) {
    let (name, hasher) = stack.pop().expect("open directory");
    let hash = hasher.finalize();
    let parent = &mut stack.last_mut().expect("root frame").1;
    add_child(parent, name, hash.as_bytes());
}

/// One child in its directory's hash: length-prefixed name, then its hash (fixed size),
/// so the concatenation is unambiguous.
fn add_child(parent: &mut blake3::Hasher, name: &str, hash: &[u8; 32]) {
    parent.update(&(name.len() as u64).to_le_bytes());
    parent.update(name.as_bytes());
    parent.update(hash);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::entry::Timestamp;
    use std::path::PathBuf;

    fn entry(path: &str, mode: u32, content: Option<&[u8]>, link: Option<&str>) -> Entry {
        Entry {
            path: path.into(),
            meta: Metadata {
                mode,
                size: 0,
                uid: 0,
                gid: 0,
                mtime: Timestamp::default(),
                ctime: Timestamp::default(),
                ino: 0,
                dev: 0,
                nlink: 1,
                rdev: 0,
            },
            link_target: link.map(PathBuf::from),
            content_hash: content.map(|c| *blake3::hash(c).as_bytes()),
        }
    }

    fn tree() -> Vec<Entry> {
        vec![
            entry("a", 0o040755, None, None),
            entry("a/b", 0o100644, Some(b"b"), None),
            entry("a/c", 0o120777, None, Some("b")),
            entry("d", 0o100755, Some(b"d"), None),
        ]
    }

    #[test]
    fn digest_is_sensitive_to_what_matters_only() {
        let base = merkle(&tree());
        assert_eq!(base, merkle(&tree()));
        let mut t = tree();
        t[1].meta.mtime.sec = 99;
        t[1].meta.ino = 7;
        t[1].meta.uid = 1000;
        assert_eq!(merkle(&t), base, "times, inodes and owners are not hashed");
        let changes: [fn(&mut Vec<Entry>); 6] = [
            |t| t[1].content_hash = Some([1; 32]),
            |t| t[1].meta.mode = 0o100600,
            |t| t[2].link_target = Some(PathBuf::from("d")),
            |t| t[3].path = "e".into(),
            |t| t[0].meta.mode = 0o040700,
            |t| {
                t.remove(3);
            },
        ];
        for change in changes {
            let mut t = tree();
            change(&mut t);
            assert_ne!(merkle(&t), base);
        }
        // Moving a file into a directory is a change even with the same names.
        let moved = vec![
            entry("a", 0o040755, None, None),
            entry("a/b", 0o100644, Some(b"b"), None),
            entry("a/c", 0o120777, None, Some("b")),
            entry("a/d", 0o100755, Some(b"d"), None),
        ];
        assert_ne!(merkle(&moved), base);
        assert_ne!(merkle(&[]), base);
    }
}
