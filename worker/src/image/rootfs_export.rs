//! `--output type=local,dest=DIR` and `--output type=tar,dest=FILE|-`: a build's final
//! filesystem written out as files or as one tar, as buildx's local and tar exporters do.
//!
//! Main entry points: [`export_rootfs_dir`] and [`export_rootfs_tar`], both reading the
//! result's snapshot chain through a [`LayeredView`] (overlay whiteouts and opaque
//! directories applied), so nothing is mounted and no layer tar is made.
//!
//! Key decisions, following BuildKit:
//! - The local exporter writes every entry owned by the user running the build (buildx's
//!   receiver maps uid/gid to its own), keeps modes, mtimes, symlinks and hard links, and
//!   merges into an existing directory, replacing entries the result also has.
//! - The tar exporter keeps owners, modes, mtimes, links and device nodes; names are
//!   relative (`etc/passwd`, no `./` and no root entry), directories before their contents.
//! - Neither follows a symlink of the result or of an existing destination: each parent is a
//!   directory this export created or checked with `lstat`.

use crate::file::{FileKind, LayeredView, SourceFs, Stat};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, FileTimes, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use strata_cache::{SnapshotId, Store};

/// Why a filesystem could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum RootfsExportError {
    /// The result's snapshot chain could not be read.
    #[error("failed to read the build result: {0}")]
    Snapshot(#[from] strata_cache::SnapshotError),
    /// An entry of the result could not be read.
    #[error("failed to read /{path} of the build result: {source}")]
    Read {
        /// Path in the result.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An entry could not be written to the destination.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The destination path (a file, or `-`/the tar for a tar export).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// How much an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootfsExportStats {
    /// Entries written (files, directories, links, nodes).
    pub entries: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
}

/// The result's filesystem: the chain under `top` (`None`: the empty filesystem).
fn view(store: &Store, top: Option<&SnapshotId>) -> Result<LayeredView, RootfsExportError> {
    Ok(match top {
        Some(id) => LayeredView::chain(store.snapshots().lowerdirs(id)?),
        None => LayeredView::scratch(),
    })
}

/// Entries of `fs` in walk order (a directory right before its contents, names sorted),
/// with their result-relative paths. Iterative: a deep tree cannot exhaust the stack.
fn walk(fs: &dyn SourceFs) -> Result<Vec<(String, Stat)>, RootfsExportError> {
    let read_dir = |dir: &str| {
        fs.read_dir(&abs(dir))
            .map_err(|source| RootfsExportError::Read {
                path: dir.to_string(),
                source,
            })
    };
    let mut out = Vec::new();
    let mut stack: Vec<(String, std::vec::IntoIter<OsString>)> =
        vec![(String::new(), read_dir("")?.into_iter())];
    while let Some((dir, names)) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            continue;
        };
        let rel = join(dir, &name);
        let stat = fs
            .lstat(&abs(&rel))
            .map_err(|source| RootfsExportError::Read {
                path: rel.clone(),
                source,
            })?;
        let Some(stat) = stat else { continue };
        let is_dir = stat.kind == FileKind::Dir;
        out.push((rel.clone(), stat));
        if is_dir {
            let names = read_dir(&rel)?;
            stack.push((rel, names.into_iter()));
        }
    }
    Ok(out)
}

/// A view path: relative to the view's root (`""` is the root itself), as `LayeredView`
/// takes them.
fn abs(rel: &str) -> PathBuf {
    PathBuf::from(rel)
}

