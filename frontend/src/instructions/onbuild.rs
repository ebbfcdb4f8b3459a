//! `ONBUILD <instruction>`: a trigger stored in the image, run by builds that use it as a
//! base (or by later stages of the same Dockerfile that start `FROM` this stage).

use super::{parse_instruction, Error, Instruction, Node, Origin, Request};

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnbuildInstruction {
    /// Source line.
    pub origin: Origin,
    /// The trigger's text as stored in the image config (`RUN echo hi`), heredoc bodies
    /// appended after it as BuildKit writes them.
    pub expression: String,
    /// The nested instruction's node.
    pub trigger: Box<Node>,
}

impl OnbuildInstruction {
    /// Types the nested instruction. BuildKit only does this when the trigger fires, so an
    /// `ONBUILD` with a bad trigger is accepted until then.
    pub fn parse_trigger(&self) -> Result<Instruction, Error> {
        parse_instruction(&self.trigger)
    }
}

pub(super) fn parse(req: &mut Request) -> Result<OnbuildInstruction, Error> {
    let node = req.node;
    let (Some(inner), Some(first)) = (&node.onbuild, req.args.first()) else {
        return Err(Error::AtLeastOneArgument {
            keyword: "ONBUILD",
            span: req.span(),
        });
    };
    let trigger = first.trim().to_uppercase();
    req.parse_flags()?;
    match trigger.as_str() {
        "ONBUILD" => return Err(Error::OnbuildChained { span: req.span() }),
        "MAINTAINER" | "FROM" => {
            return Err(Error::OnbuildTrigger {
                trigger,
                span: req.span(),
            })
        }
        _ => {}
    }

    let mut expression = strip_onbuild_keyword(&node.original).to_string();
    let heredocs = if node.heredocs.is_empty() {
        &inner.heredocs
    } else {
        &node.heredocs
    };
    for heredoc in heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    // The parser attaches heredoc bodies to the ONBUILD line; the trigger needs them when
    // it fires (BuildKit re-parses the expression text, which carries them).
    let mut trigger = inner.clone();
    if trigger.heredocs.is_empty() {
        trigger.heredocs = node.heredocs.clone();
    }
    Ok(OnbuildInstruction {
        origin: req.origin(),
        expression,
        trigger,
    })
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild_keyword(original: &str) -> &str {
    let s = original.trim_start();
    match s.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => s[7..].trim_start(),
        _ => original,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{heredoc, node};
    use super::super::{parse_instruction, Instruction};

    fn onbuild(inner: crate::parser::Node, original: &str) -> crate::parser::Node {
        let mut n = node("ONBUILD", &[], &[]);
        n.original = original.to_string();
        n.onbuild = Some(Box::new(inner));
        n
    }

    #[test]
    fn triggers() {
        let n = onbuild(node("RUN", &[], &["echo hi"]), "onbuild  RUN echo hi");
        let Instruction::Onbuild(o) = parse_instruction(&n).unwrap() else {
            panic!("not ONBUILD")
        };
        assert_eq!(o.expression, "RUN echo hi");
        assert!(matches!(o.parse_trigger().unwrap(), Instruction::Run(_)));

        let mut inner = node("RUN", &[], &["<<EOF"]);
        inner.heredocs = vec![heredoc("EOF", "echo hi\n", true, false)];
        let n = onbuild(inner, "ONBUILD RUN <<EOF");
        let Instruction::Onbuild(o) = parse_instruction(&n).unwrap() else {
            panic!("not ONBUILD")
        };
        assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
    }

    #[test]
    fn forbidden_triggers() {
        let err = |keyword: &str| {
            parse_instruction(&onbuild(node(keyword, &[], &["x"]), "ONBUILD x"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err("FROM"), "FROM isn't allowed as an ONBUILD trigger");
        assert_eq!(
            err("maintainer"),
            "MAINTAINER isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            err("ONBUILD"),
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
        assert_eq!(
            parse_instruction(&node("ONBUILD", &[], &[]))
                .unwrap_err()
                .to_string(),
            "ONBUILD requires at least one argument"
        );
        // A bad trigger is only an error when it fires.
        let n = onbuild(node("RUNN", &[], &["x"]), "ONBUILD RUNN x");
        let Instruction::Onbuild(o) = parse_instruction(&n).unwrap() else {
            panic!("not ONBUILD")
        };
        assert!(o.parse_trigger().is_err());
    }
}
