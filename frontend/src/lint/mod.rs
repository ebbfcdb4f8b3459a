//! Build checks: BuildKit's lint rules that need only the Dockerfile (`docker build --check`).
//!
//! Role: [`check`] runs the rules over a parsed [`Dockerfile`] and returns a [`Report`]: the
//! [`Warning`]s (rule, description, URL, message, lines), whether `# check=error=true` makes
//! them fatal, and the [`BuildError`] a build would stop at, if any. [`CheckOptions`] carries
//! the file's `# check=` settings ([`CheckConfig`], parsed as BuildKit does, errors included),
//! the platform, and what is known of base images. [`rules::ALL`] is the rule registry.
//!
//! Key decision: the check follows the order and the scoping of BuildKit's converter rather
//! than linting instructions one by one, because that is where the rules get their meaning:
//! parser warnings, then the checks made while typing instructions, then stage names and
//! casing, then FROM lines against the global ARGs, then every stage walked with the
//! variables in scope (global ARGs re-declared in the stage, ARG and ENV in order, the base
//! stage's state, built-in platform args). An error that would stop a build stops the check
//! there, keeping the warnings found before it. The one thing a check without a registry
//! cannot know is a base image's environment: an image is taken to set only `PATH` (which
//! BuildKit guarantees, and which is all that most base images set), unless
//! [`CheckOptions::image_env`] says more. Built-in proxy args (`HTTP_PROXY`, …) are ordinary
//! undeclared names here, as in BuildKit, because the instructions that expand words never
//! see them without an ARG.

mod base_image;
mod casing;
mod config;
mod definition_description;
mod dispatch;
mod expose;
mod flags;
mod linter;
mod mounts;
mod platform;
mod reference;
pub mod rules;
mod scope;
mod secrets;
mod stage_graph;
mod stage_names;
mod stages;

pub use config::{CheckConfig, CheckConfigError, CheckOptions, ConfigError};
pub use platform::Platform;
pub use rules::Rule;

use crate::parser::{Dockerfile, Span};
use crate::shell::Lexer;
use linter::Linter;

/// One rule violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Rule name, e.g. `UndefinedVar`.
    pub rule: &'static str,
    /// The rule's one-line description.
    pub description: &'static str,
    /// The rule's documentation page.
    pub url: &'static str,
    /// What is wrong here, e.g. `Usage of undefined variable '$foo'`.
    pub message: String,
    /// The instruction concerned (for MultipleInstructionsDisallowed, the earlier one).
    pub span: Span,
}

/// An error that would stop a build of this Dockerfile, with BuildKit's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// The message.
    pub message: String,
    /// The instruction it concerns, when it concerns one.
    pub span: Option<Span>,
}

impl BuildError {
    pub(crate) fn new(message: String) -> Self {
        Self {
            message,
            span: None,
        }
    }

    pub(crate) fn at(message: String, span: Span) -> Self {
        Self {
            message,
            span: Some(span),
        }
    }

    /// Sets the location if the error has none (errors while dispatching an instruction
    /// are reported at it).
    pub(crate) fn or_at(mut self, span: Span) -> Self {
        self.span.get_or_insert(span);
        self
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Warnings ordered by line (for one line, in the order the rules ran).
    pub warnings: Vec<Warning>,
    /// Names of the rules that reported, in order of their first warning.
    pub rules_hit: Vec<&'static str>,
    /// `error=true` is set and a rule reported: the check fails.
    pub error_rules_hit: bool,
    /// Where a build would have stopped; the check stopped there too.
    pub error: Option<BuildError>,
}

impl Report {
    /// BuildKit's error for a failing check, `lint violation found for rules: A, B`, when
    /// [`Report::error_rules_hit`].
    pub fn violation(&self) -> Option<String> {
        self.error_rules_hit.then(|| {
            format!(
                "lint violation found for rules: {}",
                self.rules_hit.join(", ")
            )
        })
    }
}

/// Runs the build checks over `file`.
pub fn check(file: &Dockerfile, options: &CheckOptions) -> Report {
    let mut linter = Linter::default();
    let error = run(file, options, &mut linter).err();
    let mut warnings = linter.warnings;
    warnings.sort_by_key(|w| w.span.start_line);
    Report {
        warnings,
        error_rules_hit: options.config.error && !linter.rules_hit.is_empty(),
        rules_hit: linter.rules_hit,
        error,
    }
}

fn run(file: &Dockerfile, options: &CheckOptions, linter: &mut Linter) -> Result<(), BuildError> {
    let config = &options.config;
    for warning in &file.warnings {
        if warning.short.starts_with("Empty continuation line") {
            linter.run(
                config,
                &rules::NO_EMPTY_CONTINUATION,
                warning.span,
                "Empty continuation line".to_string(),
            );
        }
    }

    let program = stages::split(file, config, linter)?;
    if program.stages.is_empty() {
        return Err(BuildError::new(
            "dockerfile contains no stages to build".to_string(),
        ));
    }
    stage_names::check(&program, config, linter);
    casing::check_consistency(&program, config, linter);

    let lexer = Lexer::new(file.escape);
    let global = scope::GlobalScope::new(&program, &lexer, &options.platform)?;
    base_image::check_default_args(&program, &global, &lexer, config, linter);
    let resolved = base_image::resolve(&program, &global, &lexer, config, linter)?;

    let index = stage_graph::StageIndex::new(&program);
    let bases: Vec<Option<usize>> = resolved.iter().map(|r| r.base_stage).collect();
    let reachable = stage_graph::reachable(&program, &index, &bases, &lexer)?;

    dispatch::Dispatcher {
        lexer,
        config,
        options,
        global: &global,
        linter,
    }
    .run(&program, &resolved, &index, &reachable)
}
