//! Ordered pattern lists: later patterns override earlier ones, `!` exceptions
//! re-include, and a path counts as matched when it or one of its ancestor
//! directories matches.

use super::clean::{clean_path, parent_dir};
use super::pattern::{Pattern, PatternError};

/// A compiled, ordered list of ignore patterns.
///
/// Every pattern is validated and compiled by [`PatternMatcher::new`], so the
/// matching methods cannot fail.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// Per-pattern results for a directory, handed to its children by
/// [`PatternMatcher::matches_using_parent_results`] so they need not re-test
/// their ancestors.
///
/// The default value carries no information; matching then falls back to
/// testing the ancestors of the path itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Compiles `patterns` in order. Blank patterns are skipped; a lone `!` or a
    /// malformed pattern rejects the whole list.
    pub fn new<I>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut compiled = Vec::new();
        for raw in patterns {
            if let Some(pattern) = Pattern::parse(raw.as_ref())? {
                compiled.push(pattern);
            }
        }
        let exclusions = compiled.iter().any(Pattern::is_exclusion);
        Ok(PatternMatcher {
            patterns: compiled,
            exclusions,
        })
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether the list holds no patterns (nothing ever matches).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Modern semantics (what BuildKit uses): `path` is matched when, after
    /// applying every pattern in order, the path itself or any ancestor
    /// directory was last matched by an inclusion rather than an exception.
    ///
    /// `path` is `/`-separated and relative to the context root; it is used as
    /// given (callers normally pass clean paths).
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let parent = parent_dir(path);
        let mut matched = false;
        for pattern in &self.patterns {
            // Only patterns that could change the verdict are evaluated.
            if pattern.is_exclusion() != matched {
                continue;
            }
            if pattern.matches(path)
                || (parent != "." && ancestors(&parent).any(|dir| pattern.matches(dir)))
            {
                matched = !pattern.is_exclusion();
            }
        }
        matched
    }

    /// Moby's deprecated `Matches` semantics: besides the path itself, only the
    /// ancestor with as many components as the pattern is tested, so
    /// `**/dir` does not match `dir/file`. Kept for compatibility tests.
    pub fn matches_legacy(&self, path: &str) -> bool {
        let parent = parent_dir(path);
        let parent_components = parent.split('/').count();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.is_exclusion() != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." && pattern.components() <= parent_components {
                if let Some(prefix) = ancestors(&parent).nth(pattern.components().saturating_sub(1))
                {
                    hit = pattern.matches(prefix);
                }
            }
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        matched
    }

    /// Incremental semantics used while walking: `parent` holds the results of
    /// the parent directory (default for top-level entries). Returns the
    /// verdict for `path` and the information to pass to its children.
    ///
    /// Like moby's `MatchesUsingParentResults`, a pattern the parent skipped
    /// (because it could not change the parent's verdict) is recorded as not
    /// matched, so in rare orderings such as `["a", "!a/b", "a"]` the result for
    /// `a/b` differs from [`matches_or_parent_matches`](Self::matches_or_parent_matches);
    /// fsutil walks with exactly this behaviour. A `MatchInfo` built for another
    /// matcher (wrong length) is treated as carrying no information.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let inherited = (parent.parent_matched.len() == self.patterns.len()
            && !parent.parent_matched.is_empty())
        .then_some(parent.parent_matched.as_slice());
        let mut own = vec![false; self.patterns.len()];
        let mut matched = false;
        let mut dir: Option<std::borrow::Cow<'_, str>> = None;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = inherited.is_some_and(|bits| bits[i]);
            if !hit {
                if pattern.is_exclusion() != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && inherited.is_none() {
                    let parent_path = dir.get_or_insert_with(|| parent_dir(path));
                    hit = *parent_path != "." && ancestors(parent_path).any(|d| pattern.matches(d));
                }
            }
            own[i] = hit;
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        (
            matched,
            MatchInfo {
                parent_matched: own,
            },
        )
    }
}

/// Ancestor prefixes of a cleaned directory path, shortest first, exactly as
/// moby builds them by splitting on `/` and re-joining: `a/b` gives `a`, `a/b`;
/// `/a` gives `` and `/a`.
fn ancestors(dir: &str) -> impl Iterator<Item = &str> {
    dir.match_indices('/')
        .map(move |(idx, _)| &dir[..idx])
        .chain(std::iter::once(dir))
}

