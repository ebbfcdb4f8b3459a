//! One `.dockerignore` pattern: parsing, validation and matching of a single path.
//!
//! Moby classifies each pattern once: patterns without metacharacters are exact
//! string comparisons, `prefix/**` is a string prefix test, `**suffix` (leading
//! `**`, literal rest) is a string suffix test, and everything else is turned
//! into a regular expression. We keep the same classification (it decides some
//! observable corner cases, e.g. `**file` also matches `myfile`) but replace the
//! regular expression with a small token program run as a bit-parallel NFA, so
//! matching costs O(path length × pattern length) whatever the pattern.

use std::fmt;

use super::clean::clean_path;

/// Why a pattern list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A pattern consisting of a lone `!`.
    #[error("illegal exclusion pattern: {pattern:?}")]
    IllegalExclusion {
        /// The offending pattern as written (after trimming).
        pattern: String,
    },
    /// A pattern that Go's `filepath.Match` (or moby's regexp translation)
    /// rejects.
    #[error("syntax error in pattern {pattern:?}: {kind}")]
    Syntax {
        /// The offending pattern as given to the matcher.
        pattern: String,
        /// What is wrong with it.
        kind: SyntaxErrorKind,
    },
}

/// The specific syntax problem inside a rejected pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxErrorKind {
    /// `\` as the last character: there is nothing to escape.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// `[` without a closing `]`, or a class cut short after `\` or `-`.
    #[error("unterminated character class")]
    UnterminatedClass,
    /// `-` or `]` where a class member was expected (`[]a]`, `[-x]`, `[x-]`,
    /// `[a-b-c]`); escape it with `\` to mean the character itself.
    #[error("unescaped {0:?} in character class")]
    MisplacedClassChar(char),
    /// A range whose start is after its end (`[z-a]`). Go's `filepath.Match`
    /// accepts it, but moby compiles classes into a regexp that rejects it.
    #[error("character class range {lo:?}-{hi:?} is reversed")]
    ReversedRange {
        /// Start of the range.
        lo: char,
        /// End of the range.
        hi: char,
    },
}

/// Which pattern language to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `.dockerignore` patterns: `**` spans directories, reversed ranges are errors.
    Moby,
    /// Plain Go `filepath.Match` (used for wildcard follow paths).
    Glob,
}

/// A compiled pattern from a pattern list.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Cleaned pattern text without the leading `!`.
    text: String,
    exclusion: bool,
    /// Number of `/`-separated components, used by the legacy parent check.
    components: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `path == text`.
    Exact,
    /// `path` starts with `text[..len]` (pattern ended in `**`).
    Prefix(usize),
    /// `path` ends with `text[start..]`, or equals it minus a leading `/`.
    Suffix(usize),
    /// Anything with real wildcards.
    Program(Program),
}

impl Pattern {
    /// Parses one pattern the way moby's `patternmatcher.New` does: trim
    /// whitespace, clean the path lexically, take a leading `!` as an exception
    /// marker, then validate the rest.
    ///
    /// Returns `Ok(None)` for blank input, which pattern lists silently skip.
    pub fn parse(raw: &str) -> Result<Option<Self>, PatternError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        // Moby cleans before looking at `!`, so `!./a` keeps its `./` and
        // `!x/../a` loses its `!`; we reproduce that rather than "fix" it.
        let cleaned = clean_path(trimmed);
        let (exclusion, body) = match cleaned.strip_prefix('!') {
            Some("") => {
                return Err(PatternError::IllegalExclusion {
                    pattern: trimmed.to_owned(),
                })
            }
            Some(rest) => (true, rest),
            None => (false, cleaned.as_ref()),
        };
        let kind = compile(body, Dialect::Moby).map_err(|kind| PatternError::Syntax {
            pattern: raw.to_owned(),
            kind,
        })?;
        Ok(Some(Pattern {
            text: body.to_owned(),
            exclusion,
            components: body.split('/').count(),
            kind,
        }))
    }

    /// The cleaned pattern text, without the `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`) that re-includes paths.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Number of `/`-separated components in the pattern text.
    pub(crate) fn components(&self) -> usize {
        self.components
    }

    /// Tests `path` itself (no ancestor logic) against the pattern.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(len) => path.starts_with(self.text.get(..*len).unwrap_or(&self.text)),
            Kind::Suffix(start) => {
                let suffix = &self.text[*start..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Program(program) => program.run(path),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Go `filepath.Match(pattern, name)` with errors folded into `false`, as
/// fsutil uses it for wildcard follow paths.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    match compile(pattern, Dialect::Glob) {
        Ok(Kind::Program(program)) => program.run(name),
        _ => false,
    }
}

