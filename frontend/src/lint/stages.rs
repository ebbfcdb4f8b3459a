//! The file's shape as BuildKit's `instructions.Parse` sees it: global ARGs before the first
//! FROM, then stages with their instructions. The checks that BuildKit runs while typing each
//! instruction (MAINTAINER, FROM casing, description comments) run here, in file order, and
//! the structural errors that stop a build stop the check too.

use super::casing;
use super::config::CheckConfig;
use super::definition_description;
use super::flags;
use super::linter::Linter;
use super::rules;
use super::BuildError;
use crate::instructions::suggest;
use crate::parser::{Dockerfile, Node};

/// The instructions BuildKit knows.
const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// One `FROM` and the instructions under it.
#[derive(Debug)]
pub(crate) struct Stage<'a> {
    /// The FROM instruction.
    pub node: &'a Node,
    /// `AS` name, lower-cased; empty when unnamed.
    pub name: String,
    /// The image or stage, before ARG expansion.
    pub base_name: &'a str,
    /// `--platform` value, before ARG expansion.
    pub platform: Option<&'a str>,
    /// Instructions after FROM, in order.
    pub commands: Vec<&'a Node>,
}

/// A Dockerfile split into global ARGs and stages.
#[derive(Debug)]
pub(crate) struct Program<'a> {
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<&'a Node>,
    /// The stages, in order.
    pub stages: Vec<Stage<'a>>,
}

/// Splits `file` into stages, running the instruction-level checks on the way.
pub(crate) fn split<'a>(
    file: &'a Dockerfile,
    config: &CheckConfig,
    linter: &mut Linter,
) -> Result<Program<'a>, BuildError> {
    let mut program = Program {
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in &file.nodes {
        let config = config.with_comments(&node.comments);
        let command = node.command();
        let mut from_name = String::new();
        match command.as_str() {
            "maintainer" => linter.run(
                &config,
                &rules::MAINTAINER_DEPRECATED,
                node.span,
                "Maintainer instruction is deprecated in favor of using label".to_string(),
            ),
            "from" => {
                casing::check_from(node, &config, linter);
                from_name = stage_name(node)?;
                if !from_name.is_empty() {
                    let keys = [from_name.clone()];
                    definition_description::check("FROM", &keys, node, &config, linter);
                }
            }
            "arg" => {
                let keys: Vec<String> = arg_pairs(node).into_iter().map(|(k, _)| k).collect();
                definition_description::check("ARG", &keys, node, &config, linter);
            }
            known if INSTRUCTIONS.contains(&known) => {}
            _ => {
                let options = INSTRUCTIONS.iter().map(|i| i.to_ascii_uppercase());
                let options: Vec<String> = options.collect();
                let hint =
                    suggest::closest(&node.keyword, options.iter().map(String::as_str), false)
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                return Err(parse_error(
                    node,
                    &format!("unknown instruction: {}{hint}", node.keyword),
                ));
            }
        }

        if command == "from" {
            program.stages.push(Stage {
                node,
                name: from_name,
                base_name: node.args.first().map_or("", String::as_str),
                platform: flags::value(node, "platform"),
                commands: Vec::new(),
            });
        } else if let Some(stage) = program.stages.last_mut() {
            stage.commands.push(node);
        } else if command == "arg" {
            program.meta_args.push(node);
        } else {
            return Err(BuildError::at(
                "no build stage in current context".to_string(),
                node.span,
            ));
        }
    }
    Ok(program)
}

/// BuildKit's `parseBuildStageName`: `FROM image` or `FROM image AS name`.
fn stage_name(node: &Node) -> Result<String, BuildError> {
    match node.args.as_slice() {
        [_] => Ok(String::new()),
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if is_valid_stage_name(&lower) {
                Ok(lower)
            } else {
                Err(parse_error(
                    node,
                    &format!(
                        "invalid name for build stage: {}, name can't start with a number or contain symbols",
                        crate::parser::go_quote(name)
                    ),
                ))
            }
        }
        _ => Err(parse_error(
            node,
            "FROM requires either one or three arguments",
        )),
    }
}

/// `^[a-z][a-z0-9-_.]*$`.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// An instruction that BuildKit's typed layer rejects, in its message format.
fn parse_error(node: &Node, message: &str) -> BuildError {
    BuildError::at(
        format!(
            "dockerfile parse error on line {}: {message}",
            node.span.start_line
        ),
        node.span,
    )
}

/// An ARG's `name[=value]` words as (name, value): a word without `=` declares the name only.
pub(crate) fn arg_pairs(node: &Node) -> Vec<(String, Option<String>)> {
    node.args
        .iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (word.clone(), None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn split_src(src: &str) -> Result<usize, String> {
        let file = parse(src.as_bytes()).unwrap();
        let mut linter = Linter::default();
        split(&file, &CheckConfig::default(), &mut linter)
            .map(|p| p.stages.len())
            .map_err(|e| e.message)
    }

    #[test]
    fn stages_and_meta_args() {
        let file = parse(b"ARG a=1\nARG b\nFROM x AS One\nRUN y\nFROM --platform=p one\n").unwrap();
        let mut linter = Linter::default();
        let p = split(&file, &CheckConfig::default(), &mut linter).unwrap();
        assert_eq!(p.meta_args.len(), 2);
        assert_eq!(p.stages[0].name, "one");
        assert_eq!(p.stages[0].commands.len(), 1);
        assert_eq!(p.stages[1].platform, Some("p"));
        assert_eq!(p.stages[1].base_name, "one");
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            split_src("FROM a\nBADCMD\n").unwrap_err(),
            "dockerfile parse error on line 2: unknown instruction: BADCMD"
        );
        assert_eq!(
            split_src("FROM a\nRUNN x\n").unwrap_err(),
            "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            split_src("RUN x\nFROM a\n").unwrap_err(),
            "no build stage in current context"
        );
        assert_eq!(
            split_src("FROM a b\n").unwrap_err(),
            "dockerfile parse error on line 1: FROM requires either one or three arguments"
        );
        assert!(split_src("FROM a AS 1x\n")
            .unwrap_err()
            .contains(r#"invalid name for build stage: "1x""#));
        assert_eq!(split_src("ARG a\n"), Ok(0));
    }
}
