//! The command of RUN, CMD and ENTRYPOINT: exec form (`["a", "b"]`) or shell form (one
//! string run through the stage's SHELL), with any heredoc bodies attached.

use super::Request;

/// A heredoc body attached to a RUN (BuildKit's `ShellInlineFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The heredoc name.
    pub name: String,
    /// The body as read (leading tabs *not* removed; see `chomp`).
    pub data: String,
    /// `<<-`: leading tabs are to be removed when the body is used.
    pub chomp: bool,
}

/// A command line as BuildKit's `ShellDependantCmdLine`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the words. Shell form: one element, the whole command text. Empty when
    /// nothing was given (`CMD []`).
    pub args: Vec<String>,
    /// Heredoc bodies, in order.
    pub files: Vec<InlineFile>,
    /// Shell form: the stage's SHELL (default `/bin/sh -c`) is prepended when run.
    pub prepend_shell: bool,
}

/// BuildKit's `handleJSONArgs`: exec form keeps the words, shell form joins them.
pub(super) fn json_or_joined(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() {
        Vec::new()
    } else if json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    }
}

pub(super) fn parse(req: &Request) -> CommandLine {
    CommandLine {
        args: json_or_joined(&req.args, req.node.json),
        files: req
            .node
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
            })
            .collect(),
        prepend_shell: !req.node.json,
    }
}