/// How far moby's classification got; mirrors its `matchType` progression.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Program,
}

fn compile(body: &str, dialect: Dialect) -> Result<Kind, SyntaxErrorKind> {
    let chars: Vec<char> = body.chars().collect();
    let mut nodes = Vec::new();
    let mut detected = Detected::Exact;
    let mut pos = 0;
    let mut first = true;
    while let Some(&c) = chars.get(pos) {
        pos += 1;
        match c {
            '*' if dialect == Dialect::Moby && chars.get(pos) == Some(&'*') => {
                pos += 1;
                // `**/` is treated as `**`.
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        nodes.push(Node::Tail);
                        detected = Detected::Program;
                    }
                } else {
                    nodes.push(Node::DirsEntry);
                    nodes.push(Node::DirsLoop);
                    detected = Detected::Program;
                }
                if first {
                    // A leading `**` makes moby fall back to a suffix test,
                    // unless a later wildcard turns the pattern into a program.
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                nodes.push(Node::Star);
                detected = Detected::Program;
            }
            '?' => {
                nodes.push(Node::AnyButSlash);
                detected = Detected::Program;
            }
            '\\' => {
                let escaped = *chars.get(pos).ok_or(SyntaxErrorKind::TrailingBackslash)?;
                pos += 1;
                nodes.push(Node::Lit(escaped));
                detected = Detected::Program;
            }
            '[' => {
                let (class, next) = parse_class(&chars, pos, dialect)?;
                pos = next;
                nodes.push(Node::Class(class));
                detected = Detected::Program;
            }
            ']' => {
                // A stray `]` is literal, but moby routes it through the regexp path.
                nodes.push(Node::Lit(']'));
                detected = Detected::Program;
            }
            other => nodes.push(Node::Lit(other)),
        }
        first = false;
    }
    if dialect == Dialect::Glob {
        detected = Detected::Program;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        // The body ends in `**` here (cleaning removed any trailing `/`).
        Detected::Prefix => Kind::Prefix(body.len().saturating_sub(2)),
        Detected::Suffix => Kind::Suffix(2),
        Detected::Program => {
            nodes.push(Node::Accept);
            Kind::Program(Program::new(nodes))
        }
    })
}

/// Parses a character class starting just after `[`; returns it and the
/// position after the closing `]`. Grammar and errors follow Go's
/// `filepath.Match`.
fn parse_class(
    chars: &[char],
    mut pos: usize,
    dialect: Dialect,
) -> Result<(CharClass, usize), SyntaxErrorKind> {
    let negated = chars.get(pos) == Some(&'^');
    if negated {
        pos += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(pos) == Some(&']') && !ranges.is_empty() {
            pos += 1;
            break;
        }
        let (lo, next) = class_char(chars, pos)?;
        pos = next;
        let mut hi = lo;
        if chars.get(pos) == Some(&'-') {
            let (end, next) = class_char(chars, pos + 1)?;
            hi = end;
            pos = next;
        }
        if dialect == Dialect::Moby && lo > hi {
            return Err(SyntaxErrorKind::ReversedRange { lo, hi });
        }
        ranges.push((lo, hi));
    }
    Ok((
        CharClass {
            negated,
            ranges: ranges.into_boxed_slice(),
        },
        pos,
    ))
}

