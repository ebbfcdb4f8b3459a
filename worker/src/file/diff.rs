//! The destination of a file op: a new snapshot diff directory written over the read-only
//! chain of its parent, with overlayfs' on-disk rules.
//!
//! Main types: [`Diff`] (the writer; also a [`SourceFs`] of the merged result, used to
//! resolve paths and read `/etc/passwd`), [`DestDir`] (a directory handle a copy carries
//! while it walks, so each name costs one `lstat` per layer, not one per path component)
//! and [`DestEntry`] (what the merged view shows at a name).
//!
//! What is written, and only that:
//! - a new or changed entry, in the diff;
//! - its parent directories that exist below, copied up first with the lower directory's
//!   mode, owner, xattrs and times (times are put back when the op ends, so overlay shows
//!   an unchanged parent unchanged);
//! - a deletion of something visible below, as a whiteout;
//! - a directory created where a whiteout stood (a directory replaced), marked opaque.
//!
//! Key decision: all writes go through host paths built from in-view paths whose leading
//! components were checked to be directories of the diff itself (never symlinks), and new
//! entries are created exclusively (`O_EXCL`, `mkdirat`, `symlinkat`), so no write can land
//! outside the diff.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, Timestamps, Uid, CWD};

use super::error::FileError;
use super::layered::{Found, LayeredView, Layers};
use super::path::{file_name, parent};
use super::source::{host_lstat, FileKind, SourceFs, Stat, Timespec, Xattr};
use super::{whiteout, xattr};

/// The writable top of a file op's result (see the module docs).
#[derive(Debug)]
pub(crate) struct Diff {
    root: PathBuf,
    lower: LayeredView,
    /// Directories copied up from below: their lower times, put back by [`Diff::finish`].
    restore: HashMap<PathBuf, (Timespec, Timespec)>,
}

/// A directory of the merged destination.
#[derive(Debug, Clone)]
pub(crate) struct DestDir {
    /// Its in-view path.
    pub path: PathBuf,
    /// Whether it exists in the diff.
    pub upper: bool,
    /// The lower layers merged into it; `None` when nothing below shows through.
    pub lower: Option<Layers>,
}

/// What the merged destination shows at one name.
#[derive(Debug, Clone)]
pub(crate) struct DestEntry {
    /// Its in-view path.
    pub path: PathBuf,
    /// The visible entry; `None` when missing.
    pub stat: Option<Stat>,
    /// Whether the visible entry is the diff's.
    pub in_upper: bool,
    /// Whether the diff holds a whiteout here.
    pub whiteout: bool,
    /// Whether the diff's directory here is opaque.
    pub opaque: bool,
    /// The entry below, when the lower layers show through the parent.
    pub below: Option<Found>,
}

impl DestEntry {
    /// Whether a directory is visible here.
    pub fn is_dir(&self) -> bool {
        self.stat.is_some_and(|s| s.is_dir())
    }

    /// The handle of the visible directory.
    pub fn as_dir(&self) -> Option<DestDir> {
        if !self.is_dir() {
            return None;
        }
        let below_dir = self.below.as_ref().and_then(|f| f.dir_layers.clone());
        Some(DestDir {
            path: self.path.clone(),
            upper: self.in_upper,
            lower: if self.in_upper && self.opaque {
                None
            } else {
                below_dir
            },
        })
    }
}

fn enotdir() -> io::Error {
    io::Error::from(rustix::io::Errno::NOTDIR)
}

fn enoent() -> io::Error {
    io::Error::from(rustix::io::Errno::NOENT)
}

impl Diff {
    /// Opens the writer on an empty diff directory stacked on `lower`. The diff's root
    /// takes the lower root's mode, owner and xattrs (overlay shows the upper root's).
    pub fn new(root: PathBuf, lower: LayeredView) -> Result<Diff, FileError> {
        let mut diff = Diff {
            root,
            lower,
            restore: HashMap::new(),
        };
        let top = Path::new("");
        if let Some(found) = diff
            .lower
            .lookup(top)
            .map_err(FileError::at("lstat", top))?
        {
            diff.take_metadata(top, &found)?;
        }
        Ok(diff)
    }

