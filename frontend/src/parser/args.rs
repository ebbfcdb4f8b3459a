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
    /// A quoted flag word unquoted to `--` and ended the flags (BuildKit's quirk).
    flags_ended_by_quotes: bool,
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

/// What the line rule already split of the arguments; `None` fields were not looked at.
#[derive(Debug, Default)]
struct Split {
    /// `Some(Some(words))`: exec form; `Some(None)`: known not to be a JSON array.
    json: Option<Option<Vec<String>>>,
    fields: Option<Vec<String>>,
    words: Option<Vec<String>>,
}

/// Parses one logical line (keyword, flags, arguments).
///
/// With the default escape token one pest parse does it all: the line rule for the keyword's
/// form splits the arguments too. With the backtick (or for JSON nested too deeply to hand to
/// the grammar) `line_plain` reads the head and the stand-alone rules split the arguments.
pub(crate) fn parse_line(line: &str, escape: char) -> Result<ParsedLine, ParseError> {
    let line = line.trim();
    let keyword = line.split(is_sep).next().unwrap_or_default();
    let form = form_of(keyword);
    let single_pass = escape == '\\' && json_depth(line) <= MAX_JSON_DEPTH;
    let rule = if single_pass {
        rule_of(form)
    } else {
        Rule::line_plain
    };
    let input = for_grammar(line, escape);
    let mut out = ParsedLine::default();
    let mut split = Split::default();
    match rule {
        Rule::line_words => split.words = Some(Vec::new()),
        Rule::line_fields => split.fields = Some(Vec::new()),
        Rule::line_list | Rule::line_exec | Rule::line_health => split.json = Some(None),
        _ => {}
    }
    let mut args_start = line.len();
    // Every rule accepts any non-empty trimmed text; an empty line has no keyword at all.
    if let Some(pair) = DockerfileGrammar::parse(rule, &input)
        .ok()
        .and_then(|mut p| p.next())
    {
        for part in pair.into_inner() {
            match part.as_rule() {
                // The swap keeps byte offsets, so spans index the original line too.
                Rule::head => args_start = read_head(part, line, escape, &mut out),
                Rule::json_array => split.json = Some(json_words(part)?),
                Rule::field => split
                    .fields
                    .get_or_insert_with(Vec::new)
                    .push(part.as_str().to_string()),
                Rule::word => {
                    if let Some(word) = word_text(part, escape) {
                        split.words.get_or_insert_with(Vec::new).push(word);
                    }
                }
                _ => {}
            }
        }
    }
    if out.flags_ended_by_quotes {
        // The arguments begin after a flag word that unquoted to `--`, not where the rule
        // thought: what it split is stale.
        split = Split::default();
    }
    finish(form, line[args_start..].trim(), split, escape, &mut out)?;
    Ok(out)
}

fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r')
}

fn rule_of(form: Form) -> Rule {
    match form {
        Form::JsonOrFields => Rule::line_list,
        Form::JsonOrString => Rule::line_exec,
        Form::Words | Form::NameValue(_) => Rule::line_words,
        Form::Fields => Rule::line_fields,
        Form::Health => Rule::line_health,
        Form::String | Form::SubCommand | Form::Ignore => Rule::line_plain,
    }
}

/// Reads keyword and flags from the `head` pair; returns where the arguments start.
fn read_head(head: Pair<'_, Rule>, line: &str, escape: char, out: &mut ParsedLine) -> usize {
    let mut args_start = head.as_span().end();
    for part in head.into_inner() {
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
                        out.flags_ended_by_quotes = true;
                        args_start = end;
                        break;
                    }
                    out.flags.push(value);
                }
            }
            _ => {}
        }
    }
    args_start
}

/// Splits `args` as the instruction's form requires, using what the line rule already split.
fn finish(
    form: Form,
    args: &str,
    split: Split,
    escape: char,
    out: &mut ParsedLine,
) -> Result<(), ParseError> {
    let json = |known: Option<Option<Vec<String>>>| match known {
        Some(known) => Ok(known),
        None => parse_json(args),
    };
    match form {
        Form::JsonOrFields => match json(split.json)? {
            Some(words) => (out.args, out.json) = (words, true),
            None if args.is_empty() => {}
            None => out.args = split.fields.unwrap_or_else(|| fields(args)),
        },
        Form::JsonOrString => {
            if !args.is_empty() {
                match json(split.json)? {
                    Some(words) => (out.args, out.json) = (words, true),
                    None => out.args = vec![args.to_string()],
                }
            }
        }
        Form::Words => out.args = split.words.unwrap_or_else(|| words(args, escape)),
        Form::NameValue(keyword) => {
            let ws = split.words.unwrap_or_else(|| words(args, escape));
            out.args = name_values(args, ws, keyword)?;
        }
        Form::Fields if args.is_empty() => {}
        Form::Fields => out.args = split.fields.unwrap_or_else(|| fields(args)),
        Form::String => {
            if !args.is_empty() {
                out.args = vec![args.to_string()];
            }
        }
        Form::Health => (out.args, out.json) = health(args, split.json)?,
        Form::SubCommand => {
            if !args.is_empty() {
                out.onbuild = Some(args.to_string());
            }
        }
        Form::Ignore => out.args = vec![String::new()],
    }
    Ok(())
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
    pairs
        .next()
        .into_iter()
        .flat_map(|p| p.into_inner())
        .filter(|p| p.as_rule() == Rule::word)
        .filter_map(|word| word_text(word, escape))
        .collect()
}