/// One class member (possibly `\`-escaped). Like Go, the class must continue
/// after it, otherwise it is unterminated.
fn class_char(chars: &[char], pos: usize) -> Result<(char, usize), SyntaxErrorKind> {
    let (c, next) = match chars.get(pos) {
        None => return Err(SyntaxErrorKind::UnterminatedClass),
        Some(&c @ ('-' | ']')) => return Err(SyntaxErrorKind::MisplacedClassChar(c)),
        Some('\\') => match chars.get(pos + 1) {
            None => return Err(SyntaxErrorKind::UnterminatedClass),
            Some(&c) => (c, pos + 2),
        },
        Some(&c) => (c, pos + 1),
    };
    if next >= chars.len() {
        return Err(SyntaxErrorKind::UnterminatedClass);
    }
    Ok((c, next))
}

/// A bracket expression: a set of inclusive character ranges, maybe negated.
#[derive(Debug, Clone)]
struct CharClass {
    negated: bool,
    ranges: Box<[(char, char)]>,
}

impl CharClass {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// NFA states. Epsilon edges only ever point forward (`i` → `i+1`, `i+2`),
/// which lets one ascending sweep compute the epsilon closure.
#[derive(Debug, Clone)]
enum Node {
    /// One exact character.
    Lit(char),
    /// `?`: one character other than `/`.
    AnyButSlash,
    /// `[...]`: one character in (or not in) the class; may be `/`, like Go.
    Class(CharClass),
    /// `*`: loops on non-`/` characters; epsilon to the next node.
    Star,
    /// Start of a mid-pattern `**` (regexp `(.*/)?`): epsilon to the loop
    /// (`i+1`) and past it (`i+2`).
    DirsEntry,
    /// Inside `(.*/)?`: loops on anything but `\n` (Go's `.`), and leaves on `/`.
    DirsLoop,
    /// Trailing `**` after other wildcards (regexp `.*`): loops on anything but
    /// `\n`; epsilon to the next node.
    Tail,
    /// Final state.
    Accept,
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
struct Program {
    nodes: Vec<Node>,
    /// Literal characters the pattern starts with; every match starts so.
    literal_prefix: String,
    /// Literal characters the pattern ends with; every match ends so.
    literal_suffix: String,
}

/// State sets up to this many 64-bit words live on the stack.
const INLINE_WORDS: usize = 4;

impl Program {
    fn new(nodes: Vec<Node>) -> Self {
        let literal = |node: &Node| match node {
            Node::Lit(c) => Some(*c),
            _ => None,
        };
        let literal_prefix = nodes.iter().map_while(literal).collect();
        let mut literal_suffix: Vec<char> = nodes.iter().rev().skip(1).map_while(literal).collect();
        literal_suffix.reverse();
        Program {
            nodes,
            literal_prefix,
            literal_suffix: literal_suffix.into_iter().collect(),
        }
    }

    fn run(&self, path: &str) -> bool {
        // Cheap necessary conditions first: most paths fail on a fixed
        // extension or leading directory without running the automaton.
        if !path.starts_with(&self.literal_prefix) || !path.ends_with(&self.literal_suffix) {
            return false;
        }
        let words = self.nodes.len().div_ceil(64);
        if words <= INLINE_WORDS {
            let mut cur = [0u64; INLINE_WORDS];
            let mut next = [0u64; INLINE_WORDS];
            self.simulate(path, &mut cur[..words], &mut next[..words])
        } else {
            let mut cur = vec![0u64; words];
            let mut next = vec![0u64; words];
            self.simulate(path, &mut cur, &mut next)
        }
    }

