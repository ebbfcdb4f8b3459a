//! Dockerfile parsing: bytes → [`Dockerfile`] (an AST identical to BuildKit's).
//!
//! The grammar is `grammar/dockerfile.pest`; [`lines`] drives it over physical lines (the
//! stateful part: directives, continuations, heredoc bodies), [`args`] applies the rule each
//! instruction's arguments use, [`dump`] prints BuildKit's test dump format.

mod args;
mod ast;
mod directives;
mod dump;
mod error;
mod grammar;
mod heredoc;
mod lines;

pub use ast::{Directives, Dockerfile, Heredoc, Node, Span, Warning};
pub use directives::{
    detect_syntax, parse_all as parse_directives, parse_directive, Directive, DirectiveParser,
};
pub use dump::{dump, go_quote};
pub use error::ParseError;
pub use heredoc::{chomp_heredoc_content, parse_heredoc};
pub use lines::parse;