fn join(dir: &str, name: &OsString) -> String {
    let name = name.to_string_lossy();
    if dir.is_empty() {
        name.into_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn system_time(stat: &Stat) -> SystemTime {
    let t = &stat.mtime;
    if t.sec >= 0 {
        SystemTime::UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(t.sec.unsigned_abs())
    }
}

/// Writes the result's filesystem into `dest` (created if missing, merged if not), every
/// entry owned by the current user.
pub fn export_rootfs_dir(
    store: &Store,
    top: Option<&SnapshotId>,
    dest: &Path,
) -> Result<RootfsExportStats, RootfsExportError> {
    let fs = view(store, top)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsExportError::Write {
            path: path.clone(),
            source,
        }
    };
    fs::create_dir_all(dest).map_err(write_err(dest))?;
    let mut stats = RootfsExportStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, Stat)> = Vec::new();
    for (rel, stat) in walk(&fs)? {
        let target = dest.join(&rel);
        let err = write_err(&target);
        // Make room: an existing entry of another kind goes; an existing directory stays
        // when the result has a directory there too.
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() && stat.kind == FileKind::Dir => {}
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&target).map_err(&err)?,
            Ok(_) => fs::remove_file(&target).map_err(&err)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        if let Some(id) = stat.hardlink {
            if let Some(first) = links.get(&id) {
                fs::hard_link(first, &target).map_err(&err)?;
                stats.entries += 1;
                continue;
            }
            links.insert(id, target.clone());
        }
        let read_err = |source| RootfsExportError::Read {
            path: rel.clone(),
            source,
        };
        match stat.kind {
            FileKind::Dir => {
                if !target.is_dir() {
                    fs::create_dir(&target).map_err(&err)?;
                }
                // Mode and times once its contents are written.
                dirs.push((target, stat));
                stats.entries += 1;
                continue;
            }
            FileKind::File => {
                let mut src = fs.open(&abs(&rel)).map_err(read_err)?;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(&err)?;
                stats.bytes += io::copy(&mut src, &mut out).map_err(&err)?;
                out.set_permissions(fs::Permissions::from_mode(stat.mode))
                    .map_err(&err)?;
                let t = system_time(&stat);
                out.set_times(FileTimes::new().set_accessed(t).set_modified(t))
                    .map_err(&err)?;
            }
            FileKind::Symlink => {
                let link = fs.read_link(&abs(&rel)).map_err(read_err)?;
                std::os::unix::fs::symlink(&link, &target).map_err(&err)?;
                // A symlink's own mtime, without following it.
                let t = &stat.mtime;
                let time = rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: t.sec,
                        tv_nsec: t.nsec.into(),
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: t.sec,
                        tv_nsec: t.nsec.into(),
                    },
                };
                rustix::fs::utimensat(
                    rustix::fs::CWD,
                    &target,
                    &time,
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| err(e.into()))?;
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice => {
                let kind = match stat.kind {
                    FileKind::Fifo => rustix::fs::FileType::Fifo,
                    FileKind::CharDevice => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    kind,
                    rustix::fs::Mode::from_raw_mode(stat.mode),
                    stat.rdev,
                )
                .map_err(|e| err(e.into()))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(stat.mode))
                    .map_err(&err)?;
            }
            FileKind::Socket => continue, // Nothing to recreate.
        }
        stats.entries += 1;
    }
    // Deepest first, so setting a directory's mtime is not undone by writing into it.
    for (path, stat) in dirs.iter().rev() {
        let err = write_err(path);
        fs::set_permissions(path, fs::Permissions::from_mode(stat.mode)).map_err(&err)?;
        let t = system_time(stat);
        fs::File::open(path)
            .and_then(|f| f.set_times(FileTimes::new().set_accessed(t).set_modified(t)))
            .map_err(&err)?;
    }
    Ok(stats)
}

/// Writes the result's filesystem to `out` as a tar (owners, modes, mtimes, links and
/// device nodes kept) and returns `out`. `name` names the destination in errors.
pub fn export_rootfs_tar<W: Write>(
    store: &Store,
    top: Option<&SnapshotId>,
    out: W,
    name: &Path,
) -> Result<(W, RootfsExportStats), RootfsExportError> {
    let fs = view(store, top)?;
    let err = |source| RootfsExportError::Write {
        path: name.to_path_buf(),
        source,
    };
    let mut builder = tar::Builder::new(out);
    let mut stats = RootfsExportStats::default();
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    for (rel, stat) in walk(&fs)? {
        let read_err = |source| RootfsExportError::Read {
            path: rel.clone(),
            source,
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(stat.mode);
        header.set_uid(stat.uid.into());
        header.set_gid(stat.gid.into());
        header.set_mtime(stat.mtime.sec.max(0) as u64);
        header.set_size(0);
        if let Some(id) = stat.hardlink {
            if let Some(first) = links.get(&id) {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, &rel, first).map_err(err)?;
                stats.entries += 1;
                continue;
            }
            links.insert(id, rel.clone());
        }
        match stat.kind {
            FileKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                builder
                    .append_data(&mut header, format!("{rel}/"), io::empty())
                    .map_err(err)?;
            }
            FileKind::File => {
                let src = fs.open(&abs(&rel)).map_err(read_err)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(stat.size);
                // A file that changed size under us would corrupt the stream: read exactly
                // what the header promises.
                let mut limited = io::Read::take(src, stat.size);
                builder
                    .append_data(&mut header, &rel, &mut limited)
                    .map_err(err)?;
                stats.bytes += stat.size;
            }
            FileKind::Symlink => {
                let link = fs.read_link(&abs(&rel)).map_err(read_err)?;
                header.set_entry_type(tar::EntryType::Symlink);
                builder.append_link(&mut header, &rel, &link).map_err(err)?;
            }
            FileKind::Fifo | FileKind::CharDevice | FileKind::BlockDevice => {
                header.set_entry_type(match stat.kind {
                    FileKind::Fifo => tar::EntryType::Fifo,
                    FileKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                let major = rustix::fs::major(stat.rdev);
                let minor = rustix::fs::minor(stat.rdev);
                header.set_device_major(major).map_err(err)?;
                header.set_device_minor(minor).map_err(err)?;
                builder
                    .append_data(&mut header, &rel, io::empty())
                    .map_err(err)?;
            }
            FileKind::Socket => continue, // Tar has no socket entries.
        }
        stats.entries += 1;
    }
    let out = builder.into_inner().map_err(err)?;
    Ok((out, stats))
}
