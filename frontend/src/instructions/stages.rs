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

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(src: &str) -> Result<(Vec<Stage>, Vec<MetaArg>), String> {
        let file = crate::parser::parse(src.as_bytes()).map_err(|e| format!("parse: {e}"))?;
        parse_stages(&file).map_err(|e| e.to_string())
    }

    #[test]
    fn grouping_and_doc_comments() {
        // BuildKit's TestCommentsDetection.
        let src = "# foo sets foo\nARG foo=bar\n\n# base defines first stage\nFROM busybox AS base\n# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\nARG bar baz=123\n";
        let (stages, meta) = stages(src).unwrap();
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].from.doc_comment, "defines first stage");
        assert_eq!(stages[0].name(), Some("base"));
        assert_eq!(meta[0].args[0].key, "foo");
        assert_eq!(meta[0].args[0].doc_comment, "sets foo");
        let Instruction::Arg(first) = &stages[0].instructions[0] else {
            panic!("not ARG")
        };
        assert_eq!(
            (
                first.args[0].key.as_str(),
                first.args[0].doc_comment.as_str()
            ),
            ("foo", "")
        );
        let Instruction::Arg(second) = &stages[0].instructions[1] else {
            panic!("not ARG")
        };
        assert_eq!(second.args[0].doc_comment, "defines bar");
        assert_eq!(second.args[1].doc_comment, "is something else");
    }

    #[test]
    fn errors() {
        assert_eq!(
            stages("ARG a\n").unwrap_err(),
            "dockerfile contains no stages to build"
        );
        assert_eq!(
            stages("RUN x\nFROM a\n").unwrap_err(),
            "no build stage in current context"
        );
        let file = crate::parser::parse(b"FROM a\n\nRUNN x\n").unwrap();
        let e = parse_stages(&file).unwrap_err();
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            e.inner().to_string(),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(e.span().map(|s| s.start_line), Some(3));
    }
}
