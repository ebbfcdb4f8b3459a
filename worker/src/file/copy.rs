//! `Copy` (COPY and ADD): entries from a source filesystem into the destination diff, with
//! BuildKit's semantics (its file op over fsutil's `copy.Copy`), written once over
//! [`SourceFs`].
//!
//! Per action: the destination's parent must exist unless `create_dest_path`; owner and
//! mode are resolved once (the owner in the destination as it stands); the source is
//! expanded (`allow_wildcard`; no match is `"<src>": not found` unless
//! `allow_empty_wildcard`); with `parents`, the part after a `/./` pivot (or the whole
//! path) becomes an include pattern over the pivot's contents; with `unpack`, a source that
//! is a local tar archive is extracted instead (`archive.rs`). Then, per match:
//!
//! - Destination: the directory part of `dest` (all of it when it ends in `/` or `/.`) is
//!   created (mode 0755, or the octal `--chmod` mode; the `--chown` owner; the `mtime`);
//!   `dest` is resolved with symlinks followed, confined to the destination. A file, or a
//!   directory not copied by contents, lands *inside* an existing directory there; a
//!   directory's contents copied to a missing `dest` create it like a parent.
//! - Entries: directories merge into existing directories (an existing top directory keeps
//!   its owner and mode but takes the source's times; nested ones take the source's
//!   metadata); a file replaces a file or symlink, never a directory (`cannot replace to
//!   directory … with file`); a directory never replaces a non-directory (`cannot copy to
//!   non-directory: …`). Symlinks are copied as links, devices and fifos as nodes, sockets
//!   as empty files; hard links among the entries of one match stay hard links.
//! - Metadata of what is written: the `--chown` owner or the source's; the `--chmod` mode
//!   (applied to files and directories, symbolic modes relative to the source mode) or the
//!   source's; the `mtime` or the source's times (nanoseconds); the source's xattrs.
//! - `exclude` patterns (and `parents`' include pattern) match paths relative to the
//!   copied source, with `.dockerignore` semantics; a directory that is only on the way to
//!   an included entry is created when that entry is.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use strata_frontend::ignore::{MatchInfo, PatternMatcher};
use strata_solver::op::{Chmod, Owner};

use super::archive;
use super::chmod::ModeChange;
use super::diff::{DestDir, DestEntry, Diff};
use super::error::FileError;
use super::mkdir::{mkdir_all, NewDir};
use super::owner::{resolve_owner, Ids};
use super::path::{self, display, file_name};
use super::resolve::resolve;
use super::source::{FileKind, SourceFs, Stat, Timespec};
use super::wildcard::{contains_wildcards, resolve_wildcards};

/// The fields of a `FileAction::Copy`, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CopyArgs<'a> {
    pub src: &'a str,
    pub dest: &'a str,
    pub owner: Option<&'a Owner>,
    pub chmod: Option<&'a Chmod>,
    pub follow_symlinks: bool,
    pub dir_contents_only: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    pub exclude: &'a [String],
    pub parents: bool,
    pub unpack: bool,
    pub create_dest_path: bool,
    pub mtime: Option<i64>,
}

