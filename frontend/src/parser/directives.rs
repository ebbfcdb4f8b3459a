//! Parser directives (`# syntax=`, `# escape=`, `# check=`): only at the top of a file.

use super::error::ParseError;
use super::grammar::{DockerfileGrammar, Rule};
use pest::Parser;

/// The directive keys BuildKit recognises.
const KEYS: [&str; 3] = ["syntax", "escape", "check"];

/// One directive found at the top of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Key, lower-case.
    pub name: String,
    /// Value as written, surrounding white space removed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// Reads directives line by line until the first line that is not one; from then on every
/// line is ordinary. Mirrors BuildKit's `DirectiveParser`.
#[derive(Debug)]
pub struct DirectiveParser {
    marker: &'static str,
    line: usize,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    /// A parser for `#`-style directives, starting before line 1.
    pub fn new() -> Self {
        Self::with_marker("#", 0)
    }

    fn with_marker(marker: &'static str, line: usize) -> Self {
        Self {
            marker,
            line,
            seen: Vec::new(),
            done: false,
        }
    }

    /// Feeds the next physical line (newline removed). Returns the directive it holds, if any.
    pub fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, ParseError> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some((marker, name, value)) = split_directive(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if marker != self.marker || !KEYS.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(ParseError::DuplicateDirective {
                name,
                line: self.line,
            });
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value: value.to_string(),
            line: self.line,
        }))
    }

    /// Whether directive processing has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Default for DirectiveParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Splits `#key=value` into (marker, key, value) with the grammar's `directive` rule.
fn split_directive(line: &str) -> Option<(&str, &str, &str)> {
    let mut pairs = DockerfileGrammar::parse(Rule::directive, line).ok()?;
    let mut inner = pairs.next()?.into_inner();
    let marker = inner.next()?.as_str();
    let name = inner.next()?.as_str();
    let rest = inner.next()?.as_str();
    directive_value(rest).map(|v| (marker, name, v))
}

/// RE2's `=\s*(.+?)\s*$` on the text after `=`: leading and trailing `\s` go, but the value
/// is never empty: text of white space only keeps its last character.
fn directive_value(rest: &str) -> Option<&str> {
    let is_s = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{0C}' | '\r');
    let v = rest.trim_matches(is_s);
    if !v.is_empty() {
        return Some(v);
    }
    let last = rest.chars().next_back()?;
    Some(&rest[rest.len() - last.len_utf8()..])
}

/// Directives of a whole file, as BuildKit's `ParseAll`.
pub fn parse_all(src: &[u8]) -> Result<Vec<Directive>, ParseError> {
    let text = String::from_utf8_lossy(src);
    let mut parser = DirectiveParser::new();
    let mut found = Vec::new();
    for line in text.lines() {
        if parser.is_done() {
            break;
        }
        if let Some(d) = parser.parse_line(line)? {
            found.push(d);
        }
    }
    Ok(found)
}

/// The `syntax` directive as BuildKit's `DetectSyntax` finds it: `#` or `//` comments, after
/// an optional `#!` line, or a JSON document with a `syntax` key. Returns the frontend
/// reference (the first word), the whole value and its line.
pub fn detect_syntax(src: &[u8]) -> Option<(String, String, usize)> {
    find_directive("syntax", src, true)
}

/// A single directive by key, `#` comments only (BuildKit's `ParseDirective`), in the same
/// shape as [`detect_syntax`].
pub fn parse_directive(key: &str, src: &[u8]) -> Option<(String, String, usize)> {
    find_directive(key, src, false)
}

fn find_directive(key: &str, src: &[u8], any_format: bool) -> Option<(String, String, usize)> {
    let src = src.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(src);
    let text = String::from_utf8_lossy(src);
    let (text, start_line) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("#!") => (rest, 1),
        None if text.starts_with("#!") => ("", 1),
        _ => (&text[..], 0),
    };
    let markers: &[&'static str] = if any_format { &["#", "//"] } else { &["#"] };
    for marker in markers {
        let mut parser = DirectiveParser::with_marker(marker, start_line);
        for line in text.lines() {
            if parser.is_done() {
                break;
            }
            match parser.parse_line(line) {
                Ok(Some(d)) if d.name == key => {
                    let first = d.value.split(' ').next().unwrap_or_default().to_string();
                    return Some((first, d.value, d.line));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    if any_format {
        let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
        if let Some(serde_json::Value::String(v)) = doc.get(key) {
            return Some((v.clone(), v.clone(), start_line));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rules() {
        assert_eq!(directive_value(" x  "), Some("x"));
        assert_eq!(directive_value("   "), Some(" "));
        assert_eq!(directive_value(""), None);
    }

    #[test]
    fn first_non_directive_ends_processing() {
        let mut p = DirectiveParser::new();
        assert!(p.parse_line("# escape=`").unwrap().is_some());
        assert!(p.parse_line("# hello").unwrap().is_none());
        assert!(p.parse_line("# syntax=x").unwrap().is_none());
    }

    #[test]
    fn duplicate_is_an_error() {
        let mut p = DirectiveParser::new();
        p.parse_line("#escape=\\").unwrap();
        let e = p.parse_line("# ESCAPE=`").unwrap_err();
        assert_eq!(
            e.to_string(),
            "only one escape parser directive can be used"
        );
    }
}
