//! Layer tar → directory, safely.
//!
//! [`apply_layer`] unpacks a layer (plain, gzip or zstd: detected from its magic bytes)
//! onto a directory and reports the layer's digests, so the caller can check them against
//! the manifest and the config.
//!
//! Safety rules — nothing outside `dest` is ever created, changed or removed:
//!
//! - Entry names are normalised: leading `/` and `./` dropped (absolute names are rooted
//!   at `dest`), `.` ignored, `..` resolved lexically; a name that climbs above the root is
//!   rejected. Hardlink targets get the same treatment.
//! - Parent directories are resolved one component at a time with `lstat`. A symlink met
//!   there (placed by an earlier entry or an earlier layer) is resolved *inside* `dest`, as
//!   if `dest` were `/`: absolute targets restart at `dest`, `..` stops at `dest` (the
//!   semantics containerd applies, so base images that place files through a symlinked
//!   directory unpack the same). A symlink is never followed by the operating system: the
//!   path handed to it has no symlink component, and the final component is created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` or its equivalent after removing what was there.
//! - Symlink entries are stored verbatim (absolute ones too) and never followed by us
//!   afterwards except by the rooted resolution above.
//! - Metadata is set through file descriptors or `*at(…, AT_SYMLINK_NOFOLLOW)` calls.
//!
//! Whiteouts (`.wh.<name>`, `.wh..wh..opq`) either delete from `dest` (a merged view;
//! per the OCI spec they never delete what the same layer created) or, for a layer kept as
//! its own overlay lowerdir, become overlayfs whiteouts (0:0 character devices) and opaque
//! markers (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, CWD};

use crate::compression::{self, CompressionKind};
use crate::digest::{Digest, HashingReader};
use crate::tar_format::read::{TarEntry, TarReader};

use super::{xattr, OPAQUE_WHITEOUT, WHITEOUT_META_PREFIX, WHITEOUT_PREFIX};

const MAX_SYMLINK_HOPS: usize = 40;
const COPY_BUFFER: usize = 256 * 1024;

/// Errors applying a layer. `entry` is the entry's name as found in the tar.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The destination is missing or not a directory.
    #[error("destination {path} is not a directory")]
    Destination {
        /// The destination given.
        path: PathBuf,
    },
    /// The stream is not a readable (compressed) tar.
    #[error("cannot read layer stream{}: {source}", after_entry(.after))]
    Read {
        /// The last entry read successfully, if any.
        after: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A name that climbs out of the destination (`../x`).
    #[error("entry {entry:?} escapes the destination directory")]
    Escape {
        /// The entry name.
        entry: String,
    },
    /// A hardlink whose target climbs out of the destination.
    #[error("hardlink {entry:?} points outside the destination: {target:?}")]
    HardlinkEscape {
        /// The entry name.
        entry: String,
        /// The link target as written in the tar.
        target: String,
    },
    /// A hardlink whose target does not exist (or is a directory).
    #[error("hardlink {entry:?} points to {target:?}, which is not an existing file")]
    HardlinkTarget {
        /// The entry name.
        entry: String,
        /// The link target as written in the tar.
        target: String,
    },
    /// A parent component of the entry exists and is not a directory.
    #[error("entry {entry:?}: parent {parent} is not a directory")]
    NotADirectory {
        /// The entry name.
        entry: String,
        /// The offending component, relative to the destination.
        parent: PathBuf,
    },
    /// Too many symlinks while resolving a parent.
    #[error("entry {entry:?}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The entry name.
        entry: String,
    },
    /// A name that cannot be created (empty, `.wh.` alone, non-directory root, NUL).
    #[error("entry {entry:?} has an invalid name")]
    InvalidName {
        /// The entry name.
        entry: String,
    },
    /// A tar entry type a layer cannot contain.
    #[error("entry {entry:?} has unsupported type {kind:?}")]
    UnsupportedType {
        /// The entry name.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
    /// A filesystem operation failed.
    #[error("cannot {action} {path} (entry {entry:?}): {source}")]
    Io {
        /// The entry name.
        entry: String,
        /// What was being done (`create file`, `set owner of`…).
        action: &'static str,
        /// The path on disk.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn after_entry(after: &Option<String>) -> String {
    match after {
        Some(name) => format!(" after entry {name:?}"),
        None => String::new(),
    }
}

/// What whiteouts become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Delete the named paths from `dest` (dest is a merged root filesystem).
    #[default]
    Delete,
    /// Create overlayfs markers with `trusted.overlay.*` (dest is one layer of an overlay).
    Overlay,
    /// Create overlayfs markers with `user.overlay.*` (rootless overlay, `userxattr`).
    OverlayUserXattr,
}