    /// Thompson simulation: every live state advances in lock-step, so the
    /// cost is bounded by characters × states, never exponential.
    fn simulate<'s>(&self, path: &str, mut cur: &'s mut [u64], mut next: &'s mut [u64]) -> bool {
        insert(cur, 0);
        self.close(cur);
        for c in path.chars() {
            next.fill(0);
            for (w, &word) in cur.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let s = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    match self.nodes.get(s) {
                        Some(Node::Lit(x)) if *x == c => insert(next, s + 1),
                        Some(Node::AnyButSlash) if c != '/' => insert(next, s + 1),
                        Some(Node::Class(class)) if class.matches(c) => insert(next, s + 1),
                        Some(Node::Star) if c != '/' => insert(next, s),
                        Some(Node::DirsLoop) => {
                            if c != '\n' {
                                insert(next, s);
                            }
                            if c == '/' {
                                insert(next, s + 1);
                            }
                        }
                        Some(Node::Tail) if c != '\n' => insert(next, s),
                        _ => {}
                    }
                }
            }
            self.close(next);
            std::mem::swap(&mut cur, &mut next);
            if cur.iter().all(|&w| w == 0) {
                return false;
            }
        }
        contains(cur, self.nodes.len() - 1)
    }

    /// Adds epsilon successors; targets are always larger than their source,
    /// so processing bits in ascending order reaches a fixed point in one pass.
    fn close(&self, set: &mut [u64]) {
        for w in 0..set.len() {
            let mut done = 0u64;
            loop {
                let pending = set[w] & !done;
                if pending == 0 {
                    break;
                }
                let bit = pending.trailing_zeros() as usize;
                done |= 1 << bit;
                let s = w * 64 + bit;
                match self.nodes.get(s) {
                    Some(Node::Star | Node::Tail) => insert(set, s + 1),
                    Some(Node::DirsEntry) => {
                        insert(set, s + 1);
                        insert(set, s + 2);
                    }
                    _ => {}
                }
            }
        }
    }
}

fn insert(set: &mut [u64], state: usize) {
    if let Some(word) = set.get_mut(state / 64) {
        *word |= 1 << (state % 64);
    }
}

