//! Keyword and stage-name casing: StageNameCasing, FromAsCasing (checked per FROM while the
//! instructions are typed) and ConsistentInstructionCasing (over the whole file).

use super::config::CheckConfig;
use super::linter::Linter;
use super::rules;
use super::stages::Program;
use crate::parser::{Node, Span};

/// StageNameCasing and FromAsCasing for one FROM.
pub(crate) fn check_from(node: &Node, config: &CheckConfig, linter: &mut Linter) {
    if let [_, as_word, name] = node.args.as_slice() {
        if *name != name.to_lowercase() {
            linter.run(
                config,
                &rules::STAGE_NAME_CASING,
                node.span,
                format!("Stage name '{name}' should be lowercase"),
            );
        }
        // A FROM keyword in mixed case is ConsistentInstructionCasing's business alone.
        let from = &node.keyword;
        let as_matches = if *from == from.to_lowercase() {
            *as_word == as_word.to_lowercase()
        } else if *from == from.to_uppercase() {
            *as_word == as_word.to_uppercase()
        } else {
            true
        };
        if !as_matches {
            linter.run(
                config,
                &rules::FROM_AS_CASING,
                node.span,
                format!("'{as_word}' and '{from}' keywords' casing do not match"),
            );
        }
    }
}

/// ConsistentInstructionCasing: every keyword inside a stage (global ARGs are not counted)
/// should be all upper or all lower case, in the case most keywords use (upper on a tie).
pub(crate) fn check_consistency(program: &Program<'_>, config: &CheckConfig, linter: &mut Linter) {
    let keywords = || {
        program
            .stages
            .iter()
            .flat_map(|s| std::iter::once(s.node).chain(s.commands.iter().copied()))
    };
    let (mut lower, mut upper) = (0usize, 0usize);
    for node in keywords() {
        let kw = &node.keyword;
        if *kw == kw.to_lowercase() {
            lower += 1;
        } else if *kw == kw.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for node in keywords() {
        check_case(&node.keyword, majority_lower, node.span, config, linter);
    }
}

fn check_case(
    keyword: &str,
    majority_lower: bool,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    let correct = if majority_lower && keyword != keyword.to_lowercase() {
        "lowercase"
    } else if !majority_lower && keyword != keyword.to_uppercase() {
        "uppercase"
    } else {
        return;
    };
    linter.run(
        config,
        &rules::CONSISTENT_INSTRUCTION_CASING,
        span,
        format!("Command '{keyword}' should match the case of the command majority ({correct})"),
    );
}
