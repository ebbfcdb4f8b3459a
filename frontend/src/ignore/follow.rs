//! Follow paths: paths that must be transferred even when they are symlinks
//! pointing elsewhere in the context (BuildKit uses them to fetch just the
//! Dockerfile or `.dockerignore`). fsutil resolves them into extra include
//! patterns; the algorithm lives here, the filesystem answers come from the
//! caller through [`SymlinkSource`].

use std::collections::BTreeSet;
use std::io;

use super::clean::{base_name, clean_path, join_paths, parent_dir};
use super::pattern::glob_match;

/// Filesystem questions the follow-path resolver needs answered. Paths are
/// relative to the context root, `/`-separated and cleaned (`.` is the root).
pub trait SymlinkSource {
    /// The raw target of `path` if it is a symlink; `Ok(None)` when it does
    /// not exist or is not a symlink.
    fn read_link(&mut self, path: &str) -> io::Result<Option<String>>;

    /// The entry names of directory `dir`; `Ok(None)` when it does not exist.
    fn read_dir(&mut self, dir: &str) -> io::Result<Option<Vec<String>>>;
}

/// Why follow paths could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The [`SymlinkSource`] failed for a reason other than "not found".
    #[error("resolving follow path {path:?}: {source}")]
    Io {
        /// Path being inspected.
        path: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Symlinks nested deeper than [`MAX_LINK_DEPTH`].
    #[error("too many levels of symbolic links resolving {path:?}")]
    TooManyLinks {
        /// Path being resolved when the limit was hit.
        path: String,
    },
}

/// Recursion bound for symlink chains; fsutil has none, but a malicious or
/// buggy source must not overflow our stack.
pub const MAX_LINK_DEPTH: usize = 255;

/// Resolves follow paths into the extra include patterns fsutil adds: each
/// path, every symlink met along it, and the paths its targets lead to.
/// A final path component may hold wildcards (`*`, `?`, `[`) matched against
/// the directory's entries.
///
/// Returns the sorted, de-duplicated list (a path inside another listed path is
/// dropped), or `None` when the context root itself is among the results — as
/// in fsutil, the include patterns are then left unchanged. Pass the result to
/// [`FilterOptions::follow_targets`](super::FilterOptions::follow_targets).
pub fn resolve_follow_paths<S: AsRef<str>>(
    paths: &[S],
    source: &mut dyn SymlinkSource,
) -> Result<Option<Vec<String>>, FollowError> {
    let mut resolver = Resolver {
        source,
        resolved: BTreeSet::new(),
    };
    for path in paths {
        resolver.append(path.as_ref(), 0)?;
    }
    let sorted: Vec<String> = resolver.resolved.into_iter().collect();
    Ok(dedupe_paths(sorted))
}

/// fsutil's `dedupePaths`: drops each path that lies under the previously kept
/// one (expects sorted input to be thorough), and gives `None` if any path is
/// `.`, meaning "everything".
pub(crate) fn dedupe_paths(paths: Vec<String>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    let mut last = String::new();
    for path in paths {
        if path == "." {
            return None;
        }
        // With `last` still empty this drops paths starting with `/`, as fsutil does.
        if path
            .strip_prefix(last.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
        {
            continue;
        }
        last.clone_from(&path);
        out.push(path);
    }
    Some(out)
}

struct Resolver<'a> {
    source: &'a mut dyn SymlinkSource,
    resolved: BTreeSet<String>,
}

impl Resolver<'_> {
    fn append(&mut self, path: &str, depth: usize) -> Result<(), FollowError> {
        if depth > MAX_LINK_DEPTH {
            return Err(FollowError::TooManyLinks {
                path: path.to_owned(),
            });
        }
        let mut rest = join_paths(".", path);
        let mut current = ".".to_owned();
        loop {
            let (first, remainder) = match rest.split_once('/') {
                Some((first, remainder)) => (first.to_owned(), remainder.to_owned()),
                None => (rest.clone(), String::new()),
            };
            current = join_paths(&current, &first);
            let targets = self.read_symlink(&current, true)?;
            rest = remainder;

            if (rest.is_empty() || !targets.is_empty()) && self.resolved.contains(&current) {
                return Ok(());
            }
            if !targets.is_empty() {
                self.resolved.insert(current);
                for target in targets {
                    self.append(&join_paths(&target, &rest), depth + 1)?;
                }
                return Ok(());
            }
            if rest.is_empty() {
                self.resolved.insert(current);
                return Ok(());
            }
        }
    }

    /// Absolute (context-rooted) targets of `path`, or of every entry its
    /// wildcard base name matches; empty when nothing is a symlink.
    fn read_symlink(
        &mut self,
        path: &str,
        allow_wildcard: bool,
    ) -> Result<Vec<String>, FollowError> {
        let base = base_name(path);
        if allow_wildcard && has_wildcards(base) {
            let dir = parent_dir(path).into_owned();
            let mut names = self
                .source
                .read_dir(&dir)
                .map_err(|source| FollowError::Io {
                    path: dir.clone(),
                    source,
                })?
                .unwrap_or_default();
            names.sort();
            let mut out = Vec::new();
            for name in names.iter().filter(|name| glob_match(base, name)) {
                out.extend(self.read_symlink(&join_paths(&dir, name), false)?);
            }
            return Ok(out);
        }
        if path == "." || path == "/" {
            return Ok(Vec::new());
        }
        let link = self
            .source
            .read_link(path)
            .map_err(|source| FollowError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(match link {
            None => Vec::new(),
            Some(link) => {
                let link = clean_path(&link);
                if link.starts_with('/') {
                    vec![link.into_owned()]
                } else {
                    vec![join_paths("/", &join_paths(&parent_dir(path), &link))]
                }
            }
        })
    }
}

