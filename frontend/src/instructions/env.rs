//! `ENV key=value …` / `ENV key value`.

use super::key_value::{parse_pairs, KeyValue};
use super::{Error, Origin, Request};

/// `ENV`: variables set for the rest of the stage and in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvInstruction {
    /// Source line.
    pub origin: Origin,
    /// The pairs, in order.
    pub pairs: Vec<KeyValue>,
}

pub(super) fn parse(req: &mut Request) -> Result<EnvInstruction, Error> {
    req.parse_flags()?;
    Ok(EnvInstruction {
        origin: req.origin(),
        pairs: parse_pairs(&req.args, "ENV", req.span())?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::node;
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn pairs_and_errors() {
        let n = node("ENV", &[], &["a", "1", "=", "b", "two words", ""]);
        let Instruction::Env(e) = parse_instruction(&n).unwrap() else {
            panic!()
        };
        assert_eq!(e.pairs.len(), 2);
        assert_eq!(e.pairs[1].display(), "b=two words");
        assert!(!e.pairs[0].no_delimiter && e.pairs[1].no_delimiter);
        let err = |args: &[&str]| {
            parse_instruction(&node("ENV", &[], args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[]), "ENV requires at least one argument");
        assert_eq!(
            err(&["a", "b", "c", ""]),
            "Bad input to ENV, too many arguments"
        );
        assert_eq!(err(&["", "v", "="]), "ENV names can not be blank");
        let flagged = node("ENV", &["--x=1"], &["a", "1", "="]);
        assert_eq!(
            parse_instruction(&flagged).unwrap_err().to_string(),
            "unknown flag: --x"
        );
    }
}
