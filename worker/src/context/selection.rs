//! Selections: which part of the context a step reads, and the walked result.
//!
//! Role: [`Selection`] is the value form of a context vertex's `include` and
//! `follow_paths` (`SourceOp::Local`), normalized; [`Selected`] is what a walk of the
//! context under it found — the entries, in fsutil's order — with lookups and BuildKit's
//! path resolution inside it, so a COPY resolves its source exactly in what was
//! checksummed and never beyond.
//!
//! Key decisions:
//! - Include patterns are the frontend's (`WalkFilter`): plain paths, directories, and
//!   wildcards with `.dockerignore` syntax. For COPY sources that is the matching BuildKit's
//!   client applies when it transfers the context for a step; `**` may select more than
//!   the COPY then reads (the copy's own wildcard treats `**` as `*`), which only makes a
//!   cache key cover more, never less.
//! - A selection whose include names a plain path (no wildcard) that does not resolve in
//!   the selected tree is an error, `"/path": not found`, as BuildKit's cache-key
//!   computation reports it; a wildcard matching nothing selects nothing.
//! - Paths are ordered component by component (fsutil's walk order), so lookups are
//!   binary searches and everything under a directory is one contiguous slice.

use std::cmp::Ordering;
use std::time::SystemTime;

use strata_solver::op::SourceOp;

use super::confine::{normalize, resolve, Lookup, Node};
use super::entry::{Entry, EntryKind};
use super::error::ContextError;

/// The part of the context a step reads: a context vertex's include patterns and follow
/// paths (the `.dockerignore` excludes belong to the [`Context`](super::Context)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    include: Vec<String>,
    follow_paths: Vec<String>,
}

impl Selection {
    /// The whole context (`COPY . .`).
    pub fn all() -> Selection {
        Selection::default()
    }

    /// What a COPY of `paths` reads: they are both the include patterns and the follow
    /// paths (the frontend's lowering does the same).
    pub fn paths<S: AsRef<str>>(paths: &[S]) -> Result<Selection, ContextError> {
        Selection::new(paths, paths)
    }

    /// A selection from include patterns and follow paths, normalized: leading `/`
    /// removed, cleaned, sorted, de-duplicated; the root (`.`, `/`) among the includes
    /// selects everything. A pattern climbing out with `..` is an error.
    pub fn new<S: AsRef<str>, T: AsRef<str>>(
        include: &[S],
        follow_paths: &[T],
    ) -> Result<Selection, ContextError> {
        let mut includes = Vec::with_capacity(include.len());
        for pattern in include {
            let clean = normalize(pattern.as_ref())?;
            if clean == "." {
                includes.clear();
                break;
            }
            includes.push(clean);
        }
        let mut follows = follow_paths
            .iter()
            .map(|p| normalize(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        for list in [&mut includes, &mut follows] {
            list.sort();
            list.dedup();
        }
        Ok(Selection {
            include: includes,
            follow_paths: follows,
        })
    }

    /// The selection of a `Local` source op; `None` for other ops.
    pub fn from_source(op: &SourceOp) -> Option<Result<Selection, ContextError>> {
        match op {
            SourceOp::Local {
                include,
                follow_paths,
                ..
            } => Some(Selection::new(include, follow_paths)),
            _ => None,
        }
    }

    /// The include patterns (empty: everything).
    pub fn include(&self) -> &[String] {
        &self.include
    }

    /// The follow paths.
    pub fn follow_paths(&self) -> &[String] {
        &self.follow_paths
    }

    /// Whether this selects the whole context (before excludes).
    pub fn is_all(&self) -> bool {
        self.include.is_empty()
    }

    /// The include patterns that name one path (no wildcard), unescaped, with whether
    /// their final symlink is followed: these must exist in the selected tree.
    pub(crate) fn required_paths(&self) -> Vec<(String, bool)> {
        self.include
            .iter()
            .filter(|p| !has_wildcards(p))
            .map(|p| {
                let follow = self.follow_paths.binary_search(p).is_ok();
                (unescape(p), follow)
            })
            .collect()
    }
}

/// Whether a pattern has an unescaped `*`, `?` or `[` (fsutil's `containsWildcards`).
fn has_wildcards(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// A pattern without wildcards as the path it names (`\x` is `x`).
fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// fsutil's walk order: component by component, each compared bytewise.
pub(crate) fn walk_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The entries a [`Selection`] selects in a context, in walk order.
#[derive(Debug, Clone)]
pub struct Selected {
    pub(crate) entries: Vec<Entry>,
    /// The selection covered the whole context (the stat cache may drop other records).
    pub(crate) whole: bool,
    /// When the walk started: files changed after `walked_at - racy window` are not cached.
    pub(crate) walked_at: SystemTime,
}

impl Selected {
    /// The entries, in walk order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Consumes the selection into its entries.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at the clean, root-relative `path` (no symlink resolution).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| walk_order(&e.path, path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Everything strictly below directory `path` (`.` for all), in walk order.
    pub fn under(&self, path: &str) -> &[Entry] {
        if path == "." || path.is_empty() {
            return &self.entries;
        }
        let start = self
            .entries
            .partition_point(|e| walk_order(&e.path, path) != Ordering::Greater);
        let rest = &self.entries[start..];
        let len = rest.partition_point(|e| {
            e.path.len() > path.len()
                && e.path.starts_with(path)
                && e.path.as_bytes()[path.len()] == b'/'
        });
        &rest[..len]
    }

    /// Resolves `path` (as a COPY source names it) inside the selection: intermediate
    /// symlinks are followed, the final one when `follow_final`; a path not in the
    /// selection is `not found`, a symlink leading out of the context an error. Returns
    /// the clean root-relative path (`.` for the root).
    pub fn resolve(&self, path: &str, follow_final: bool) -> Result<String, ContextError> {
        resolve(&mut SelectedTree(self), path, follow_final)
    }
}

/// [`Lookup`] over a selection.
struct SelectedTree<'a>(&'a Selected);

impl Lookup for SelectedTree<'_> {
    fn lookup(&mut self, path: &str) -> Result<Option<Node>, ContextError> {
        Ok(self.0.get(path).map(|e| match e.kind() {
            EntryKind::Dir => Node::Dir,
            EntryKind::Symlink => Node::Symlink(
                e.link_target
                    .as_deref()
                    .map(|t| t.as_os_str().as_encoded_bytes().to_vec())
                    .unwrap_or_default(),
            ),
            _ => Node::Other,
        }))
    }
}

/// The entries of a selection, as [`Context::entries`](super::Context::entries) returns
/// them: an owning iterator in walk order.
#[derive(Debug)]
pub struct Entries {
    inner: std::vec::IntoIter<Entry>,
}

impl Entries {
    pub(crate) fn new(entries: Vec<Entry>) -> Entries {
        Entries {
            inner: entries.into_iter(),
        }
    }
}

impl Iterator for Entries {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Entries {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::entry::{Metadata, Timestamp};