/// fsutil's `containsWildcards` on Unix: `\` escapes the next character.
fn has_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory tree: `links` maps symlink paths to raw targets; `dirs`
    /// maps directories to their entry names.
    #[derive(Default)]
    struct FakeFs {
        links: BTreeMap<String, String>,
        dirs: BTreeMap<String, Vec<String>>,
        fail_on: Option<String>,
    }

    impl SymlinkSource for FakeFs {
        fn read_link(&mut self, path: &str) -> io::Result<Option<String>> {
            if self.fail_on.as_deref() == Some(path) {
                return Err(io::Error::other("boom"));
            }
            Ok(self.links.get(path).cloned())
        }
        fn read_dir(&mut self, dir: &str) -> io::Result<Option<Vec<String>>> {
            Ok(self.dirs.get(dir).cloned())
        }
    }

    fn fs(links: &[(&str, &str)], dirs: &[(&str, &[&str])]) -> FakeFs {
        FakeFs {
            links: links
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            dirs: dirs
                .iter()
                .map(|(d, names)| (d.to_string(), names.iter().map(|n| n.to_string()).collect()))
                .collect(),
            fail_on: None,
        }
    }

    #[test]
    fn plain_paths_are_cleaned() {
        let mut src = fs(&[], &[]);
        let got = resolve_follow_paths(&["/Dockerfile", "./a/b/", "a/b/c"], &mut src).unwrap();
        assert_eq!(got, Some(vec!["Dockerfile".to_owned(), "a/b".to_owned()]));
    }

    #[test]
    fn symlinks_add_their_targets() {
        let mut src = fs(
            &[("Dockerfile", "build/Dockerfile"), ("build", "/real")],
            &[],
        );
        let got = resolve_follow_paths(&["Dockerfile"], &mut src)
            .unwrap()
            .unwrap();
        assert_eq!(got, ["Dockerfile", "build", "real/Dockerfile"]);
    }

    #[test]
    fn link_loops_terminate() {
        let mut src = fs(&[("a", "b"), ("b", "a"), ("c", "c/x")], &[]);
        let got = resolve_follow_paths(&["a", "c"], &mut src)
            .unwrap()
            .unwrap();
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[test]
    fn wildcard_base_names() {
        let mut src = fs(&[("l1", "t1"), ("l2", "/t2")], &[(".", &["l1", "l2", "x"])]);
        let got = resolve_follow_paths(&["l*"], &mut src).unwrap().unwrap();
        assert_eq!(got, ["l*", "t1", "t2"]);
        // No symlink among the matches: the pattern itself is kept.
        let mut src = fs(&[], &[(".", &["x1", "x2"])]);
        let got = resolve_follow_paths(&["x?"], &mut src).unwrap().unwrap();
        assert_eq!(got, ["x?"]);
    }

    #[test]
    fn root_means_no_targets() {
        let mut src = fs(&[], &[]);
        assert_eq!(resolve_follow_paths(&["."], &mut src).unwrap(), None);
        let mut src = fs(&[("up", "..")], &[]);
        assert_eq!(resolve_follow_paths(&["up"], &mut src).unwrap(), None);
    }

    #[test]
    fn errors_are_reported() {
        let mut src = fs(&[], &[]);
        src.fail_on = Some("a".to_owned());
        let err = resolve_follow_paths(&["a/b"], &mut src).unwrap_err();
        assert!(matches!(err, FollowError::Io { ref path, .. } if path == "a"));
        // An ever-growing chain of distinct links hits the depth limit.
        struct Endless;
        impl SymlinkSource for Endless {
            fn read_link(&mut self, path: &str) -> io::Result<Option<String>> {
                Ok(Some(format!("{path}x")))
            }
            fn read_dir(&mut self, _dir: &str) -> io::Result<Option<Vec<String>>> {
                Ok(None)
            }
        }
        let err = resolve_follow_paths(&["a"], &mut Endless).unwrap_err();
        assert!(matches!(err, FollowError::TooManyLinks { .. }));
    }

    #[test]
    fn dedupe_matches_fsutil() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dedupe_paths(v(&["a", "a/b", "ab", "b"])),
            Some(v(&["a", "ab", "b"]))
        );
        assert_eq!(dedupe_paths(v(&["/x", "y"])), Some(v(&["y"])));
        assert_eq!(dedupe_paths(v(&["a", "."])), None);
        assert_eq!(dedupe_paths(Vec::new()), Some(Vec::new()));
    }
}
