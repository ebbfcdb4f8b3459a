//! `FROM [--platform=…] base [AS name]`.

use super::{doc_comment, Error, Origin, Request};

/// `FROM`: begins a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromInstruction {
    /// Source line.
    pub origin: Origin,
    /// Image reference or earlier stage name, unexpanded (may hold meta ARGs).
    pub base_name: String,
    /// `AS` name, lower-cased (stage names are case-insensitive).
    pub stage_name: Option<String>,
    /// `--platform` value, unexpanded.
    pub platform: Option<String>,
    /// The comment above the FROM that starts with the stage name (`# build compiles …`).
    pub doc_comment: String,
}

pub(super) fn parse(req: &mut Request) -> Result<FromInstruction, Error> {
    let stage_name = stage_name(&req.args, req)?;
    let platform = req.flags.add_string("platform", "");
    req.parse_flags()?;
    let base_name = req.args.first().cloned().unwrap_or_default();
    let doc = doc_comment(&req.node.comments, stage_name.as_deref().unwrap_or(""));
    Ok(FromInstruction {
        origin: req.origin(),
        base_name,
        stage_name,
        platform: req.flags.non_empty(platform),
        doc_comment: doc,
    })
}

fn stage_name(args: &[String], req: &Request) -> Result<Option<String>, Error> {
    match args {
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(Error::InvalidStageName {
                    name: name.clone(),
                    span: req.span(),
                });
            }
            Ok(Some(lower))
        }
        [_] => Ok(None),
        _ => Err(Error::FromArguments { span: req.span() }),
    }
}

/// `^[a-z][a-z0-9-_.]*$`.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::node;
    use super::super::{parse_instruction, Instruction};

    fn from(flags: &[&str], args: &[&str]) -> Result<super::FromInstruction, String> {
        match parse_instruction(&node("FROM", flags, args)) {
            Ok(Instruction::From(f)) => Ok(f),
            Ok(_) => Err("not FROM".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn forms() {
        let f = from(&["--platform=linux/arm64"], &["alpine:3", "AS", "Build"]).unwrap();
        assert_eq!(f.base_name, "alpine:3");
        assert_eq!(f.stage_name.as_deref(), Some("build"));
        assert_eq!(f.platform.as_deref(), Some("linux/arm64"));
        let f = from(&[], &["scratch"]).unwrap();
        assert_eq!(f.stage_name, None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            from(&[], &[]).unwrap_err(),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            from(&[], &["a", "b"]).unwrap_err(),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            from(&[], &["a", "to", "b"]).unwrap_err(),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            from(&[], &["a", "as", "1st"]).unwrap_err(),
            "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            from(&["--platform"], &["a"]).unwrap_err(),
            "missing a value on flag: --platform"
        );
    }
}
