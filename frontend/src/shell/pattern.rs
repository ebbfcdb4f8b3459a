//! Shell glob patterns of `${v#p}`, `${v%p}` and `${v/p/r}`.
//!
//! BuildKit turns a pattern into a Go regular expression (`*` → `.*` or
//! `.*?`, `?` → `.`, everything else literal) and runs Go's leftmost-first
//! matcher. We compile the same three token kinds into a tiny program and run
//! it with a Pike VM, which reproduces Go's match choice exactly (including
//! `.` not matching `\n`) in O(len(text) × len(pattern)) time, without
//! backtracking blow-ups.

use super::charclass::is_name_char;
use super::error::ShellError;

/// The BOM Go's `text/scanner` skips when it is the first character it reads.
const BOM: char = '\u{feff}';

/// One instruction of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inst {
    /// Consume exactly this character, then go to `next`.
    Char(char, usize),
    /// Consume any character but `\n` (Go's `.` without the `s` flag).
    AnyNotNl(usize),
    /// Try `prefer` first, then `other` (the two ways out of a `*`).
    Split { prefer: usize, other: usize },
    /// The whole pattern matched.
    Match,
}

/// A compiled glob.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    prog: Vec<Inst>,
    /// Only match at the start of the text (BuildKit's `^`).
    anchored: bool,
}

impl Pattern {
    /// Compiles a glob the way BuildKit's `convertShellPatternToRegex` does.
    /// `greedy` makes every `*` prefer the longest run; `anchored` only
    /// allows a match starting at offset 0.
    ///
    /// A `\` escapes `*`, `?` or `\`. Before `}` or `/` it is dropped (those
    /// had to be escaped inside `${…}`), and anything else — including a
    /// trailing lone `\` (reported as U+FFFD) — is an error carrying the
    /// offending character.
    pub(crate) fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Self, char> {
        let pattern = pattern.strip_prefix(BOM).unwrap_or(pattern);
        let mut prog = Vec::with_capacity(pattern.len() + 1);
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let at = prog.len();
            match c {
                '*' => {
                    // at: Split, at+1: one char then back to the Split.
                    let (prefer, other) = if greedy {
                        (at + 1, at + 2)
                    } else {
                        (at + 2, at + 1)
                    };
                    prog.push(Inst::Split { prefer, other });
                    prog.push(Inst::AnyNotNl(at));
                }
                '?' => prog.push(Inst::AnyNotNl(at + 1)),
                '\\' => match chars.peek() {
                    // The `}` or `/` itself is read as a literal next round.
                    Some('}' | '/') => {}
                    _ => match chars.next() {
                        Some(e @ ('*' | '?' | '\\')) => prog.push(Inst::Char(e, at + 1)),
                        Some(e) => return Err(e),
                        None => return Err(char::REPLACEMENT_CHARACTER),
                    },
                },
                _ => prog.push(Inst::Char(c, at + 1)),
            }
        }
        prog.push(Inst::Match);
        Ok(Self { prog, anchored })
    }

    /// The leftmost-first match in `text` starting at byte offset `from` or
    /// later, as byte offsets `(start, end)`; Go's `FindStringIndex` on
    /// `text` with the search starting at `from`.
    pub(crate) fn find_at(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        let mut current = ThreadList::new(self.prog.len());
        let mut next = ThreadList::new(self.prog.len());
        let mut stack = Vec::new();
        let mut matched = None;
        let mut pos = from;
        loop {
            if current.threads.is_empty() && (matched.is_some() || (self.anchored && pos != 0)) {
                break;
            }
            // A thread starting here has the lowest priority of all.
            if matched.is_none() && (pos == 0 || !self.anchored) {
                self.add(&mut current, &mut stack, 0, pos);
            }
            let c = text.get(pos..).and_then(|rest| rest.chars().next());
            next.clear();
            for i in 0..current.threads.len() {
                let Thread { pc, start } = current.threads[i];
                match self.prog[pc] {
                    Inst::Match => {
                        // Everything after this thread has lower priority.
                        matched = Some((start, pos));
                        break;
                    }
                    Inst::Char(want, to) if c == Some(want) => {
                        self.add(&mut next, &mut stack, to, start);
                    }
                    Inst::AnyNotNl(to) if c.is_some_and(|c| c != '\n') => {
                        self.add(&mut next, &mut stack, to, start);
                    }
                    _ => {}
                }
            }
            let Some(c) = c else { break };
            pos += c.len_utf8();
            std::mem::swap(&mut current, &mut next);
        }
        matched
    }

    /// Adds the thread at `pc` and everything reachable through `Split`s, in
    /// priority order (depth first, preferred branch first). The explicit
    /// stack keeps long runs of `*` from recursing.
    fn add(&self, list: &mut ThreadList, stack: &mut Vec<usize>, pc: usize, start: usize) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !list.visit(pc) {
                continue;
            }
            match self.prog[pc] {
                Inst::Split { prefer, other } => {
                    stack.push(other);
                    stack.push(prefer);
                }
                _ => list.threads.push(Thread { pc, start }),
            }
        }
    }
}

