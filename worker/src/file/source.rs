//! The read side every copy source shares: the [`SourceFs`] trait and the metadata it
//! returns ([`Stat`]).
//!
//! Role: `COPY`/`ADD` read from two kinds of filesystems — a stage or image (a chain of
//! snapshot diffs, [`super::LayeredView`]) and the build context (the `context` module).
//! Both implement [`SourceFs`], so the copy algorithm is written once, against this trait.
//!
//! Key decision: the trait never resolves symlinks. Every path it receives is relative to
//! the filesystem's root, clean (no `.`, `..` or empty components; the empty path is the
//! root) and names directories only in its leading components. Symlink resolution confined
//! to the root is done once, above the trait, by the file module (`resolve.rs`), so an
//! implementation only has to refuse to traverse a symlink, never to interpret one.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A read-only filesystem that `COPY` can read from: a stage/image snapshot chain, a plain
/// directory, or the build context.
///
/// Paths are relative to the filesystem's root, clean, and never traverse a symlink (the
/// caller resolves links with [`read_link`](Self::read_link) before descending); the empty
/// path is the root. Implementations must be usable from several threads.
pub trait SourceFs: Send + Sync + fmt::Debug {
    /// Metadata of `path`, not following it if it is a symlink. `Ok(None)` when nothing is
    /// there; an error of kind `NotADirectory` when one of its leading components is not a
    /// directory.
    fn lstat(&self, path: &Path) -> io::Result<Option<Stat>>;

    /// The names in directory `path` (without `.` and `..`), sorted by their bytes.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;

    /// The target of symlink `path`, as stored.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;

    /// Opens regular file `path` for reading (never following a final symlink).
    fn open(&self, path: &Path) -> io::Result<File>;

    /// Extended attributes of `path` to carry along with it. The default carries none.
    fn xattrs(&self, path: &Path) -> io::Result<Vec<Xattr>> {
        let _ = path;
        Ok(Vec::new())
    }
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    /// Its name, e.g. `security.capability`.
    pub name: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

/// A point in time with nanoseconds, as file timestamps carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, below one billion.
    pub nsec: u32,
}

impl Timespec {
    /// Whole seconds.
    pub fn from_secs(sec: i64) -> Timespec {
        Timespec { sec, nsec: 0 }
    }

    pub(crate) fn to_rustix(self) -> rustix::fs::Timespec {
        rustix::fs::Timespec {
            tv_sec: self.sec,
            tv_nsec: self.nsec.into(),
        }
    }
}

/// Metadata of one entry: what a copy carries over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its type.
    pub kind: FileKind,
    /// Permission bits with set-uid, set-gid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (regular files and symlinks).
    pub size: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Device number (`makedev(major, minor)`) of a device node.
    pub rdev: u64,
    /// Identity shared by the hard links of one file — `(device, inode)` — when the entry
    /// is not a directory and has more than one link; `None` otherwise.
    pub hardlink: Option<(u64, u64)>,
}

impl Stat {
    /// The metadata std returns for a path (`symlink_metadata`), in this form.
    pub fn from_metadata(meta: &std::fs::Metadata) -> Stat {
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_char_device() {
            FileKind::CharDevice
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else {
            FileKind::File
        };
        let hardlink =
            (kind != FileKind::Dir && meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        Stat {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            atime: timespec(meta.atime(), meta.atime_nsec()),
            mtime: timespec(meta.mtime(), meta.mtime_nsec()),
            rdev: meta.rdev(),
            hardlink,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether it is an overlayfs whiteout: a character device numbered 0:0.
    pub(crate) fn is_whiteout(&self) -> bool {
        self.kind == FileKind::CharDevice && self.rdev == 0
    }
}

fn timespec(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: u32::try_from(nsec).unwrap_or(0),
    }
}

/// `lstat` of a host path in this form; `Ok(None)` when it does not exist.
pub(crate) fn host_lstat(path: &Path) -> io::Result<Option<Stat>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(Stat::from_metadata(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
