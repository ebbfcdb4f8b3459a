//! The expansion engine: one pass over the word, recursive for `${…}` words.
//!
//! The structure follows BuildKit's `shellWord` closely so the many corner
//! cases come out the same: the order in which characters are classified,
//! where the recursion starts and stops, which errors replace which.

use std::collections::BTreeSet;

use super::charclass::{is_digit, is_name_char, is_space};
use super::env::Env;
use super::error::ShellError;
use super::pattern;
use super::{Lexer, MAX_NESTING};

/// Names looked up while expanding, split by whether they were set.
#[derive(Debug, Default)]
pub(crate) struct Captures {
    pub(crate) matched: BTreeSet<String>,
    pub(crate) unmatched: BTreeSet<String>,
}

/// Builds the word list of `process_words`.
///
/// Unquoted literal text and unquoted expansions split on whitespace;
/// quoted text, escaped characters and `<<` heredoc markers do not.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    words: Vec<String>,
    current: String,
}

impl Splitter {
    fn push_splitting(&mut self, text: &str) {
        for c in text.chars() {
            self.push_char(c);
        }
    }

    fn push_char(&mut self, c: char) {
        if !is_space(c) {
            self.current.push(c);
        } else if !self.current.is_empty() {
            self.words.push(std::mem::take(&mut self.current));
        }
    }

    fn push_raw(&mut self, text: &str) {
        self.current.push_str(text);
    }

    /// The words; an empty quoted string (`""`) makes no word.
    pub(crate) fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

/// The state of one expansion.
#[derive(Debug)]
pub(crate) struct Expander<'a, E: Env + ?Sized> {
    lexer: &'a Lexer,
    src: &'a str,
    pos: usize,
    env: &'a E,
    /// Set when the caller wants the matched / unmatched names.
    pub(crate) captures: Option<Captures>,
    /// Set when the caller wants the word list.
    pub(crate) splitter: Option<Splitter>,
    depth: usize,
}

impl<'a, E: Env + ?Sized> Expander<'a, E> {
    pub(crate) fn new(lexer: &'a Lexer, src: &'a str, env: &'a E) -> Self {
        // Go's text/scanner drops a BOM that is the very first character.
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Self {
            lexer,
            src,
            pos,
            env,
            captures: None,
            splitter: None,
            depth: 0,
        }
    }

