//! InvalidDefinitionDescription (experimental): a comment right above ARG or a named FROM is
//! taken as its description and should start with the name it describes.

use super::config::CheckConfig;
use super::linter::Linter;
use super::rules;
use crate::parser::Node;

/// Checks the last comment above `node` against the names it defines.
pub(crate) fn check(
    instruction: &str,
    keys: &[String],
    node: &Node,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    let (Some(comment), Some(first_key)) = (node.comments.last(), keys.first()) else {
        return;
    };
    let described = comment.split(' ').next().unwrap_or_default();
    if keys.iter().any(|k| k == described) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key
    };
    linter.run(
        config,
        &rules::INVALID_DEFINITION_DESCRIPTION,
        node.span,
        format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
    );
}