/// Moby's package-level `MatchesOrParentMatches`: compiles `patterns`, cleans
/// `path`, and never matches the context root `.`.
pub fn matches_or_parent_matches<S: AsRef<str>>(
    path: &str,
    patterns: &[S],
) -> Result<bool, PatternError> {
    let matcher = PatternMatcher::new(patterns)?;
    let path = clean_path(path);
    Ok(path != "." && matcher.matches_or_parent_matches(&path))
}

/// Moby's deprecated package-level `Matches`: like
/// [`matches_or_parent_matches`] but with the legacy single-ancestor check.
pub fn matches_legacy<S: AsRef<str>>(path: &str, patterns: &[S]) -> Result<bool, PatternError> {
    let matcher = PatternMatcher::new(patterns)?;
    let path = clean_path(path);
    Ok(path != "." && matcher.matches_legacy(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> PatternMatcher {
        PatternMatcher::new(patterns).unwrap()
    }

    #[test]
    fn ancestor_prefixes() {
        assert_eq!(
            ancestors("a/b/c").collect::<Vec<_>>(),
            ["a", "a/b", "a/b/c"]
        );
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), ["", "/a"]);
        assert_eq!(ancestors("x").collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn order_and_exceptions() {
        assert!(!m(&["*.go", "!fileutils.go"]).matches_or_parent_matches("fileutils.go"));
        assert!(m(&["!fileutils.go", "*.go"]).matches_or_parent_matches("fileutils.go"));
        assert!(!m(&["docs", "!docs/README.md"]).matches_or_parent_matches("docs/README.md"));
        assert!(m(&["docs", "!docs/README.md"]).matches_or_parent_matches("docs/other"));
        let list = m(&["**", "!util/docker/web", "util/docker/web/foo"]);
        assert!(list.matches_or_parent_matches("util/docker/web/foo"));
        assert!(list.matches_or_parent_matches("util/docker/web/foo/deeper"));
        assert!(!list.matches_or_parent_matches("util/docker/web/bar"));
        assert!(list.has_exclusions());
        assert!(!m(&["a"]).has_exclusions());
    }

    #[test]
    fn legacy_checks_one_ancestor_only() {
        assert!(!m(&["**/dir"]).matches_legacy("dir/file"));
        assert!(m(&["**/dir"]).matches_or_parent_matches("dir/file"));
        assert!(m(&["a/b"]).matches_legacy("a/b/c/d"));
        assert!(m(&["*"]).matches_legacy("ab/c"));
        assert!(!m(&["a*/b"]).matches_legacy("a/c/b"));
    }

    #[test]
    fn package_level_functions() {
        assert!(!matches_legacy(".", &["*.go"]).unwrap());
        assert!(!matches_or_parent_matches("./", &["**"]).unwrap());
        assert!(matches_or_parent_matches("a//b/", &["a/b"]).unwrap());
        assert!(matches_legacy("x", &["["]).is_err());
        assert!(!matches_legacy("/any/path/there", &[] as &[&str]).unwrap());
    }

    #[test]
    fn parent_results_agree_with_full_check_in_normal_lists() {
        let list = m(&["foo*", "!foo/bar2", "**/tmp"]);
        let paths = [
            "foo",
            "foo/bar2",
            "foo/bar3",
            "foo/x/tmp",
            "foo/x/tmp/y",
            "bar",
        ];
        for path in paths {
            // Build the parent chain incrementally, as a walker would.
            let mut info = MatchInfo::default();
            let mut verdict = false;
            let mut prefix = String::new();
            for part in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                (verdict, info) = list.matches_using_parent_results(&prefix, &info);
            }
            assert_eq!(verdict, list.matches_or_parent_matches(path), "{path}");
            // Without parent information the ancestors are tested directly.
            let (direct, _) = list.matches_using_parent_results(path, &MatchInfo::default());
            assert_eq!(direct, verdict, "{path}");
        }
    }

    #[test]
    fn parent_results_keep_moby_skip_quirk() {
        let list = m(&["a", "!a/b", "a"]);
        let (parent_verdict, info) = list.matches_using_parent_results("a", &MatchInfo::default());
        assert!(parent_verdict);
        let (child, _) = list.matches_using_parent_results("a/b", &info);
        assert!(!child, "the skipped third pattern is not inherited");
        assert!(list.matches_or_parent_matches("a/b"));
    }

    #[test]
    fn foreign_match_info_is_ignored() {
        let list = m(&["a"]);
        let other = m(&["x", "y"]);
        let (_, info) = other.matches_using_parent_results("x", &MatchInfo::default());
        let (verdict, _) = list.matches_using_parent_results("a/b", &info);
        assert!(verdict);
    }
}