/// A `word` pair's text without its dropped trailing escape token; `None` if nothing is left
/// (quotes are kept, so only a word made of a lone trailing escape token is empty).
fn word_text(word: Pair<'_, Rule>, escape: char) -> Option<String> {
    let kept: String = word
        .into_inner()
        .filter(|p| p.as_rule() == Rule::word_kept)
        .map(|p| p.as_str())
        .collect();
    (!kept.is_empty()).then(|| from_grammar(kept, escape))
}

/// ENV / LABEL: `k=v k2=v2` → k, v, "=", k2, v2, "="; legacy `k v w` → k, "v w", "".
fn name_values(
    text: &str,
    words: Vec<String>,
    keyword: &'static str,
) -> Result<Vec<String>, ParseError> {
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
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
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
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
/// `known` is what the line rule found of the command's JSON form, if it looked.
fn health(
    text: &str,
    known: Option<Option<Vec<String>>>,
) -> Result<(Vec<String>, bool), ParseError> {
    let sep = text.find(char::is_whitespace).unwrap_or(text.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let rest = text[sep..].trim_start();
    let mut args = vec![text[..sep].to_string()];
    if rest.is_empty() {
        return Ok((args, false));
    }
    let json = match known {
        Some(known) => known,
        None => parse_json(rest)?,
    };
    match json {
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
    match DockerfileGrammar::parse(Rule::json_args, trimmed) {
        Ok(mut pairs) => match pairs.next().and_then(|p| p.into_inner().next()) {
            Some(array) => json_words(array),
            None => Ok(None),
        },
        Err(_) => Ok(None),
    }
}

/// The strings of a parsed `json_array`; an error if it holds anything else.
fn json_words(array: Pair<'_, Rule>) -> Result<Option<Vec<String>>, ParseError> {
    let mut words = Vec::new();
    let mut non_string = false;
    for element in array.into_inner() {
        if element.as_rule() == Rule::json_string {
            let chars = element.into_inner().next().map_or("", |p| p.as_str());
            words.push(unescape_json(chars));
        } else {
            // Go's decoder rejects numbers that overflow a float64: not valid JSON then.
            if has_overflowing_number(element) {
                return Ok(None);
            }
            non_string = true;
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
    fn a_flag_that_unquotes_to_dashes_ends_the_flags() {
        let p = line(r#"RUN --"" --x y"#);
        assert!(p.flags.is_empty());
        assert_eq!(p.args, vec!["--x y"]);
        let p = line(r#"COPY --a --"" --b c"#);
        assert_eq!(p.flags, vec!["--a"]);
        assert_eq!(p.args, vec!["--b", "c"]);
    }

    #[test]
    fn backtick_escape_token() {
        let p = parse_line("COPY --from=a` b [\"x\\\"y\"] z", '`').unwrap();
        assert_eq!(p.flags, vec!["--from=a b"]);
        assert_eq!(p.args, vec!["[\"x\\\"y\"]", "z"]);
        assert_eq!(
            parse_line("ENV a=x` y b=\\", '`').unwrap().args,
            vec!["a", "x` y", "=", "b", "\\", "="]
        );
        assert_eq!(
            parse_line(r#"CMD ["a\"b"]"#, '`').unwrap().args,
            vec!["a\"b"]
        );
    }

    #[test]
    fn single_pass_and_stand_alone_rules_agree() {
        let lines = [
            "ADD a  b\tc",
            "COPY [\"a\", \"b\"]",
            "VOLUME",
            "RUN [\"a\" x",
            "CMD []",
            "ARG a=\"b c\" d",
            "LABEL a b c",
            "ENV a=1 b='2 3'",
            "FROM x AS y",
            "EXPOSE 80 90/udp",
            "HEALTHCHECK CMD [\"a\"]",
            "HEALTHCHECK --interval=1s NONE",
            "USER a b",
            "ONBUILD RUN x",
            "BOGUS a b",
        ];
        for text in lines {
            let fast = parse_line(text, '\\').unwrap();
            // The same line through line_plain + stand-alone rules (the backtick path, with no
            // escape tokens in the text, gives the same result as the default token).
            let slow = parse_line(text, '`').unwrap();
            assert_eq!(
                (fast.keyword, fast.flags, fast.args, fast.json, fast.onbuild),
                (slow.keyword, slow.flags, slow.args, slow.json, slow.onbuild),
                "{text}"
            );
        }
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