/// How to apply a layer.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// What whiteouts become.
    pub whiteouts: WhiteoutMode,
    /// Set owners from the tar (needs root; default: when running as root).
    pub preserve_owner: bool,
    /// Set extended attributes from the tar (`EPERM`/`ENOTSUP` are counted, not fatal).
    pub xattrs: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::default(),
            preserve_owner: rustix::process::geteuid().is_root(),
            xattrs: true,
        }
    }
}

/// What was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLayer {
    /// Compression found in the stream.
    pub compression: CompressionKind,
    /// sha256 of the stream as read (the blob digest).
    pub digest: Digest,
    /// Bytes read from the stream.
    pub size: u64,
    /// sha256 of the uncompressed tar (the diff ID).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Tar entries processed.
    pub entries: u64,
    /// Extended attributes that could not be set (`EPERM`, `ENOTSUP`) or were refused
    /// (overlayfs' private ones).
    pub skipped_xattrs: u64,
}

/// Unpacks the layer read from `reader` onto `dest`.
///
/// Blocking and CPU/IO-heavy: run it on a blocking thread or rayon. The whole stream is
/// read (past the end-of-archive blocks), so the returned digests cover every byte.
pub fn apply_layer<R: Read>(
    reader: R,
    dest: &Path,
    options: &ApplyOptions,
) -> Result<AppliedLayer, ApplyError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {}
        _ => {
            return Err(ApplyError::Destination {
                path: dest.to_owned(),
            })
        }
    }
    let mut raw = HashingReader::new(reader);
    let read_error = |after: Option<String>| move |source| ApplyError::Read { after, source };
    let (compression, decoded) = compression::decompress(&mut raw).map_err(read_error(None))?;
    let mut plain = HashingReader::new(decoded);
    let mut applier = Applier {
        dest: dest.to_owned(),
        options,
        created: HashSet::new(),
        directories: Vec::new(),
        parent_cache: None,
        entries: 0,
        skipped_xattrs: 0,
        buffer: vec![0; COPY_BUFFER],
    };
    let mut tar = TarReader::new(&mut plain);
    let mut last: Option<String> = None;
    while let Some(entry) = tar.next_entry().map_err(read_error(last.clone()))? {
        let name = String::from_utf8_lossy(&entry.name).into_owned();
        applier.apply(&mut tar, &entry, &name)?;
        last = Some(name);
    }
    applier.finish_directories()?;
    plain.drain().map_err(read_error(None))?;
    let (decoded, diff_id, uncompressed_size) = plain.finish();
    drop(decoded);
    raw.drain().map_err(read_error(None))?;
    let (_, digest, size) = raw.finish();
    Ok(AppliedLayer {
        compression,
        digest,
        size,
        diff_id,
        uncompressed_size,
        entries: applier.entries,
        skipped_xattrs: applier.skipped_xattrs,
    })
}