/// The `Copy` action.
pub(crate) fn copy(
    dest: &mut Diff,
    src: &dyn SourceFs,
    args: CopyArgs<'_>,
) -> Result<(), FileError> {
    if !args.create_dest_path {
        let target = resolve(dest, Path::new(""), OsStr::new(args.dest), true)?;
        let missing = |source| FileError::DestinationParent {
            dest: args.dest.to_string(),
            source,
        };
        match dest.lstat(path::parent(&target)) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(missing(std::io::Error::from(rustix::io::Errno::NOENT)));
            }
            Err(e) => return Err(missing(e)),
        }
    }
    let owner = args.owner.map(|o| resolve_owner(dest, o)).transpose()?;
    let mode = args.chmod.map(ModeChange::parse).transpose()?;
    let time = args.mtime.map(Timespec::from_secs);

    // `--parents`: copy the pivot's contents, keeping the paths the pattern selects.
    let (src_path, include) = if args.parents {
        match args.src.split_once("/./") {
            Some((pivot, pattern)) => (if pivot.is_empty() { "/" } else { pivot }, Some(pattern)),
            None => ("/", Some(args.src.trim_start_matches('/'))),
        }
    } else {
        (args.src, None)
    };
    let include_matcher = include
        .map(|p| {
            PatternMatcher::new([p]).map_err(|source| FileError::Pattern {
                kind: "include",
                patterns: vec![p.to_string()],
                source,
            })
        })
        .transpose()?;
    let exclude_matcher = if args.exclude.is_empty() {
        None
    } else {
        Some(
            PatternMatcher::new(args.exclude).map_err(|source| FileError::Pattern {
                kind: "exclude",
                patterns: args.exclude.to_vec(),
                source,
            })?,
        )
    };

    let matches = if args.allow_wildcard {
        resolve_wildcards(src, src_path, args.follow_symlinks)?
    } else {
        vec![path::clean(src_path)]
    };
    if matches.is_empty() {
        if args.allow_empty_wildcard {
            return Ok(());
        }
        return Err(FileError::NotFound {
            path: src_path.to_string(),
        });
    }
    let parent_mode = ModeChange::parent_dir_mode(mode.as_ref());
    for m in matches {
        if args.unpack {
            let new = NewDir {
                mode: 0o755,
                owner,
                time,
            };
            if archive::unpack(dest, src, &m, args.dest, new)? {
                continue;
            }
        }
        let mut copier = Copier {
            src,
            dest: &mut *dest,
            owner,
            mode: mode.as_ref(),
            time,
            include: include_matcher.as_ref(),
            exclude: exclude_matcher.as_ref(),
            hardlinks: HashMap::new(),
            pending: Vec::new(),
            included_any: false,
        };
        copier.copy_match(&m, args, parent_mode)?;
        let nothing_included = include_matcher.is_some() && !copier.included_any;
        if nothing_included {
            if let Some(pattern) = include.filter(|p| !contains_wildcards(p.as_bytes())) {
                // BuildKit fails such a copy while checksumming its source.
                return Err(FileError::NotFound {
                    path: format!("{}/{}", src_path.trim_end_matches('/'), pattern),
                });
            }
        }
    }
    Ok(())
}

/// A directory whose creation waits until something under it is included.
#[derive(Debug)]
struct Pending {
    src: PathBuf,
    dst: PathBuf,
    copied: bool,
}

/// One match being copied (fsutil's `copier`).
struct Copier<'a, 'd> {
    src: &'a dyn SourceFs,
    dest: &'d mut Diff,
    owner: Option<Ids>,
    mode: Option<&'a ModeChange>,
    time: Option<Timespec>,
    include: Option<&'a PatternMatcher>,
    exclude: Option<&'a PatternMatcher>,
    /// Source file identity → first destination written for it.
    hardlinks: HashMap<(u64, u64), PathBuf>,
    pending: Vec<Pending>,
    included_any: bool,
}

impl Copier<'_, '_> {
    /// fsutil's `Copy` for one source path.
    fn copy_match(
        &mut self,
        m: &Path,
        args: CopyArgs<'_>,
        parent_mode: u32,
    ) -> Result<(), FileError> {
        let new_dir = NewDir {
            mode: parent_mode,
            owner: self.owner,
            time: self.time,
        };
        let mut created = Vec::new();
        let (dir_part, last) = path::split(args.dest);
        let ensure = if !last.is_empty() && last != "." {
            dir_part
        } else {
            args.dest
        };
        if !ensure.is_empty() {
            let ensure = resolve(self.dest, Path::new(""), OsStr::new(ensure), true)?;
            created.extend(mkdir_all(self.dest, &ensure, new_dir)?);
        }
        let mut dst = resolve(self.dest, Path::new(""), OsStr::new(args.dest), true)?;

        let src_path = resolve(self.src, Path::new(""), m.as_os_str(), args.follow_symlinks)?;
        let fi = self
            .src
            .lstat(&src_path)
            .map_err(FileError::at("lstat", &src_path))?
            .ok_or_else(|| FileError::NotFound { path: display(m) })?;

        let dest_fi = match self.dest.entry(&dst) {
            Ok(e) => e.and_then(|e| e.stat),
            Err(e) => return Err(FileError::io("stat", &dst, e)),
        };
        let src_dir = fi.is_dir();
        if (!args.dir_contents_only && src_dir && dest_fi.is_some())
            || (!src_dir && dest_fi.is_some_and(|s| s.is_dir()))
        {
            if let Some(name) = file_name(m) {
                dst.push(name);
            }
        }
        let target_dir = if args.dir_contents_only && src_dir && dest_fi.is_none() {
            dst.clone()
        } else {
            path::parent(&dst).to_path_buf()
        };
        created.extend(mkdir_all(self.dest, &target_dir, new_dir)?);

        match file_name(&dst).map(OsStr::to_os_string) {
            Some(name) => {
                let mut parent = self.dest.dir(path::parent(&dst))?;
                self.copy_entry(
                    &src_path,
                    "",
                    Some(&mut parent),
                    &name,
                    false,
                    &MatchInfo::default(),
                    &MatchInfo::default(),
                )?;
            }
            None => self.copy_entry(
                &src_path,
                "",
                None,
                OsStr::new(""),
                false,
                &MatchInfo::default(),
                &MatchInfo::default(),
            )?,
        }
        // Directories made on the way were touched by what went into them.
        if let Some(time) = self.time {
            for dir in created.iter().rev() {
                self.dest.utimes(dir, time, time)?;
            }
        }
        Ok(())
    }

