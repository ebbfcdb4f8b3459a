//! `.dockerignore` reading and path-pattern matching with moby's semantics.
//!
//! Role: turns ignore-file bytes into patterns ([`read_ignore`]), compiles
//! pattern lists ([`PatternMatcher`]) and answers, per path, whether it is
//! excluded — both for single paths ([`PatternMatcher::matches_or_parent_matches`],
//! the semantics BuildKit uses) and for a depth-first context walk
//! ([`WalkFilter`], [`FilteredWalk`], which reproduce fsutil's filtered walk:
//! skipping whole directories, walking into excluded directories when an
//! exception may re-include something, emitting parents of kept entries).
//! [`find_ignore_file`] picks `<Dockerfile>.dockerignore` over `.dockerignore`.
//!
//! Main types: [`Pattern`] (one compiled pattern), [`PatternMatcher`] (an
//! ordered list with `!` exceptions), [`WalkFilter`] + [`DirState`] (pure
//! per-entry walk decisions), [`PatternError`] / [`FilterError`].
//!
//! Key decisions:
//! * Pure: nothing here touches a filesystem. Walkers feed entries in and act
//!   on the [`Action`] they get back; follow-path symlink resolution asks the
//!   caller through [`SymlinkSource`].
//! * No regular expressions. Moby translates patterns into Go regexps; we keep
//!   its pattern classification (exact / prefix / suffix / wildcard, which is
//!   observable) and run wildcard patterns as a bit-parallel NFA, so matching
//!   is O(path × pattern) and cannot blow up on inputs like `**/**/a*a*a*b`.
//! * Errors are eager: [`PatternMatcher::new`] rejects every pattern moby would
//!   reject (`!`, Go `filepath.Match` syntax errors, reversed class ranges that
//!   moby's regexp compiler refuses), whereas moby reports regexp errors only
//!   when a pattern is first evaluated.
//! * Unix only: `\` escapes the next character (moby's Windows mode, where `\`
//!   is a separator, is not implemented).
//!
//! Known divergences from moby, all in patterns nobody writes on purpose: `\`
//! before a letter is that letter here (moby's regexp reads `\d` as a digit
//! class and rejects `\i`); `*`, `?` and `[:alpha:]`-like text inside brackets
//! follow `filepath.Match` (moby pastes them into its regexp); `^` outside
//! brackets is literal (moby's regexp treats it as an anchor); a U+FEFF at the
//! start of a wildcard pattern is significant (moby's scanner drops it).

mod clean;
mod follow;
mod fuzz;
mod ignorefile;
mod matcher;
mod pattern;
mod walk;

pub use clean::clean_path;
pub use follow::{resolve_follow_paths, FollowError, SymlinkSource, MAX_LINK_DEPTH};
pub use fuzz::fuzz_patterns;
pub use ignorefile::{
    find_ignore_file, ignore_file_candidates, read_ignore, IgnoreFileCandidate, IgnoreFileLocation,
    DEFAULT_DOCKERFILE, DOCKERIGNORE,
};
pub use matcher::{matches_legacy, matches_or_parent_matches, MatchInfo, PatternMatcher};
pub use pattern::{Pattern, PatternError, SyntaxErrorKind};
pub use walk::{
    Action, Decision, DirState, FilterError, FilterOptions, FilteredWalk, Visit, WalkFilter,
};
