//! Confinement: every path the context reads stays inside the context directory.
//!
//! Role: the three primitives the rest of the module reads through —
//! [`normalize`] (a path given by the build → a clean root-relative path, refusing `..`
//! that climbs out), [`resolve`] (follow symlinks the way a COPY source path is resolved,
//! over any [`Lookup`]: the live directory or a walked selection), and [`open_beneath`]
//! (open a resolved path with the kernel refusing every symlink on the way).
//!
//! Key decision (TOCTOU): resolution never lets the kernel follow a symlink. Symlinks are
//! read and interpreted here, and the resolved path is then opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the context's directory
//! descriptor (falling back, where `openat2` is missing or filtered, to `openat` with
//! `O_NOFOLLOW` one component at a time from the same descriptor). A client swapping a
//! directory for a symlink between the resolution and the open makes the open fail
//! (`ELOOP`/`ENOTDIR`) instead of reading the host. Canonicalize-and-prefix-check was
//! rejected: it is racy (the checked path is re-resolved by the later open) and depends on
//! the context's absolute path.
//!
//! Symlink rule: a symlink is followed only where BuildKit follows one (intermediate
//! components of a path, its final component when asked); its target must stay inside
//! the context. A relative target is resolved from the link's directory and may not climb
//! above the context root; an absolute target is refused outright, because the host and
//! BuildKit disagree on it (BuildKit reads `/x` as `<context>/x`, the host as `/x`): a
//! target is never guessed.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{
    openat, openat2, readlinkat, statx, AtFlags, Mode, OFlags, ResolveFlags, StatxFlags,
};
use rustix::io::Errno;
use strata_frontend::ignore::clean_path;

use super::entry::EntryKind;
use super::error::ContextError;

/// Linux's `MAXSYMLINKS`: symlinks one resolution may follow.
pub const MAX_SYMLINKS: usize = 40;

/// A path given by the build (`/a/./b/`, `a//b`, `../x`) as a clean path relative to the
/// context root: `a/b`, or `.` for the root. A path whose `..` climbs out of the root is an
/// error (BuildKit would clamp it at the root; a build asking for it is mistaken).
pub fn normalize(path: &str) -> Result<String, ContextError> {
    let relative = path.trim_start_matches('/');
    let cleaned = clean_path(if relative.is_empty() { "." } else { relative });
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(ContextError::OutsideContext {
            path: path.to_owned(),
        });
    }
    Ok(cleaned.into_owned())
}

/// What [`resolve`] needs to know about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A directory.
    Dir,
    /// A symlink with its raw target.
    Symlink(Vec<u8>),
    /// Anything else (regular file, device…).
    Other,
}

/// A tree [`resolve`] walks: the live directory, or a walked selection.
pub(crate) trait Lookup {
    /// The node at the clean, root-relative `path` (all of whose parents are directories),
    /// or `None` if there is none.
    fn lookup(&mut self, path: &str) -> Result<Option<Node>, ContextError>;
}

/// Resolves `path` (as given by the build) to a root-relative path without symlinks in its
/// directories, following the final component too when `follow_final`. Errors name
/// `path`: missing → `not found`; a followed symlink leading out of the context →
/// [`ContextError::SymlinkEscape`]; more than [`MAX_SYMLINKS`] links →
/// [`ContextError::TooManyLinks`].
pub(crate) fn resolve(
    tree: &mut dyn Lookup,
    path: &str,
    follow_final: bool,
) -> Result<String, ContextError> {
    let clean = normalize(path)?;
    let shown = clean.clone();
    let mut todo: VecDeque<String> = if clean == "." {
        VecDeque::new()
    } else {
        clean.split('/').map(str::to_owned).collect()
    };
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    let mut last_link = String::new();
    while let Some(component) = todo.pop_front() {
        match component.as_str() {
            "" | "." => continue,
            ".." => {
                // Only symlink targets bring `..` (the input is clean).
                if done.pop().is_none() {
                    return Err(ContextError::SymlinkEscape {
                        path: shown,
                        link: last_link,
                    });
                }
                continue;
            }
            _ => {}
        }
        let is_last = todo.iter().all(|c| c.is_empty() || c == ".");
        let candidate = if done.is_empty() {
            component.clone()
        } else {
            format!("{}/{component}", done.join("/"))
        };
        match tree.lookup(&candidate)? {
            None => return Err(ContextError::NotFound { path: shown }),
            Some(Node::Dir) => done.push(component),
            Some(Node::Other) if is_last => done.push(component),
            Some(Node::Other) => return Err(ContextError::NotADirectory { path: shown }),
            Some(Node::Symlink(_)) if is_last && !follow_final => done.push(component),
            Some(Node::Symlink(target)) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(ContextError::TooManyLinks { path: shown });
                }
                // A target that is not text cannot name a context path.
                let Ok(target) = String::from_utf8(target) else {
                    return Err(ContextError::NotFound { path: shown });
                };
                if target.is_empty() {
                    return Err(ContextError::NotFound { path: shown });
                }
                if target.starts_with('/') {
                    return Err(ContextError::SymlinkEscape {
                        path: shown,
                        link: candidate,
                    });
                }
                last_link = candidate;
                for part in target.split('/').rev() {
                    todo.push_front(part.to_owned());
                }
            }
        }
    }
    Ok(if done.is_empty() {
        ".".to_owned()
    } else {
        done.join("/")
    })
}

