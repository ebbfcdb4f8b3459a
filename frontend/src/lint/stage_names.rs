//! DuplicateStageName and ReservedStageName.

use super::config::CheckConfig;
use super::linter::Linter;
use super::rules;
use super::stages::Program;
use crate::parser::go_quote;

/// Names BuildKit gives a meaning of its own.
const RESERVED: [&str; 2] = ["context", "scratch"];

/// Checks every named stage against the reserved names and the names before it.
pub(crate) fn check(program: &Program<'_>, config: &CheckConfig, linter: &mut Linter) {
    let mut seen: Vec<&str> = Vec::new();
    for stage in &program.stages {
        let name = stage.name.as_str();
        if name.is_empty() {
            continue;
        }
        if RESERVED.contains(&name) {
            linter.run(
                config,
                &rules::RESERVED_STAGE_NAME,
                stage.node.span,
                format!(
                    "Stage name should not use the same name as reserved stage {}",
                    go_quote(name)
                ),
            );
        }
        if seen.contains(&name) {
            linter.run(
                config,
                &rules::DUPLICATE_STAGE_NAME,
                stage.node.span,
                format!(
                    "Duplicate stage name {}, stage names should be unique",
                    go_quote(name)
                ),
            );
        }
        seen.push(name);
    }
}