    /// fsutil's `copier.copy`: one entry, recursively. `parent` is `None` only for the
    /// destination root itself.
    #[allow(clippy::too_many_arguments)]
    fn copy_entry(
        &mut self,
        src: &Path,
        components: &str,
        parent: Option<&mut DestDir>,
        name: &OsStr,
        overwrite: bool,
        parent_include: &MatchInfo,
        parent_exclude: &MatchInfo,
    ) -> Result<(), FileError> {
        let mut include = true;
        let mut excluded = false;
        let mut include_info = MatchInfo::default();
        let mut exclude_info = MatchInfo::default();
        if !components.is_empty() {
            if let Some(m) = self.include {
                let (hit, info) = m.matches_using_parent_results(components, parent_include);
                include = hit;
                include_info = info;
            }
            if let Some(m) = self.exclude {
                let (hit, info) = m.matches_using_parent_results(components, parent_exclude);
                exclude_info = info;
                if hit {
                    include = false;
                    excluded = true;
                }
            }
            let exceptions = self.exclude.is_some_and(PatternMatcher::has_exclusions);
            if !include && self.include.is_none() && !exceptions {
                return Ok(());
            }
        }

        let fi = self
            .src
            .lstat(src)
            .map_err(FileError::at("lstat", src))?
            .ok_or_else(|| {
                FileError::io("lstat", src, std::io::Error::from(rustix::io::Errno::NOENT))
            })?;
        if !include && !fi.is_dir() {
            return Ok(());
        }
        let target: DestEntry = match &parent {
            Some(dir) => self
                .dest
                .child(dir, name)
                .map_err(FileError::at("lstat", &dir.path.join(name)))?,
            None => self
                .dest
                .entry(Path::new(""))
                .map_err(FileError::at("lstat", Path::new("")))?
                .ok_or_else(|| FileError::io("lstat", Path::new(""), enoent()))?,
        };
        if include {
            self.create_pending(overwrite)?;
            if !components.is_empty() {
                self.included_any = true;
            }
        }
        if !fi.is_dir() && target.is_dir() {
            return Err(FileError::ReplaceDirectoryWithFile {
                path: display(&target.path),
            });
        }

        let mut copy_info = include;
        let mut restore_times = false;
        match fi.kind {
            FileKind::Dir => {
                let created = self.copy_directory(
                    src,
                    components,
                    parent,
                    name,
                    &target,
                    &fi,
                    overwrite,
                    include,
                    excluded,
                    &include_info,
                    &exclude_info,
                )?;
                if !overwrite {
                    copy_info = created;
                    restore_times = !created;
                }
            }
            FileKind::File => {
                let dir = parent.ok_or_else(|| self.root_is_dir())?;
                if self.copy_file(src, &fi, dir, &target)? {
                    copy_info = false;
                }
            }
            FileKind::Symlink => {
                let dir = parent.ok_or_else(|| self.root_is_dir())?;
                let link = self
                    .src
                    .read_link(src)
                    .map_err(FileError::at("readlink", src))?;
                self.dest.symlink(dir, name, &link)?;
            }
            kind => {
                let dir = parent.ok_or_else(|| self.root_is_dir())?;
                self.dest.mknod(dir, name, kind, fi.mode, fi.rdev)?;
            }
        }

        if copy_info {
            self.copy_info(&fi, src, &target.path)?;
        } else if restore_times && target.stat.is_some() {
            let (atime, mtime) = self.times(&fi);
            self.dest.utimes(&target.path, atime, mtime)?;
        }
        Ok(())
    }

    fn root_is_dir(&self) -> FileError {
        FileError::ReplaceDirectoryWithFile {
            path: "/".to_string(),
        }
    }

