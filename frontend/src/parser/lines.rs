//! The driver: physical lines → logical instruction lines → [`Node`]s.
//!
//! This is the part of parsing that depends on state carried from line to line, which a pest
//! grammar cannot hold: which directive lines came first (and so which escape token is in
//! force), whether the previous line ended in a continuation, and which heredocs are still
//! open. Each finished logical line goes to the grammar through [`super::args`].

use super::args::parse_line;
use super::ast::{Directives, Dockerfile, Node, Span, Warning};
use super::directives::DirectiveParser;
use super::error::ParseError;
use super::heredoc::heredocs_from_line;

/// BuildKit reads lines with a 64 KiB scanner buffer: a longer line is an error.
const MAX_LINE: usize = 65535;

/// How deeply `ONBUILD ONBUILD …` may nest in the AST.
const MAX_ONBUILD_DEPTH: usize = 100;

/// Parses a whole Dockerfile.
pub fn parse(src: &[u8]) -> Result<Dockerfile, ParseError> {
    check_line_lengths(src)?;
    // Dockerfiles are text; bytes that are not UTF-8 are replaced rather than rejected.
    let text = String::from_utf8_lossy(src);
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    Driver::new(text).run()
}

fn check_line_lengths(src: &[u8]) -> Result<(), ParseError> {
    for (i, line) in src.split(|&b| b == b'\n').enumerate() {
        if line.len() > MAX_LINE {
            return Err(ParseError::LineTooLong { line: i + 1 });
        }
    }
    Ok(())
}

/// Physical lines, each with its `\n` when it has one.
struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
    }
}

struct Driver<'a> {
    lines: Lines<'a>,
    directive_parser: DirectiveParser,
    directives: Directives,
    escape: char,
    current_line: usize,
}

