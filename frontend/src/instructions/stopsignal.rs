//! `STOPSIGNAL signal`.

use super::{Error, Origin, Request};

/// `STOPSIGNAL`: the signal that stops a container of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSignalInstruction {
    /// Source line.
    pub origin: Origin,
    /// The signal as written (`SIGTERM`, `9`, `$SIG`); checked once expanded.
    pub signal: String,
}

pub(super) fn parse(req: &mut Request) -> Result<StopSignalInstruction, Error> {
    let [signal] = req.args.as_slice() else {
        return Err(Error::ExactlyOneArgument {
            keyword: "STOPSIGNAL",
            span: req.span(),
        });
    };
    // BuildKit never parses STOPSIGNAL's flags: `STOPSIGNAL --x 9` is accepted.
    Ok(StopSignalInstruction {
        origin: req.origin(),
        signal: signal.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse_instruction;
    use super::super::test_support::node;

    #[test]
    fn one_argument_and_flags_ignored() {
        assert_eq!(
            parse_instruction(&node("STOPSIGNAL", &[], &[]))
                .unwrap_err()
                .to_string(),
            "STOPSIGNAL requires exactly one argument"
        );
        assert!(parse_instruction(&node("STOPSIGNAL", &["--x"], &["9"])).is_ok());
    }
}