    /// A regular file: a hard link to an earlier copy of the same source file, or a copy.
    /// Returns whether its metadata was set too (a new file's, through its descriptor).
    fn copy_file(
        &mut self,
        src: &Path,
        fi: &Stat,
        dir: &mut DestDir,
        target: &DestEntry,
    ) -> Result<bool, FileError> {
        let name = file_name(&target.path).unwrap_or_default();
        if let Some(id) = fi.hardlink {
            if let Some(first) = self.hardlinks.get(&id) {
                let first = first.clone();
                self.dest.hard_link(&first, dir, name)?;
                return Ok(false);
            }
            self.hardlinks.insert(id, target.path.clone());
        }
        let mut from = self.src.open(src).map_err(FileError::at("open", src))?;
        let mut to = self
            .dest
            .create_file_known(dir, name, fi.mode & 0o777, Some(target))?;
        copy_bytes(&mut from, &mut to, fi.size).map_err(|source| FileError::CopyContent {
            path: display(&target.path),
            source,
        })?;
        // fsutil's copyFileInfo, through the open descriptor (no path walks).
        let ids = self.owner.unwrap_or(Ids {
            uid: fi.uid,
            gid: fi.gid,
        });
        let at = |op| FileError::at(op, &target.path);
        rustix::fs::fchown(
            &to,
            Some(rustix::fs::Uid::from_raw(ids.uid)),
            Some(rustix::fs::Gid::from_raw(ids.gid)),
        )
        .map_err(|e| at("lchown")(e.into()))?;
        let mode = match self.mode {
            Some(change) => change.apply(fi.mode, false),
            None => fi.mode,
        };
        rustix::fs::fchmod(&to, rustix::fs::Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| at("chmod")(e.into()))?;
        let (atime, mtime) = self.times(fi);
        let times = rustix::fs::Timestamps {
            last_access: atime.to_rustix(),
            last_modification: mtime.to_rustix(),
        };
        rustix::fs::futimens(&to, &times).map_err(|e| at("utimes")(e.into()))?;
        drop(to);
        if let Ok(xattrs) = self.src.xattrs(src) {
            self.dest.set_xattrs(&target.path, &xattrs);
        }
        Ok(true)
    }

