//! Grouping instructions into stages: a stage starts at each FROM; ARGs before the first
//! FROM are the meta arguments (visible to FROM lines only).

use super::{
    parse_instruction, ArgInstruction, Dockerfile, Error, FromInstruction, Instruction, Span,
};

/// An ARG before the first FROM.
pub type MetaArg = ArgInstruction;

/// A build stage: its FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The FROM that starts it.
    pub from: FromInstruction,
    /// The other instructions, in order.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// `AS` name, lower case.
    pub fn name(&self) -> Option<&str> {
        self.from.stage_name.as_deref()
    }

    /// Base image or stage, unexpanded.
    pub fn base_name(&self) -> &str {
        &self.from.base_name
    }

    /// Where the FROM is.
    pub fn span(&self) -> Span {
        self.from.origin.span
    }
}

/// Types every instruction of `file` and groups them into stages (BuildKit's
/// `instructions.Parse`).
///
/// An instruction error comes back as BuildKit prints it for a file:
/// `dockerfile parse error on line N: <message>` ([`Error::AtLine`]).
pub fn parse_stages(file: &Dockerfile) -> Result<(Vec<Stage>, Vec<MetaArg>), Error> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    for node in &file.nodes {
        let instruction = parse_instruction(node).map_err(|error| Error::AtLine {
            line: node.span.start_line,
            error: Box::new(error),
        })?;
        match instruction {
            Instruction::Arg(arg) if stages.is_empty() => meta_args.push(arg),
            Instruction::From(from) => stages.push(Stage {
                from,
                instructions: Vec::new(),
            }),
            other => match stages.last_mut() {
                Some(stage) => stage.instructions.push(other),
                None => return Err(Error::NoBuildStage { span: node.span }),
            },
        }
    }
    if stages.is_empty() {
        return Err(Error::NoStages);
    }
    Ok((stages, meta_args))
}
