//! The filtered walk of the context directory, in parallel.
//!
//! Role: lists exactly the entries a selection keeps, with their metadata, in fsutil's
//! order (depth first, each directory's names sorted bytewise). Decisions are the
//! frontend's ([`WalkFilter::decide`]): include/exclude per entry, directories skipped
//! whole when no pattern can reach inside, and a directory that is not kept itself
//! emitted just before its first kept descendant (and only then). Main item: [`walk`].
//!
//! Key decisions:
//! - Descriptor-relative, never following: each directory is opened with
//!   `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)` from the one above it, entries are
//!   `statx`ed relative to it; nothing here resolves a path from the root, so a symlink
//!   swapped in mid-walk cannot lead the walk out of the context.
//! - Parallel without changing the result: a directory's entries are decided in order,
//!   then stat-ed and descended in parallel (rayon) and reassembled in order. Because
//!   every decision only needs the parent's [`DirState`], the depth-first bookkeeping of
//!   fsutil reduces to one rule applied after the fact: a not-kept directory is emitted
//!   in its place iff something below it is.
//! - Entries the filter drops cost no `statx` (the directory listing's type is enough),
//!   so a `.dockerignore`d `node_modules` costs one `getdents` at most.
//! - A name that vanishes between the listing and its `statx` is skipped (the walk shows
//!   the directory as it now is); one that changes kind under us is an error.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rayon::prelude::*;
use rustix::fs::{openat, readlinkat, statx, AtFlags, Dir, FileType, Mode, OFlags, StatxFlags};
use strata_frontend::ignore::{Action, DirState, WalkFilter};

use super::confine::is_symlink_or_file_on_the_way;
use super::entry::{Entry, Metadata};
use super::error::ContextError;

/// Walks the directory `root` (the context root, never emitted itself) and returns the
/// entries `filter` selects, in fsutil's order.
pub(crate) fn walk(root: BorrowedFd<'_>, filter: &WalkFilter) -> Result<Vec<Entry>, ContextError> {
    let nodes = walk_dir(root, "", &DirState::default(), filter)?;
    let mut out = Vec::new();
    flatten(nodes, &mut out);
    Ok(out)
}

/// A walked entry before emission is decided.
enum Node {
    Leaf(Entry),
    Dir {
        entry: Entry,
        /// Kept itself (else emitted only as the parent of a kept entry).
        keep: bool,
        children: Vec<Node>,
    },
}

/// What the sequential pass decided about one name; the parallel pass does the I/O.
enum Slot {
    Leaf {
        name: String,
        path: String,
    },
    Dir {
        name: String,
        path: String,
        state: DirState,
        keep: bool,
    },
}

fn walk_dir(
    dir: BorrowedFd<'_>,
    dir_path: &str,
    state: &DirState,
    filter: &WalkFilter,
) -> Result<Vec<Node>, ContextError> {
    let names = list(dir, dir_path)?;
    let mut slots = Vec::with_capacity(names.len());
    let mut subdirs = 0usize;
    for (name, file_type) in names {
        let path = if dir_path.is_empty() {
            name.clone()
        } else {
            format!("{dir_path}/{name}")
        };
        let is_dir = match file_type {
            FileType::Directory => true,
            FileType::Unknown => match stat_at(dir, &name, &path)? {
                Some(meta) => meta.is_dir(),
                None => continue,
            },
            _ => false,
        };
        let decision = filter.decide(&path, is_dir, state);
        match (decision.action, is_dir) {
            (Action::SkipDir, _) | (Action::Exclude, false) => {}
            (Action::Include, false) => slots.push(Slot::Leaf { name, path }),
            (action, true) => {
                subdirs += 1;
                slots.push(Slot::Dir {
                    name,
                    path,
                    state: decision.dir_state.unwrap_or_default(),
                    keep: action == Action::Include,
                });
            }
        }
    }
    let visit = |slot: Slot| visit_slot(dir, slot, filter);
    let nodes: Vec<Option<Node>> = if subdirs == 0 && slots.len() < 256 {
        slots.into_iter().map(visit).collect::<Result<_, _>>()?
    } else {
        slots
            .into_par_iter()
            .with_min_len(32)
            .map(visit)
            .collect::<Result<_, _>>()?
    };
    Ok(nodes.into_iter().flatten().collect())
}

