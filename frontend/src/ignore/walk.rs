//! Per-entry decisions for a filtered, depth-first context walk, reproducing
//! fsutil's `filterFS.Walk`.
//!
//! The walker itself (in another crate) owns the filesystem; it asks
//! [`WalkFilter::decide`] about each entry, in lexical depth-first order, passing
//! the [`DirState`] of the entry's parent directory. Rules carried over from
//! fsutil:
//!
//! * an entry is kept when the include list (if any) matches it or an ancestor
//!   and the exclude list does not;
//! * a directory that is not kept is still descended into unless no pattern can
//!   possibly select something inside it ([`Action::SkipDir`]); this is decided
//!   only when the relevant patterns are plain path prefixes, exactly as fsutil
//!   does, otherwise the walk continues;
//! * a directory that is not kept itself is still emitted, just before its
//!   first kept descendant (e.g. excludes `["foo*", "!foo/bar2"]` emit
//!   `foo` then `foo/bar2`). [`FilteredWalk`] does this bookkeeping.

use super::follow::dedupe_paths;
use super::matcher::{MatchInfo, PatternMatcher};
use super::pattern::{Pattern, PatternError};

/// Inputs of a filtered walk, like fsutil's `FilterOpt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// When non-empty, only paths matched by these patterns (or under a matched
    /// directory) are kept.
    pub include_patterns: Vec<String>,
    /// Paths matched by these patterns (with `!` exceptions) are dropped;
    /// normally the output of [`read_ignore`](super::read_ignore).
    pub exclude_patterns: Vec<String>,
    /// Resolved follow paths, from
    /// [`resolve_follow_paths`](super::resolve_follow_paths); they are added to
    /// the include patterns. `None` leaves the include patterns untouched.
    pub follow_targets: Option<Vec<String>>,
}

/// Why a [`WalkFilter`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// An include pattern is invalid.
    #[error("invalid include patterns: {0}")]
    Include(PatternError),
    /// An exclude pattern is invalid.
    #[error("invalid exclude patterns: {0}")]
    Exclude(PatternError),
}

/// What the walker should do with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Emit the entry (after any pending parent directories).
    Include,
    /// Do not emit the entry; if it is a directory, still walk its children.
    Exclude,
    /// Do not emit this directory and do not walk into it.
    SkipDir,
}

/// Match results of a directory, to be passed when deciding its children.
/// [`DirState::default`] (no information) is right for top-level entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirState {
    include: MatchInfo,
    exclude: MatchInfo,
}

/// The answer for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the entry.
    pub action: Action,
    /// For a directory that will be walked (`Include` or `Exclude`): the state
    /// to pass when deciding its children. `None` for files and skipped
    /// directories.
    pub dir_state: Option<DirState>,
}

/// Compiled include/exclude patterns plus fsutil's precomputed shortcuts.
#[derive(Debug, Clone)]
pub struct WalkFilter {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    /// Include patterns (minus a trailing `/*` or `/**`) with a `/` appended,
    /// when all of them are plain prefixes; `None` otherwise.
    include_prefixes: Option<Vec<String>>,
    /// Same for the exceptions of the exclude list.
    exception_prefixes: Option<Vec<String>>,
}

/// Characters that make fsutil give up on prefix-based directory skipping.
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

impl WalkFilter {
    /// Compiles the options. Patterns are validated eagerly, so a bad
    /// `.dockerignore` fails before any walking starts.
    pub fn new(options: &FilterOptions) -> Result<Self, FilterError> {
        let mut include_patterns = options.include_patterns.clone();
        if let Some(targets) = &options.follow_targets {
            include_patterns.extend(targets.iter().cloned());
            // fsutil de-duplicates the combined (unsorted) list; a `.` in it
            // removes include filtering altogether.
            include_patterns = dedupe_paths(include_patterns).unwrap_or_default();
        }
        // Like fsutil, a non-empty list creates a matcher even if every entry
        // is blank, and an empty include matcher then keeps nothing.
        let include = if include_patterns.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(&include_patterns).map_err(FilterError::Include)?)
        };
        let exclude = if options.exclude_patterns.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(&options.exclude_patterns).map_err(FilterError::Exclude)?)
        };
        let include_prefixes = include
            .as_ref()
            .and_then(|m| prefix_list(m.patterns().iter().filter(|p| !p.is_exclusion())));
        let exception_prefixes = exclude
            .as_ref()
            .and_then(|m| prefix_list(m.patterns().iter().filter(|p| p.is_exclusion())));
        Ok(WalkFilter {
            include,
            exclude,
            include_prefixes,
            exception_prefixes,
        })
    }

    /// Whether the filter keeps everything (no include or exclude patterns).
    pub fn is_pass_through(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Decides one entry. `path` is relative to the context root,
    /// `/`-separated and clean (`dir/file`); `parent` is the state returned for
    /// its parent directory, or [`DirState::default`] for top-level entries.
    pub fn decide(&self, path: &str, is_dir: bool, parent: &DirState) -> Decision {
        let mut state = DirState::default();
        let mut keep = true;

        if let Some(include) = &self.include {
            let (matched, info) = include.matches_using_parent_results(path, &parent.include);
            state.include = info;
            if !matched {
                if is_dir && !could_contain(self.include_prefixes.as_deref(), path) {
                    return skip_dir();
                }
                keep = false;
            }
        }

        if let Some(exclude) = &self.exclude {
            let (matched, info) = exclude.matches_using_parent_results(path, &parent.exclude);
            state.exclude = info;
            if matched {
                // Only an exception can bring back something inside an
                // excluded directory (with no exceptions the list is empty).
                if is_dir && !could_contain(self.exception_prefixes.as_deref(), path) {
                    return skip_dir();
                }
                keep = false;
            }
        }

        Decision {
            action: if keep {
                Action::Include
            } else {
                Action::Exclude
            },
            dir_state: is_dir.then_some(state),
        }
    }

    /// Whether opening `path` directly through the filter succeeds (fsutil's
    /// `filterFS.Open`): it must be included (itself or via an ancestor) and
    /// not excluded. Existence is the caller's business.
    pub fn open_allowed(&self, path: &str) -> bool {
        let included = self
            .include
            .as_ref()
            .is_none_or(|m| m.matches_or_parent_matches(path));
        let excluded = self
            .exclude
            .as_ref()
            .is_some_and(|m| m.matches_or_parent_matches(path));
        included && !excluded
    }
}