    /// fsutil's `copyDirectory`: the directory itself (unless it waits for an include),
    /// then its entries. Returns whether it was created.
    #[allow(clippy::too_many_arguments)]
    fn copy_directory(
        &mut self,
        src: &Path,
        components: &str,
        parent: Option<&mut DestDir>,
        name: &OsStr,
        target: &DestEntry,
        fi: &Stat,
        overwrite: bool,
        include: bool,
        excluded: bool,
        include_info: &MatchInfo,
        exclude_info: &MatchInfo,
    ) -> Result<bool, FileError> {
        let mut created = false;
        let mut handle = match target.as_dir() {
            Some(dir) => dir,
            // Not there yet and waiting for an include: a handle on nothing, filled in
            // when the directory is made.
            None => DestDir {
                path: target.path.clone(),
                upper: false,
                lower: None,
            },
        };
        if include {
            let (made, dir) = self.copy_directory_only(parent, name, target, fi, overwrite)?;
            created = made;
            handle = dir;
        }
        self.pending.push(Pending {
            src: src.to_path_buf(),
            dst: target.path.clone(),
            copied: include,
        });
        let exceptions = self.exclude.is_some_and(PatternMatcher::has_exclusions);
        if !excluded || exceptions {
            let names = self.src.read_dir(src).map_err(FileError::at("open", src))?;
            for child in names {
                // A source listing names entries, never paths: refuse anything that would
                // step elsewhere once joined.
                let bytes = child.as_encoded_bytes();
                if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
                    return Err(FileError::io(
                        "open",
                        &src.join(&child),
                        std::io::Error::from(rustix::io::Errno::INVAL),
                    ));
                }
                let child_components = path::join_components(components, &child);
                self.copy_entry(
                    &src.join(&child),
                    &child_components,
                    Some(&mut handle),
                    &child,
                    true,
                    include_info,
                    exclude_info,
                )?;
            }
        }
        self.pending.pop();
        Ok(created)
    }

    /// fsutil's `copyDirectoryOnly`: makes the directory, or checks an existing one (and
    /// gives it the source's mode when overwriting metadata).
    fn copy_directory_only(
        &mut self,
        parent: Option<&mut DestDir>,
        name: &OsStr,
        target: &DestEntry,
        fi: &Stat,
        overwrite: bool,
    ) -> Result<(bool, DestDir), FileError> {
        match (target.stat, parent) {
            (None, Some(parent)) => Ok((true, self.dest.create_dir(parent, name, fi.mode)?)),
            (None, None) => Err(FileError::io("mkdir", Path::new(""), enoent())),
            (Some(stat), _) if !stat.is_dir() => Err(FileError::CopyToNonDirectory {
                path: display(&target.path),
            }),
            (Some(_), _) => {
                let mut dir = target
                    .as_dir()
                    .ok_or_else(|| FileError::CopyToNonDirectory {
                        path: display(&target.path),
                    })?;
                if overwrite {
                    self.dest.ensure_upper(&mut dir)?;
                    self.dest.chmod(&dir.path, fi.mode)?;
                }
                Ok((false, dir))
            }
        }
    }

    /// fsutil's `createParentDirs`: makes the directories that waited for an include.
    fn create_pending(&mut self, overwrite: bool) -> Result<(), FileError> {
        for i in 0..self.pending.len() {
            if self.pending[i].copied {
                continue;
            }
            let src = self.pending[i].src.clone();
            let dst = self.pending[i].dst.clone();
            let fi = self
                .src
                .lstat(&src)
                .map_err(FileError::at("stat", &src))?
                .filter(Stat::is_dir)
                .ok_or_else(|| FileError::io("stat", &src, enotdir()))?;
            let name = file_name(&dst).map(OsStr::to_os_string).unwrap_or_default();
            let target = match self.dest.entry(&dst) {
                Ok(Some(e)) => e,
                Ok(None) => self
                    .dest
                    .child(&self.dest.dir(path::parent(&dst))?, &name)
                    .map_err(FileError::at("lstat", &dst))?,
                Err(e) => return Err(FileError::io("lstat", &dst, e)),
            };
            let mut parent = self.dest.dir(path::parent(&dst))?;
            let (created, _) =
                self.copy_directory_only(Some(&mut parent), &name, &target, &fi, overwrite)?;
            if created {
                self.copy_info(&fi, &src, &dst)?;
            }
            self.pending[i].copied = true;
        }
        Ok(())
    }

    /// fsutil's `copyFileInfo` and `copyXAttrs`: owner, mode, times, xattrs.
    fn copy_info(&mut self, fi: &Stat, src: &Path, target: &Path) -> Result<(), FileError> {
        let ids = self.owner.unwrap_or(Ids {
            uid: fi.uid,
            gid: fi.gid,
        });
        self.dest.chown(target, ids.uid, ids.gid)?;
        if fi.kind != FileKind::Symlink {
            let mode = match self.mode {
                Some(change) => change.apply(fi.mode, fi.is_dir()),
                None => fi.mode,
            };
            self.dest.chmod(target, mode)?;
        }
        let (atime, mtime) = self.times(fi);
        self.dest.utimes(target, atime, mtime)?;
        // BuildKit logs xattr failures and goes on.
        if let Ok(xattrs) = self.src.xattrs(src) {
            self.dest.set_xattrs(target, &xattrs);
        }
        Ok(())
    }

    fn times(&self, fi: &Stat) -> (Timespec, Timespec) {
        match self.time {
            Some(t) => (t, t),
            None => (fi.atime, fi.mtime),
        }
    }
}

fn enoent() -> std::io::Error {
    std::io::Error::from(rustix::io::Errno::NOENT)
}

fn enotdir() -> std::io::Error {
    std::io::Error::from(rustix::io::Errno::NOTDIR)
}

/// Copies a file's bytes in the kernel (`copy_file_range`), as fsutil does, up to the
/// size it had when looked at; falls back to a read/write loop where the kernel cannot.
fn copy_bytes(from: &mut std::fs::File, to: &mut std::fs::File, size: u64) -> std::io::Result<()> {
    use rustix::io::Errno;
    let mut written = 0u64;
    while written < size {
        let want = usize::try_from(size - written)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(&*from, None, &*to, None, want) {
            Ok(0) => return Ok(()),
            Ok(n) => written += n as u64,
            Err(e)
                if written == 0
                    && matches!(
                        e,
                        Errno::XDEV
                            | Errno::NOSYS
                            | Errno::INVAL
                            | Errno::OPNOTSUPP
                            | Errno::PERM
                            | Errno::IO
                    ) =>
            {
                std::io::copy(from, to)?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
