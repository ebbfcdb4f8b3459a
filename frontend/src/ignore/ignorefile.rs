//! Reading `.dockerignore` bytes into a pattern list, and choosing which ignore
//! file applies to a Dockerfile.

use super::clean::clean_path;

/// The context-wide ignore file name.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The Dockerfile name BuildKit assumes when none is given.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses the contents of an ignore file into patterns, with moby's rules:
///
/// * a UTF-8 BOM at the start is dropped; lines end at `\n` (a `\r` before it
///   is dropped too);
/// * a line whose first character is `#` is a comment (no leading-space
///   allowance);
/// * surrounding whitespace is trimmed and empty lines are skipped;
/// * a leading `!` marks an exception, and whitespace after it is trimmed;
/// * the rest is cleaned lexically (`a//b/./c/` → `a/b/c`) and one leading
///   `/` is removed, so `/foo`, `./foo` and `foo/` all mean `foo`.
///
/// A lone `!` is kept; [`PatternMatcher::new`](super::PatternMatcher::new)
/// rejects it. Invalid UTF-8 is replaced with U+FFFD (moby keeps raw bytes);
/// moby also fails on lines longer than 64 KiB, which we accept.
pub fn read_ignore(data: &[u8]) -> Vec<String> {
    let data = data.strip_prefix(UTF8_BOM).unwrap_or(data);
    let text = String::from_utf8_lossy(data);
    let mut patterns = Vec::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        // A final empty piece after the last `\n` is not a line.
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        if let Some(pattern) = clean_line(line) {
            patterns.push(pattern);
        }
    }
    patterns
}

fn clean_line(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (invert, body) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let mut pattern = String::new();
    if invert {
        pattern.push('!');
    }
    if !body.is_empty() {
        let cleaned = clean_path(body);
        // Only one `/` is removed, and `/` alone stays as it is.
        let relative = match cleaned.strip_prefix('/') {
            Some(rest) if !rest.is_empty() => rest,
            _ => &cleaned,
        };
        pattern.push_str(relative);
    }
    Some(pattern)
}

/// Where an ignore-file candidate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreFileLocation {
    /// Next to the Dockerfile, in the source the Dockerfile is read from.
    DockerfileSource,
    /// At the root of the build context.
    Context,
}

/// One place an ignore file may be read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreFileCandidate {
    /// Which source the path is relative to.
    pub location: IgnoreFileLocation,
    /// Path relative to that source, `/`-separated.
    pub path: String,
}

/// The ignore files that apply to `dockerfile` (its path within the Dockerfile
/// source; empty means `Dockerfile`), most specific first: BuildKit uses
/// `<dockerfile>.dockerignore` when it exists and otherwise the context's
/// `.dockerignore`.
pub fn ignore_file_candidates(dockerfile: &str) -> [IgnoreFileCandidate; 2] {
    let dockerfile = if dockerfile.is_empty() {
        DEFAULT_DOCKERFILE
    } else {
        dockerfile
    };
    [
        IgnoreFileCandidate {
            location: IgnoreFileLocation::DockerfileSource,
            path: format!("{dockerfile}{DOCKERIGNORE}"),
        },
        IgnoreFileCandidate {
            location: IgnoreFileLocation::Context,
            path: DOCKERIGNORE.to_owned(),
        },
    ]
}

/// Picks the first candidate of [`ignore_file_candidates`] for which `exists`
/// answers true; `None` means no ignore file applies. An existing but empty
/// Dockerfile-specific file still wins, as in BuildKit.
pub fn find_ignore_file(
    dockerfile: &str,
    mut exists: impl FnMut(&IgnoreFileCandidate) -> bool,
) -> Option<IgnoreFileCandidate> {
    ignore_file_candidates(dockerfile)
        .into_iter()
        .find(|candidate| exists(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rules() {
        let input = b"\xEF\xBB\xBF# comment\n  # not a comment\r\n/a//b/./\n\n\t!  /c/d/.. \r\n./x\n!\n/\n..\n../y\n#x";
        assert_eq!(
            read_ignore(input),
            ["# not a comment", "a/b", "!c", "x", "!", "/", "..", "../y"]
        );
    }

    #[test]
    fn bom_only_at_start() {
        assert_eq!(read_ignore(b"\xEF\xBB\xBFa"), ["a"]);
        assert_eq!(read_ignore(b"a\n\xEF\xBB\xBFb"), ["a", "\u{FEFF}b"]);
        assert_eq!(read_ignore(b"\xEF\xBB\xBF#c\nd"), ["d"]);
    }

    #[test]
    fn empty_and_odd_inputs() {
        assert!(read_ignore(b"").is_empty());
        assert!(read_ignore(b"\n\n \n").is_empty());
        assert_eq!(read_ignore(b"a\xFFb"), ["a\u{FFFD}b"]);
        assert_eq!(read_ignore(b"!!a"), ["!!a"]);
        assert_eq!(read_ignore(b"//"), ["/"]);
        assert_eq!(read_ignore(b"!/"), ["!/"]);
        assert_eq!(read_ignore(b"!."), ["!."]);
    }

    #[test]
    fn candidates() {
        let [specific, general] = ignore_file_candidates("Dockerfile2");
        assert_eq!(specific.path, "Dockerfile2.dockerignore");
        assert_eq!(specific.location, IgnoreFileLocation::DockerfileSource);
        assert_eq!(general.path, ".dockerignore");
        assert_eq!(general.location, IgnoreFileLocation::Context);
        assert_eq!(
            ignore_file_candidates("")[0].path,
            "Dockerfile.dockerignore"
        );
        assert_eq!(
            ignore_file_candidates("sub/app.Dockerfile")[0].path,
            "sub/app.Dockerfile.dockerignore"
        );

        let found = find_ignore_file("Dockerfile", |c| c.path == ".dockerignore").unwrap();
        assert_eq!(found.location, IgnoreFileLocation::Context);
        let found = find_ignore_file("Dockerfile", |_| true).unwrap();
        assert_eq!(found.path, "Dockerfile.dockerignore");
        assert!(find_ignore_file("Dockerfile", |_| false).is_none());
    }
}