    /// Expands the whole word.
    pub(crate) fn run(&mut self) -> Result<String, ShellError> {
        let mut out = String::with_capacity(self.src.len());
        self.scan(&mut out, None, self.lexer.raw_escapes, true)?;
        Ok(out)
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Expands until `stop` (consumed) or the end of the word, appending to
    /// `out`. `raw` keeps escape characters (pattern words); `top` marks the
    /// outermost level, the only one whose text is split into words.
    fn scan(
        &mut self,
        out: &mut String,
        stop: Option<char>,
        raw: bool,
        top: bool,
    ) -> Result<(), ShellError> {
        if !top {
            if let Some(splitter) = &mut self.splitter {
                // BuildKit quirk (since v0.15, dockerfile frontend 1.9): a
                // nested word shares, and first resets, the buffer of the
                // outer word being split, so `a${x:-b}c` splits to ["bc"],
                // not ["abc"]. Reproduced on purpose; dropping this line
                // gives the behaviour of earlier releases.
                splitter.current.clear();
            }
        }
        let escape = self.lexer.escape;
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.bump();
                return Ok(());
            }
            let start = out.len();
            // Each branch says how its text feeds the word splitter: true
            // when it splits on whitespace.
            let splits = match c {
                '$' => {
                    self.dollar(out)?;
                    true
                }
                '<' => {
                    self.heredoc_marker(out);
                    false
                }
                '\'' if quotes => {
                    self.single_quoted(out)?;
                    false
                }
                '"' if quotes => {
                    self.double_quoted(out, raw)?;
                    false
                }
                _ => {
                    self.bump();
                    if c != escape {
                        out.push(c);
                        true
                    } else {
                        if raw {
                            out.push(c);
                        }
                        // A lone escape at the end is dropped (kept if raw).
                        if let Some(escaped) = self.bump() {
                            out.push(escaped);
                        }
                        false
                    }
                }
            };
            if top {
                if let Some(splitter) = &mut self.splitter {
                    if splits {
                        splitter.push_splitting(&out[start..]);
                    } else {
                        splitter.push_raw(&out[start..]);
                    }
                }
            }
        }
        match stop {
            // The caller reports the missing `}` or `/`.
            Some(_) => Err(ShellError::MissingBrace),
            None => Ok(()),
        }
    }

    /// Expands a nested word up to `stop`; at the end of the input the error
    /// is `missing` whatever went wrong inside, as in BuildKit.
    fn nested(
        &mut self,
        out: &mut String,
        stop: char,
        raw: bool,
        missing: ShellError,
    ) -> Result<(), ShellError> {
        if self.depth >= MAX_NESTING {
            return Err(ShellError::TooDeep);
        }
        self.depth += 1;
        let result = self.scan(out, Some(stop), raw, false);
        self.depth -= 1;
        match result {
            Err(_) if self.peek().is_none() => Err(missing),
            other => other,
        }
    }

    /// `'…'`: everything literal up to the next `'`.
    fn single_quoted(&mut self, out: &mut String) -> Result<(), ShellError> {
        self.bump();
        let raw_quotes = self.lexer.raw_quotes;
        if raw_quotes {
            out.push('\'');
        }
        let rest = &self.src[self.pos..];
        let Some(len) = rest.find('\'') else {
            self.pos = self.src.len();
            return Err(ShellError::UnterminatedSingleQuote);
        };
        out.push_str(&rest[..len]);
        self.pos += len + 1;
        if raw_quotes {
            out.push('\'');
        }
        Ok(())
    }

    /// `"…"`: `$` expands; the escape character only escapes `"`, `$` and
    /// itself, and stays literal before anything else.
    fn double_quoted(&mut self, out: &mut String, raw: bool) -> Result<(), ShellError> {
        self.bump();
        let raw_quotes = self.lexer.raw_quotes;
        let escape = self.lexer.escape;
        if raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.bump();
                    if raw_quotes {
                        out.push('"');
                    }
                    return Ok(());
                }
                Some('$') => self.dollar(out)?,
                Some(c) => {
                    self.bump();
                    let mut c = c;
                    if c == escape {
                        if raw {
                            out.push(c);
                        }
                        match self.peek() {
                            // Dropped; the missing `"` is reported next.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == escape => {
                                self.bump();
                                c = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `<` is literal, but `<<` takes the blanks after it along, so that a
    /// heredoc marker `<< EOF` stays one word when splitting.
    fn heredoc_marker(&mut self, out: &mut String) {
        self.bump();
        out.push('<');
        if self.peek() != Some('<') {
            return;
        }
        self.bump();
        out.push('<');
        while let Some(c @ (' ' | '\t' | '\r')) = self.peek() {
            self.bump();
            out.push(c);
        }
    }

    /// Reads a parameter name: a run of digits (positional), one special
    /// character, or letters/digits/`_` not starting with a digit.
    fn name(&mut self) -> &'a str {
        let src = self.src;
        let start = self.pos;
        match self.peek() {
            Some(c) if is_digit(c) => {
                while self.peek().is_some_and(is_digit) {
                    self.bump();
                }
            }
            Some('@' | '*' | '#' | '?' | '-' | '$' | '!') => {
                self.bump();
            }
            _ => {
                while self.peek().is_some_and(is_name_char) {
                    self.bump();
                }
            }
        }
        &src[start..self.pos]
    }

    /// Looks `name` up and records it as matched or unmatched.
    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let env: &'a E = self.env;
        let value = env.get(name);
        if let Some(captures) = &mut self.captures {
            let set = if value.is_some() {
                &mut captures.matched
            } else {
                &mut captures.unmatched
            };
            if !set.contains(name) {
                set.insert(name.to_owned());
            }
        }
        value
    }

    /// `$name` or `${…}`, with the `$` next in the input.
    fn dollar(&mut self, out: &mut String) -> Result<(), ShellError> {
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                out.push('$');
                return Ok(());
            }
            match self.lookup(name) {
                Some(value) => out.push_str(value),
                None if self.lexer.skip_unset_env => {
                    out.push('$');
                    out.push_str(name);
                }
                None => {}
            }
            return Ok(());
        }
        self.bump();
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        match self.bump() {
            Some('}') => {
                match self.lookup(name) {
                    Some(value) => out.push_str(value),
                    None if self.lexer.skip_unset_env => {
                        out.extend(["${", name, "}"]);
                    }
                    None => {}
                }
                Ok(())
            }
            Some(':') => {
                let op = self.bump();
                self.modifier(out, name, op, true)
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => self.modifier(out, name, Some(op), false),
            Some('/') => self.substitution(out, name),
            other => Err(ShellError::UnsupportedModifier(op_text(false, other))),
        }
    }

    /// `${name[:]OP word}` for the operators `-`, `+`, `?`, `#`, `##`, `%`,
    /// `%%`; with `colon`, empty counts as unset. Any other operator after a
    /// `:` is rejected only once its word has been read and the variable
    /// looked up, as in BuildKit.
    fn modifier(
        &mut self,
        out: &mut String,
        name: &'a str,
        op: Option<char>,
        colon: bool,
    ) -> Result<(), ShellError> {
        let is_trim = matches!(op, Some('#' | '%'));
        if colon && is_trim {
            return Err(ShellError::UnsupportedModifier(op_text(colon, op)));
        }
        // Patterns keep their escapes for the glob compiler.
        let mut word = String::new();
        self.nested(&mut word, '}', is_trim, ShellError::MissingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            out.extend(["${", name, &op_text(colon, op), &word, "}"]);
            return Ok(());
        }
        let unset = match value {
            None => true,
            Some(v) => colon && v.is_empty(),
        };
        match op {
            Some('-') => out.push_str(if unset { &word } else { value.unwrap_or("") }),
            Some('+') => {
                if !unset {
                    out.push_str(&word);
                }
            }
            Some('?') => {
                let message = |default: &str| {
                    if word.is_empty() {
                        default.to_owned()
                    } else {
                        word.clone()
                    }
                };
                return match value {
                    None => Err(ShellError::Unset {
                        name: name.to_owned(),
                        message: message("is not allowed to be unset"),
                    }),
                    Some("") if colon => Err(ShellError::Empty {
                        name: name.to_owned(),
                        message: message("is not allowed to be empty"),
                    }),
                    Some(v) => {
                        out.push_str(v);
                        Ok(())
                    }
                };
            }
            Some(op @ ('#' | '%')) => {
                // Doubling is decided on the expanded word, like BuildKit.
                let (greedy, pat) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or("");
                let trimmed = if op == '%' {
                    pattern::trim_suffix(pat, value, greedy)?
                } else {
                    pattern::trim_prefix(pat, value, greedy)?
                };
                out.push_str(&trimmed);
            }
            _ => return Err(ShellError::UnsupportedModifier(op_text(colon, op))),
        }
        Ok(())
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn substitution(&mut self, out: &mut String, name: &'a str) -> Result<(), ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let mut pat = String::new();
        self.nested(&mut pat, '/', true, ShellError::MissingSlash)?;
        let mut replacement = String::new();
        self.nested(&mut replacement, '}', true, ShellError::MissingBrace)?;
        let Some(value) = self.lookup(name) else {
            if self.lexer.skip_unset_env {
                // BuildKit writes a single `/` back even for `//`.
                out.extend(["${", name, "/", &pat, "/", &replacement, "}"]);
                return Ok(());
            }
            out.push_str(&pattern::replace("", &pat, &replacement, all)?);
            return Ok(());
        };
        out.push_str(&pattern::replace(value, &pat, &replacement, all)?);
        Ok(())
    }
}

