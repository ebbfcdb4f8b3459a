//! `EXPOSE port[/proto] …`. The words are kept raw (they may hold variables); they are
//! turned into `port/proto` keys by [`super::parse_ports`] once expanded.

use super::go_format::go_string_slice;
use super::{Error, Origin, Request};

/// `EXPOSE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposeInstruction {
    /// Source line.
    pub origin: Origin,
    /// The port words, sorted as BuildKit sorts them at parse time (byte order, before
    /// expansion). After resolution: the expanded, word-split specs.
    pub ports: Vec<String>,
}

pub(super) fn parse(req: &mut Request) -> Result<ExposeInstruction, Error> {
    if req.args.is_empty() {
        return Err(Error::AtLeastOneArgument {
            keyword: "EXPOSE",
            span: req.span(),
        });
    }
    req.parse_flags()?;
    let mut ports = req.args.clone();
    ports.sort();
    Ok(ExposeInstruction {
        origin: req.origin(),
        ports,
    })
}

/// The image history `created_by` text BuildKit records for an EXPOSE, given the parsed
/// `port/proto` list in order: `EXPOSE [1234/udp 2375/tcp]`.
pub fn expose_created_by(ports: &[String]) -> String {
    format!("EXPOSE {}", go_string_slice(ports))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::node;
    use super::super::{parse_instruction, Instruction};
    use super::*;

    #[test]
    fn sorted_raw_words() {
        let Instruction::Expose(e) =
            parse_instruction(&node("EXPOSE", &[], &["5000", "2375", "1234/udp"])).unwrap()
        else {
            panic!("not EXPOSE")
        };
        assert_eq!(e.ports, vec!["1234/udp", "2375", "5000"]);
        assert_eq!(
            expose_created_by(&["80/tcp".to_string()]),
            "EXPOSE [80/tcp]"
        );
        assert_eq!(
            parse_instruction(&node("EXPOSE", &[], &[]))
                .unwrap_err()
                .to_string(),
            "EXPOSE requires at least one argument"
        );
    }
}