/// Metadata of one entry, from its header and PAX records.
struct EntryMeta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct Applier<'a> {
    dest: PathBuf,
    options: &'a ApplyOptions,
    /// Paths this layer created (whiteouts never remove them).
    created: HashSet<PathBuf>,
    /// Directories whose mode and times are set at the end (after their children exist).
    directories: Vec<(PathBuf, String, u32, (i64, u32))>,
    /// The last resolved parent: (normalised components, real path).
    parent_cache: Option<(Vec<Vec<u8>>, PathBuf)>,
    entries: u64,
    skipped_xattrs: u64,
    buffer: Vec<u8>,
}

impl Applier<'_> {
    fn apply<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        entry: &TarEntry,
        name: &str,
    ) -> Result<(), ApplyError> {
        self.entries += 1;
        let components = normalize(&entry.name).ok_or_else(|| ApplyError::Escape {
            entry: name.to_owned(),
        })?;
        let entry_type = entry.kind;

        let Some((base, parent)) = components.split_last() else {
            // The root itself ("./"): only a directory may describe it.
            if entry_type.is_dir() {
                let meta = entry_meta(entry);
                let dest = self.dest.clone();
                self.set_metadata(&dest, name, &meta, None, true)?;
                return Ok(());
            }
            return Err(ApplyError::InvalidName {
                entry: name.to_owned(),
            });
        };

        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if base == OPAQUE_WHITEOUT.as_bytes() {
                return self.opaque(parent, name);
            }
            if base.starts_with(WHITEOUT_META_PREFIX.as_bytes()) {
                return Ok(()); // aufs metadata (.wh..wh.plnk, …): not content
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(ApplyError::InvalidName {
                    entry: name.to_owned(),
                });
            }
            return self.whiteout(parent, hidden, name);
        }

        let meta = entry_meta(entry);
        let parent_dir =
            self.resolve(parent, true, name)?
                .ok_or_else(|| ApplyError::InvalidName {
                    entry: name.to_owned(),
                })?;
        let target = parent_dir.join(OsStr::from_bytes(base));
        let io_error = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| ApplyError::Io {
                entry: name.to_owned(),
                action,
                path,
                source,
            }
        };

        use tar::EntryType as T;
        match entry_type {
            T::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(existing) if existing.is_dir() => {}
                    Ok(_) => {
                        self.remove(&target, name)?;
                        fs::create_dir(&target).map_err(io_error("create directory", &target))?;
                    }
                    Err(_) => {
                        fs::create_dir(&target).map_err(io_error("create directory", &target))?;
                    }
                }
                self.invalidate_parent_cache();
                self.set_metadata(&target, name, &meta, None, true)?;
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.clear(&target, name)?;
                let mut file = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
                    .open(&target)
                    .map_err(io_error("create file", &target))?;
                self.copy_data(tar, &mut file, name, &target)?;
                self.set_metadata(&target, name, &meta, Some(&file), false)?;
            }
            T::Link => {
                let link_text = String::from_utf8_lossy(&entry.link_name).into_owned();
                let source = self.hardlink_source(&entry.link_name, name, &link_text)?;
                if source == target {
                    return Ok(());
                }
                self.clear(&target, name)?;
                fs::hard_link(&source, &target).map_err(io_error("create hardlink", &target))?;
            }
            T::Symlink => {
                self.clear(&target, name)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&entry.link_name), &target)
                    .map_err(io_error("create symlink", &target))?;
                self.invalidate_parent_cache();
                self.set_metadata(&target, name, &meta, None, false)?;
            }
            T::Char | T::Block | T::Fifo => {
                let (file_type, dev) = match entry_type {
                    T::Fifo => (FileType::Fifo, 0),
                    _ => {
                        let (major, minor) = (entry.device_major, entry.device_minor);
                        let kind = if entry_type == T::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (kind, rustix::fs::makedev(major, minor))
                    }
                };
                self.clear(&target, name)?;
                rustix::fs::mknodat(CWD, &target, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(io::Error::from)
                    .map_err(io_error("create device node", &target))?;
                self.set_metadata(&target, name, &meta, None, false)?;
            }
            other => {
                return Err(ApplyError::UnsupportedType {
                    entry: name.to_owned(),
                    kind: other.as_byte() as char,
                })
            }
        }
        self.created.insert(target);
        Ok(())
    }

    fn copy_data<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        file: &mut File,
        name: &str,
        target: &Path,
    ) -> Result<(), ApplyError> {
        loop {
            let n = match tar.data(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ApplyError::Read {
                        after: Some(name.to_owned()),
                        source,
                    })
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|source| ApplyError::Io {
                    entry: name.to_owned(),
                    action: "write file",
                    path: target.to_owned(),
                    source,
                })?;
        }
    }

    /// Sets owner, xattrs, mode and times. Directories get mode and times at the end.
    fn set_metadata(
        &mut self,
        path: &Path,
        name: &str,
        meta: &EntryMeta,
        file: Option<&File>,
        directory: bool,
    ) -> Result<(), ApplyError> {
        let io_error = |action: &'static str| {
            move |source| ApplyError::Io {
                entry: name.to_owned(),
                action,
                path: path.to_owned(),
                source,
            }
        };
        let is_symlink = !directory && file.is_none() && is_symlink(path);
        if self.options.preserve_owner {
            let uid = u32::try_from(meta.uid).unwrap_or(u32::MAX - 1);
            let gid = u32::try_from(meta.gid).unwrap_or(u32::MAX - 1);
            match file {
                Some(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid)),
                None => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
            }
            .map_err(io_error("set owner of"))?;
        }
        if self.options.xattrs {
            for (xattr_name, value) in &meta.xattrs {
                if xattr::is_overlay_private(xattr_name) {
                    self.skipped_xattrs += 1;
                    continue;
                }
                let result = match file {
                    Some(f) => xattr::set_fd(f, xattr_name, value),
                    None => xattr::set(path, xattr_name, value),
                };
                match result {
                    Ok(()) => {}
                    Err(e) if xattr::is_tolerable(&e) => self.skipped_xattrs += 1,
                    Err(e) => return Err(io_error("set extended attributes of")(e)),
                }
            }
        }
        if directory {
            self.directories
                .push((path.to_owned(), name.to_owned(), meta.mode, meta.mtime));
            return Ok(());
        }
        let times = timestamps(meta.mtime);
        match file {
            Some(f) => {
                f.set_permissions(fs::Permissions::from_mode(meta.mode))
                    .map_err(io_error("set mode of"))?;
                let time = system_time(meta.mtime);
                f.set_times(fs::FileTimes::new().set_accessed(time).set_modified(time))
                    .map_err(io_error("set times of"))?;
            }
            None => {
                if !is_symlink {
                    rustix::fs::chmodat(
                        CWD,
                        path,
                        Mode::from_raw_mode(meta.mode),
                        AtFlags::empty(),
                    )
                    .map_err(|e| io_error("set mode of")(e.into()))?;
                }
                rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_error("set times of")(e.into()))?;
            }
        }
        Ok(())
    }

    /// Sets the deferred modes and times of directories, through descriptors opened
    /// without following symlinks (a later entry may have replaced a directory).
    fn finish_directories(&mut self) -> Result<(), ApplyError> {
        for (path, name, mode, mtime) in std::mem::take(&mut self.directories) {
            let fd = match rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(
                    rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR,
                ) => continue,
                Err(e) => {
                    return Err(ApplyError::Io {
                        entry: name,
                        action: "open directory",
                        path,
                        source: e.into(),
                    })
                }
            };
            let result = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .and_then(|()| rustix::fs::futimens(&fd, &timestamps(mtime)));
            if let Err(e) = result {
                return Err(ApplyError::Io {
                    entry: name,
                    action: "set mode and times of",
                    path,
                    source: e.into(),
                });
            }
        }
        Ok(())
    }

    /// Resolves normalised parent components to a real directory inside `dest`, following
    /// symlinks rooted at `dest`. Missing directories are created (mode 0755) when `create`,
    /// else `None` is returned.
    fn resolve(
        &mut self,
        components: &[Vec<u8>],
        create: bool,
        name: &str,
    ) -> Result<Option<PathBuf>, ApplyError> {
        if let Some((cached, path)) = &self.parent_cache {
            if cached.as_slice() == components {
                return Ok(Some(path.clone()));
            }
        }
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = components.iter().cloned().collect();
        let mut hops = 0;
        while let Some(component) = queue.pop_front() {
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let mut path = self.dest.clone();
            for part in &resolved {
                path.push(OsStr::from_bytes(part));
            }
            path.push(OsStr::from_bytes(&component));
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => resolved.push(component),
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ApplyError::SymlinkLoop {
                            entry: name.to_owned(),
                        });
                    }
                    let target = fs::read_link(&path).map_err(|source| ApplyError::Io {
                        entry: name.to_owned(),
                        action: "read symlink",
                        path: path.clone(),
                        source,
                    })?;
                    let target = target.as_os_str().as_bytes();
                    if target.starts_with(b"/") {
                        resolved.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                Ok(_) => {
                    let mut relative = PathBuf::new();
                    for part in resolved.iter().chain(std::iter::once(&component)) {
                        relative.push(OsStr::from_bytes(part));
                    }
                    return Err(ApplyError::NotADirectory {
                        entry: name.to_owned(),
                        parent: relative,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    match fs::create_dir(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(source) => {
                            return Err(ApplyError::Io {
                                entry: name.to_owned(),
                                action: "create directory",
                                path,
                                source,
                            })
                        }
                    }
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o755));
                    resolved.push(component);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    return Err(ApplyError::Io {
                        entry: name.to_owned(),
                        action: "inspect",
                        path,
                        source,
                    })
                }
            }
        }
        let mut path = self.dest.clone();
        for part in &resolved {
            path.push(OsStr::from_bytes(part));
        }
        self.parent_cache = Some((components.to_vec(), path.clone()));
        Ok(Some(path))
    }

    fn invalidate_parent_cache(&mut self) {
        self.parent_cache = None;
    }

    /// The existing file a hardlink entry points to.
    fn hardlink_source(
        &mut self,
        link: &[u8],
        name: &str,
        link_text: &str,
    ) -> Result<PathBuf, ApplyError> {
        let escape = || ApplyError::HardlinkEscape {
            entry: name.to_owned(),
            target: link_text.to_owned(),
        };
        let missing = || ApplyError::HardlinkTarget {
            entry: name.to_owned(),
            target: link_text.to_owned(),
        };
        let components = normalize(link).ok_or_else(escape)?;
        let (base, parent) = components.split_last().ok_or_else(missing)?;
        let saved = self.parent_cache.take();
        let parent_dir = self.resolve(parent, false, name)?;
        self.parent_cache = saved;
        let source = parent_dir
            .ok_or_else(missing)?
            .join(OsStr::from_bytes(base));
        match fs::symlink_metadata(&source) {
            Ok(meta) if !meta.is_dir() => Ok(source),
            _ => Err(missing()),
        }
    }

    /// Removes whatever is at `path` (a directory recursively, without following links).
    fn remove(&mut self, path: &Path, name: &str) -> Result<(), ApplyError> {
        self.invalidate_parent_cache();
        let result = match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        result.map_err(|source| ApplyError::Io {
            entry: name.to_owned(),
            action: "remove",
            path: path.to_owned(),
            source,
        })
    }

    /// Makes room for a new non-directory entry at `path`.
    fn clear(&mut self, path: &Path, name: &str) -> Result<(), ApplyError> {
        match fs::symlink_metadata(path) {
            Ok(_) => self.remove(path, name),
            Err(_) => Ok(()),
        }
    }

    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        hidden: &[u8],
        name: &str,
    ) -> Result<(), ApplyError> {
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                let Some(dir) = self.resolve(parent, false, name)? else {
                    return Ok(());
                };
                let path = dir.join(OsStr::from_bytes(hidden));
                if !self.created.contains(&path) {
                    self.remove(&path, name)?;
                }
            }
            WhiteoutMode::Overlay | WhiteoutMode::OverlayUserXattr => {
                let dir =
                    self.resolve(parent, true, name)?
                        .ok_or_else(|| ApplyError::InvalidName {
                            entry: name.to_owned(),
                        })?;
                let path = dir.join(OsStr::from_bytes(hidden));
                if self.created.contains(&path) {
                    return Ok(());
                }
                self.clear(&path, name)?;
                rustix::fs::mknodat(
                    CWD,
                    &path,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|e| ApplyError::Io {
                    entry: name.to_owned(),
                    action: "create whiteout",
                    path: path.clone(),
                    source: e.into(),
                })?;
                self.created.insert(path);
            }
        }
        Ok(())
    }

    fn opaque(&mut self, parent: &[Vec<u8>], name: &str) -> Result<(), ApplyError> {
        match self.options.whiteouts {
            WhiteoutMode::Delete => {
                let Some(dir) = self.resolve(parent, false, name)? else {
                    return Ok(());
                };
                self.invalidate_parent_cache();
                clear_opaque(&dir, &self.created).map_err(|source| ApplyError::Io {
                    entry: name.to_owned(),
                    action: "empty opaque directory",
                    path: dir.clone(),
                    source,
                })
            }
            WhiteoutMode::Overlay | WhiteoutMode::OverlayUserXattr => {
                let dir =
                    self.resolve(parent, true, name)?
                        .ok_or_else(|| ApplyError::InvalidName {
                            entry: name.to_owned(),
                        })?;
                let attribute: &[u8] = if self.options.whiteouts == WhiteoutMode::Overlay {
                    b"trusted.overlay.opaque"
                } else {
                    b"user.overlay.opaque"
                };
                xattr::set(&dir, attribute, b"y").map_err(|source| ApplyError::Io {
                    entry: name.to_owned(),
                    action: "mark opaque",
                    path: dir.clone(),
                    source,
                })
            }
        }
    }
}

