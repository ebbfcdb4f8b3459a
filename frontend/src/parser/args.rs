//! One logical line → keyword, flags and argument words, per instruction (BuildKit's dispatch
//! table). The grammar's rules do the lexing; this module picks the rule for each keyword and
//! turns the pest pairs into strings.

use super::error::ParseError;
use super::grammar::{DockerfileGrammar, Rule};
use pest::iterators::Pair;
use pest::Parser;
use std::borrow::Cow;

/// Deepest JSON nesting accepted before the text is treated as not-JSON. Go's decoder allows
/// 10 000; we stop at serde_json's 128 so that the grammar's recursion stays far from any
/// thread's stack limit. No real CMD array nests even twice.
const MAX_JSON_DEPTH: usize = 128;

/// What a logical line parses to, before heredocs and location are attached.
#[derive(Debug, Default)]
pub(crate) struct ParsedLine {
    pub keyword: String,
    pub flags: Vec<String>,
    pub args: Vec<String>,
    pub json: bool,
    /// The argument text of ONBUILD, parsed by the caller as a nested line.
    pub onbuild: Option<String>,
}

/// How an instruction's argument text is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// JSON array, else whitespace fields (ADD, COPY, VOLUME).
    JsonOrFields,
    /// JSON array, else the whole text as one argument (RUN, CMD, ENTRYPOINT, SHELL).
    JsonOrString,
    /// Quote-aware words (ARG).
    Words,
    /// key=value pairs or the legacy `key value` form (ENV, LABEL).
    NameValue(&'static str),
    /// Whitespace fields (FROM, EXPOSE).
    Fields,
    /// The whole text as one argument (MAINTAINER, USER, WORKDIR, STOPSIGNAL).
    String,
    /// A type word then a command (HEALTHCHECK).
    Health,
    /// A nested instruction (ONBUILD).
    SubCommand,
    /// Unknown keyword: one empty argument; the typed layer reports it.
    Ignore,
}

/// BuildKit's dispatch table: how each keyword's arguments are split.
const FORMS: [(&str, Form); 18] = [
    ("run", Form::JsonOrString),
    ("copy", Form::JsonOrFields),
    ("env", Form::NameValue("ENV")),
    ("from", Form::Fields),
    ("arg", Form::Words),
    ("workdir", Form::String),
    ("label", Form::NameValue("LABEL")),
    ("cmd", Form::JsonOrString),
    ("entrypoint", Form::JsonOrString),
    ("add", Form::JsonOrFields),
    ("user", Form::String),
    ("expose", Form::Fields),
    ("volume", Form::JsonOrFields),
    ("healthcheck", Form::Health),
    ("shell", Form::JsonOrString),
    ("stopsignal", Form::String),
    ("maintainer", Form::String),
    ("onbuild", Form::SubCommand),
];

fn form_of(keyword: &str) -> Form {
    FORMS
        .iter()
        .find(|(name, _)| keyword.eq_ignore_ascii_case(name))
        .map_or(Form::Ignore, |(_, form)| *form)
}

