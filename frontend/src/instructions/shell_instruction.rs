//! `SHELL ["executable", "parameters"]`: JSON form only.

use super::command_line::json_or_joined;
use super::{Error, Origin, Request};

/// `SHELL`: the shell that runs shell-form RUN/CMD/ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellInstruction {
    /// Source line.
    pub origin: Origin,
    /// The shell and its leading arguments.
    pub shell: Vec<String>,
}

pub(super) fn parse(req: &mut Request) -> Result<ShellInstruction, Error> {
    req.parse_flags()?;
    let shell = json_or_joined(&req.args, req.node.json);
    if shell.is_empty() {
        return Err(Error::AtLeastOneArgument {
            keyword: "SHELL",
            span: req.span(),
        });
    }
    if !req.node.json {
        return Err(Error::NotJson {
            keyword: "SHELL",
            span: req.span(),
        });
    }
    Ok(ShellInstruction {
        origin: req.origin(),
        shell,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_instruction;
    use super::super::test_support::{json_node, node};

    #[test]
    fn json_only() {
        assert!(parse_instruction(&json_node("SHELL", &["bash", "-c"])).is_ok());
        let err = |n| parse_instruction(&n).unwrap_err().to_string();
        assert_eq!(
            err(json_node("SHELL", &[])),
            "SHELL requires at least one argument"
        );
        assert_eq!(
            err(node("SHELL", &[], &["bash -c"])),
            "SHELL requires the arguments to be in JSON form"
        );
    }
}
