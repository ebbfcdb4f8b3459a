//! Why lowering fails. Messages are BuildKit's; the Dockerfile line is kept as a field.

use crate::instructions::Error as InstructionError;
use crate::parser::go_quote;
use strata_solver::GraphError;

/// A lowering failure.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// `RUN --security=insecure` without the `security.insecure` entitlement.
    #[error("security.insecure is not allowed")]
    InsecureNotAllowed {
        /// Line of the RUN.
        line: usize,
    },
    /// `RUN --network=host` (or a host default network) without `network.host`.
    #[error("network.host is not allowed")]
    NetworkHostNotAllowed {
        /// Line of the RUN.
        line: usize,
    },
    /// A heredoc RUN whose command is not a single shell-form word.
    #[error("parsing produced an invalid run command: {args}")]
    InvalidRunCommand {
        /// The command words, as Go's `%v` prints them.
        args: String,
        /// Line of the RUN.
        line: usize,
    },
    /// `RUN []`: an exec with no arguments.
    #[error("arguments are required")]
    NoArguments {
        /// Line of the RUN.
        line: usize,
    },
    /// A rule of the instruction layer that lowering re-checks (chmod, ports, digests).
    #[error("{error}")]
    Instruction {
        /// The instruction layer's error.
        error: Box<InstructionError>,
        /// Line of the instruction.
        line: usize,
    },
    /// An `ADD --checksum` value that is not a digest.
    #[error("{message}")]
    Checksum {
        /// The parser's message.
        message: String,
        /// Line of the ADD.
        line: usize,
    },
    /// `COPY --from` a stage not lowered yet.
    #[error(
        "cannot copy from stage {}, it needs to be defined before current stage {}",
        go_quote(from),
        go_quote(current)
    )]
    CopyFromLaterStage {
        /// `--from` value.
        from: String,
        /// Current stage name.
        current: String,
        /// Line of the COPY.
        line: usize,
    },
    /// `RUN --mount=from=` a stage not lowered yet.
    #[error(
        "cannot mount from stage {} to {}, stage needs to be defined before current command",
        go_quote(from),
        go_quote(target)
    )]
    MountFromLaterStage {
        /// `from=` value.
        from: String,
        /// Mount target.
        target: String,
        /// Line of the RUN.
        line: usize,
    },
    /// The resolution given was not produced by [`crate::instructions::resolve`] (a mount
    /// not parsed, a stage index out of range, the target not dispatched).
    #[error("invalid resolution: {what}")]
    Unresolved {
        /// What was missing.
        what: String,
        /// Line concerned (0 when none).
        line: usize,
    },
    /// The graph refused a vertex (cannot happen with inputs from the same graph).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl LowerError {
    /// The Dockerfile line the error concerns (0 when none).
    pub fn line(&self) -> usize {
        match self {
            LowerError::InsecureNotAllowed { line }
            | LowerError::NetworkHostNotAllowed { line }
            | LowerError::InvalidRunCommand { line, .. }
            | LowerError::NoArguments { line }
            | LowerError::Instruction { line, .. }
            | LowerError::Checksum { line, .. }
            | LowerError::CopyFromLaterStage { line, .. }
            | LowerError::MountFromLaterStage { line, .. }
            | LowerError::Unresolved { line, .. } => *line,
            LowerError::Graph(_) => 0,
        }
    }
}