    /// Puts back the times of copied-up directories (deepest first, so a parent's time is
    /// not disturbed after it is set).
    pub fn finish(mut self) -> Result<(), FileError> {
        let mut dirs: Vec<(PathBuf, (Timespec, Timespec))> = self.restore.drain().collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        for (path, (atime, mtime)) in dirs {
            match self.utimes(&path, atime, mtime) {
                Err(FileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The host path of an in-view path in the diff.
    pub fn host(&self, path: &Path) -> PathBuf {
        if path.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }

    /// The root directory.
    pub fn root_dir(&self) -> DestDir {
        DestDir {
            path: PathBuf::new(),
            upper: true,
            lower: self.lower.root_layers(),
        }
    }

    /// What the merged view shows at `name` in `dir`.
    pub fn child(&self, dir: &DestDir, name: &OsStr) -> io::Result<DestEntry> {
        let path = dir.path.join(name);
        let upper = if dir.upper {
            host_lstat(&self.host(&path))?
        } else {
            None
        };
        let below = match &dir.lower {
            Some(layers) => self.lower.lookup_in(layers, &path)?,
            None => None,
        };
        Ok(match upper {
            Some(stat) if stat.is_whiteout() => DestEntry {
                path,
                stat: None,
                in_upper: false,
                whiteout: true,
                opaque: false,
                below,
            },
            Some(stat) => {
                let opaque = stat.is_dir() && whiteout::is_opaque(&self.host(&path))?;
                DestEntry {
                    path,
                    stat: Some(stat),
                    in_upper: true,
                    whiteout: false,
                    opaque,
                    below,
                }
            }
            None => DestEntry {
                path,
                stat: below.as_ref().map(|f| f.stat),
                in_upper: false,
                whiteout: false,
                opaque: false,
                below,
            },
        })
    }

    /// The merged entry at `path` (`Ok(None)` when it or a parent is missing; an error
    /// `NotADirectory` when a parent is not a directory).
    pub fn entry(&self, path: &Path) -> io::Result<Option<DestEntry>> {
        let mut dir = self.root_dir();
        let mut names = path.iter().peekable();
        if names.peek().is_none() {
            let stat = host_lstat(&self.root)?;
            return Ok(Some(DestEntry {
                path: PathBuf::new(),
                stat,
                in_upper: true,
                whiteout: false,
                opaque: false,
                below: self.lower.lookup(Path::new(""))?,
            }));
        }
        while let Some(name) = names.next() {
            let entry = self.child(&dir, name)?;
            if names.peek().is_none() {
                return Ok(Some(entry).filter(|e| e.stat.is_some()));
            }
            match entry.stat {
                None => return Ok(None),
                Some(s) if !s.is_dir() => return Err(enotdir()),
                Some(_) => dir = entry.as_dir().ok_or_else(enotdir)?,
            }
        }
        Ok(None)
    }

    /// The handle of directory `path`.
    pub fn dir(&self, path: &Path) -> Result<DestDir, FileError> {
        match self.entry(path).map_err(FileError::at("lstat", path))? {
            Some(e) => e
                .as_dir()
                .ok_or_else(|| FileError::io("lstat", path, enotdir())),
            None => Err(FileError::io("lstat", path, enoent())),
        }
    }

    /// Makes sure `dir` (and so its parents) exists in the diff, copying directories up.
    pub fn ensure_upper(&mut self, dir: &mut DestDir) -> Result<(), FileError> {
        if dir.upper {
            return Ok(());
        }
        let mut current = self.root_dir();
        for name in dir.path.iter() {
            let entry = self
                .child(&current, name)
                .map_err(FileError::at("lstat", &current.path.join(name)))?;
            let mut next = entry
                .as_dir()
                .ok_or_else(|| FileError::io("mkdir", &entry.path, enotdir()))?;
            if !entry.in_upper {
                let found = entry
                    .below
                    .as_ref()
                    .ok_or_else(|| FileError::io("mkdir", &entry.path, enoent()))?;
                let host = self.host(&entry.path);
                rustix::fs::mkdirat(CWD, &host, Mode::from_raw_mode(0o700))
                    .map_err(|e| FileError::io("mkdir", &entry.path, e.into()))?;
                self.take_metadata(&entry.path, found)?;
                next.upper = true;
            }
            current = next;
        }
        dir.upper = true;
        Ok(())
    }

    /// Gives a copied-up directory its lower twin's owner, mode and xattrs, and remembers
    /// its times for [`Diff::finish`].
    fn take_metadata(&mut self, path: &Path, found: &Found) -> Result<(), FileError> {
        let stat = found.stat;
        self.chown(path, stat.uid, stat.gid)?;
        self.chmod(path, stat.mode)?;
        let lower_host = self.lower.host(found.layer, path);
        let xattrs = xattr::read_content(&lower_host).map_err(FileError::at("llistxattr", path))?;
        xattr::write_best_effort(&self.host(path), &xattrs);
        self.restore
            .insert(path.to_path_buf(), (stat.atime, stat.mtime));
        Ok(())
    }

    /// Frees `name` in `dir` for a new entry: the diff's own entry there (a whiteout, a
    /// file, a directory tree) is removed. Returns whether something below would show
    /// through a new directory (so it must be opaque).
    fn clear_slot(&mut self, dir: &mut DestDir, name: &OsStr) -> Result<bool, FileError> {
        self.clear_slot_known(dir, name, None)
    }

    /// [`Self::clear_slot`], skipping the lookups `known` (the entry as the caller just
    /// looked it up) already answers.
    fn clear_slot_known(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        known: Option<&DestEntry>,
    ) -> Result<bool, FileError> {
        self.ensure_upper(dir)?;
        if let Some(entry) = known.filter(|e| !e.in_upper && !e.whiteout) {
            // Nothing of the diff's own is there.
            return Ok(entry.below.is_some());
        }
        let path = dir.path.join(name);
        let host = self.host(&path);
        let mut hides = false;
        match host_lstat(&host).map_err(FileError::at("lstat", &path))? {
            None => {}
            Some(stat) if stat.is_dir() => {
                std::fs::remove_dir_all(&host).map_err(FileError::at("unlinkat", &path))?;
                self.forget_under(&path);
            }
            Some(stat) => {
                hides = stat.is_whiteout();
                std::fs::remove_file(&host).map_err(FileError::at("unlinkat", &path))?;
            }
        }
        if !hides {
            if let Some(layers) = &dir.lower {
                hides = self
                    .lower
                    .lookup_in(layers, &path)
                    .map_err(FileError::at("lstat", &path))?
                    .is_some();
            }
        }
        Ok(hides)
    }

    /// Creates directory `name` in `dir` with `mode` (exactly; no umask).
    pub fn create_dir(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        mode: u32,
    ) -> Result<DestDir, FileError> {
        let hides = self.clear_slot(dir, name)?;
        let path = dir.path.join(name);
        let host = self.host(&path);
        rustix::fs::mkdirat(CWD, &host, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| FileError::io("mkdir", &path, e.into()))?;
        self.chmod(&path, mode)?;
        if hides {
            whiteout::set_opaque(&host).map_err(FileError::at("setxattr", &path))?;
        }
        Ok(DestDir {
            path,
            upper: true,
            lower: None,
        })
    }

    /// Creates regular file `name` in `dir`, open for writing.
    pub fn create_file(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        mode: u32,
    ) -> Result<File, FileError> {
        self.create_file_known(dir, name, mode, None)
    }

    /// [`Self::create_file`] where the caller has just looked the name up (`known`).
    pub fn create_file_known(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        mode: u32,
        known: Option<&DestEntry>,
    ) -> Result<File, FileError> {
        self.clear_slot_known(dir, name, known)?;
        let path = dir.path.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.host(&path))
            .map_err(FileError::at("open", &path))
    }

    /// Opens existing regular file `path` of the diff for rewriting (truncated).
    pub fn rewrite_file(&self, path: &Path) -> Result<File, FileError> {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.host(path))
            .map_err(FileError::at("open", path))
    }

    /// Creates symlink `name` in `dir` pointing at `target`.
    pub fn symlink(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        target: &Path,
    ) -> Result<(), FileError> {
        self.clear_slot(dir, name)?;
        let path = dir.path.join(name);
        rustix::fs::symlinkat(target, CWD, self.host(&path))
            .map_err(|e| FileError::io("symlink", &path, e.into()))
    }

    /// Creates a device node, fifo, or (for a socket, as BuildKit copies one) an empty
    /// regular file. A 0:0 character device is a whiteout on overlay, exactly as it is
    /// when BuildKit creates one through its overlay mount.
    pub fn mknod(
        &mut self,
        dir: &mut DestDir,
        name: &OsStr,
        kind: FileKind,
        mode: u32,
        rdev: u64,
    ) -> Result<(), FileError> {
        self.clear_slot(dir, name)?;
        let path = dir.path.join(name);
        let (file_type, dev) = match kind {
            FileKind::CharDevice => (FileType::CharacterDevice, rdev),
            FileKind::BlockDevice => (FileType::BlockDevice, rdev),
            FileKind::Fifo => (FileType::Fifo, 0),
            _ => (FileType::RegularFile, 0),
        };
        rustix::fs::mknodat(
            CWD,
            self.host(&path),
            file_type,
            Mode::from_raw_mode(mode & 0o7777),
            dev,
        )
        .map_err(|e| FileError::io("mknod", &path, e.into()))
    }

    /// Creates `name` in `dir` as a hard link to `existing` (an entry of the diff).
    pub fn hard_link(
        &mut self,
        existing: &Path,
        dir: &mut DestDir,
        name: &OsStr,
    ) -> Result<(), FileError> {
        self.clear_slot(dir, name)?;
        let path = dir.path.join(name);
        rustix::fs::linkat(
            CWD,
            self.host(existing),
            CWD,
            self.host(&path),
            AtFlags::empty(),
        )
        .map_err(|e| FileError::io("link", &path, e.into()))
    }

    /// Removes whatever the merged view shows at `name` in `dir` (`rm -rf`): the diff's
    /// entry goes, and a whiteout hides anything below.
    pub fn remove(&mut self, dir: &mut DestDir, name: &OsStr) -> Result<(), FileError> {
        let entry = self
            .child(dir, name)
            .map_err(FileError::at("lstat", &dir.path.join(name)))?;
        if entry.stat.is_none() {
            return Ok(());
        }
        let host = self.host(&entry.path);
        if entry.in_upper {
            if entry.is_dir() {
                std::fs::remove_dir_all(&host).map_err(FileError::at("unlinkat", &entry.path))?;
                self.forget_under(&entry.path);
            } else {
                std::fs::remove_file(&host).map_err(FileError::at("unlinkat", &entry.path))?;
            }
        }
        if entry.below.is_some() {
            self.ensure_upper(dir)?;
            whiteout::create(&host).map_err(FileError::at("mknod", &entry.path))?;
        }
        Ok(())
    }

    /// Makes sure the visible entry at `path` (a file, symlink or directory) is the diff's
    /// own, copying a lower one up (contents, owner, mode, times, xattrs) — what overlay
    /// does before changing an entry's metadata or linking to it.
    pub fn copy_up(&mut self, entry: &DestEntry) -> Result<(), FileError> {
        if entry.in_upper {
            return Ok(());
        }
        let Some(found) = &entry.below else {
            return Err(FileError::io("lstat", &entry.path, enoent()));
        };
        let path = entry.path.clone();
        let name = file_name(&path).ok_or_else(|| FileError::io("lstat", &path, enoent()))?;
        let mut dir = self.dir(parent(&path))?;
        let stat = found.stat;
        let lower_host = self.lower.host(found.layer, &path);
        match stat.kind {
            FileKind::Dir => {
                self.ensure_upper(&mut dir)?;
                rustix::fs::mkdirat(CWD, self.host(&path), Mode::from_raw_mode(0o700))
                    .map_err(|e| FileError::io("mkdir", &path, e.into()))?;
                self.take_metadata(&path, found)?;
                return Ok(());
            }
            FileKind::File => {
                let mut src = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&lower_host)
                    .map_err(FileError::at("open", &path))?;
                let mut dst = self.create_file(&mut dir, name, 0o600)?;
                io::copy(&mut src, &mut dst).map_err(|source| FileError::CopyContent {
                    path: super::path::display(&path),
                    source,
                })?;
            }
            FileKind::Symlink => {
                let target =
                    std::fs::read_link(&lower_host).map_err(FileError::at("readlink", &path))?;
                self.symlink(&mut dir, name, &target)?;
            }
            kind => self.mknod(&mut dir, name, kind, stat.mode, stat.rdev)?,
        }
        self.chown(&path, stat.uid, stat.gid)?;
        if stat.kind != FileKind::Symlink {
            self.chmod(&path, stat.mode)?;
        }
        let xattrs =
            xattr::read_content(&lower_host).map_err(FileError::at("llistxattr", &path))?;
        xattr::write_best_effort(&self.host(&path), &xattrs);
        self.utimes(&path, stat.atime, stat.mtime)
    }

    /// Forgets copied-up directories at or under a removed `path`.
    fn forget_under(&mut self, path: &Path) {
        if !self.restore.is_empty() {
            self.restore.retain(|p, _| !p.starts_with(path));
        }
    }

    /// `lchown` of a diff entry.
    pub fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), FileError> {
        // `-1` (all ones) leaves an id unchanged, as lchown(2) defines it.
        let uid = (uid != u32::MAX).then(|| Uid::from_raw(uid));
        let gid = (gid != u32::MAX).then(|| Gid::from_raw(gid));
        rustix::fs::chownat(CWD, self.host(path), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FileError::io("lchown", path, e.into()))
    }