fn visit_slot(
    dir: BorrowedFd<'_>,
    slot: Slot,
    filter: &WalkFilter,
) -> Result<Option<Node>, ContextError> {
    match slot {
        Slot::Leaf { name, path } => {
            let Some(meta) = stat_at(dir, &name, &path)? else {
                return Ok(None);
            };
            if meta.is_dir() {
                // Listed as a file, now a directory: replaced under us.
                return Err(ContextError::Changed { path });
            }
            let link_target = if meta.is_symlink() {
                match readlinkat(dir, name.as_str(), Vec::new()) {
                    Ok(target) => Some(PathBuf::from(OsString::from_vec(target.into_bytes()))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(_) => return Err(ContextError::Changed { path }),
                }
            } else {
                None
            };
            Ok(Some(Node::Leaf(Entry {
                path,
                meta,
                link_target,
                content_hash: None,
            })))
        }
        Slot::Dir {
            name,
            path,
            state,
            keep,
        } => {
            let fd = match openat(
                dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if is_symlink_or_file_on_the_way(&e.into()) => {
                    return Err(ContextError::Changed { path })
                }
                Err(e) => return Err(ContextError::io(&path, e.into())),
            };
            let st = statx(fd.as_fd(), "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
                .map_err(|e| ContextError::io(&path, e.into()))?;
            let children = walk_dir(fd.as_fd(), &path, &state, filter)?;
            Ok(Some(Node::Dir {
                entry: Entry {
                    path,
                    meta: Metadata::from_statx(&st),
                    link_target: None,
                    content_hash: None,
                },
                keep,
                children,
            }))
        }
    }
}

/// The names in `dir` with their listed types, sorted bytewise.
fn list(dir: BorrowedFd<'_>, dir_path: &str) -> Result<Vec<(String, FileType)>, ContextError> {
    let shown = if dir_path.is_empty() { "." } else { dir_path };
    let io_err = |e: rustix::io::Errno| ContextError::io(shown, e.into());
    // `Dir` reads through its own descriptor so the caller's stays usable for `*at` calls.
    let mut entries = Dir::read_from(dir).map_err(io_err)?;
    let mut names = Vec::new();
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(io_err)?;
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let name = match std::str::from_utf8(bytes) {
            Ok(name) => name.to_owned(),
            Err(_) => {
                let lossy = String::from_utf8_lossy(bytes);
                return Err(ContextError::InvalidName {
                    path: if dir_path.is_empty() {
                        lossy.into_owned()
                    } else {
                        format!("{dir_path}/{lossy}")
                    },
                });
            }
        };
        names.push((name, entry.file_type()));
    }
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// `lstat` of `name` in `dir`; `None` when it is gone.
fn stat_at(dir: BorrowedFd<'_>, name: &str, path: &str) -> Result<Option<Metadata>, ContextError> {
    match statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    ) {
        Ok(st) => Ok(Some(Metadata::from_statx(&st))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ContextError::io(path, e.into())),
    }
}

/// Emission: kept entries in order; a not-kept directory only if something below it is
/// emitted (fsutil emits it just before that descendant, which is the same place).
fn flatten(nodes: Vec<Node>, out: &mut Vec<Entry>) {
    for node in nodes {
        match node {
            Node::Leaf(entry) => out.push(entry),
            Node::Dir {
                entry,
                keep,
                children,
            } => {
                let at = out.len();
                out.push(entry);
                flatten(children, out);
                if !keep && out.len() == at + 1 {
                    out.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use strata_frontend::ignore::FilterOptions;

    #[test]
    fn emits_parents_only_for_kept_descendants() {
        let dir = std::env::temp_dir().join(format!("strata-walk-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in ["a/deep", "b", "d", "e"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["a/deep/keep", "a/drop", "b/x", "c", "d/y", "e/z"] {
            fs::write(dir.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("/nowhere", dir.join("l")).unwrap();
        let filter = WalkFilter::new(&FilterOptions {
            exclude_patterns: ["a*", "!a/deep/keep", "b", "d*", "!d/none"]
                .map(String::from)
                .to_vec(),
            ..FilterOptions::default()
        })
        .unwrap();
        let root =
            rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let entries = walk(root.as_fd(), &filter).unwrap();
        let got: Vec<(&str, bool)> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.meta.is_dir()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", true),
                ("a/deep", true),
                ("a/deep/keep", false),
                ("c", false),
                ("e", true),
                ("e/z", false),
                ("l", false),
            ]
        );
        let link = entries.iter().find(|e| e.path == "l").unwrap();
        assert!(link.meta.is_symlink());
        assert_eq!(
            link.link_target.as_deref(),
            Some(std::path::Path::new("/nowhere"))
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
