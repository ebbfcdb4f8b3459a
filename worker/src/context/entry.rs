//! One entry of the build context: its path, kind, metadata and symlink target.
//!
//! Role: the value the walk produces and everything downstream (checksum, stat cache,
//! COPY) reads. Main types: [`Entry`], [`EntryKind`], [`Metadata`], [`Timestamp`].
//!
//! Key decision: metadata comes from one `statx` taken by the walk (or an `fstat` of the
//! file actually read), kept as plain numbers so it can be compared, stored in the stat
//! cache and hashed without going back to the filesystem.

use std::path::PathBuf;

use rustix::fs::{FileType, Statx};

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed by the walk).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl EntryKind {
    /// The kind encoded in an `st_mode`.
    pub fn from_mode(mode: u32) -> EntryKind {
        match FileType::from_raw_mode(mode) {
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
            FileType::CharacterDevice => EntryKind::CharDevice,
            FileType::BlockDevice => EntryKind::BlockDevice,
            _ => EntryKind::File,
        }
    }

    /// One byte naming the kind in hashes and in the stat cache.
    pub(crate) fn tag(self) -> u8 {
        match self {
            EntryKind::File => b'f',
            EntryKind::Dir => b'd',
            EntryKind::Symlink => b'l',
            EntryKind::Fifo => b'p',
            EntryKind::Socket => b's',
            EntryKind::CharDevice => b'c',
            EntryKind::BlockDevice => b'b',
        }
    }
}

/// A point in time as the filesystem records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

/// An entry's metadata, like [`std::fs::Metadata`] but plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Size in bytes (a symlink's is its target's length).
    pub size: u64,
    /// Owner on the client. Not part of the checksum: BuildKit's client sends every
    /// context file as 0:0.
    pub uid: u32,
    /// Group on the client (see `uid`).
    pub gid: u32,
    /// Last content change.
    pub mtime: Timestamp,
    /// Last inode change (content, mode, owner, links, rename).
    pub ctime: Timestamp,
    /// Inode number.
    pub ino: u64,
    /// Device of the filesystem holding the entry.
    pub dev: u64,
    /// Hard link count.
    pub nlink: u32,
    /// Device number, for device files.
    pub rdev: u64,
}

impl Metadata {
    /// From a `statx` result.
    pub(crate) fn from_statx(st: &Statx) -> Metadata {
        Metadata {
            mode: u32::from(st.stx_mode),
            size: st.stx_size,
            uid: st.stx_uid,
            gid: st.stx_gid,
            mtime: Timestamp {
                sec: st.stx_mtime.tv_sec,
                nsec: st.stx_mtime.tv_nsec,
            },
            ctime: Timestamp {
                sec: st.stx_ctime.tv_sec,
                nsec: st.stx_ctime.tv_nsec,
            },
            ino: st.stx_ino,
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            nlink: st.stx_nlink,
            rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        }
    }

    /// The kind of file.
    pub fn kind(&self) -> EntryKind {
        EntryKind::from_mode(self.mode)
    }

    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == EntryKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == EntryKind::File
    }

    /// Whether this is a symlink.
    pub fn is_symlink(&self) -> bool {
        self.kind() == EntryKind::Symlink
    }

    /// Whether `other` is the same inode, unchanged: what the stat cache requires before it
    /// trusts a stored hash. Size and mtime alone are never enough — a replaced file (new
    /// inode) or a rewritten one whose mtime was reset (new ctime) must be read again.
    pub fn same_file_unchanged(&self, other: &Metadata) -> bool {
        self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.ino == other.ino
            && self.dev == other.dev
            && self.mode == other.mode
    }
}

/// One selected entry of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated, clean, never `.`.
    pub path: String,
    /// Metadata from the walk (`lstat` semantics: a symlink's own).
    pub meta: Metadata,
    /// A symlink's raw target, as stored (not resolved).
    pub link_target: Option<PathBuf>,
    /// A regular file's blake3 content hash, once a checksum has computed it.
    pub content_hash: Option<[u8; 32]>,
}

impl Entry {
    /// The kind of file.
    pub fn kind(&self) -> EntryKind {
        self.meta.kind()
    }

    /// The last path component.
    pub fn name(&self) -> &str {
        self.path.rsplit_once('/').map_or(&self.path, |(_, n)| n)
    }

    /// Number of path components (1 for a top-level entry).
    pub fn depth(&self) -> usize {
        self.path.bytes().filter(|&b| b == b'/').count() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(EntryKind::from_mode(0o040755), EntryKind::Dir);
        assert_eq!(EntryKind::from_mode(0o100644), EntryKind::File);
        assert_eq!(EntryKind::from_mode(0o120777), EntryKind::Symlink);
        let meta = Metadata {
            mode: 0o104755,
            size: 0,
            uid: 0,
            gid: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            ino: 1,
            dev: 1,
            nlink: 1,
            rdev: 0,
        };
        assert_eq!(meta.permissions(), 0o4755);
        let e = Entry {
            path: "a/b/c".into(),
            meta,
            link_target: None,
            content_hash: None,
        };
        assert_eq!((e.name(), e.depth()), ("c", 3));
        let mut other = meta;
        other.ctime.nsec = 1;
        assert!(!meta.same_file_unchanged(&other));
        assert!(meta.same_file_unchanged(&meta));
    }
}