    /// `chmod` of a diff entry (never a symlink), set-id and sticky bits included.
    pub fn chmod(&self, path: &Path, mode: u32) -> Result<(), FileError> {
        std::fs::set_permissions(
            self.host(path),
            std::fs::Permissions::from_mode(mode & 0o7777),
        )
        .map_err(FileError::at("chmod", path))
    }

    /// Sets both times of a diff entry (not following a symlink). An explicit time wins
    /// over a copied-up directory's restored one.
    pub fn utimes(
        &mut self,
        path: &Path,
        atime: Timespec,
        mtime: Timespec,
    ) -> Result<(), FileError> {
        self.restore.remove(path);
        let times = Timestamps {
            last_access: atime.to_rustix(),
            last_modification: mtime.to_rustix(),
        };
        rustix::fs::utimensat(CWD, self.host(path), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FileError::io("utimes", path, e.into()))
    }

    /// Sets xattrs on a diff entry, best effort.
    pub fn set_xattrs(&self, path: &Path, xattrs: &[Xattr]) {
        if !xattrs.is_empty() {
            xattr::write_best_effort(&self.host(path), xattrs);
        }
    }

    /// The content xattrs of the visible entry at `path` (none when unreadable).
    pub fn xattrs_of(&self, path: &Path) -> Vec<Xattr> {
        SourceFs::xattrs(self, path).unwrap_or_default()
    }

