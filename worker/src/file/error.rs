//! Errors of file actions, worded as BuildKit words them.
//!
//! Key decision: every path in an error is an in-view path (`/etc/passwd`), never a host
//! path — BuildKit trims its mount points from errors, and a host path in a user-facing
//! message leaks the store's layout. System errors read like Go's (`mkdir /a: not a
//! directory`), since those are the texts users of `docker build` know.

use std::io;
use std::path::Path;

use strata_frontend::ignore::PatternError;

use super::path::display;

/// A failed file action.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A source path that does not exist, or a wildcard that matched nothing.
    #[error("{path:?}: not found")]
    NotFound {
        /// The path as the action gave it.
        path: String,
    },
    /// A filesystem step failed (Go's `PathError` form: `<op> <path>: <reason>`).
    #[error("{op} {path}: {}", go_text(source))]
    Io {
        /// The step: `mkdir`, `open`, `lstat`, `unlinkat`…
        op: &'static str,
        /// Where, inside the view.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Copying a file's bytes failed.
    #[error("failed to copy files: {path}: {}", go_text(source))]
    CopyContent {
        /// The destination file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory would be copied onto a non-directory.
    #[error("cannot copy to non-directory: {path}")]
    CopyToNonDirectory {
        /// The destination.
        path: String,
    },
    /// A non-directory would be copied onto a directory.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectoryWithFile {
        /// The destination.
        path: String,
    },
    /// The destination's parent is missing and the action may not create it.
    #[error("failed to stat {dest}: {}", go_text(source))]
    DestinationParent {
        /// The destination as the action gave it.
        dest: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `rm /`, or a path that cleans to nothing.
    #[error("rmPath: invalid empty path {path:?}")]
    EmptyRemovePath {
        /// The path as the action gave it.
        path: String,
    },
    /// Resolving a path followed more than 255 symlinks.
    #[error("too many links: {path}")]
    TooManyLinks {
        /// The path being resolved.
        path: String,
    },
    /// A mode BuildKit would not accept.
    #[error(
        "invalid chmod parameter: '{mode}'. it should be octal string and between 0 and 07777"
    )]
    InvalidChmod {
        /// The mode as given.
        mode: String,
    },
    /// `/etc/passwd` or `/etc/group` is not a regular file.
    #[error("{path} is not a regular file")]
    UserFileNotRegular {
        /// The file.
        path: String,
    },
    /// `/etc/passwd` or `/etc/group` is larger than BuildKit reads.
    #[error("{path:?} exceeds {limit} bytes")]
    UserFileTooLarge {
        /// The file.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// A copy names an input the op was not given.
    #[error("file op has no input {index}")]
    MissingInput {
        /// The input index.
        index: usize,
    },
    /// `--exclude` (or `--parents`) patterns that do not parse.
    #[error("invalid {kind}patterns: {patterns:?}: {source}")]
    Pattern {
        /// `exclude` or `include`.
        kind: &'static str,
        /// The patterns.
        patterns: Vec<String>,
        /// The cause.
        #[source]
        source: PatternError,
    },
    /// An archive entry that cannot be extracted.
    #[error("failed to extract {archive}: entry {entry:?}: {reason}")]
    ArchiveEntry {
        /// The archive, inside its source.
        archive: String,
        /// The entry's name as stored.
        entry: String,
        /// Why.
        reason: String,
    },
    /// An archive that cannot be read (corrupt, truncated).
    #[error("failed to extract {archive}: {}", go_text(source))]
    ArchiveRead {
        /// The archive, inside its source.
        archive: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// A failed step at an in-view path.
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> FileError {
        FileError::Io {
            op,
            path: display(path),
            source,
        }
    }

    /// A closure wrapping an `io::Error` for `map_err`.
    pub(crate) fn at<'p>(
        op: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(io::Error) -> FileError + 'p {
        move |source| FileError::io(op, path, source)
    }
}

/// An `io::Error` as Go prints a syscall error: `no such file or directory`.
pub(crate) fn go_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(i)) => &text[..i],
        _ => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if e.raw_os_error().is_some() => first.to_lowercase().chain(chars).collect(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_like_buildkit() {
        let e = FileError::NotFound {
            path: "/badfile".into(),
        };
        assert_eq!(e.to_string(), r#""/badfile": not found"#);
        let e = FileError::io(
            "mkdir",
            Path::new("a/b"),
            io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
        );
        assert_eq!(e.to_string(), "mkdir /a/b: not a directory");
    }
}