/// Removes everything under `dir` that this layer did not create, recursing into kept
/// directories (an opaque directory hides all lower content, at any depth).
fn clear_opaque(dir: &Path, keep: &HashSet<PathBuf>) -> io::Result<()> {
    for child in fs::read_dir(dir)? {
        let child = child?;
        let path = child.path();
        let file_type = child.file_type()?;
        if keep.contains(&path) {
            if file_type.is_dir() {
                clear_opaque(&path, keep)?;
            }
        } else if file_type.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Splits a tar name into components: leading `/` and `.` dropped, `..` applied lexically.
/// `None` when the name climbs above the root or contains a NUL byte.
fn normalize(name: &[u8]) -> Option<Vec<Vec<u8>>> {
    if name.contains(&0) {
        return None;
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            _ => out.push(part.to_vec()),
        }
    }
    Some(out)
}

/// Mode, owner, times and xattrs of an entry.
fn entry_meta(entry: &TarEntry) -> EntryMeta {
    EntryMeta {
        mode: entry.mode & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
        mtime: entry.mtime,
        xattrs: entry.xattrs.clone(),
    }
}

fn system_time((secs, nanos): (i64, u32)) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nanos.into())
    }
}

fn timestamps((secs, nanos): (i64, u32)) -> Timestamps {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: nanos.into(),
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        let n = |s: &str| {
            normalize(s.as_bytes()).map(|v| {
                v.into_iter()
                    .map(|c| String::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(n("./etc/passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(n("/etc//passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(n("a/../b/./c/").unwrap(), ["b", "c"]);
        assert_eq!(n("./").unwrap(), Vec::<String>::new());
        assert!(n("../x").is_none());
        assert!(n("a/../../x").is_none());
        assert!(n("/../etc").is_none());
        assert!(normalize(b"a\0b").is_none());
    }
}
