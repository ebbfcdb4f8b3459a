//! `ARG name[=default] …`.

use super::{doc_comment, Error, Origin, Request};

/// One declared build argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDefinition {
    /// The name.
    pub key: String,
    /// The default as written (quotes kept, unexpanded); after resolution, the value in
    /// force (build arg, expanded default or inherited meta ARG), if any.
    pub value: Option<String>,
    /// The comment above the ARG that starts with its name.
    pub doc_comment: String,
}

/// `ARG`: declares build arguments (before the first FROM: meta arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgInstruction {
    /// Source line.
    pub origin: Origin,
    /// The arguments, in order.
    pub args: Vec<ArgDefinition>,
}

pub(super) fn parse(req: &mut Request) -> Result<ArgInstruction, Error> {
    if req.args.is_empty() {
        return Err(Error::AtLeastOneArgument {
            keyword: "ARG",
            span: req.span(),
        });
    }
    // BuildKit never parses ARG's flags: `ARG --x a` declares `a`.
    let mut args = Vec::with_capacity(req.args.len());
    for word in &req.args {
        let (key, value) = match word.split_once('=') {
            Some(("", _)) => {
                return Err(Error::BlankName {
                    keyword: "ARG",
                    span: req.span(),
                })
            }
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (word.clone(), None),
        };
        let doc = doc_comment(&req.node.comments, &key);
        args.push(ArgDefinition {
            key,
            value,
            doc_comment: doc,
        });
    }
    Ok(ArgInstruction {
        origin: req.origin(),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::node;
    use super::super::{parse_instruction, Instruction};

    #[test]
    fn several_per_line() {
        let mut n = node("ARG", &[], &["bar", "baz=123", "q=\"a b\"", "e="]);
        n.comments = vec!["bar defines bar".into(), "baz is something else".into()];
        let Instruction::Arg(a) = parse_instruction(&n).unwrap() else {
            panic!("not ARG")
        };
        let got: Vec<_> = a
            .args
            .iter()
            .map(|d| (d.key.as_str(), d.value.as_deref(), d.doc_comment.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bar", None, "defines bar"),
                ("baz", Some("123"), "is something else"),
                ("q", Some("\"a b\""), ""),
                ("e", Some(""), ""),
            ]
        );
        let err = |args: &[&str]| {
            parse_instruction(&node("ARG", &[], args))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[]), "ARG requires at least one argument");
        assert_eq!(err(&["=x"]), "ARG names can not be blank");
    }
}