fn skip_dir() -> Decision {
    Decision {
        action: Action::SkipDir,
        dir_state: None,
    }
}

/// fsutil's prefix shortcut: usable only when every pattern, minus a trailing
/// `/**` or `/*`, is free of pattern characters.
fn prefix_list<'a>(patterns: impl Iterator<Item = &'a Pattern>) -> Option<Vec<String>> {
    let mut prefixes = Vec::new();
    for pattern in patterns {
        let text = pattern.as_str();
        let text = text.strip_suffix("/**").unwrap_or(text);
        let text = text.strip_suffix("/*").unwrap_or(text);
        if text.contains(PATTERN_CHARS) {
            return None;
        }
        prefixes.push(format!("{text}/"));
    }
    Some(prefixes)
}

/// Whether directory `dir` may contain something selected by a prefix list.
/// With no usable list (`None`) we cannot tell, so the answer is yes.
fn could_contain(prefixes: Option<&[String]>, dir: &str) -> bool {
    match prefixes {
        None => true,
        Some(prefixes) => prefixes.iter().any(|prefix| {
            prefix
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        }),
    }
}

/// Depth-first walk bookkeeping on top of [`WalkFilter::decide`]: keeps the
/// stack of open directories and reports which not-yet-emitted parents must be
/// emitted before an included entry.
#[derive(Debug, Clone)]
pub struct FilteredWalk<'f> {
    filter: &'f WalkFilter,
    open_dirs: Vec<OpenDir>,
}

#[derive(Debug, Clone)]
struct OpenDir {
    /// Directory path followed by `/`.
    prefix: String,
    state: DirState,
    emitted: bool,
}

/// The result of [`FilteredWalk::visit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// What to do with the visited entry.
    pub action: Action,
    /// Directories (outermost first) to emit before the entry; only non-empty
    /// when `action` is [`Action::Include`].
    pub emit_parents: Vec<String>,
}

impl<'f> FilteredWalk<'f> {
    /// Starts a walk at the context root.
    pub fn new(filter: &'f WalkFilter) -> Self {
        FilteredWalk {
            filter,
            open_dirs: Vec::new(),
        }
    }