fn contains(set: &[u64], state: usize) -> bool {
    set.get(state / 64)
        .is_some_and(|word| word & (1 << (state % 64)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Pattern {
        Pattern::parse(p).unwrap().unwrap()
    }

    fn kind_name(p: &str) -> &'static str {
        match pat(p).kind {
            Kind::Exact => "exact",
            Kind::Prefix(_) => "prefix",
            Kind::Suffix(_) => "suffix",
            Kind::Program(_) => "program",
        }
    }

    #[test]
    fn classification_follows_moby() {
        assert_eq!(kind_name("abc.def"), "exact");
        assert_eq!(kind_name("a(b)c/def"), "exact");
        assert_eq!(kind_name("dir/**"), "prefix");
        assert_eq!(kind_name("abc**"), "prefix");
        assert_eq!(kind_name("**"), "suffix");
        assert_eq!(kind_name("**/"), "suffix");
        assert_eq!(kind_name("**file"), "suffix");
        assert_eq!(kind_name("**/foo/bar"), "suffix");
        assert_eq!(kind_name("**/*.txt"), "program");
        assert_eq!(kind_name("**/foo/**"), "program");
        assert_eq!(kind_name("a*/**"), "program");
        assert_eq!(kind_name("a]b"), "program");
        assert_eq!(kind_name("a\\b"), "program");
    }

    #[test]
    fn suffix_quirk_is_kept() {
        // Moby's suffix test has no `/` boundary after a bare leading `**`.
        assert!(pat("**file").matches("myfile"));
        assert!(pat("**file").matches("dir/file"));
        // With a wildcard later on, the regexp form requires the boundary.
        assert!(!pat("**file*").matches("myfile.txt"));
        assert!(pat("**file*").matches("d/file.txt"));
    }

    #[test]
    fn double_star_forms() {
        let p = pat("a**b");
        assert!(p.matches("ab"));
        assert!(p.matches("a/b"));
        assert!(p.matches("ax/y/b"));
        assert!(!p.matches("axb"));
        let p = pat("**/**/*.txt");
        assert!(p.matches("file.txt"));
        assert!(p.matches("a/b/c/file.txt"));
        assert!(!p.matches("a/b/file.txt2"));
        let p = pat("a/*.txt**");
        assert!(p.matches("a/file.txt"));
        assert!(p.matches("a/file.txt/more/stuff"));
        let p = pat("***");
        assert!(p.matches("a/b/c"));
        assert!(p.matches(""));
    }

    #[test]
    fn regexp_dot_does_not_cross_newline() {
        // Moby's `**` becomes `.*`, which (without the `s` flag) stops at `\n`;
        // the string-based prefix and suffix forms do not care.
        assert!(!pat("**/*.txt").matches("a\nb/c.txt"));
        assert!(pat("**/c.txt").matches("a\nb/c.txt"));
        assert!(pat("dir/**").matches("dir/a\nb"));
        assert!(!pat("d*/**").matches("dir/a\nb"));
        // `*` and `?` are character classes in the regexp and do match `\n`.
        assert!(pat("a*").matches("a\nb"));
        assert!(pat("a?b").matches("a\nb"));
    }

    #[test]
    fn literal_affix_prefilter_is_only_a_necessary_condition() {
        assert!(pat("a\\b").matches("ab"));
        assert!(!pat("x*x").matches("x"));
        assert!(pat("x*x").matches("xx"));
        assert!(pat("ab?ba").matches("abxba"));
        assert!(!pat("ab?ba").matches("aba"));
        assert!(pat("dir/*").matches("dir/x"));
        assert!(!pat("dir/*").matches("dirx"));
    }

    #[test]
    fn classes() {
        assert!(pat("[!a-c]x").matches("!x"));
        assert!(pat("[!a-c]x").matches("bx"));
        assert!(!pat("[!a-c]x").matches("dx"));
        assert!(pat("a[^b]c").matches("a/c"));
        assert!(pat("[\\]a]").matches("]"));
        assert!(pat("[*]").matches("*"));
        assert!(!pat("[*]").matches("x"));
        assert!(pat("[a-ζ]").matches("α"));
    }

    #[test]
    fn errors() {
        let syntax = |p: &str| match Pattern::parse(p) {
            Err(PatternError::Syntax { kind, .. }) => Some(kind),
            _ => None,
        };
        assert_eq!(syntax("\\"), Some(SyntaxErrorKind::TrailingBackslash));
        assert_eq!(syntax("["), Some(SyntaxErrorKind::UnterminatedClass));
        assert_eq!(syntax("[^"), Some(SyntaxErrorKind::UnterminatedClass));
        assert_eq!(syntax("[a"), Some(SyntaxErrorKind::UnterminatedClass));
        assert_eq!(syntax("[\\"), Some(SyntaxErrorKind::UnterminatedClass));
        assert_eq!(
            syntax("[]]"),
            Some(SyntaxErrorKind::MisplacedClassChar(']'))
        );
        assert_eq!(
            syntax("[-]"),
            Some(SyntaxErrorKind::MisplacedClassChar('-'))
        );
        assert_eq!(
            syntax("[x-]"),
            Some(SyntaxErrorKind::MisplacedClassChar(']'))
        );
        assert_eq!(
            syntax("[a-b-c]"),
            Some(SyntaxErrorKind::MisplacedClassChar('-'))
        );
        assert_eq!(
            syntax("[Local-Only]"),
            Some(SyntaxErrorKind::ReversedRange { lo: 'l', hi: 'O' })
        );
        assert_eq!(syntax("a[*"), Some(SyntaxErrorKind::UnterminatedClass));
        assert!(matches!(
            Pattern::parse(" ! "),
            Err(PatternError::IllegalExclusion { .. })
        ));
        assert!(Pattern::parse("   ").unwrap().is_none());
        let err = Pattern::parse("a[").unwrap_err();
        assert_eq!(
            err.to_string(),
            "syntax error in pattern \"a[\": unterminated character class"
        );
        assert_eq!(
            Pattern::parse("!").unwrap_err().to_string(),
            "illegal exclusion pattern: \"!\""
        );
    }

    #[test]
    fn exclusion_is_taken_after_cleaning() {
        let p = pat("!./a");
        assert!(p.is_exclusion());
        assert_eq!(p.as_str(), "./a");
        let p = pat("!x/../a");
        assert!(!p.is_exclusion());
        assert_eq!(p.as_str(), "a");
        let p = pat("!!a");
        assert!(p.is_exclusion());
        assert_eq!(p.as_str(), "!a");
    }

    #[test]
    fn glob_dialect() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(glob_match("**", "abc"));
        assert!(!glob_match("a*", "a/b"));
        assert!(!glob_match("[", "["));
        assert!(!glob_match("[z-a]", "m"));
        assert!(glob_match("link?", "link1"));
    }

    #[test]
    fn large_programs_use_heap_state_sets() {
        let long = "a?".repeat(300);
        let path = "ab".repeat(300);
        assert!(pat(&long).matches(&path));
        assert!(!pat(&long).matches(&path[1..]));
    }

    /// Backtracking reference for the regexp moby would build (wildcard
    /// patterns only): exponential, but fine for tiny inputs.
    fn reference(p: &[char], s: &[char]) -> bool {
        let Some(&c) = p.first() else {
            return s.is_empty();
        };
        match c {
            '*' if p.get(1) == Some(&'*') => {
                let mut rest = &p[2..];
                if rest.first() == Some(&'/') {
                    rest = &rest[1..];
                }
                if rest.is_empty() {
                    return !s.contains(&'\n');
                }
                if reference(rest, s) {
                    return true;
                }
                (0..s.len())
                    .any(|k| s[k] == '/' && !s[..k].contains(&'\n') && reference(rest, &s[k + 1..]))
            }
            '*' => (0..=s.len())
                .take_while(|&k| k == 0 || s[k - 1] != '/')
                .any(|k| reference(&p[1..], &s[k..])),
            '?' => s.first().is_some_and(|&x| x != '/') && reference(&p[1..], &s[1..]),
            '\\' => s.first() == p.get(1) && reference(&p[2..], &s[1..]),
            '[' => {
                let close = p.iter().skip(2).position(|&x| x == ']').unwrap() + 2;
                let body = &p[1..close];
                let (negated, body) = match body.split_first() {
                    Some(('^', rest)) => (true, rest),
                    _ => (false, body),
                };
                let Some(&x) = s.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < body.len() {
                    if body.get(i + 1) == Some(&'-') && i + 2 < body.len() {
                        hit |= body[i] <= x && x <= body[i + 2];
                        i += 3;
                    } else {
                        hit |= body[i] == x;
                        i += 1;
                    }
                }
                hit != negated && reference(&p[close + 1..], &s[1..])
            }
            _ => s.first() == Some(&c) && reference(&p[1..], &s[1..]),
        }
    }

    #[test]
    fn nfa_agrees_with_backtracking_reference() {
        let pattern_atoms = [
            "a", "b", "/", "*", "**", "?", "[ab]", "[^a]", "[a-c]", "\\*", ".",
        ];
        let path_atoms = ["a", "b", "c", "/", "*", "\n", ".", "ab"];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut programs = 0;
        for _ in 0..3000 {
            let pattern: String = (0..1 + next(6))
                .map(|_| pattern_atoms[next(pattern_atoms.len())])
                .collect();
            let Ok(Some(compiled)) = Pattern::parse(&pattern) else {
                continue;
            };
            if !matches!(compiled.kind, Kind::Program(_)) {
                continue;
            }
            programs += 1;
            let body: Vec<char> = compiled.as_str().chars().collect();
            for _ in 0..30 {
                let path: String = (0..next(7))
                    .map(|_| path_atoms[next(path_atoms.len())])
                    .collect();
                let chars: Vec<char> = path.chars().collect();
                assert_eq!(
                    compiled.matches(&path),
                    reference(&body, &chars),
                    "pattern {pattern:?} (cleaned {:?}) path {path:?}",
                    compiled.as_str()
                );
            }
        }
        assert!(
            programs > 1000,
            "only {programs} wildcard patterns generated"
        );
    }

    /// Exponential-backtracking bait: linear simulation must finish at once.
    /// Every path ends with the pattern's literal tail, so the quick
    /// prefix/suffix rejection cannot answer and the automaton has to run.
    #[test]
    fn pathological_patterns_stay_linear() {
        let start = std::time::Instant::now();
        let p = pat("**/**/**/a*a*a*b");
        let path = format!("{}{}/b", "a/".repeat(2000), "a".repeat(5000));
        assert!(!p.matches(&path));
        assert!(p.matches(&format!("{}{}b", "a/".repeat(2000), "a".repeat(5000))));
        let p = pat(&format!("{}b", "a*".repeat(60)));
        assert!(!p.matches(&format!("{}/b", "a".repeat(20_000))));
        let p = pat(&format!("{}x", "**/".repeat(40)));
        assert!(!p.matches(&format!("{}xx", "a/".repeat(5000))));
        assert!(p.matches(&format!("{}x", "a/".repeat(5000))));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
    }
}