/// Parses one logical line (keyword, flags, arguments) with the `instruction` rule.
pub(crate) fn parse_line(line: &str, escape: char) -> Result<ParsedLine, ParseError> {
    let line = line.trim();
    let input = for_grammar(line, escape);
    let mut out = ParsedLine::default();
    let mut args_text = "";
    // The rule accepts any non-empty trimmed text; an empty line has no keyword at all.
    if let Ok(mut pairs) = DockerfileGrammar::parse(Rule::instruction, &input) {
        if let Some(pair) = pairs.next() {
            // The swap keeps byte offsets, so spans index the original line too.
            args_text = &line[pair.as_span().end()..];
            for part in pair.into_inner() {
                match part.as_rule() {
                    Rule::keyword => {
                        out.keyword = line[part.as_span().start()..part.as_span().end()].to_string()
                    }
                    Rule::flags => {
                        for flag in part.into_inner() {
                            let end = flag.as_span().end();
                            let value = from_grammar(unquote_flag(flag), escape);
                            // A flag word that unquotes to a bare `--` also ends the flags.
                            if value == "--" {
                                args_text = &line[end..];
                                break;
                            }
                            out.flags.push(value);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let args = args_text.trim();
    match form_of(&out.keyword) {
        Form::JsonOrFields => match parse_json(args)? {
            Some(words) => (out.args, out.json) = (words, true),
            None => out.args = fields(args),
        },
        Form::JsonOrString => {
            if !args.is_empty() {
                match parse_json(args)? {
                    Some(words) => (out.args, out.json) = (words, true),
                    None => out.args = vec![args.to_string()],
                }
            }
        }
        Form::Words => out.args = words(args, escape),
        Form::NameValue(keyword) => out.args = name_values(args, keyword, escape)?,
        Form::Fields => out.args = fields(args),
        Form::String => {
            if !args.is_empty() {
                out.args = vec![args.to_string()];
            }
        }
        Form::Health => (out.args, out.json) = health(args)?,
        Form::SubCommand => {
            if !args.is_empty() {
                out.onbuild = Some(args.to_string());
            }
        }
        Form::Ignore => out.args = vec![String::new()],
    }
    Ok(out)
}

/// The text handed to escape-dependent rules: they are written for `\\`, so with the backtick
/// as escape token the two characters trade places (see the grammar's header).
fn for_grammar(text: &str, escape: char) -> Cow<'_, str> {
    if escape == '`' && text.contains(['`', '\\']) {
        Cow::Owned(swap_escapes(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// Undoes [`for_grammar`] on a string taken out of the parse.
fn from_grammar(text: String, escape: char) -> String {
    if escape == '`' && text.contains(['`', '\\']) {
        swap_escapes(&text)
    } else {
        text
    }
}

fn swap_escapes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '`' => '\\',
            '\\' => '`',
            c => c,
        })
        .collect()
}

/// A flag word with its quotes and escape tokens removed.
fn unquote_flag(flag: Pair<'_, Rule>) -> String {
    let mut value = String::from("--");
    for part in flag.into_inner().flatten() {
        match part.as_rule() {
            Rule::flag_text | Rule::flag_char | Rule::flag_sq_text | Rule::flag_dq_text => {
                value.push_str(part.as_str())
            }
            _ => {}
        }
    }
    value
}

/// BuildKit's whitespace split on `[\t\v\f\r ]+` (empty text → no fields).
fn fields(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    match DockerfileGrammar::parse(Rule::fields, text) {
        Ok(mut pairs) => pairs
            .next()
            .into_iter()
            .flat_map(|p| p.into_inner())
            .filter(|p| p.as_rule() == Rule::field)
            .map(|p| p.as_str().to_string())
            .collect(),
        Err(_) => vec![text.to_string()],
    }
}

/// Quote-aware words with quotes and escapes kept (ARG, and the first pass of ENV/LABEL).
pub(crate) fn words(text: &str, escape: char) -> Vec<String> {
    let input = for_grammar(text, escape);
    let Ok(mut pairs) = DockerfileGrammar::parse(Rule::words, &input) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for word in pairs.next().into_iter().flat_map(|p| p.into_inner()) {
        if word.as_rule() != Rule::word {
            continue;
        }
        let kept: String = word
            .into_inner()
            .filter(|p| p.as_rule() == Rule::word_kept)
            .map(|p| p.as_str())
            .collect();
        // Quotes are kept, so only a word made of a dropped escape token alone is empty.
        if !kept.is_empty() {
            out.push(from_grammar(kept, escape));
        }
    }
    out
}

/// ENV / LABEL: `k=v k2=v2` → k, v, "=", k2, v2, "="; legacy `k v w` → k, "v w", "".
fn name_values(text: &str, keyword: &'static str, escape: char) -> Result<Vec<String>, ParseError> {
    let ws = words(text, escape);
    let Some(first) = ws.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let is_sep = |c: char| matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r');
        let Some(at) = text.find(is_sep) else {
            return Err(ParseError::MissingValue {
                keyword,
                span: Default::default(),
            });
        };
        let value = text[at..].trim_start_matches(is_sep);
        return Ok(vec![
            text[..at].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(ws.len() * 3);
    for word in ws {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseError::MissingEquals {
                word,
                span: Default::default(),
            });
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

/// HEALTHCHECK: the first word (CMD, NONE, …) then the command in JSON or shell form.
fn health(text: &str) -> Result<(Vec<String>, bool), ParseError> {
    let Some(sep) = text
        .find(char::is_whitespace)
        .or(Some(text.len()))
        .filter(|&s| s > 0)
    else {
        return Ok((Vec::new(), false));
    };
    let kind = &text[..sep];
    let rest = text[sep..].trim_start();
    let mut args = vec![kind.to_string()];
    if rest.is_empty() {
        return Ok((args, false));
    }
    match parse_json(rest)? {
        Some(words) => {
            args.extend(words);
            Ok((args, true))
        }
        None => {
            args.push(rest.to_string());
            Ok((args, false))
        }
    }
}

/// The exec form: `Some(words)` for a JSON array of strings, `None` for text that is not a
/// JSON array (the caller falls back to the shell form), an error for a JSON array holding
/// anything but strings.
pub(crate) fn parse_json(text: &str) -> Result<Option<Vec<String>>, ParseError> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') || json_depth(trimmed) > MAX_JSON_DEPTH {
        return Ok(None);
    }
    let Ok(mut pairs) = DockerfileGrammar::parse(Rule::json_args, trimmed) else {
        return Ok(None);
    };
    let Some(array) = pairs.next().and_then(|p| p.into_inner().next()) else {
        return Ok(None);
    };
    let mut words = Vec::new();
    let mut non_string = false;
    for element in array.into_inner() {
        match element.as_rule() {
            Rule::json_string => {
                let chars = element
                    .into_inner()
                    .next()
                    .map(|p| p.as_str())
                    .unwrap_or("");
                words.push(unescape_json(chars));
            }
            _ => {
                // Go's decoder rejects numbers that overflow a float64: not valid JSON then.
                if has_overflowing_number(element.clone()) {
                    return Ok(None);
                }
                non_string = true;
            }
        }
    }
    if non_string {
        return Err(ParseError::NotStringArray {
            span: Default::default(),
        });
    }
    Ok(Some(words))
}

fn has_overflowing_number(pair: Pair<'_, Rule>) -> bool {
    pair.into_inner().flatten().any(|p| {
        p.as_rule() == Rule::json_number && p.as_str().parse::<f64>().is_ok_and(|f| f.is_infinite())
    })
}

/// Nesting depth of brackets and braces outside strings, to bound the grammar's recursion.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Decodes the body of a JSON string the grammar already validated (`\uXXXX` surrogate pairs
/// combined; a lone surrogate becomes U+FFFD, as Go does).
fn unescape_json(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{08}'),
            Some('f') => out.push('\u{0C}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hi = hex4(&mut chars);
                if (0xD800..0xDC00).contains(&hi) {
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('\\') && ahead.next() == Some('u') {
                        let lo = hex4(&mut ahead);
                        if (0xDC00..0xE000).contains(&lo) {
                            chars = ahead;
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                            continue;
                        }
                    }
                }
                out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn hex4(chars: &mut std::str::Chars<'_>) -> u32 {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> ParsedLine {
        parse_line(s, '\\').unwrap()
    }

    #[test]
    fn flags_are_unquoted() {
        let p = line(r#"COPY --from="a b" --chown=1\ 2 -- --x y"#);
        assert_eq!(p.flags, vec!["--from=a b", "--chown=1 2"]);
        assert_eq!(p.args, vec!["--x", "y"]);
    }

    #[test]
    fn json_forms() {
        assert_eq!(
            parse_json(r#"["a", "b\u00e9"]"#).unwrap(),
            Some(vec!["a".into(), "bé".into()])
        );
        assert_eq!(parse_json(r#"["a" "b"]"#).unwrap(), None);
        assert!(parse_json(r#"["a", ["b"]]"#).is_err());
        assert_eq!(parse_json(r#"["a", 1e400]"#).unwrap(), None);
        assert_eq!(
            parse_json(r#"["\ud83d\ude00", "\ud800"]"#).unwrap(),
            Some(vec!["😀".into(), "\u{FFFD}".into()])
        );
    }

    #[test]
    fn deep_json_does_not_overflow() {
        let deep = format!(
            "[\"a\", {}{}]",
            "[".repeat(MAX_JSON_DEPTH + 5),
            "]".repeat(MAX_JSON_DEPTH + 5)
        );
        assert_eq!(parse_json(&deep).unwrap(), None);
    }

    #[test]
    fn arg_words_keep_quotes() {
        let p = line(r#"ARG abc="123 456" def 'x y' a\ b"#);
        assert_eq!(p.args, vec![r#"abc="123 456""#, "def", "'x y'", r"a\ b"]);
    }

    #[test]
    fn env_forms() {
        assert_eq!(line("ENV a=b c=d").args, vec!["a", "b", "=", "c", "d", "="]);
        assert_eq!(line("ENV a b  c").args, vec!["a", "b  c", ""]);
        assert!(parse_line("ENV a", '\\').is_err());
        assert!(parse_line("ENV a=b c", '\\').is_err());
    }
}
