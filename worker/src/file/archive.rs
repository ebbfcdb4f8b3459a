//! `ADD` of a local archive: a tar (plain, gzip, bzip2, xz or zstd — told by its magic
//! bytes, never by its name) is extracted into the destination instead of being copied.
//!
//! Rules (BuildKit's `unpack` over moby's `chrootarchive.Untar`): the source, symlinks
//! followed, must be a regular file that decompresses and whose first tar header reads;
//! anything else is copied as a file (a `.tar` that is not one, a double-compressed one).
//! The destination is resolved and created (0755, the `--chown` owner). Entries are
//! extracted as in a chroot at the destination directory:
//!
//! - names are cleaned and `..` stops at the destination, so every entry lands inside it;
//!   symlinks on the way resolve inside it too; hard-link targets are looked up inside it
//!   (a target below the diff is copied up first, as overlay does, never linked across);
//! - a missing parent is created 0755, root-owned; an existing entry is replaced, except
//!   that a directory merges into a directory; the root entry (`.`) is skipped;
//! - owner: `--chown` or the header's ids; mode: the header's (set-id and sticky bits kept);
//!   xattrs from PAX `SCHILY.xattr.*` (overlayfs' own refused); times from the header (PAX
//!   nanoseconds kept; out-of-range times become the epoch), directories' at the end;
//! - `--chmod` and `mtime` do not apply to extracted entries, as in BuildKit.
//!
//! Key decision: entries are written through the same diff writer as copies, so a hostile
//! archive can neither escape the destination nor reach a lower layer; errors name the
//! entry.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::diff::Diff;
use super::error::FileError;
use super::mkdir::{mkdir_all, NewDir};
use super::path::{clean_components, display, file_name, parent};
use super::resolve::resolve;
use super::source::{FileKind, SourceFs, Timespec, Xattr};

/// A stream compression, as moby detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Plain tar.
    None,
    /// `1f 8b 08`.
    Gzip,
    /// `BZh`.
    Bzip2,
    /// `fd 37 7a 58 5a 00`.
    Xz,
    /// A zstd frame (`28 b5 2f fd`) or a skippable frame (`5? 2a 4d 18`).
    Zstd,
}

/// The compression `head` (the first bytes of a stream) starts with.
pub(crate) fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x42, 0x5a, 0x68]) {
        Compression::Bzip2
    } else if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.len() >= 8
            && u32::from_le_bytes([head[0], head[1], head[2], head[3]]) & 0xffff_fff0
                == 0x184d_2a50)
    {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// `file` decompressed as its magic bytes say.
fn decompress(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::with_capacity(128 * 1024, file);
    let compression = detect(reader.fill_buf()?);
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// Whether `file` is an archive ADD extracts: it decompresses and a first header reads.
pub(crate) fn is_archive(file: File) -> bool {
    let Ok(reader) = decompress(file) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(_)))
}

/// Extracts source `m` into `dest_path` when it is an archive; `Ok(false)` when it is not
/// (the caller copies it).
pub(crate) fn unpack(
    dest: &mut Diff,
    src: &dyn SourceFs,
    m: &Path,
    dest_path: &str,
    new_dir: NewDir,
) -> Result<bool, FileError> {
    let src_path = resolve(src, Path::new(""), m.as_os_str(), true)?;
    let Ok(Some(stat)) = src.lstat(&src_path) else {
        return Ok(false);
    };
    if stat.kind != FileKind::File {
        return Ok(false);
    }
    let Ok(file) = src.open(&src_path) else {
        return Ok(false);
    };
    if !is_archive(file) {
        return Ok(false);
    }
    let root = resolve(dest, Path::new(""), OsStr::new(dest_path), true)?;
    mkdir_all(dest, &root, new_dir)?;
    let file = src
        .open(&src_path)
        .map_err(FileError::at("open", &src_path))?;
    let mut extractor = Extractor {
        dest,
        root,
        archive: display(&src_path),
        owner: new_dir.owner.map(|ids| (ids.uid, ids.gid)),
        dirs: Vec::new(),
    };
    extractor.run(file)?;
    Ok(true)
}

struct Extractor<'d> {
    dest: &'d mut Diff,
    /// The extraction directory: the "chroot".
    root: PathBuf,
    archive: String,
    owner: Option<(u32, u32)>,
    /// Directories extracted, with their times, set last.
    dirs: Vec<(PathBuf, Timespec, Timespec)>,
}

/// What one entry asks for, read from its header.
struct Meta {
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Timespec,
    mtime: Timespec,
    rdev: u64,
    link: Option<Vec<u8>>,
    xattrs: Vec<Xattr>,
}

