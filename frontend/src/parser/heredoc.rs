//! Heredoc markers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) found on RUN, COPY and ADD lines.
//!
//! A line is split into shell words with quotes and escapes kept raw; each word the grammar's
//! `heredoc_marker` rule accepts, and whose name lexes to exactly one word, opens a heredoc.
//! Quoting any part of the name turns expansion of the body off.

use super::ast::Heredoc;
use super::error::ParseError;
use super::grammar::{DockerfileGrammar, Rule};
use crate::shell::{EnvList, Lexer};
use pest::Parser;

/// The heredocs a logical line opens, in order, bodies still empty.
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseError> {
    let lexer = Lexer::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset_env(true);
    // A line that does not lex (an unmatched quote) opens no heredoc, as in BuildKit.
    let words = lexer
        .process_words(line, &EnvList::new())
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Parses one word as a heredoc marker: `Ok(None)` when it is not one, an error when its name
/// does not lex (an unmatched quote, as in `<<'EOF`).
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseError> {
    let Ok(mut pairs) = DockerfileGrammar::parse(Rule::heredoc_marker, word) else {
        return Ok(None);
    };
    let (mut fd, mut chomp, mut rest) = ("", false, "");
    for part in pairs.next().into_iter().flat_map(|p| p.into_inner()) {
        match part.as_rule() {
            Rule::heredoc_fd => fd = part.as_str(),
            Rule::heredoc_chomp => chomp = true,
            Rule::heredoc_rest => rest = part.as_str(),
            _ => {}
        }
    }
    if rest.is_empty() {
        return Ok(None);
    }
    let lexer = Lexer::new('\\').skip_unset_env(true);
    let marker_error = |e: crate::shell::ShellError| ParseError::HeredocMarker {
        message: e.with_word(rest),
        span: Default::default(),
    };
    let words = lexer
        .process_words(rest, &EnvList::new())
        .map_err(marker_error)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = lexer
        .raw_quotes(true)
        .process_words(rest, &EnvList::new())
        .map_err(marker_error)?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = raw.first().is_some_and(|r| quotes(r) == quotes(name));
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand,
        chomp,
        // Go ignores the parse error of an out-of-range number; saturate instead.
        file_descriptor: if fd.is_empty() {
            0
        } else {
            fd.parse().unwrap_or(u32::MAX)
        },
    }))
}

/// Strips the leading tabs of every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        let doc = parse_heredoc("3<<-'EOF'").unwrap().unwrap();
        assert_eq!(
            (
                doc.name.as_str(),
                doc.expand,
                doc.chomp,
                doc.file_descriptor
            ),
            ("EOF", false, true, 3)
        );
        assert!(parse_heredoc("<<EOF sh").unwrap().is_none());
        assert!(parse_heredoc("<<'EOF").is_err());
        assert_eq!(
            chomp_heredoc_content("\thello\n\t\tworld\n"),
            "hello\nworld\n"
        );
    }
}
