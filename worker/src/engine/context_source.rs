//! The build context seen as a [`SourceFs`], so COPY reads it with the same code as a stage.
//!
//! Key decision: the view serves exactly the entries of the selection the cache key was
//! computed from (the Local source's include set after `.dockerignore`), so a COPY can never
//! read a file its key does not cover, and `.dockerignore`d files are simply absent.

use crate::context::{Context, Entry, EntryKind, Selected};
use crate::file::{FileKind, SourceFs, Stat, Timespec};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A selection of the build context, read through its confined handle.
#[derive(Debug)]
pub struct ContextSource {
    context: Arc<Context>,
    selected: Selected,
}

impl ContextSource {
    /// A view of `selected` within `context`.
    pub fn new(context: Arc<Context>, selected: Selected) -> Self {
        Self { context, selected }
    }

    /// The context-relative form of a view path (`/a/b` → `a/b`, `/` → ``).
    fn relative(path: &Path) -> String {
        let text = path.to_string_lossy();
        text.trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    }

    fn entry(&self, path: &Path) -> io::Result<Option<&Entry>> {
        let rel = Self::relative(path);
        if rel.is_empty() || rel == "." {
            return Ok(None);
        }
        Ok(self.selected.get(&rel))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

fn stat_of(entry: &Entry) -> Stat {
    let meta = &entry.meta;
    let kind = match entry.kind() {
        EntryKind::File => FileKind::File,
        EntryKind::Dir => FileKind::Dir,
        EntryKind::Symlink => FileKind::Symlink,
        EntryKind::Fifo => FileKind::Fifo,
        EntryKind::Socket => FileKind::Socket,
        EntryKind::CharDevice => FileKind::CharDevice,
        EntryKind::BlockDevice => FileKind::BlockDevice,
    };
    let time = Timespec {
        sec: meta.mtime.sec,
        nsec: meta.mtime.nsec,
    };
    Stat {
        kind,
        mode: meta.mode & 0o7777,
        // BuildKit's client sends context files as 0:0.
        uid: 0,
        gid: 0,
        size: meta.size,
        atime: time,
        mtime: time,
        rdev: meta.rdev,
        hardlink: (kind != FileKind::Dir && meta.nlink > 1).then_some((meta.dev, meta.ino)),
    }
}

impl SourceFs for ContextSource {
    fn lstat(&self, path: &Path) -> io::Result<Option<Stat>> {
        let rel = Self::relative(path);
        if rel.is_empty() || rel == "." {
            // The context root: a directory owned by root.
            let meta = self.context.metadata(".").map_err(io::Error::other)?;
            let time = Timespec {
                sec: meta.mtime.sec,
                nsec: meta.mtime.nsec,
            };
            return Ok(Some(Stat {
                kind: FileKind::Dir,
                mode: meta.mode & 0o7777,
                uid: 0,
                gid: 0,
                size: 0,
                atime: time,
                mtime: time,
                rdev: 0,
                hardlink: None,
            }));
        }
        Ok(self.entry(path)?.map(stat_of))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let rel = Self::relative(path);
        let depth = if rel.is_empty() {
            0
        } else {
            rel.split('/').count()
        };
        let mut names: Vec<OsString> = self
            .selected
            .under(if rel.is_empty() { "." } else { &rel })
            .iter()
            .filter(|e| e.path.split('/').count() == depth + 1)
            .map(|e| OsString::from(e.name()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let entry = self.entry(path)?.ok_or_else(|| not_found(path))?;
        entry
            .link_target
            .clone()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a symlink"))
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        let entry = self.entry(path)?.ok_or_else(|| not_found(path))?;
        self.context.open_entry(entry).map_err(io::Error::other)
    }
}