impl Extractor<'_> {
    fn read_err(&self, source: io::Error) -> FileError {
        FileError::ArchiveRead {
            archive: self.archive.clone(),
            source,
        }
    }

    fn entry_err(&self, entry: &[u8], reason: impl std::fmt::Display) -> FileError {
        FileError::ArchiveEntry {
            archive: self.archive.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.to_string(),
        }
    }

    fn run(&mut self, file: File) -> Result<(), FileError> {
        let reader = decompress(file).map_err(|e| self.read_err(e))?;
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| self.read_err(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.read_err(e))?;
            let name = entry.path_bytes().into_owned();
            let meta = self.meta(&mut entry).map_err(|e| self.read_err(e))?;
            if meta.kind == tar::EntryType::XGlobalHeader {
                continue;
            }
            self.extract(&name, &meta, &mut entry)
                .map_err(|e| match e {
                    FileError::Io { .. } | FileError::CopyContent { .. } => {
                        self.entry_err(&name, e)
                    }
                    other => other,
                })?;
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (path, atime, mtime) in dirs {
            self.dest.utimes(&path, atime, mtime)?;
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode()? & 0o7777;
        let uid = u32::try_from(header.uid()?).unwrap_or(u32::MAX);
        let gid = u32::try_from(header.gid()?).unwrap_or(u32::MAX);
        let mut mtime = Timespec::from_secs(i64::try_from(header.mtime()?).unwrap_or(-1));
        let mut atime = None;
        // Device numbers only mean something for devices (Go reads an empty field as 0).
        let rdev = if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            rustix::fs::makedev(major, minor)
        } else {
            0
        };
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax {
                let ext = ext?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push(Xattr {
                        name: name.to_vec(),
                        value: ext.value_bytes().to_vec(),
                    });
                } else if key == b"mtime" {
                    if let Some(t) = pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if key == b"atime" {
                    atime = pax_time(ext.value_bytes());
                }
            }
        }
        let atime = bound(atime.map_or(mtime, |a| a.max(mtime)));
        Ok(Meta {
            kind,
            mode,
            uid,
            gid,
            atime,
            mtime: bound(mtime),
            rdev,
            link,
            xattrs,
        })
    }

    fn extract<R: Read>(
        &mut self,
        raw_name: &[u8],
        meta: &Meta,
        data: &mut R,
    ) -> Result<(), FileError> {
        let components = clean_components(raw_name);
        if components.is_empty() {
            // `.`: the destination itself, left as it is.
            return Ok(());
        }
        let rel: PathBuf = components.iter().collect();
        // Parents resolve inside the destination, as in a chroot there.
        let parent_rel = parent(&rel);
        let parent_path = resolve(self.dest, &self.root, parent_rel.as_os_str(), true)?;
        let parent_exists = self
            .dest
            .entry(&parent_path)
            .map_err(FileError::at("lstat", &parent_path))?
            .is_some();
        if !parent_exists {
            let implied = NewDir {
                mode: 0o755,
                owner: None,
                time: None,
            };
            mkdir_all(self.dest, &parent_path, implied)?;
        }
        let name = file_name(&rel)
            .unwrap_or_else(|| OsStr::new(""))
            .to_os_string();
        let path = parent_path.join(&name);
        let mut dir = self.dest.dir(&parent_path)?;

        let existing = self
            .dest
            .child(&dir, &name)
            .map_err(FileError::at("lstat", &path))?;
        let is_dir_entry = meta.kind == tar::EntryType::Directory;
        if existing.stat.is_some() && !(existing.is_dir() && is_dir_entry) {
            self.dest.remove(&mut dir, &name)?;
        }

        match meta.kind {
            tar::EntryType::Directory => {
                if existing.is_dir() {
                    // Merge: the existing directory takes the entry's metadata.
                    let mut handle = existing.as_dir().ok_or_else(|| {
                        FileError::io("mkdir", &path, io::Error::from(rustix::io::Errno::NOTDIR))
                    })?;
                    self.dest.ensure_upper(&mut handle)?;
                } else {
                    self.dest.create_dir(&mut dir, &name, meta.mode)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::GNUSparse => {
                let mut file = self.dest.create_file(&mut dir, &name, meta.mode & 0o777)?;
                io::copy(data, &mut file).map_err(|source| FileError::CopyContent {
                    path: display(&path),
                    source,
                })?;
            }
            tar::EntryType::Char => {
                self.dest
                    .mknod(&mut dir, &name, FileKind::CharDevice, meta.mode, meta.rdev)?
            }
            tar::EntryType::Block => {
                self.dest
                    .mknod(&mut dir, &name, FileKind::BlockDevice, meta.mode, meta.rdev)?
            }
            tar::EntryType::Fifo => {
                self.dest
                    .mknod(&mut dir, &name, FileKind::Fifo, meta.mode, 0)?
            }
            tar::EntryType::Symlink => {
                let target = meta.link.clone().unwrap_or_default();
                self.dest
                    .symlink(&mut dir, &name, Path::new(OsStr::from_bytes(&target)))?;
            }
            tar::EntryType::Link => {
                let target = meta.link.clone().unwrap_or_default();
                // Looked up inside the destination, never following the last link.
                let target = resolve(self.dest, &self.root, OsStr::from_bytes(&target), false)?;
                let Some(entry) = self
                    .dest
                    .entry(&target)
                    .map_err(FileError::at("link", &target))?
                else {
                    return Err(FileError::io(
                        "link",
                        &target,
                        io::Error::from(rustix::io::Errno::NOENT),
                    ));
                };
                if entry.is_dir() {
                    return Err(FileError::io(
                        "link",
                        &target,
                        io::Error::from(rustix::io::Errno::PERM),
                    ));
                }
                self.dest.copy_up(&entry)?;
                let mut dir = self.dest.dir(&parent_path)?;
                self.dest.hard_link(&target, &mut dir, &name)?;
                let target_is_link = entry.stat.is_some_and(|s| s.kind == FileKind::Symlink);
                self.finish(&path, meta, !target_is_link)?;
                return Ok(());
            }
            other => {
                return Err(FileError::ArchiveEntry {
                    archive: self.archive.clone(),
                    entry: String::from_utf8_lossy(raw_name).into_owned(),
                    reason: format!("unhandled tar header type {}", other.as_byte()),
                })
            }
        }
        let not_symlink = meta.kind != tar::EntryType::Symlink;
        self.finish(&path, meta, not_symlink)
    }

    /// Owner, xattrs, mode and times of an extracted entry (a symlink keeps its mode).
    fn finish(&mut self, path: &Path, meta: &Meta, not_symlink: bool) -> Result<(), FileError> {
        let (uid, gid) = self.owner.unwrap_or((meta.uid, meta.gid));
        self.dest.chown(path, uid, gid)?;
        for x in &meta.xattrs {
            if super::xattr::is_overlay_private(&x.name) {
                continue;
            }
            if let Err(e) = super::xattr::set(&self.dest.host(path), &x.name, &x.value) {
                let tolerated = matches!(
                    e.raw_os_error(),
                    Some(n) if n == rustix::io::Errno::OPNOTSUPP.raw_os_error()
                        || n == rustix::io::Errno::PERM.raw_os_error()
                );
                if !tolerated {
                    return Err(FileError::io("lsetxattr", path, e));
                }
            }
        }
        if not_symlink {
            self.dest.chmod(path, meta.mode)?;
        }
        if meta.kind == tar::EntryType::Directory {
            self.dirs.push((path.to_path_buf(), meta.atime, meta.mtime));
        } else if meta.kind != tar::EntryType::Link || not_symlink {
            self.dest.utimes(path, meta.atime, meta.mtime)?;
        }
        Ok(())
    }
}

/// A PAX time: decimal seconds with an optional fraction.
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let sec: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut nsec: u32 = digits.parse().ok()?;
    let mut sec = sec;
    if text.starts_with('-') && nsec > 0 {
        sec -= 1;
        nsec = 1_000_000_000 - nsec;
    }
    Some(Timespec { sec, nsec })
}

/// moby's `boundTime`: times before the epoch or past what a timespec holds become the
/// epoch.
fn bound(t: Timespec) -> Timespec {
    const MAX_SECS: i64 = i64::MAX / 1_000_000_000;
    if t.sec < 0 || t.sec > MAX_SECS {
        Timespec::default()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(
            detect(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
            Compression::Xz
        );
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(
            detect(&[0x53, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]),
            Compression::Zstd
        );
        assert_eq!(detect(b"hello"), Compression::None);
        assert_eq!(detect(&[0x1f, 0x8b]), Compression::None);
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some(Timespec {
                sec: 1_700_000_000,
                nsec: 500_000_000
            })
        );
        assert_eq!(pax_time(b"12"), Some(Timespec::from_secs(12)));
        assert_eq!(bound(Timespec::from_secs(-5)), Timespec::default());
    }
}
