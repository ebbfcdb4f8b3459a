//! The root filesystem: mounting an overlay of any depth, and cleaning up after a run.
//!
//! Role: [`OverlayMount`] is a prepared overlay mount (paths as C strings, chosen strategy),
//! mounted by [`OverlayMount::mount_at`] from a freshly cloned child, where nothing may
//! allocate; [`remove_stubs`] deletes the empty files and directories a run created only to
//! serve as mount targets (BuildKit's "mount stubs cleaner"), so they never reach a layer;
//! [`exists_in_layers`] and [`read_in_layers`] answer questions about the merged view without
//! mounting it (used by the runc backend, whose rootfs lives in runc's own mount namespace).
//!
//! Key decision — deep layer chains: the legacy `mount(2)` takes all options in one page
//! (4096 bytes), which 300 layer paths do not fit. Since Linux 6.8 the new mount API takes one
//! `lowerdir+` per layer through `fsconfig`, each up to 255 bytes, with no limit on their
//! number (overlayfs stacks up to 500 layers). That is used whenever the kernel has it
//! (probed once); older kernels get `mount(2)` with paths made relative to the layers' common
//! ancestor (the mounting process `chdir`s there first), which shortens each path to a few
//! bytes for a typical snapshot store and fails clearly when even that does not fit.
//! The options `index=off,metacopy=off,redirect_dir=off` keep the upper directory a
//! self-contained diff (no redirects or metacopy-only files) that can be exported as a layer.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MountFlags, MoveMountFlags,
};

/// Why a root filesystem could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// An overlay needs at least one lower layer.
    #[error("overlay rootfs needs at least one lowerdir")]
    NoLowerdir,
    /// A path has an interior NUL byte or is not absolute.
    #[error("invalid rootfs path {path:?}")]
    BadPath {
        /// The path.
        path: PathBuf,
    },
    /// A layer path is longer than `fsconfig` takes, even relative to the common ancestor.
    #[error("overlay layer path {path:?} is longer than 255 bytes")]
    PathTooLong {
        /// The path.
        path: PathBuf,
    },
    /// The kernel lacks `lowerdir+` and the options do not fit in one page.
    #[error(
        "overlay with {layers} layers needs {bytes} bytes of mount options; \
         this kernel takes 4095 (Linux 6.8 lifts the limit)"
    )]
    TooManyLayers {
        /// Number of lower layers.
        layers: usize,
        /// Bytes needed.
        bytes: usize,
    },
}

/// Mount options that keep the upper directory a plain diff.
const OVERLAY_OPTIONS: [(&CStr, &CStr); 3] = [
    (c"index", c"off"),
    (c"metacopy", c"off"),
    (c"redirect_dir", c"off"),
];

/// An overlay mount prepared for a process that may not allocate.
#[derive(Debug)]
pub(crate) struct OverlayMount {
    /// Directory to `chdir` to first, when the paths below are relative to it.
    chdir: Option<CString>,
    strategy: Strategy,
}

#[derive(Debug)]
enum Strategy {
    /// New mount API, one `lowerdir+` per layer.
    PerLayer {
        lowers: Vec<CString>,
        upper: CString,
        work: CString,
    },
    /// `mount(2)` with all options in one string.
    Legacy { data: CString },
}

/// Whether overlayfs takes `lowerdir+` (Linux ≥ 6.8); probed once per process.
pub(crate) fn has_lowerdir_plus() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .and_then(|fd| fsconfig_set_string(&fd, c"lowerdir+", c"/"))
            .is_ok()
    })
}

fn cstring(p: &Path) -> Result<CString, RootfsError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| RootfsError::BadPath { path: p.into() })
}

/// The deepest directory that contains every path (all absolute).
fn common_ancestor<'a>(paths: impl IntoIterator<Item = &'a Path>) -> PathBuf {
    let mut iter = paths.into_iter();
    let mut common: PathBuf = match iter.next() {
        Some(p) => p.to_path_buf(),
        None => return PathBuf::from("/"),
    };
    for p in iter {
        let shared: PathBuf = common
            .components()
            .zip(p.components())
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a)
            .collect();
        common = shared;
    }
    common
}

