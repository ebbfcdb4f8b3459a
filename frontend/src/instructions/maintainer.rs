//! `MAINTAINER name` (deprecated; sets the image author).

use super::{Error, Origin, Request};

/// `MAINTAINER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintainerInstruction {
    /// Source line.
    pub origin: Origin,
    /// The author text.
    pub maintainer: String,
}

pub(super) fn parse(req: &mut Request) -> Result<MaintainerInstruction, Error> {
    // BuildKit checks the argument count before the flags.
    let [maintainer] = req.args.as_slice() else {
        return Err(Error::ExactlyOneArgument {
            keyword: "MAINTAINER",
            span: req.span(),
        });
    };
    let maintainer = maintainer.clone();
    req.parse_flags()?;
    Ok(MaintainerInstruction {
        origin: req.origin(),
        maintainer,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_instruction;
    use super::super::test_support::node;

    #[test]
    fn errors() {
        let err = |flags: &[&str], args: &[&str]| {
            parse_instruction(&node("MAINTAINER", flags, args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[], &[]), "MAINTAINER requires exactly one argument");
        assert_eq!(err(&["--boo"], &["joe@example.com"]), "unknown flag: --boo");
    }
}
