//! Wildcard sources (`COPY *.txt /`, `RUN --mount` aside): which paths a pattern names, as
//! BuildKit's copy resolves them.
//!
//! Rules (fsutil's `ResolveWildcards` over Go's `filepath.Match`): the path is split at its
//! first component holding `*`, `?` or `[` (a `\` escapes the next byte); the part before
//! is resolved as a path (symlinks followed, the last one only when asked); everything
//! below it is walked in name order without following symlinks, and each path relative to
//! it that matches the rest of the pattern is a match (a matched directory is not entered).
//! A malformed pattern matches nothing. A missing base is an error, as in BuildKit.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::FileError;
use super::resolve::resolve;
use super::source::{FileKind, SourceFs};

/// Whether one path component holds a wildcard (fsutil's `containsWildcards`).
pub(crate) fn contains_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits `path` before its first component with a wildcard: (base, pattern).
fn split_wildcards(path: &str) -> (String, String) {
    let mut base: Vec<&str> = Vec::new();
    let mut pattern: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if pattern.is_empty() && !contains_wildcards(part.as_bytes()) {
            base.push(part);
        } else {
            pattern.push(part);
        }
    }
    let mut base = base.join("/");
    if absolute {
        base.insert(0, '/');
    }
    (base, pattern.join("/"))
}

/// The paths `src` names in `fs`, relative to its root, in walk order. A path without
/// wildcards names itself (existing or not).
pub(crate) fn resolve_wildcards(
    fs: &dyn SourceFs,
    src: &str,
    follow: bool,
) -> Result<Vec<PathBuf>, FileError> {
    let (base, pattern) = split_wildcards(src);
    if pattern.is_empty() {
        return Ok(vec![super::path::clean(src)]);
    }
    let base = resolve(fs, Path::new(""), OsStr::new(&base), follow)?;
    let stat = fs.lstat(&base).map_err(FileError::at("lstat", &base))?;
    let Some(stat) = stat else {
        return Err(FileError::io(
            "lstat",
            &base,
            std::io::Error::from(rustix::io::Errno::NOENT),
        ));
    };
    let mut out = Vec::new();
    if stat.kind != FileKind::Dir {
        return Ok(out);
    }
    // A match has at most this many components: `*` and `?` never match `/`, only a
    // bracket class can.
    let depth = 1
        + pattern.bytes().filter(|&b| b == b'/').count()
        + pattern.bytes().filter(|&b| b == b'[').count();
    walk(fs, &base, "", pattern.as_bytes(), depth, &mut out)?;
    Ok(out)
}

fn walk(
    fs: &dyn SourceFs,
    dir: &Path,
    rel: &str,
    pattern: &[u8],
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), FileError> {
    let names = fs.read_dir(dir).map_err(FileError::at("open", dir))?;
    for name in names {
        let child = dir.join(&name);
        let child_rel = super::path::join_components(rel, &name);
        let is_dir = fs
            .lstat(&child)
            .map_err(FileError::at("lstat", &child))?
            .is_some_and(|s| s.kind == FileKind::Dir);
        if glob_match(pattern, child_rel.as_bytes()) {
            out.push(child);
            continue;
        }
        if is_dir && child_rel.split('/').count() < depth {
            walk(fs, &child, &child_rel, pattern, depth, out)?;
        }
    }
    Ok(())
}

/// Go's `filepath.Match(pattern, name)` on Unix, with a malformed pattern matching nothing.
pub(crate) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    go_match(pattern, name).unwrap_or(false)
}

/// `Err(())` is Go's `ErrBadPattern`.
fn go_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, ()> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of one component.
            return Ok(!name.contains(&b'/'));
        }
        let (left, ok) = match_chunk(chunk, name)?;
        if ok && (left.is_empty() || !pattern.is_empty()) {
            name = left;
            continue;
        }
        if star {
            // Chunks have a fixed width, so the leftmost match after the star is the one
            // to take (the last chunk must end the name).
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (left, ok) = match_chunk(chunk, &name[i + 1..])?;
                if ok {
                    if pattern.is_empty() && !left.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = left;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        // No match: the rest of the pattern must still be well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Leading stars, then the text up to the next star outside a class.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` at the start of `s`: the rest of `s` and whether it matched. Keeps
/// scanning after a mismatch to report a malformed chunk.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<(&'a [u8], bool), ()> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0u32;
                if !failed {
                    let (rune, n) = decode(s);
                    r = rune;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (h, rest) = get_esc(&chunk[1..])?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if c == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(());
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        Ok((b"", false))
    } else {
        Ok((s, true))
    }
}

/// One (possibly escaped) character of a class; the class must go on after it.
fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), ()> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(()),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(());
            }
        }
        Some(_) => {}
    }
    let (r, n) = decode(chunk);
    if r == u32::from(char::REPLACEMENT_CHARACTER) && n == 1 {
        return Err(());
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((r, rest))
}

/// Decodes one UTF-8 character (U+FFFD and one byte for invalid input, as Go does).
fn decode(s: &[u8]) -> (u32, usize) {
    for n in 1..=s.len().min(4) {
        if let Ok(text) = std::str::from_utf8(&s[..n]) {
            if let Some(c) = text.chars().next() {
                return (u32::from(c), n);
            }
        }
    }
    (u32::from(char::REPLACEMENT_CHARACTER), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> Result<bool, ()> {
        go_match(p.as_bytes(), n.as_bytes())
    }

    #[test]
    fn go_filepath_match_table() {
        // Go's own table for filepath.Match.
        let ok = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for (p, n, want) in ok {
            assert_eq!(m(p, n), Ok(want), "{p} {n}");
        }
        let bad = [
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[x-]", "-"),
            ("[x-]", "z"),
            ("[-x]", "x"),
            ("[-x]", "-"),
            ("[-x]", "a"),
            ("\\", "a"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
        ];
        for (p, n) in bad {
            assert_eq!(m(p, n), Err(()), "{p} {n}");
        }
    }

    #[test]
    fn split_at_first_wildcard() {
        assert_eq!(
            split_wildcards("/a/b*/c"),
            ("/a".to_string(), "b*/c".to_string())
        );
        assert_eq!(
            split_wildcards("/*.txt"),
            ("/".to_string(), "*.txt".to_string())
        );
        assert_eq!(split_wildcards("/a/b"), ("/a/b".to_string(), String::new()));
        assert!(!contains_wildcards(b"a\\*b"));
    }
}
