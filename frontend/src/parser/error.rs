//! Parse errors: what went wrong and on which lines.

use super::ast::Span;

/// A Dockerfile that could not be parsed. The message text is BuildKit's; the location is
/// kept beside it so the CLI can print `file:line` and the offending line with a caret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but comments and blank lines.
    #[error("file with no instructions")]
    NoInstructions {
        /// Last line of the file.
        line: usize,
    },
    /// A physical line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong {
        /// The offending line.
        line: usize,
    },
    /// The same parser directive twice.
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective {
        /// Directive key, lower-case.
        name: String,
        /// Line of the second occurrence.
        line: usize,
    },
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{value}' does not match ` or \\")]
    InvalidEscape {
        /// The value given.
        value: String,
        /// Line of the directive.
        line: usize,
    },
    /// Legacy `ENV key` / `LABEL key` with no value.
    #[error("{keyword} must have two arguments")]
    MissingValue {
        /// `ENV` or `LABEL`.
        keyword: &'static str,
        /// The instruction.
        span: Span,
    },
    /// A key=value instruction where one word has no `=`.
    #[error(
        "Syntax error - can't find = in {}. Must be of the form: name=value",
        super::dump::go_quote(word)
    )]
    MissingEquals {
        /// The word without `=`.
        word: String,
        /// The instruction.
        span: Span,
    },
    /// A JSON array with a non-string element.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray {
        /// The instruction.
        span: Span,
    },
    /// `ONBUILD ONBUILD …` nested beyond any use (BuildKit rejects even one level later).
    #[error("ONBUILD nesting too deep")]
    OnbuildTooDeep {
        /// The instruction.
        span: Span,
    },
    /// A heredoc whose terminator never came.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc {
        /// From the instruction to the end of the file.
        span: Span,
    },
    /// A heredoc marker that could not be lexed (an unmatched quote).
    #[error("{message}")]
    HeredocMarker {
        /// The lexer's message.
        message: String,
        /// The instruction.
        span: Span,
    },
}

impl ParseError {
    /// The lines the error concerns (first, last), 1-based.
    pub fn lines(&self) -> (usize, usize) {
        match self {
            Self::NoInstructions { line }
            | Self::LineTooLong { line }
            | Self::DuplicateDirective { line, .. }
            | Self::InvalidEscape { line, .. } => (*line, *line),
            Self::MissingValue { span, .. }
            | Self::MissingEquals { span, .. }
            | Self::NotStringArray { span }
            | Self::OnbuildTooDeep { span }
            | Self::UnterminatedHeredoc { span }
            | Self::HeredocMarker { span, .. } => (span.start_line, span.end_line),
        }
    }

    /// Sets the span of an error raised before the instruction's lines were known.
    pub(crate) fn at(mut self, at: Span) -> Self {
        match &mut self {
            Self::MissingValue { span, .. }
            | Self::MissingEquals { span, .. }
            | Self::NotStringArray { span }
            | Self::OnbuildTooDeep { span }
            | Self::UnterminatedHeredoc { span }
            | Self::HeredocMarker { span, .. } => *span = at,
            _ => {}
        }
        self
    }
}
