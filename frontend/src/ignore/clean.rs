//! Lexical path cleaning with the rules of Go's `path/filepath.Clean` on Unix.
//!
//! Patterns and paths are compared as strings, so both sides must be cleaned the
//! same way moby does; this never consults a filesystem.

use std::borrow::Cow;

/// Returns the shortest lexically equivalent form of a `/`-separated path.
///
/// Repeated `/` collapse, `.` segments vanish, `..` removes the segment before
/// it (or is dropped at the root of an absolute path, or kept at the start of a
/// relative one), a trailing `/` is removed, and an empty result becomes `.`
/// (`/` when the path was absolute).
pub fn clean_path(path: &str) -> Cow<'_, str> {
    if is_clean(path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(clean_owned(path))
    }
}

/// The full cleaning algorithm, always allocating.
fn clean_owned(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.last().is_some_and(|last| *last != "..") {
                    segments.pop();
                } else if !rooted {
                    segments.push("..");
                }
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Cheap check used to avoid allocating for paths that are already clean,
/// which is the common case while walking a context.
fn is_clean(path: &str) -> bool {
    if path.is_empty() {
        return false;
    }
    if path == "/" || path == "." {
        return true;
    }
    if path.ends_with('/') {
        return false;
    }
    let relative = path.strip_prefix('/').unwrap_or(path);
    let mut leading_dotdots = true;
    for segment in relative.split('/') {
        match segment {
            "" | "." => return false,
            // `..` is only irreducible at the start of a relative path.
            ".." if leading_dotdots && !path.starts_with('/') => {}
            ".." => return false,
            _ => leading_dotdots = false,
        }
    }
    true
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned; `.` when the
/// path has no `/`.
pub fn parent_dir(path: &str) -> Cow<'_, str> {
    match path.rfind('/') {
        Some(idx) => clean_path(&path[..=idx]),
        None => Cow::Borrowed("."),
    }
}

/// Go's `filepath.Join(a, b)` for two elements: empty elements are ignored and
/// the result is cleaned.
pub fn join_paths(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean_path(b).into_owned(),
        (false, true) => clean_path(a).into_owned(),
        (false, false) => clean_path(&format!("{a}/{b}")).into_owned(),
    }
}

/// Go's `filepath.Base`: the last element, ignoring trailing `/`; `.` for an
/// empty path and `/` for a path made only of slashes.
pub fn base_name(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(idx) => &trimmed[idx + 1..],
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go_rules() {
        let cases = [
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("//", "/"),
            ("a", "a"),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a", "a"),
            ("a/.", "a"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("..", ".."),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("a/../..", ".."),
            ("/..", "/"),
            ("/../a", "/a"),
            ("/a/b/../../..", "/"),
            ("!foo/../bar", "bar"),
            ("**/", "**"),
            ("a/b/", "a/b"),
            ("abc/./../def", "def"),
            ("...", "..."),
            ("a/.../b", "a/.../b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "clean({input:?})");
        }
    }

    /// `is_clean` must recognise exactly the fixed points of cleaning.
    #[test]
    fn fast_path_agrees_with_full_algorithm() {
        let atoms = ["a", "b", "/", ".", "..", "//", "..."];
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 7) as usize;
            let path: String = (0..len)
                .map(|i| atoms[((seed >> (8 * i)) % atoms.len() as u64) as usize])
                .collect();
            let full = clean_owned(&path);
            assert_eq!(clean_path(&path), full, "{path:?}");
            assert_eq!(is_clean(&path), full == path, "{path:?}");
            assert_eq!(
                clean_owned(&full),
                full,
                "cleaning is idempotent for {path:?}"
            );
        }
    }

    #[test]
    fn clean_borrows_when_already_clean() {
        assert!(matches!(clean_path("a/b/c"), Cow::Borrowed(_)));
        assert!(matches!(clean_path("../a"), Cow::Borrowed(_)));
        assert!(matches!(clean_path("a//b"), Cow::Owned(_)));
    }

    #[test]
    fn dir_join_base() {
        assert_eq!(parent_dir("a"), ".");
        assert_eq!(parent_dir("a/b"), "a");
        assert_eq!(parent_dir("a/b/"), "a/b");
        assert_eq!(parent_dir("/"), "/");
        assert_eq!(parent_dir("/a"), "/");
        assert_eq!(parent_dir("a//b"), "a");
        assert_eq!(join_paths(".", "/x/y"), "x/y");
        assert_eq!(join_paths(".", ""), ".");
        assert_eq!(join_paths("a", "../b"), "b");
        assert_eq!(base_name("a/b/"), "b");
        assert_eq!(base_name("///"), "/");
        assert_eq!(base_name(""), ".");
        assert_eq!(base_name("x"), "x");
    }
}
