//! The FROM line: UndefinedArgInFrom, InvalidDefaultArgInFrom, RedundantTargetPlatform and
//! FromPlatformFlagConstDisallowed, and the resolution of each stage's base (another stage,
//! or an image) with the errors BuildKit raises when a FROM cannot be resolved.

use super::config::CheckConfig;
use super::linter::Linter;
use super::platform::Platform;
use super::reference;
use super::rules;
use super::scope::GlobalScope;
use super::stages::Program;
use super::BuildError;
use crate::instructions::suggest;
use crate::parser::{go_quote, Span};
use crate::shell::{Env, Expansion, Lexer};
use std::collections::{BTreeSet, HashMap};

/// A stage's FROM after ARG expansion.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedFrom {
    /// The base name after expansion.
    pub base_name: String,
    /// The earlier stage it names, if any.
    pub base_stage: Option<usize>,
    /// `--platform`, when given.
    pub platform: Option<Platform>,
}

/// InvalidDefaultArgInFrom: with every ARG at its default, each FROM should name a valid
/// image (or stage). A FROM that fails to expand ends this check quietly; the build would
/// fail on it later with its own error.
pub(crate) fn check_default_args(
    program: &Program<'_>,
    scope: &GlobalScope,
    lexer: &Lexer,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    for stage in &program.stages {
        let Ok(expanded) = lexer.process_word(stage.base_name, &scope.args) else {
            return;
        };
        if !reference::is_valid(&expanded) {
            linter.run(
                config,
                &rules::INVALID_DEFAULT_ARG_IN_FROM,
                stage.node.span,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    stage.base_name
                ),
            );
        }
    }
}

/// Expands each FROM against the global scope, reporting undeclared ARGs and platform
/// misuse, and finds which stages are built on earlier ones.
pub(crate) fn resolve(
    program: &Program<'_>,
    scope: &GlobalScope,
    lexer: &Lexer,
    config: &CheckConfig,
    linter: &mut Linter,
) -> Result<Vec<ResolvedFrom>, BuildError> {
    let known = scope.known_names();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut resolved = Vec::with_capacity(program.stages.len());
    for (index, stage) in program.stages.iter().enumerate() {
        let config = config.with_comments(&stage.node.comments);
        let span = stage.node.span;
        let name = expand(lexer, stage.base_name, scope, span)?;
        report_undeclared(&known, &name.unmatched, span, &config, linter);
        if name.value.is_empty() {
            return Err(BuildError::at(
                format!("base name ({}) should not be blank", stage.base_name),
                span,
            ));
        }

        let mut platform = None;
        if let Some(spec) = stage.platform.filter(|p| !p.is_empty()) {
            let expanded = lexer
                .process_word_with_matches(spec, &scope.args)
                .map_err(|e| {
                    BuildError::at(
                        format!(
                            "failed to process arguments for platform : {}",
                            e.with_word(spec)
                        ),
                        span,
                    )
                })?;
            report_undeclared(&known, &expanded.unmatched, span, &config, linter);
            report_redundant_target_platform(spec, &expanded, scope, span, &config, linter);
            report_constant_platform(&stage.name, &expanded, span, &config, linter);
            if expanded.value.is_empty() {
                let message = format!("empty platform value from expression {spec}");
                let hint = suggest_any(&expanded.unmatched, scope);
                return Err(BuildError::at(format!("{message}{hint}"), span));
            }
            match Platform::parse(&expanded.value) {
                Ok(p) => platform = Some(p),
                Err(e) => {
                    let hint = suggest_any(&expanded.unmatched, scope);
                    return Err(BuildError::at(
                        format!("failed to parse platform {spec}: {e}{hint}"),
                        span,
                    ));
                }
            }
        }

        resolved.push(ResolvedFrom {
            base_stage: by_name.get(name.value.as_str()).copied(),
            base_name: name.value,
            platform,
        });
        if !stage.name.is_empty() {
            by_name.insert(stage.name.as_str(), index);
        }
    }
    Ok(resolved)
}

fn expand(
    lexer: &Lexer,
    word: &str,
    scope: &GlobalScope,
    span: Span,
) -> Result<Expansion, BuildError> {
    lexer
        .process_word_with_matches(word, &scope.args)
        .map_err(|e| BuildError::at(e.with_word(word), span))
}

/// UndefinedArgInFrom for each name the FROM looked up that no global ARG declares.
fn report_undeclared(
    known: &[&str],
    unmatched: &BTreeSet<String>,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    for name in unmatched {
        if known.contains(&name.as_str()) {
            continue;
        }
        let mut message = format!("FROM argument '{name}' is not declared");
        if let Some(s) = suggest::closest(name, known.iter().copied(), true) {
            message.push_str(&format!(" (did you mean {s}?)"));
        }
        linter.run(config, &rules::UNDEFINED_ARG_IN_FROM, span, message);
    }
}

/// RedundantTargetPlatform: `--platform=$TARGETPLATFORM` and nothing else.
fn report_redundant_target_platform(
    spec: &str,
    expanded: &Expansion,
    scope: &GlobalScope,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    let only_target = expanded.unmatched.is_empty()
        && expanded.matched.len() == 1
        && expanded.matched.contains("TARGETPLATFORM");
    if only_target && scope.args.get("TARGETPLATFORM") == Some(expanded.value.as_str()) {
        linter.run(
            config,
            &rules::REDUNDANT_TARGET_PLATFORM,
            span,
            format!(
                "Setting platform to predefined {spec} in FROM is redundant as this is the default behavior"
            ),
        );
    }
}

/// FromPlatformFlagConstDisallowed: a constant platform, unless the stage's name mentions
/// its OS or architecture (a stage meant for that platform only).
fn report_constant_platform(
    stage_name: &str,
    expanded: &Expansion,
    span: Span,
    config: &CheckConfig,
    linter: &mut Linter,
) {
    if !expanded.matched.is_empty() || !expanded.unmatched.is_empty() {
        return;
    }
    let Ok(p) = Platform::parse(&expanded.value) else {
        return;
    };
    if stage_name.contains(&p.os) || stage_name.contains(&p.architecture) {
        return;
    }
    linter.run(
        config,
        &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
        span,
        format!(
            "FROM --platform flag should not use constant value {}",
            go_quote(&expanded.value)
        ),
    );
}

/// BuildKit's `wrapSuggestAny`: the first unset name with a close match among set names.
fn suggest_any(unmatched: &BTreeSet<String>, scope: &GlobalScope) -> String {
    unmatched
        .iter()
        .find_map(|name| suggest::closest(name, scope.args.keys(), true))
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default()
}
