//! Errors of the build context.
//!
//! Role: one enum, [`ContextError`], for everything opening, selecting, reading and
//! checksumming a context can fail with. Every variant names the path it is about, and
//! messages follow BuildKit's wording and form: a context path is shown rooted and quoted
//! (`"/missing": not found`), so the solver's `failed to compute cache key: ` prefix makes
//! the same line BuildKit prints.

use std::io;
use std::path::PathBuf;

use strata_frontend::ignore::{FilterError, FollowError};
use strata_frontend::parser::go_quote;

/// Why the build context could not be opened, selected, read or checksummed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context directory itself could not be opened.
    #[error("failed to open build context {}: {}", .dir.display(), describe(.source))]
    Open {
        /// The directory given to [`Context::open`](super::Context::open).
        dir: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The `.dockerignore` (or include) patterns do not compile.
    #[error(transparent)]
    Patterns(#[from] FilterError),
    /// Follow paths could not be resolved.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// A path the build asked for is not in the (filtered) context.
    #[error("{}: not found", rooted(.path))]
    NotFound {
        /// The path as asked for, relative to the context root.
        path: String,
    },
    /// A path climbs out of the context with `..`.
    #[error("{}: path escapes the build context", rooted(.path))]
    OutsideContext {
        /// The path as asked for.
        path: String,
    },
    /// Resolving a path followed a symlink whose target lies outside the context: an
    /// absolute target, or a relative one climbing above the context root.
    #[error(
        "{}: symlink {} points outside the build context",
        rooted(.path),
        rooted(.link)
    )]
    SymlinkEscape {
        /// The path being resolved.
        path: String,
        /// The symlink that leads out.
        link: String,
    },
    /// A path goes through something that is not a directory.
    #[error("{}: not a directory", rooted(.path))]
    NotADirectory {
        /// The path being resolved.
        path: String,
    },
    /// A path that must be a regular file is something else.
    #[error("{}: not a regular file", rooted(.path))]
    NotAFile {
        /// The path.
        path: String,
    },
    /// Resolving a path met more than 40 symlinks (Linux's limit).
    #[error("{}: too many levels of symbolic links", rooted(.path))]
    TooManyLinks {
        /// The path being resolved.
        path: String,
    },
    /// A file name in the context is not UTF-8 (patterns and paths are text here).
    #[error("{}: file name is not valid UTF-8", rooted(.path))]
    InvalidName {
        /// The directory holding it, and the name with invalid bytes replaced.
        path: String,
    },
    /// An entry changed between the walk that selected it and the read of it (replaced by
    /// another file, or turned into a symlink).
    #[error("{}: changed while the build was reading it", rooted(.path))]
    Changed {
        /// The entry.
        path: String,
    },
    /// A system call on a context path failed.
    #[error("{}: {}", rooted(.path), describe(.source))]
    Io {
        /// The path, relative to the context root.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The stat cache could not be written (reading a bad one just starts it afresh).
    #[error("failed to write context stat cache {}: {}", .path.display(), describe(.source))]
    StatCache {
        /// The cache file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl ContextError {
    /// An [`Io`](ContextError::Io) error, with `NotFound` turned into
    /// [`NotFound`](ContextError::NotFound).
    pub(crate) fn io(path: &str, source: io::Error) -> ContextError {
        if source.kind() == io::ErrorKind::NotFound {
            ContextError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ContextError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// `"/path"` as BuildKit quotes context paths; the root is `"/"`.
fn rooted(path: &str) -> String {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        go_quote("/")
    } else {
        go_quote(&format!("/{trimmed}"))
    }
}

/// An I/O error the way Go prints one: `no such file or directory`, without Rust's
/// capitalisation and ` (os error 2)` suffix.
pub(crate) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_look_like_buildkit() {
        let e = ContextError::NotFound {
            path: "missing".into(),
        };
        assert_eq!(e.to_string(), r#""/missing": not found"#);
        let e = ContextError::SymlinkEscape {
            path: "a/b".into(),
            link: "a".into(),
        };
        assert_eq!(
            e.to_string(),
            r#""/a/b": symlink "/a" points outside the build context"#
        );
        let e = ContextError::io("x", io::Error::from_raw_os_error(13));
        assert_eq!(e.to_string(), r#""/x": permission denied"#);
        assert!(matches!(
            ContextError::io("x", io::Error::from_raw_os_error(2)),
            ContextError::NotFound { .. }
        ));
        assert_eq!(rooted("."), r#""/""#);
    }
}
