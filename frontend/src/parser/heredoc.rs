//! Heredoc markers (`<<EOF`, `<<-'EOF'`, `3<<EOF`) found on RUN, COPY and ADD lines.

use super::ast::Heredoc;
use super::error::ParseError;

/// The heredocs a logical line opens, in order, bodies still empty.
pub(crate) fn heredocs_from_line(_line: &str) -> Result<Vec<Heredoc>, ParseError> {
    Ok(Vec::new())
}