/// Set once `openat2` turns out to be unavailable (old kernel, or a seccomp filter that
/// answers `ENOSYS`/`EPERM`), so the fallback is used without retrying.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens the clean, root-relative `path` under `root` with `flags`, refusing any symlink
/// on the way, the final component included (with `O_PATH` a final symlink is opened
/// itself). `O_CLOEXEC | O_NOFOLLOW` are always added.
pub(crate) fn open_beneath(root: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    if path == "." {
        return Ok(openat(root, ".", flags, Mode::empty())?);
    }
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            other => return Ok(other?),
        }
    }
    open_by_components(root, path, flags)
}

/// The fallback of [`open_beneath`]: one component at a time, each relative to a
/// descriptor we hold, never following a symlink.
fn open_by_components(root: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut parts = path.split('/').peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        if part.is_empty() || part == "." || part == ".." {
            return Err(io::Error::from(Errno::INVAL));
        }
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        if parts.peek().is_none() {
            return Ok(openat(at, part, flags, Mode::empty())?);
        }
        let next = openat(
            at,
            part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    Err(io::Error::from(Errno::INVAL))
}

/// The kind of an open descriptor (`O_PATH` ones included) without following it.
pub(crate) fn fd_kind(fd: BorrowedFd<'_>) -> io::Result<EntryKind> {
    let st = statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::TYPE,
    )?;
    Ok(EntryKind::from_mode(u32::from(st.stx_mode)))
}

/// The target of the symlink open as `fd` (an `O_PATH | O_NOFOLLOW` descriptor).
pub(crate) fn fd_link_target(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    Ok(readlinkat(fd, "", Vec::new())?.into_bytes())
}

/// Whether an [`open_beneath`] error means a directory on the way is not one (any more):
/// `ELOOP` for a symlink, `ENOTDIR` for a file.
pub(crate) fn is_symlink_or_file_on_the_way(err: &io::Error) -> bool {
    let code = err.raw_os_error();
    code == Some(Errno::LOOP.raw_os_error()) || code == Some(Errno::NOTDIR.raw_os_error())
}

/// [`Lookup`] over the live context directory.
pub(crate) struct LiveTree<'a> {
    /// The context root.
    pub root: BorrowedFd<'a>,
}