impl<'a> Driver<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: Lines { rest: text },
            directive_parser: DirectiveParser::new(),
            directives: Directives::default(),
            escape: '\\',
            current_line: 0,
        }
    }

    fn run(mut self) -> Result<Dockerfile, ParseError> {
        let mut nodes = Vec::new();
        let mut warnings = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        let mut logical = String::new();

        while let Some(raw) = self.lines.next() {
            if is_comment(raw) {
                let comment = raw.trim_start()[1..].trim();
                if comment.is_empty() {
                    comments.clear();
                } else {
                    comments.push(comment.to_string());
                }
            }
            let (content, column, was_directive) = self.process_line(raw, true)?;
            if was_directive {
                comments.pop();
            }
            self.current_line += 1;
            let start_line = self.current_line;
            let (segment, mut complete) = trim_continuation(content, self.escape);
            if complete && segment.is_empty() {
                continue;
            }
            logical.clear();
            logical.push_str(segment);

            let mut empty_continuation = false;
            while !complete {
                let Some(raw) = self.lines.next() else { break };
                let (content, _, _) = self.process_line(raw, false)?;
                self.current_line += 1;
                if is_comment(raw) {
                    continue;
                }
                if content.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (segment, done) = trim_continuation(content, self.escape);
                logical.push_str(segment);
                complete = done;
            }

            let mut span = Span {
                start_line,
                end_line: self.current_line,
                column,
            };
            if empty_continuation {
                warnings.push(Warning {
                    short: format!("Empty continuation line found in: {logical}"),
                    detail: "Empty continuation lines will become errors in a future release"
                        .to_string(),
                    span: Span {
                        start_line: self.current_line,
                        ..span
                    },
                });
            }

            let mut node = self.node_from_line(&logical, span, 0)?;
            if can_contain_heredoc(&node) && logical.contains("<<") {
                let docs = heredocs_from_line(&logical).map_err(|e| e.at(span))?;
                for mut doc in docs {
                    let mut terminated = false;
                    for raw in self.lines.by_ref() {
                        self.current_line += 1;
                        let mut candidate = raw.trim_end_matches(['\r', '\n']);
                        if doc.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == doc.name {
                            terminated = true;
                            break;
                        }
                        doc.content.push_str(raw);
                    }
                    span.end_line = self.current_line;
                    if !terminated {
                        return Err(ParseError::UnterminatedHeredoc { span });
                    }
                    node.heredocs.push(doc);
                }
            }
            node.span = span;
            node.comments = std::mem::take(&mut comments);
            nodes.push(node);
        }

        if nodes.is_empty() {
            return Err(ParseError::NoInstructions {
                line: self.current_line,
            });
        }
        Ok(Dockerfile {
            nodes,
            directives: self.directives,
            escape: self.escape,
            warnings,
        })
    }

    /// Removes the newline (and, at the start of an instruction, leading white space), feeds
    /// the line to the directive parser and blanks it if it is a comment. Returns the text,
    /// the 1-based column where it starts, and whether it was a directive.
    fn process_line(
        &mut self,
        raw: &'a str,
        strip_left: bool,
    ) -> Result<(&'a str, usize, bool), ParseError> {
        let mut line = raw.trim_end_matches(['\r', '\n']);
        let mut column = 1;
        if strip_left {
            let trimmed = line.trim_start();
            column += line[..line.len() - trimmed.len()].chars().count();
            line = trimmed;
        }
        let directive = self.directive_parser.parse_line(line)?;
        let was_directive = directive.is_some();
        if let Some(d) = directive {
            let span = Span {
                start_line: d.line,
                end_line: d.line,
                column: 1,
            };
            match d.name.as_str() {
                "escape" => {
                    self.escape = match d.value.as_str() {
                        "\\" => '\\',
                        "`" => '`',
                        _ => {
                            return Err(ParseError::InvalidEscape {
                                value: d.value,
                                line: d.line,
                            })
                        }
                    };
                    self.directives.escape = Some((self.escape, span));
                }
                "syntax" => self.directives.syntax = Some((d.value, span)),
                _ => self.directives.check = Some((d.value, span)),
            }
        }
        let content = if is_comment(line) { "" } else { line };
        Ok((content, column, was_directive))
    }

    /// Parses a logical line; ONBUILD's argument is parsed again as a nested line.
    /// BuildKit accepts any depth here and rejects `ONBUILD ONBUILD` only when typing the
    /// instruction; we bound the depth so that no input can exhaust the stack.
    fn node_from_line(&self, line: &str, span: Span, depth: usize) -> Result<Node, ParseError> {
        if depth > MAX_ONBUILD_DEPTH {
            return Err(ParseError::OnbuildTooDeep { span });
        }
        let parsed = parse_line(line, self.escape).map_err(|e| e.at(span))?;
        let onbuild = match &parsed.onbuild {
            Some(inner) => Some(Box::new(self.node_from_line(inner, span, depth + 1)?)),
            None => None,
        };
        Ok(Node {
            keyword: parsed.keyword,
            flags: parsed.flags,
            args: parsed.args,
            onbuild,
            json: parsed.json,
            heredocs: Vec::new(),
            original: line.to_string(),
            comments: Vec::new(),
            span,
        })
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// BuildKit's continuation test, `([^E])E[ \t]*$|^E[ \t]*$`: the line continues when its last
/// non-blank character is a single escape token. Returns the text without the marker and
/// whether the line is complete.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// RUN, COPY and ADD (directly or under ONBUILD) in shell form may open heredocs.
fn can_contain_heredoc(node: &Node) -> bool {
    let node = match &node.onbuild {
        Some(inner) if node.keyword.eq_ignore_ascii_case("onbuild") => inner,
        _ => node,
    };
    let kw = node.keyword.to_ascii_lowercase();
    matches!(kw.as_str(), "run" | "copy" | "add") && !node.json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("\\  ", '\\'), ("", false));
        assert_eq!(trim_continuation("a `\t", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }

    #[test]
    fn deep_onbuild_chain() {
        let line = format!("{}RUN x", "ONBUILD ".repeat(MAX_ONBUILD_DEPTH));
        let file = parse(line.as_bytes()).unwrap();
        let text = super::super::dump::dump(&file);
        assert!(text.starts_with("(onbuild (onbuild (onbuild"));
        assert!(text.contains("(run \"x\"))"), "{text}");
        let line = format!("{}RUN x", "ONBUILD ".repeat(8000));
        let err = parse(line.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "ONBUILD nesting too deep");
    }
}