    #[test]
    fn selections_are_normalized() {
        let s = Selection::paths(&["/b/", "./a", "a", "c/../d"]).unwrap();
        assert_eq!(s.include(), ["a", "b", "d"]);
        assert!(Selection::paths(&["src", "/"]).unwrap().is_all());
        assert!(matches!(
            Selection::paths(&["../etc/passwd"]),
            Err(ContextError::OutsideContext { ref path }) if path == "../etc/passwd"
        ));
        let s = Selection::new(&["a*", "b\\*c", "d"], &["d"]).unwrap();
        assert_eq!(
            s.required_paths(),
            [("b*c".to_owned(), false), ("d".to_owned(), true)]
        );
    }

    #[test]
    fn walk_order_is_per_component() {
        assert_eq!(walk_order("a/x", "a.txt"), Ordering::Less);
        assert_eq!(walk_order("a", "a/x"), Ordering::Less);
        assert_eq!(walk_order("a.txt", "a/x"), Ordering::Greater);
    }

    fn selected(paths: &[(&str, u32)]) -> Selected {
        Selected {
            entries: paths
                .iter()
                .map(|&(p, mode)| Entry {
                    path: p.into(),
                    meta: Metadata {
                        mode,
                        size: 0,
                        uid: 0,
                        gid: 0,
                        mtime: Timestamp::default(),
                        ctime: Timestamp::default(),
                        ino: 0,
                        dev: 0,
                        nlink: 1,
                        rdev: 0,
                    },
                    link_target: None,
                    content_hash: None,
                })
                .collect(),
            whole: false,
            walked_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn lookups_and_subtrees() {
        const D: u32 = 0o040755;
        const F: u32 = 0o100644;
        let s = selected(&[
            ("a", D),
            ("a/b", F),
            ("a/c", D),
            ("a/c/d", F),
            ("a.txt", F),
            ("b", F),
        ]);
        assert!(s.get("a/c/d").is_some());
        assert!(s.get("a/x").is_none());
        let names = |es: &[Entry]| es.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
        assert_eq!(names(s.under("a")), ["a/b", "a/c", "a/c/d"]);
        assert_eq!(names(s.under("a/c")), ["a/c/d"]);
        assert!(s.under("b").is_empty());
        assert_eq!(s.under(".").len(), 6);
        assert_eq!(s.resolve("/a/c/d", true).unwrap(), "a/c/d");
        assert!(matches!(
            s.resolve("a/zz", true),
            Err(ContextError::NotFound { .. })
        ));
    }
}
