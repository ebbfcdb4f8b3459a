//! `LABEL key=value …`.

use super::key_value::{parse_pairs, KeyValue};
use super::{Error, Origin, Request};

/// `LABEL`: image labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelInstruction {
    /// Source line.
    pub origin: Origin,
    /// The pairs, in order.
    pub pairs: Vec<KeyValue>,
}

pub(super) fn parse(req: &mut Request) -> Result<LabelInstruction, Error> {
    req.parse_flags()?;
    Ok(LabelInstruction {
        origin: req.origin(),
        pairs: parse_pairs(&req.args, "LABEL", req.span())?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_instruction;
    use super::super::test_support::node;

    #[test]
    fn errors() {
        let err = |args: &[&str]| {
            parse_instruction(&node("LABEL", &[], args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[]), "LABEL requires at least one argument");
        assert_eq!(
            err(&["arg1", "arg2", "arg3", ""]),
            "Bad input to LABEL, too many arguments"
        );
        assert_eq!(err(&["", "arg2", "="]), "LABEL names can not be blank");
    }
}