impl Lookup for LiveTree<'_> {
    fn lookup(&mut self, path: &str) -> Result<Option<Node>, ContextError> {
        let fd = match open_beneath(self.root, path, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // A parent checked as a directory is now a symlink or a file.
            Err(e) if is_symlink_or_file_on_the_way(&e) => {
                return Err(ContextError::Changed {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(ContextError::io(path, e)),
        };
        let kind = fd_kind(fd.as_fd()).map_err(|e| ContextError::io(path, e))?;
        Ok(Some(match kind {
            EntryKind::Dir => Node::Dir,
            EntryKind::Symlink => {
                Node::Symlink(fd_link_target(fd.as_fd()).map_err(|e| ContextError::io(path, e))?)
            }
            _ => Node::Other,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn both_openers_refuse_symlinks_and_escapes() {
        let dir = std::env::temp_dir().join(format!("strata-confine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a/f"), b"f").unwrap();
        std::os::unix::fs::symlink("a", dir.join("l")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("a/h")).unwrap();
        let root =
            rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let root = root.as_fd();
        for open in [open_beneath, open_by_components] {
            assert!(open(root, "a/f", OFlags::RDONLY).is_ok());
            let err = open(root, "l/f", OFlags::RDONLY).unwrap_err();
            assert!(is_symlink_or_file_on_the_way(&err), "{err}");
            let err = open(root, "a/h", OFlags::RDONLY).unwrap_err();
            assert!(is_symlink_or_file_on_the_way(&err), "{err}");
            // With O_PATH the final symlink is opened itself.
            let fd = open(root, "a/h", OFlags::PATH).unwrap();
            assert_eq!(fd_kind(fd.as_fd()).unwrap(), EntryKind::Symlink);
            assert_eq!(fd_link_target(fd.as_fd()).unwrap(), b"/etc/hostname");
            assert!(open(root, "../x", OFlags::RDONLY).is_err());
            assert_eq!(
                open(root, "a/missing", OFlags::RDONLY).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
        }
        assert!(open_beneath(root, ".", OFlags::RDONLY).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn normalize_cleans_and_refuses_escapes() {
        assert_eq!(normalize("/a/./b/").unwrap(), "a/b");
        assert_eq!(normalize("").unwrap(), ".");
        assert_eq!(normalize("/").unwrap(), ".");
        assert_eq!(normalize("a/../b").unwrap(), "b");
        assert_eq!(normalize("a/..").unwrap(), ".");
        for bad in ["..", "../x", "/../x", "a/../../x"] {
            assert!(
                matches!(normalize(bad), Err(ContextError::OutsideContext { ref path }) if path == bad),
                "{bad}"
            );
        }
    }

    struct Fake(BTreeMap<&'static str, Node>);

    impl Lookup for Fake {
        fn lookup(&mut self, path: &str) -> Result<Option<Node>, ContextError> {
            Ok(self.0.get(path).cloned())
        }
    }

    fn fake() -> Fake {
        let link = |t: &str| Node::Symlink(t.as_bytes().to_vec());
        Fake(BTreeMap::from([
            ("d", Node::Dir),
            ("d/f", Node::Other),
            ("d/up", link("..")),
            ("d/sib", link("../e/g")),
            ("e", Node::Dir),
            ("e/g", Node::Other),
            ("abs", link("/etc")),
            ("out", link("d/../../x")),
            ("loop", link("loop")),
            ("dl", link("d")),
            ("f", Node::Other),
        ]))
    }

    #[test]
    fn resolves_like_a_path_walk() {
        let mut t = fake();
        assert_eq!(resolve(&mut t, "d/f", true).unwrap(), "d/f");
        assert_eq!(resolve(&mut t, "dl/f", false).unwrap(), "d/f");
        assert_eq!(resolve(&mut t, "dl", false).unwrap(), "dl");
        assert_eq!(resolve(&mut t, "dl", true).unwrap(), "d");
        assert_eq!(resolve(&mut t, "d/up", true).unwrap(), ".");
        assert_eq!(resolve(&mut t, "d/up/e/g", false).unwrap(), "e/g");
        assert_eq!(resolve(&mut t, "d/sib", true).unwrap(), "e/g");
        assert_eq!(resolve(&mut t, "/", true).unwrap(), ".");
    }

    #[test]
    fn resolution_errors_name_the_path() {
        let mut t = fake();
        let err = resolve(&mut t, "abs/passwd", false).unwrap_err();
        assert!(
            matches!(err, ContextError::SymlinkEscape { ref path, ref link } if path == "abs/passwd" && link == "abs")
        );
        // Not following the final component never reads the target.
        assert_eq!(resolve(&mut t, "abs", false).unwrap(), "abs");
        assert!(matches!(
            resolve(&mut t, "abs", true),
            Err(ContextError::SymlinkEscape { .. })
        ));
        assert!(matches!(
            resolve(&mut t, "out", true),
            Err(ContextError::SymlinkEscape { ref link, .. }) if link == "out"
        ));
        assert!(matches!(
            resolve(&mut t, "loop", true),
            Err(ContextError::TooManyLinks { .. })
        ));
        assert!(matches!(
            resolve(&mut t, "missing", true),
            Err(ContextError::NotFound { ref path }) if path == "missing"
        ));
        assert!(matches!(
            resolve(&mut t, "f/x", true),
            Err(ContextError::NotADirectory { .. })
        ));
        assert!(matches!(
            resolve(&mut t, "../f", true),
            Err(ContextError::OutsideContext { .. })
        ));
    }
}
