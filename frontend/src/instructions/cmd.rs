//! `CMD ["exec", "form"]` / `CMD shell form`.

use super::command_line::{self, CommandLine};
use super::{Error, Origin, Request};

/// `CMD`: the image's default command. `CMD []` gives an empty (not absent) command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdInstruction {
    /// Source line.
    pub origin: Origin,
    /// The command.
    pub command: CommandLine,
}

pub(super) fn parse(req: &mut Request) -> Result<CmdInstruction, Error> {
    req.parse_flags()?;
    Ok(CmdInstruction {
        origin: req.origin(),
        command: command_line::parse(req),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{json_node, node};
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn forms() {
        let Instruction::Cmd(c) = parse_instruction(&json_node("CMD", &["a", "b"])).unwrap() else {
            panic!("not CMD")
        };
        assert_eq!(
            (c.command.args.clone(), c.command.prepend_shell),
            (vec!["a".into(), "b".into()], false)
        );
        let Instruction::Cmd(c) = parse_instruction(&node("CMD", &[], &["echo hi"])).unwrap()
        else {
            panic!("not CMD")
        };
        assert_eq!(
            (c.command.args.clone(), c.command.prepend_shell),
            (vec!["echo hi".into()], true)
        );
        assert!(parse_instruction(&json_node("CMD", &[])).is_ok());
        assert_eq!(
            parse_instruction(&node("CMD", &["--doit"], &["a"]))
                .unwrap_err()
                .to_string(),
            "unknown flag: --doit"
        );
    }
}