/// Escapes a path for the legacy option string (`,`, `:` and `\` are separators there).
fn escape_legacy(path: &[u8], out: &mut Vec<u8>) {
    for &b in path {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

impl OverlayMount {
    /// Prepares `overlay(lowerdirs, upperdir, workdir)`, choosing how to pass the layers.
    pub(crate) fn new(
        lowerdirs: &[PathBuf],
        upperdir: &Path,
        workdir: &Path,
    ) -> Result<Self, RootfsError> {
        Self::with_strategy(lowerdirs, upperdir, workdir, has_lowerdir_plus())
    }

    pub(crate) fn with_strategy(
        lowerdirs: &[PathBuf],
        upperdir: &Path,
        workdir: &Path,
        per_layer: bool,
    ) -> Result<Self, RootfsError> {
        if lowerdirs.is_empty() {
            return Err(RootfsError::NoLowerdir);
        }
        let all = || {
            lowerdirs
                .iter()
                .map(PathBuf::as_path)
                .chain([upperdir, workdir])
        };
        if let Some(p) = all().find(|p| !p.is_absolute()) {
            return Err(RootfsError::BadPath { path: p.into() });
        }
        let base = common_ancestor(all());
        let relative = |p: &Path| -> PathBuf {
            let rel = p.strip_prefix(&base).unwrap_or(p);
            if rel.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                rel.to_path_buf()
            }
        };
        if per_layer {
            // Absolute paths when they all fit (no chdir needed), else relative ones.
            let fits = all().all(|p| p.as_os_str().len() <= 255);
            let conv = |p: &Path| -> Result<CString, RootfsError> {
                let p2 = if fits { p.to_path_buf() } else { relative(p) };
                if p2.as_os_str().len() > 255 {
                    return Err(RootfsError::PathTooLong { path: p.into() });
                }
                cstring(&p2)
            };
            return Ok(OverlayMount {
                chdir: if fits { None } else { Some(cstring(&base)?) },
                strategy: Strategy::PerLayer {
                    lowers: lowerdirs
                        .iter()
                        .map(|p| conv(p))
                        .collect::<Result<_, _>>()?,
                    upper: conv(upperdir)?,
                    work: conv(workdir)?,
                },
            });
        }
        let build = |conv: &dyn Fn(&Path) -> PathBuf| {
            let mut data = b"lowerdir=".to_vec();
            for (i, l) in lowerdirs.iter().enumerate() {
                if i > 0 {
                    data.push(b':');
                }
                escape_legacy(conv(l).as_os_str().as_bytes(), &mut data);
            }
            data.extend_from_slice(b",upperdir=");
            escape_legacy(conv(upperdir).as_os_str().as_bytes(), &mut data);
            data.extend_from_slice(b",workdir=");
            escape_legacy(conv(workdir).as_os_str().as_bytes(), &mut data);
            for (k, v) in OVERLAY_OPTIONS {
                data.push(b',');
                data.extend_from_slice(k.to_bytes());
                data.push(b'=');
                data.extend_from_slice(v.to_bytes());
            }
            data
        };
        let absolute = build(&|p| p.to_path_buf());
        let (data, chdir) = if absolute.len() < 4096 {
            (absolute, None)
        } else {
            let rel = build(&relative);
            if rel.len() >= 4096 {
                return Err(RootfsError::TooManyLayers {
                    layers: lowerdirs.len(),
                    bytes: rel.len(),
                });
            }
            (rel, Some(cstring(&base)?))
        };
        Ok(OverlayMount {
            chdir,
            strategy: Strategy::Legacy {
                data: CString::new(data).map_err(|_| RootfsError::BadPath {
                    path: upperdir.into(),
                })?,
            },
        })
    }

    /// Whether this mount passes one `lowerdir+` per layer.
    #[cfg(test)]
    pub(crate) fn is_per_layer(&self) -> bool {
        matches!(self.strategy, Strategy::PerLayer { .. })
    }

    /// Mounts the overlay on `target` (absolute). Does not allocate, so it may run in a child
    /// cloned from a multi-threaded process. Changes the working directory when the layer
    /// paths are relative.
    pub(crate) fn mount_at(&self, target: &CStr) -> Result<(), Errno> {
        if let Some(dir) = &self.chdir {
            rustix::process::chdir(dir.as_c_str())?;
        }
        match &self.strategy {
            Strategy::PerLayer {
                lowers,
                upper,
                work,
            } => {
                let fs = fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
                for l in lowers {
                    fsconfig_set_string(&fs, c"lowerdir+", l.as_c_str())?;
                }
                fsconfig_set_string(&fs, c"upperdir", upper.as_c_str())?;
                fsconfig_set_string(&fs, c"workdir", work.as_c_str())?;
                for (k, v) in OVERLAY_OPTIONS {
                    fsconfig_set_string(&fs, k, v)?;
                }
                fsconfig_create(&fs)?;
                let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
                move_mount(
                    &mnt,
                    c"",
                    CWD,
                    target,
                    MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                )
            }
            Strategy::Legacy { data } => rustix::mount::mount(
                c"overlay",
                target,
                c"overlay",
                MountFlags::empty(),
                Some(data.as_c_str()),
            ),
        }
    }
}

/// A file or directory created in the rootfs only to be a mount target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stub {
    /// Absolute path in the sandbox.
    pub path: String,
    /// Modification time of its parent before the stub was made, to restore it.
    pub parent_mtime: Option<(i64, i64)>,
}