/// The operator as BuildKit prints it; the end of input shows as U+FFFD.
fn op_text(colon: bool, op: Option<char>) -> String {
    let mut text = String::with_capacity(5);
    if colon {
        text.push(':');
    }
    text.push(op.unwrap_or(char::REPLACEMENT_CHARACTER));
    text
}

#[cfg(test)]
mod tests {
    //! Expected values here were checked against BuildKit's own lexer.
    use super::super::{EnvList, Lexer, ShellError, MAX_NESTING};

    fn env() -> EnvList {
        EnvList::from_entries(["x=X", "e=", "sp=a  b", "p=*"])
    }

    fn word(input: &str) -> Result<String, ShellError> {
        Lexer::new('\\').process_word(input, &env())
    }

    fn words(input: &str) -> Vec<String> {
        Lexer::new('\\').process_words(input, &env()).unwrap()
    }

    #[test]
    fn nested_words_reset_the_word_being_split() {
        // BuildKit quirk: the text before a nested `${…}` word is lost.
        assert_eq!(words("hello${u:-abc}def"), ["abcdef"]);
        assert_eq!(words(r#"a b"${u:-c}" d"#), ["a", "c", "d"]);
        // Plain `$u` / `${u}` have no nested word and keep it.
        assert_eq!(words(r#"a b"$u"c ${u}d"#), ["a", "bc", "d"]);
        // process_word is unaffected.
        assert_eq!(word("hello${u:-abc}def").unwrap(), "helloabcdef");
    }

    #[test]
    fn splitting_rules() {
        assert_eq!(words("x$sp'$sp'"), ["xa", "b$sp"]);
        assert_eq!(words(r#"a "" b"#), ["a", "b"]);
        assert!(words(r#""""#).is_empty());
        assert_eq!(words(r"a\ b\"), ["a b"]);
        // `<<` keeps the blanks after it, so a heredoc marker is one word.
        assert_eq!(words("a << b"), ["a", "<< b"]);
        assert_eq!(words("a <<\tEOF x"), ["a", "<<\tEOF", "x"]);
        assert_eq!(words("a <b c"), ["a", "<b", "c"]);
    }

    #[test]
    fn a_leading_bom_is_skipped() {
        assert_eq!(word("\u{feff}a\u{feff}").unwrap(), "a\u{feff}");
    }

    #[test]
    fn which_error_wins() {
        let unsupported = |op: &str| Err(ShellError::UnsupportedModifier(op.to_owned()));
        assert_eq!(word("${x"), unsupported("\u{fffd}"));
        assert_eq!(word("${x:"), Err(ShellError::MissingBrace));
        assert_eq!(word("${x:}"), Err(ShellError::MissingBrace));
        assert_eq!(word("${x:-'abc}"), Err(ShellError::MissingBrace));
        assert_eq!(word("${x/abc}"), Err(ShellError::MissingSlash));
        assert_eq!(word("${x:-${}}"), Err(ShellError::BadSubstitution));
        assert_eq!(word("${#x}"), unsupported("x"));
        assert_eq!(word("${ }"), unsupported(" "));
        assert_eq!(word("${x:=v}"), unsupported(":="));
        assert_eq!(word("${x:/a/b}"), unsupported(":/"));
        assert_eq!(word("${x=v}"), unsupported("="));
        assert_eq!(word("${x:#a}"), unsupported(":#"));
        assert_eq!(word("'abc"), Err(ShellError::UnterminatedSingleQuote));
        assert_eq!(word("\"abc\\"), Err(ShellError::UnterminatedDoubleQuote));
        assert_eq!(
            word(r"${x#a\b}"),
            Err(ShellError::InvalidPattern {
                pattern: r"a\b".into(),
                escape: 'b'
            })
        );
    }

    #[test]
    fn required_variables() {
        assert_eq!(word("${x:?}").unwrap(), "X");
        let err = word("${e:?}").unwrap_err();
        assert_eq!(err.to_string(), "e: is not allowed to be empty");
        assert_eq!(
            err.with_word("${e:?}"),
            r#"failed to process "${e:?}": e: is not allowed to be empty"#
        );
        assert_eq!(word("${e:?oops $x}").unwrap_err().to_string(), "e: oops X");
        assert_eq!(
            word("${u?}").unwrap_err().to_string(),
            "u: is not allowed to be unset"
        );
        assert_eq!(word("${e?}").unwrap(), "");
    }

    #[test]
    fn patterns_are_expanded_words() {
        // Quotes do not make a pattern literal; a variable's `*` is a glob.
        assert_eq!(word(r#"${x#"*"}"#).unwrap(), "X");
        assert_eq!(word("${p}${x%%$p}").unwrap(), "*");
        // Doubling is read from the expanded word.
        let lexer = Lexer::new('\\');
        assert_eq!(
            lexer.process_word("${v#$h}", &["v=aab", "h=#*a"]).unwrap(),
            "b"
        );
    }

    #[test]
    fn dollar_forms() {
        assert_eq!(word("$").unwrap(), "$");
        assert_eq!(word("a$'b'").unwrap(), "a$b");
        assert_eq!(word("$x.$e.$.x").unwrap(), "X..$.x");
        assert_eq!(word("$12x $0x $@x").unwrap(), "x x x");
        // Unicode letters and digits continue a name; other numbers do not.
        let lexer = Lexer::new('\\');
        assert_eq!(lexer.process_word("$é١²", &["é١=v"]).unwrap(), "v²");
    }

    #[test]
    fn matches_include_special_parameters() {
        let got = Lexer::new('\\')
            .process_word_with_matches("$1 $@ ${#} $u ${e}", &env())
            .unwrap();
        assert_eq!(got.value, "    ");
        assert_eq!(got.matched.into_iter().collect::<Vec<_>>(), ["e"]);
        assert_eq!(
            got.unmatched.into_iter().collect::<Vec<_>>(),
            ["#", "1", "@", "u"]
        );
    }

    #[test]
    fn skip_unset_env_keeps_references() {
        let lexer = Lexer::new('\\').skip_unset_env(true);
        let input = "$X ${X} ${X:-a$x} ${X//p/r} ${X?m} ${X:=v} ${X#a} $x";
        assert_eq!(
            lexer.process_word(input, &env()).unwrap(),
            "$X ${X} ${X:-aX} ${X/p/r} ${X?m} ${X:=v} ${X#a} X"
        );
    }

    #[test]
    fn raw_modes() {
        let raw_quotes = Lexer::new('\\').raw_quotes(true);
        assert_eq!(
            raw_quotes.process_word(r#"'a'"b$x""#, &env()).unwrap(),
            r#"'a'"bX""#
        );
        let raw_escapes = Lexer::new('\\').raw_escapes(true);
        assert_eq!(
            raw_escapes
                .process_word(r#"a\b"c\d\""${u:-e\f}\"#, &env())
                .unwrap(),
            r#"a\bc\\d\"ef\"#
        );
        let no_quotes = Lexer::new('\\').skip_process_quotes(true);
        assert_eq!(
            no_quotes.process_word(r#"'a' "b""#, &env()).unwrap(),
            r#"'a' "b""#
        );
    }

    #[test]
    fn backtick_escape() {
        let lexer = Lexer::new('`');
        assert_eq!(
            lexer.process_word(r#"a`$x "`"\" c:\dir"#, &env()).unwrap(),
            r#"a$x "\ c:\dir"#
        );
        assert_eq!(lexer.process_words("a` b c", &env()).unwrap(), ["a b", "c"]);
    }

    #[test]
    fn nesting_limit_is_an_error_not_a_crash() {
        let lexer = Lexer::new('\\');
        let env: [&str; 0] = [];
        let deep = |n: usize, quoted: bool| {
            let (open, close) = if quoted {
                ("\"${a:-", "}\"")
            } else {
                ("${a:-", "}")
            };
            format!("{}x{}", open.repeat(n), close.repeat(n))
        };
        for quoted in [false, true] {
            assert_eq!(
                lexer
                    .process_word(&deep(MAX_NESTING, quoted), &env)
                    .unwrap(),
                "x"
            );
            assert_eq!(
                lexer.process_words(&deep(MAX_NESTING + 1, quoted), &env),
                Err(ShellError::TooDeep)
            );
        }
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        const PIECES: &[&str] = &[
            "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "`", "'", "\"", "<", " ", "\n",
            "x", "e", "p", "1", "@", "*", "é", "\u{feff}", "=", "${x", "${u:-", "${p#",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            // xorshift64: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let env = env();
        for _ in 0..20_000 {
            let len = (next() % 16) as usize;
            let input: String = (0..len)
                .map(|_| PIECES[(next() as usize) % PIECES.len()])
                .collect();
            for lexer in [
                Lexer::new('\\'),
                Lexer::new('`').raw_escapes(true).skip_unset_env(true),
            ] {
                let _ = lexer.process_word(&input, &env);
                let _ = lexer.process_words(&input, &env);
                let _ = lexer.process_word_with_matches(&input, &env);
            }
        }
    }

    #[test]
    fn large_input_is_linear() {
        let input = "$x ${u:-d} 'q' \"$e\" ".repeat(20_000);
        let out = Lexer::new('\\').process_word(&input, &env()).unwrap();
        assert_eq!(out, "X d q  ".repeat(20_000));
        let long_value = "ab".repeat(50_000);
        let lexer = Lexer::new('\\');
        let trimmed = lexer
            .process_word("${v%%b*}|${v//a/}", &[format!("v={long_value}")])
            .unwrap();
        assert_eq!(trimmed, format!("a|{}", "b".repeat(50_000)));
    }
}