    fn found(&self, path: &Path) -> io::Result<DestEntry> {
        self.entry(path)?.ok_or_else(enoent)
    }

    /// The host path holding the visible entry at `path`.
    fn visible_host(&self, entry: &DestEntry) -> io::Result<PathBuf> {
        if entry.in_upper {
            return Ok(self.host(&entry.path));
        }
        match &entry.below {
            Some(found) => Ok(self.lower.host(found.layer, &entry.path)),
            None => Err(enoent()),
        }
    }
}

impl SourceFs for Diff {
    fn lstat(&self, path: &Path) -> io::Result<Option<Stat>> {
        Ok(self.entry(path)?.and_then(|e| e.stat))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let entry = self.found(path)?;
        let dir = entry.as_dir().ok_or_else(enotdir)?;
        // Names the diff decides: its entries, and its whiteouts (hidden).
        let mut upper: HashMap<OsString, bool> = HashMap::new();
        if dir.upper {
            for e in std::fs::read_dir(self.host(path))? {
                let e = e?;
                let whiteout = host_lstat(&e.path())?.is_some_and(|s| s.is_whiteout());
                upper.insert(e.file_name(), !whiteout);
            }
        }
        let mut names: Vec<OsString> = Vec::new();
        if let Some(layers) = &dir.lower {
            for name in self.lower.read_dir_in(layers, path)? {
                if !upper.contains_key(&name) {
                    names.push(name);
                }
            }
        }
        names.extend(
            upper
                .into_iter()
                .filter_map(|(name, visible)| visible.then_some(name)),
        );
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let entry = self.found(path)?;
        std::fs::read_link(self.visible_host(&entry)?)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        let entry = self.found(path)?;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(self.visible_host(&entry)?)
    }

    fn xattrs(&self, path: &Path) -> io::Result<Vec<Xattr>> {
        let entry = self.found(path)?;
        xattr::read_content(&self.visible_host(&entry)?)
    }
}