/// Removes `stubs` under `base`, the directory where the run's writes landed (the overlay's
/// upper directory, or the rootfs directory), when they are still empty, and puts their
/// parents' modification times back (as BuildKit, for reproducible layers). For an overlay
/// (`lowers` not empty), a parent directory that exists in `base` only because making a stub
/// copied it up, and that is now empty and identical to the lower one, is removed too, so a
/// run that changed nothing leaves an empty upper directory (no layer).
/// Never follows a symlink out of `base`; anything unexpected is left alone.
pub(crate) fn remove_stubs(base: &Path, lowers: &[&Path], stubs: &[Stub]) {
    let Ok(base_fd) = fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    // Deepest first; among siblings, the last made first, so the parent's time restored last
    // is the one from before any stub.
    let mut ordered: Vec<(usize, &Stub)> = stubs.iter().enumerate().collect();
    ordered.sort_by_key(|(i, s)| std::cmp::Reverse((s.path.matches('/').count(), *i)));
    let mut parents: Vec<&str> = Vec::new();
    for (_, stub) in ordered {
        let Some((dir, name)) = open_parent(&base_fd, &stub.path) else {
            continue;
        };
        let Ok(st) = fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let removed = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).is_ok(),
            FileType::RegularFile if st.st_size == 0 => {
                fs::unlinkat(&dir, name, AtFlags::empty()).is_ok()
            }
            _ => false,
        };
        if !removed {
            continue;
        }
        if let Some((sec, nsec)) = stub.parent_mtime {
            set_mtime(&dir, sec, nsec);
        }
        if let Some((parent, _)) = stub.path.rsplit_once('/') {
            if !parent.is_empty() && !parents.contains(&parent) {
                parents.push(parent);
            }
        }
    }
    if lowers.is_empty() {
        return;
    }
    parents.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for p in parents {
        let mut path = p;
        while !path.is_empty() && remove_copied_up(&base_fd, lowers, path) {
            path = path.rsplit_once('/').map_or("", |(a, _)| a);
        }
    }
}

/// Opens the parent directory of `path` (absolute in the sandbox) under `base`.
fn open_parent<'p>(base: &OwnedFd, path: &'p str) -> Option<(OwnedFd, &'p str)> {
    let rel = path.trim_start_matches('/');
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() {
        return None;
    }
    let dir = fs::openat2(
        base,
        if parent.is_empty() { "." } else { parent },
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    Some((dir, name))
}

fn set_mtime(dir: &OwnedFd, sec: i64, nsec: i64) {
    let times = fs::Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: fs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        },
    };
    let _ = fs::futimens(dir, &times);
}