/// A VM thread: where it is in the program and where its match started.
#[derive(Debug, Clone, Copy)]
struct Thread {
    pc: usize,
    start: usize,
}

/// Threads of one step, each instruction at most once.
#[derive(Debug)]
struct ThreadList {
    threads: Vec<Thread>,
    /// `seen[pc] == stamp` when `pc` is already in this step; bumping the
    /// stamp empties the set without touching the vector.
    seen: Vec<u32>,
    stamp: u32,
}

impl ThreadList {
    fn new(len: usize) -> Self {
        Self {
            threads: Vec::with_capacity(len),
            seen: vec![0; len],
            stamp: 1,
        }
    }

    fn clear(&mut self) {
        self.threads.clear();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.fill(0);
            self.stamp = 1;
        }
    }

    /// Marks `pc`; false when it was already marked in this step.
    fn visit(&mut self, pc: usize) -> bool {
        let fresh = self.seen[pc] != self.stamp;
        self.seen[pc] = self.stamp;
        fresh
    }
}

fn invalid(pattern: &str, escape: char) -> ShellError {
    ShellError::InvalidPattern {
        pattern: pattern.to_owned(),
        escape,
    }
}

/// `${value#pattern}` (`greedy`: `##`): drops the matching prefix.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let re = Pattern::compile(pattern, greedy, true).map_err(|e| invalid(pattern, e))?;
    Ok(match re.find_at(value, 0) {
        Some((_, end)) => value[end..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${value%pattern}` (`greedy`: `%%`): drops the matching suffix.
///
/// Like BuildKit, this reverses the pattern and the value and trims a
/// prefix: a leftmost matcher cannot find the shortest rightmost match.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each `\x` pair in order (`a\*c` → `c\*a`).
/// Pairs are read from the left; a trailing lone `\` is a token of its own.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        tokens.push(&chars[i..i + len]);
        i += len;
    }
    tokens.iter().rev().flat_map(|token| token.iter()).collect()
}

/// `${value/pattern/replacement}` (`all`: `//`). Stars are greedy.
///
/// Replacing the first match inserts `replacement` as it is. Replacing all
/// goes through Go's `ReplaceAllString`, so `$0`, `${0}` stand for the match,
/// `$$` for `$`, and other `$name` references for nothing.
pub(crate) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ShellError> {
    let re = Pattern::compile(pattern, true, false).map_err(|e| invalid(pattern, e))?;
    if !all {
        return Ok(match re.find_at(value, 0) {
            Some((start, end)) => [&value[..start], replacement, &value[end..]].concat(),
            None => value.to_owned(),
        });
    }
    // Go's regexp.replaceAll: an empty match right after a match is not
    // replaced, and the search always advances by at least one character.
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some((start, end)) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(&mut out, replacement, &value[start..end]);
        }
        last_end = end;
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > end {
            search + width
        } else if search + 1 > end {
            search + 1
        } else {
            end
        };
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.ExpandString` for a pattern without capture groups: only
/// group 0 (the whole match) has text.
fn expand_template(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_ref(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(whole);
                }
                rest = after;
            }
            // Malformed reference: the `$` stays as text.
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Parses the reference after a `$` in a Go template: `name` or `{name}`,
/// name chars being letters, digits and `_`. Returns the name and the rest.
fn template_ref(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !is_name_char(c))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        return after.strip_prefix('}').map(|after| (name, after));
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pattern: &str, greedy: bool, anchored: bool, text: &str) -> Option<(usize, usize)> {
        Pattern::compile(pattern, greedy, anchored)
            .unwrap()
            .find_at(text, 0)
    }

    #[test]
    fn compile_accepts_buildkit_escapes() {
        // From BuildKit's TestConvertShellPatternToRegex.
        for ok in ["*", "?", r"\*", r"(()[]{\}^$.\*\?|\\", r"a\/b"] {
            assert!(Pattern::compile(ok, true, true).is_ok(), "{ok}");
        }
        assert_eq!(Pattern::compile(r"\", true, true).unwrap_err(), '\u{fffd}');
        assert_eq!(Pattern::compile(r"\x", true, true).unwrap_err(), 'x');
        assert_eq!(
            Pattern::compile(r"\\\", true, true).unwrap_err(),
            '\u{fffd}'
        );
    }

    #[test]
    fn metacharacters_are_literal() {
        assert_eq!(find("[ab]", true, true, "[ab]c"), Some((0, 4)));
        assert_eq!(find("[ab]", true, true, "a"), None);
        assert_eq!(find("a.c", true, false, "abc"), None);
        assert_eq!(find(r"x\}y", true, false, "x}y"), Some((0, 3)));
    }

    #[test]
    fn star_and_question_do_not_match_newline() {
        assert_eq!(find("*", true, true, "ab\ncd"), Some((0, 2)));
        assert_eq!(find("a?c", true, false, "a\nc abc"), Some((4, 7)));
        assert_eq!(find("a*d", true, true, "ab\ncd"), None);
        assert_eq!(find("a\n*", true, true, "a\nbc"), Some((0, 4)));
    }

    #[test]
    fn leftmost_first_priorities() {
        assert_eq!(find("*x*y", false, true, "xxyy"), Some((0, 3)));
        assert_eq!(find("*x*y", true, true, "xxyy"), Some((0, 4)));
        assert_eq!(find("*", false, true, "abc"), Some((0, 0)));
        assert_eq!(find("b*", true, false, "abbb"), Some((1, 4)));
        assert_eq!(find("", true, false, "abc"), Some((0, 0)));
        assert_eq!(find("é?", true, false, "aéü"), Some((1, 5)));
    }

    #[test]
    fn no_exponential_backtracking() {
        let text = "a".repeat(5000);
        let pattern = "*a".repeat(40) + "b";
        assert_eq!(find(&pattern, true, false, &text), None);
        assert_eq!(find(&pattern, false, true, &text), None);
    }

    #[test]
    fn reverse_keeps_escape_pairs() {
        // From BuildKit's TestReversePattern.
        for (pattern, want) in [
            (r"a\*c", r"c\*a"),
            (r"\\\ab", r"b\a\\"),
            (r"ab\", r"\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            (r"\\b", r"b\\"),
            ("", ""),
        ] {
            assert_eq!(reverse_pattern(pattern), want, "{pattern}");
        }
    }

    #[test]
    fn trims() {
        assert_eq!(trim_prefix("*x", "xxyy", false).unwrap(), "xyy");
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_suffix("y*", "xxyy", false).unwrap(), "xxy");
        assert_eq!(trim_suffix("y*", "xxyy", true).unwrap(), "xx");
        assert_eq!(trim_suffix("?", "한국어", false).unwrap(), "한국");
        // The error shows the reversed pattern, as BuildKit's does.
        assert_eq!(
            trim_suffix(r"a\x", "v", false).unwrap_err().to_string(),
            r"invalid pattern (\xa) in substitution: invalid escape '\x'"
        );
        assert_eq!(
            trim_suffix("a\\", "v", false).unwrap_err().to_string(),
            r"invalid pattern (\a) in substitution: invalid escape '\a'"
        );
        assert_eq!(
            trim_prefix("a\\", "v", false).unwrap_err().to_string(),
            "invalid pattern (a\\) in substitution: invalid escape '\\\u{fffd}'"
        );
    }

    #[test]
    fn replace_all_follows_go() {
        assert_eq!(replace("ab", "", "x", true).unwrap(), "xaxbx");
        assert_eq!(replace("ab", "", "x", false).unwrap(), "xab");
        assert_eq!(replace("a\nb", "*", "x", true).unwrap(), "x\nx");
        assert_eq!(replace("aXbX", "X", "-", true).unwrap(), "a-b-");
        assert_eq!(replace("é", "", "-", true).unwrap(), "-é-");
    }

    #[test]
    fn replace_all_expands_go_templates() {
        assert_eq!(replace("cac", "a", r"b\$0", true).unwrap(), r"cb\ac");
        assert_eq!(replace("cac", "a", "<${0}>", true).unwrap(), "c<a>c");
        assert_eq!(replace("cac", "a", "$$0", true).unwrap(), "c$0c");
        assert_eq!(replace("cac", "a", "$1$00$x$0y", true).unwrap(), "cc");
        assert_eq!(replace("cac", "a", "$ ${0 $", true).unwrap(), "c$ ${0 $c");
        // Replacing only the first match takes the replacement literally.
        assert_eq!(replace("cac", "a", "$0", false).unwrap(), "c$0c");
    }
}
