//! A single entry point that drives every public operation with arbitrary
//! bytes, for a `cargo fuzz` target (`fuzz_target!(|data: &[u8]| fuzz_patterns(data))`).

use super::follow::dedupe_paths;
use super::ignorefile::read_ignore;
use super::matcher::{MatchInfo, PatternMatcher};
use super::pattern::{glob_match, Pattern};
use super::walk::{FilterOptions, FilteredWalk, WalkFilter};

/// Runs the reader, compiler, matchers and walk decisions on `data`.
///
/// Layout: the bytes before the first NUL are an ignore file (its lines are
/// also tried as raw patterns); the rest holds `\n`-separated paths, a trailing
/// `/` marking a directory. Returns normally for every input; it panics only if
/// an internal invariant breaks (the incremental matcher, given no parent
/// information, must agree with the full ancestor check), which is what a
/// fuzzer should report.
pub fn fuzz_patterns(data: &[u8]) {
    let (ignore, rest) = match data.iter().position(|&b| b == 0) {
        Some(idx) => (&data[..idx], &data[idx + 1..]),
        None => (data, &[][..]),
    };
    let read = read_ignore(ignore);
    let raw_text = String::from_utf8_lossy(ignore);
    let raw: Vec<String> = raw_text.split('\n').map(str::to_owned).collect();
    let path_text = String::from_utf8_lossy(rest);
    let entries: Vec<(&str, bool)> = path_text
        .split('\n')
        .map(|p| match p.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (p, false),
        })
        .collect();

    for line in &raw {
        if let Ok(Some(pattern)) = Pattern::parse(line) {
            for (path, _) in &entries {
                let _ = pattern.matches(path);
                let _ = glob_match(line, path);
            }
        }
    }

    for list in [&read, &raw] {
        let matcher = match PatternMatcher::new(list.iter()) {
            Ok(matcher) => matcher,
            Err(err) => {
                let _ = err.to_string();
                continue;
            }
        };
        let mut parent = MatchInfo::default();
        for (path, _) in &entries {
            let full = matcher.matches_or_parent_matches(path);
            let (incremental, info) =
                matcher.matches_using_parent_results(path, &MatchInfo::default());
            assert_eq!(full, incremental, "matchers disagree on {path:?}");
            let _ = matcher.matches_legacy(path);
            // Also feed unrelated parent information, which must not panic.
            let _ = matcher.matches_using_parent_results(path, &parent);
            parent = info;
        }
        let _ = dedupe_paths(list.clone());
        let options = FilterOptions {
            include_patterns: list.iter().take(3).cloned().collect(),
            exclude_patterns: list.clone(),
            follow_targets: Some(entries.iter().take(2).map(|(p, _)| p.to_string()).collect()),
        };
        if let Ok(filter) = WalkFilter::new(&options) {
            let mut walk = FilteredWalk::new(&filter);
            for (path, is_dir) in &entries {
                let _ = walk.visit(path, *is_dir);
                let _ = filter.open_allowed(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator, so the test needs no extra crates.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let atoms = [
            "*", "**", "?", "[", "]", "[^", "-", "\\", "/", "!", "a", "b", ".", "..", " ", "#",
            "\n", "é", "☺", "\u{FEFF}", "\r", "[a-z]", "\0", "^", "$", "(", "{",
        ];
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..4000 {
            let len = (rng.next() % 24) as usize;
            let text: String = (0..len).map(|_| rng.pick(&atoms)).collect();
            fuzz_patterns(text.as_bytes());
        }
        // Arbitrary bytes, including invalid UTF-8.
        for _ in 0..2000 {
            let len = (rng.next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 256) as u8).collect();
            fuzz_patterns(&bytes);
        }
    }

    #[test]
    fn layout_examples() {
        fuzz_patterns(b"");
        fuzz_patterns(b"\0");
        fuzz_patterns(b"a\n!a/b\n[\0a/\na/b\na/c");
        fuzz_patterns(b"**/**/**/a*a*a*b\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    }
}