/// Removes the upper copy of directory `path` if it is empty, not opaque, and the same
/// (mode, owner, mtime) as the directory it hides in `lowers`.
fn remove_copied_up(base: &OwnedFd, lowers: &[&Path], path: &str) -> bool {
    let Some((dir, name)) = open_parent(base, path) else {
        return false;
    };
    let Ok(up) = fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    if FileType::from_raw_mode(up.st_mode) != FileType::Directory {
        return false;
    }
    let Some((_, low)) = lookup_in_layers(lowers, path) else {
        return false;
    };
    let same = up.st_mode == low.st_mode
        && up.st_uid == low.st_uid
        && up.st_gid == low.st_gid
        && up.st_mtime == low.st_mtime
        && up.st_mtime_nsec == low.st_mtime_nsec;
    if !same {
        return false;
    }
    let Ok(child) = fs::openat(
        &dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut opaque = [0u8; 4];
    if rustix::fs::fgetxattr(&child, c"trusted.overlay.opaque", &mut opaque[..]).is_ok() {
        return false;
    }
    let Ok(mut entries) = fs::Dir::read_from(&child) else {
        return false;
    };
    let empty = entries.all(|e| {
        e.map(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
            .unwrap_or(false)
    });
    empty && fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).is_ok()
}

/// Modification time of `path` in the merged view of `layers`.
pub(crate) fn mtime_in_layers(layers: &[&Path], path: &str) -> Option<(i64, i64)> {
    lookup_in_layers(layers, path).map(|(_, st)| (st.st_mtime, st.st_mtime_nsec as i64))
}

fn is_whiteout(st: &fs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(path, c"trusted.overlay.opaque", &mut buf[..]),
        Ok(1) if buf[0] == b'y'
    )
}

/// Relative, normal components of an absolute sandbox path (`..` and `.` dropped).
fn sandbox_components(path: &str) -> Vec<&std::ffi::OsStr> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Finds `path` (absolute in the sandbox) in the merged view of `layers` (topmost first),
/// honouring whiteouts and opaque directories. Symlinks on the way are not followed.
fn lookup_in_layers(layers: &[&Path], path: &str) -> Option<(PathBuf, fs::Stat)> {
    let comps = sandbox_components(path);
    for layer in layers {
        let mut cur = layer.to_path_buf();
        let mut hidden = false;
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            match fs::lstat(&cur) {
                Ok(st) if is_whiteout(&st) => return None,
                Ok(st) if i + 1 == comps.len() => return Some((cur, st)),
                Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                    return None
                }
                Ok(_) if is_opaque(&cur) => hidden = true,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if hidden {
            return None;
        }
        if comps.is_empty() {
            return fs::lstat(*layer).ok().map(|st| (layer.to_path_buf(), st));
        }
    }
    None
}

/// Resolves `path` in the merged view of `layers` (topmost first) as if that view were `/`:
/// symlinks are followed but never leave it (an absolute target restarts at its root, `..`
/// stops there), as BuildKit's `RootPath`. Returns the symlink-free absolute path and its
/// type, or `None` when it does not exist or a loop is met.
pub(crate) fn resolve_in_layers(layers: &[&Path], path: &str) -> Option<(String, FileType)> {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    fn push_parts(pending: &mut Vec<Vec<u8>>, path: &[u8]) {
        // A stack: the next component is last.
        pending.extend(
            path.split(|&b| b == b'/')
                .filter(|p| !p.is_empty() && *p != b".")
                .map(<[u8]>::to_vec)
                .rev(),
        );
    }
    let mut pending: Vec<Vec<u8>> = Vec::new();
    push_parts(&mut pending, path.as_bytes());
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut kind = FileType::Directory;
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == b".." {
            resolved.pop();
            kind = FileType::Directory;
            continue;
        }
        resolved.push(part);
        let joined = format!("/{}", String::from_utf8_lossy(&resolved.join(&b'/')));
        let (host, st) = lookup_in_layers(layers, &joined)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&host).ok()?.into_os_string().into_vec();
                resolved.pop();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                push_parts(&mut pending, &target);
            }
            t if t != FileType::Directory && !pending.is_empty() => return None,
            t => kind = t,
        }
    }
    let text = OsString::from_vec(resolved.join(&b'/'));
    Some((format!("/{}", text.to_string_lossy()), kind))
}

/// Whether `path` exists in the merged view of `layers` (topmost first).
pub(crate) fn exists_in_layers(layers: &[&Path], path: &str) -> bool {
    lookup_in_layers(layers, path).is_some()
}

