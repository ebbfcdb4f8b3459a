//! `ENTRYPOINT ["exec", "form"]` / `ENTRYPOINT shell form`.

use super::command_line::{self, CommandLine};
use super::{Error, Origin, Request};

/// `ENTRYPOINT`: the image's entrypoint. Unlike CMD, `ENTRYPOINT []` means "no entrypoint"
/// (BuildKit stores nil, so the image config gets `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrypointInstruction {
    /// Source line.
    pub origin: Origin,
    /// The command.
    pub command: CommandLine,
}

pub(super) fn parse(req: &mut Request) -> Result<EntrypointInstruction, Error> {
    req.parse_flags()?;
    Ok(EntrypointInstruction {
        origin: req.origin(),
        command: command_line::parse(req),
    })
}
