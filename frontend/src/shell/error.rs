//! Expansion failures, with BuildKit's message texts.

use std::fmt::Write as _;

use super::charclass::is_print;

/// Why a word could not be expanded.
///
/// `Display` gives BuildKit's text for the failure itself (e.g. `x: msg` for
/// `${x:?msg}`); BuildKit shows it behind `failed to process "<word>": `,
/// which [`ShellError::with_word`] adds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// `${` without its closing `}` (also an unterminated quote or pattern
    /// inside `${…}`, which runs into the end of the word).
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${name/pattern` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{…`, `${:…`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A `'` that is never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` that is never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// An operator after the name that BuildKit does not support (`${v:=x}`,
    /// `${v:#x}`, `${v.}`, …). The text is the operator as written, `:`
    /// included; the end of the word shows as U+FFFD as in BuildKit.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// A `#`, `%` or `/` pattern with a backslash that escapes something other
    /// than `*`, `?`, `\`, `}` or `/`. For `%`/`%%` the pattern is shown
    /// reversed, as BuildKit matches suffixes on reversed text.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escape}'")]
    InvalidPattern {
        /// The expanded pattern text.
        pattern: String,
        /// The escaped character (U+FFFD for a trailing lone backslash).
        escape: char,
    },
    /// `${name?msg}` or `${name:?msg}` with `name` unset.
    #[error("{name}: {message}")]
    Unset {
        /// The variable.
        name: String,
        /// The expanded message, or `is not allowed to be unset`.
        message: String,
    },
    /// `${name:?msg}` with `name` set to the empty string.
    #[error("{name}: {message}")]
    Empty {
        /// The variable.
        name: String,
        /// The expanded message, or `is not allowed to be empty`.
        message: String,
    },
    /// `${…}` nested deeper than [`MAX_NESTING`](super::MAX_NESTING) levels.
    /// BuildKit has no such limit; this one keeps the recursion off the
    /// end of the stack.
    #[error("syntax error: substitution nested too deeply")]
    TooDeep,
}

impl ShellError {
    /// The whole message BuildKit reports for this failure while expanding
    /// `word`: `failed to process "<word>": <self>`, the word quoted as Go's
    /// `%q` does.
    pub fn with_word(&self, word: &str) -> String {
        format!("failed to process {}: {self}", go_quote(word))
    }
}

/// Quotes `s` like Go's `strconv.Quote`: printable characters as they are,
/// `"` and `\` escaped, C escapes for the usual controls, `\x`, `\u` or `\U`
/// for the rest.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ => {
                let cp = u32::from(c);
                // Writing to a String cannot fail.
                let _ = if cp < 0x20 || cp == 0x7f {
                    write!(out, "\\x{cp:02x}")
                } else if cp < 0x10000 {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go_strconv_quote() {
        assert_eq!(go_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go_quote("한국어 ok"), "\"한국어 ok\"");
        assert_eq!(go_quote("\t\n\u{0}\u{7f}"), r#""\t\n\x00\x7f""#);
        assert_eq!(
            go_quote("\u{a0}\u{feff}\u{10ffff}"),
            r#""\u00a0\ufeff\U0010ffff""#
        );
    }

    #[test]
    fn messages_match_buildkit() {
        let unset = ShellError::Unset {
            name: "VAR".into(),
            message: "is not allowed to be unset".into(),
        };
        assert_eq!(unset.to_string(), "VAR: is not allowed to be unset");
        assert_eq!(
            unset.with_word("${VAR?}"),
            r#"failed to process "${VAR?}": VAR: is not allowed to be unset"#
        );
        assert_eq!(
            ShellError::MissingBrace.to_string(),
            "syntax error: missing '}'"
        );
        assert_eq!(
            ShellError::MissingSlash.to_string(),
            "syntax error: missing '/' in ${}"
        );
        let bad = ShellError::InvalidPattern {
            pattern: r"a\x".into(),
            escape: 'x',
        };
        assert_eq!(
            bad.to_string(),
            r"invalid pattern (a\x) in substitution: invalid escape '\x'"
        );
    }
}