    /// Visits the next entry of a depth-first, lexically ordered walk that
    /// starts below the root (the root itself is never visited). Entries under
    /// a directory answered with [`Action::SkipDir`] must not be visited.
    pub fn visit(&mut self, path: &str, is_dir: bool) -> Visit {
        // Leave directories we have walked out of.
        while let Some(top) = self.open_dirs.last() {
            if path.starts_with(&top.prefix) {
                break;
            }
            self.open_dirs.pop();
        }
        let default_state = DirState::default();
        let parent = self.open_dirs.last().map_or(&default_state, |d| &d.state);
        let decision = self.filter.decide(path, is_dir, parent);

        let mut emit_parents = Vec::new();
        if decision.action == Action::Include {
            for dir in self.open_dirs.iter_mut().filter(|d| !d.emitted) {
                dir.emitted = true;
                emit_parents.push(dir.prefix[..dir.prefix.len() - 1].to_owned());
            }
        }
        if let Some(state) = decision.dir_state {
            self.open_dirs.push(OpenDir {
                prefix: format!("{path}/"),
                state,
                emitted: decision.action == Action::Include,
            });
        }
        Visit {
            action: decision.action,
            emit_parents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> WalkFilter {
        WalkFilter::new(&FilterOptions {
            include_patterns: include.iter().map(|s| s.to_string()).collect(),
            exclude_patterns: exclude.iter().map(|s| s.to_string()).collect(),
            follow_targets: None,
        })
        .unwrap()
    }

    /// Runs a walk over an in-memory tree given as sorted `(path, is_dir)`
    /// entries in depth-first order, returning the emitted listing.
    fn walk(filter: &WalkFilter, tree: &[(&str, bool)]) -> Vec<String> {
        let mut walk = FilteredWalk::new(filter);
        let mut out = Vec::new();
        let mut skipped: Option<String> = None;
        for &(path, is_dir) in tree {
            if let Some(prefix) = &skipped {
                if path.starts_with(prefix.as_str()) {
                    continue;
                }
                skipped = None;
            }
            let visit = walk.visit(path, is_dir);
            out.extend(visit.emit_parents.iter().map(|p| format!("dir {p}")));
            match visit.action {
                Action::Include => {
                    out.push(format!("{} {path}", if is_dir { "dir" } else { "file" }))
                }
                Action::Exclude => {}
                Action::SkipDir => skipped = Some(format!("{path}/")),
            }
        }
        out
    }

    const TREE: &[(&str, bool)] = &[
        ("a", true),
        ("a/b", true),
        ("a/b/c", false),
        ("a/d", false),
        ("b", false),
    ];

    #[test]
    fn prefix_excludes_skip_directories() {
        let f = filter(&[], &["a"]);
        let d = f.decide("a", true, &DirState::default());
        assert_eq!(d.action, Action::SkipDir);
        assert_eq!(walk(&f, TREE), ["file b"]);
    }

    #[test]
    fn wildcard_excludes_walk_but_hide() {
        let f = filter(&[], &["a*", "!a/b/c"]);
        let d = f.decide("a", true, &DirState::default());
        // `a*` is excluded, and with a wildcard exception list fsutil keeps walking.
        assert_eq!(d.action, Action::Exclude);
        assert_eq!(walk(&f, TREE), ["dir a", "dir a/b", "file a/b/c", "file b"]);
    }

    #[test]
    fn excluded_dir_with_unrelated_exception_is_skipped() {
        let f = filter(&[], &["a", "!b/x"]);
        assert_eq!(
            f.decide("a", true, &DirState::default()).action,
            Action::SkipDir
        );
    }

    #[test]
    fn include_prefix_skips_unrelated_dirs() {
        let f = filter(&["a/b"], &[]);
        assert_eq!(
            f.decide("x", true, &DirState::default()).action,
            Action::SkipDir
        );
        assert_eq!(
            f.decide("a", true, &DirState::default()).action,
            Action::Exclude
        );
        assert_eq!(walk(&f, TREE), ["dir a", "dir a/b", "file a/b/c"]);
        // `a/b/**` is still a prefix pattern once the glob tail is removed.
        let f = filter(&["a/b/**"], &[]);
        assert_eq!(
            f.decide("x", true, &DirState::default()).action,
            Action::SkipDir
        );
    }

    #[test]
    fn include_and_exclude_combine() {
        let f = filter(&["a"], &["a/b"]);
        assert_eq!(walk(&f, TREE), ["dir a", "file a/d"]);
    }

    #[test]
    fn pass_through_and_blank_lists() {
        let f = filter(&[], &[]);
        assert!(f.is_pass_through());
        assert_eq!(walk(&f, TREE).len(), TREE.len());
        // A non-empty include list of blanks keeps nothing, like fsutil.
        let f = filter(&[" "], &[]);
        assert!(walk(&f, TREE).is_empty());
        // A blank exclude list excludes nothing.
        let f = filter(&[], &[""]);
        assert_eq!(walk(&f, TREE).len(), TREE.len());
    }

    #[test]
    fn follow_targets_extend_includes() {
        let opts = FilterOptions {
            include_patterns: vec!["a/b".into()],
            exclude_patterns: vec![],
            follow_targets: Some(vec!["b".into()]),
        };
        let f = WalkFilter::new(&opts).unwrap();
        assert_eq!(walk(&f, TREE), ["dir a", "dir a/b", "file a/b/c", "file b"]);
        let opts = FilterOptions {
            follow_targets: Some(vec![".".into()]),
            ..opts
        };
        let f = WalkFilter::new(&opts).unwrap();
        assert!(f.is_pass_through());
    }

    #[test]
    fn errors_name_the_list() {
        let err = WalkFilter::new(&FilterOptions {
            exclude_patterns: vec!["!".into()],
            ..FilterOptions::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid exclude patterns: illegal exclusion pattern: \"!\""
        );
        let err = WalkFilter::new(&FilterOptions {
            include_patterns: vec!["[".into()],
            ..FilterOptions::default()
        })
        .unwrap_err();
        assert!(matches!(err, FilterError::Include(_)));
    }

    #[test]
    fn open_follows_modern_semantics() {
        let f = filter(&[], &["foo", "!foo/bar", "foo/bar/baz", "!foo/bar/baz/x"]);
        assert!(f.open_allowed("foo/bar/baz/x"));
        assert!(!f.open_allowed("foo/bar/baz/y"));
        assert!(f.open_allowed("foo/bar/other"));
        let f = filter(&["bar*"], &[]);
        assert!(f.open_allowed("bar/foo"));
        assert!(!f.open_allowed("baz"));
    }
}