/// Reads the regular file at `path` in the merged view of `layers`, at most `limit` bytes.
pub(crate) fn read_in_layers(layers: &[&Path], path: &str, limit: u64) -> Option<Vec<u8>> {
    let (host, st) = lookup_in_layers(layers, path)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    read_limited(
        fs::open(&host, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?,
        limit,
    )
}

/// Reads an open file, at most `limit` bytes.
pub(crate) fn read_limited(fd: OwnedFd, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::from(fd)
        .take(limit)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Reads the regular file at `path` inside the directory tree `root` as if `root` were `/`
/// (symlinks resolve inside it), at most `limit` bytes.
pub(crate) fn read_in_root(root: impl AsFd, path: &str, limit: u64) -> Option<Vec<u8>> {
    let fd = fs::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    read_limited(fd, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor() {
        let a = common_ancestor([
            Path::new("/var/lib/s/v1/snapshots/1/diff"),
            Path::new("/var/lib/s/v1/snapshots/22/diff"),
            Path::new("/var/lib/s/v1/snapshots/3/work"),
        ]);
        assert_eq!(a, Path::new("/var/lib/s/v1/snapshots"));
    }

    #[test]
    fn legacy_relative_when_long() {
        let lowers: Vec<PathBuf> = (0..300)
            .map(|i| PathBuf::from(format!("/var/lib/strata/v1/snapshots/{i}/diff")))
            .collect();
        let m = OverlayMount::with_strategy(
            &lowers,
            Path::new("/var/lib/strata/v1/snapshots/u/diff"),
            Path::new("/var/lib/strata/v1/snapshots/u/work"),
            false,
        )
        .unwrap();
        assert_eq!(m.chdir.as_deref(), Some(c"/var/lib/strata/v1/snapshots"));
        let Strategy::Legacy { data } = &m.strategy else {
            panic!()
        };
        let data = data.to_str().unwrap();
        assert!(data.starts_with("lowerdir=0/diff:1/diff:"), "{data}");
        assert!(data
            .ends_with(",upperdir=u/diff,workdir=u/work,index=off,metacopy=off,redirect_dir=off"));
    }

    #[test]
    fn legacy_too_long() {
        let lowers: Vec<PathBuf> = (0..300)
            .map(|i| PathBuf::from(format!("/l/{i:0>40}")))
            .collect();
        let err = OverlayMount::with_strategy(&lowers, Path::new("/u"), Path::new("/w"), false)
            .unwrap_err();
        assert!(matches!(
            err,
            RootfsError::TooManyLayers { layers: 300, .. }
        ));
        assert!(
            OverlayMount::with_strategy(&lowers, Path::new("/u"), Path::new("/w"), true)
                .unwrap()
                .is_per_layer()
        );
    }

    #[test]
    fn resolves_symlinks_inside_the_layers() {
        let dir = std::env::temp_dir().join(format!("strata-resolve-{}", std::process::id()));
        let (top, low) = (dir.join("top"), dir.join("low"));
        for d in [&top, &low] {
            std::fs::create_dir_all(d.join("opt/data")).unwrap();
        }
        std::fs::write(low.join("opt/data/file"), "x").unwrap();
        std::os::unix::fs::symlink("/opt/data", top.join("opt/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../opt/data/file", top.join("opt/data/up")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", top.join("opt/host")).unwrap();
        std::os::unix::fs::symlink("loop", top.join("opt/loop")).unwrap();
        let layers = [top.as_path(), low.as_path()];
        let r = |p: &str| resolve_in_layers(&layers, p);
        assert_eq!(r("/"), Some(("/".into(), FileType::Directory)));
        assert_eq!(
            r("opt/abs/file"),
            Some(("/opt/data/file".into(), FileType::RegularFile))
        );
        // `..` stops at the root of the layered filesystem.
        assert_eq!(
            r("/opt/data/up"),
            Some(("/opt/data/file".into(), FileType::RegularFile))
        );
        // An absolute link target resolves inside the layers, never on the host.
        assert_eq!(r("/opt/host"), None);
        assert_eq!(r("/opt/loop"), None);
        assert_eq!(r("/opt/data/file/below"), None);
        assert_eq!(
            r("/opt/abs"),
            Some(("/opt/data".into(), FileType::Directory))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        escape_legacy(b"/a,b:c\\d", &mut out);
        assert_eq!(out, b"/a\\,b\\:c\\\\d");
    }
}
