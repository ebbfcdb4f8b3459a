//! The per-stage walk: every instruction of every stage, in file order, with the variables in
//! scope at that point, as BuildKit's dispatcher sees them in a check (all stages, not only
//! those the target needs).
//!
//! A stage starts from its base: another stage's final state (environment, declared ARGs,
//! SHELL, whether a WORKDIR was set), or an image, whose environment is `PATH` plus whatever
//! [`CheckOptions::image_env`] knows. Words are expanded exactly where BuildKit expands them
//! (ENV, LABEL, ADD, COPY, WORKDIR, USER, VOLUME, STOPSIGNAL, RUN mounts, ARG defaults,
//! COPY/ADD heredocs whose marker is not quoted); a name looked up there that is neither set
//! nor a declared ARG is UndefinedVar. The other instruction rules run as each instruction
//! takes effect.

use super::base_image::ResolvedFrom;
use super::config::{CheckConfig, CheckOptions};
use super::expose;
use super::flags;
use super::linter::Linter;
use super::mounts;
use super::rules;
use super::scope::{GlobalScope, NON_ENV_ARGS};
use super::secrets;
use super::stage_graph::StageIndex;
use super::stages::{arg_pairs, Program};
use super::BuildError;
use crate::instructions::suggest;
use crate::parser::{go_quote, parse_heredoc, Node, Span};
use crate::shell::{Env, EnvList, Lexer};
use std::collections::BTreeSet;

/// `PATH` that BuildKit gives every non-Windows stage whose image does not set one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base name of an empty image.
const SCRATCH: &str = "scratch";

/// What a stage carries from instruction to instruction, and hands to stages built on it.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// The environment: image ENV, ENV, and ARGs that have a value.
    env: EnvList,
    /// Every ARG declared so far (set or not).
    build_args: Vec<String>,
    /// A SHELL instruction has run.
    shell_set: bool,
    /// A WORKDIR instruction has run.
    workdir_set: bool,
    /// The stage's OS (for what an absolute WORKDIR is).
    os: String,
    /// ONBUILD triggers declared in the stage.
    onbuild: Vec<Node>,
}

/// The last CMD, ENTRYPOINT and HEALTHCHECK of a stage, for MultipleInstructionsDisallowed.
#[derive(Debug, Default)]
struct SingleUse {
    cmd: Option<Span>,
    entrypoint: Option<Span>,
    healthcheck: Option<Span>,
}

/// The stage being dispatched.
struct StageContext<'s> {
    index: usize,
    name: String,
    state: StageState,
    single_use: SingleUse,
    sources: &'s StageIndex<'s>,
}

/// Walks the stages.
pub(crate) struct Dispatcher<'a> {
    pub(crate) lexer: Lexer,
    pub(crate) config: &'a CheckConfig,
    pub(crate) options: &'a CheckOptions,
    pub(crate) global: &'a GlobalScope,
    pub(crate) linter: &'a mut Linter,
}

impl Dispatcher<'_> {
    /// Dispatches every stage in order; stops at the first error, as a build would.
    pub(crate) fn run(
        &mut self,
        program: &Program<'_>,
        resolved: &[ResolvedFrom],
        sources: &StageIndex<'_>,
        reachable: &[bool],
    ) -> Result<(), BuildError> {
        let mut done: Vec<StageState> = Vec::with_capacity(program.stages.len());
        for ((index, stage), from) in program.stages.iter().enumerate().zip(resolved) {
            let base = from.base_stage.and_then(|b| done.get(b));
            let mut triggers = Vec::new();
            let state = match base {
                Some(base) => {
                    if reachable.get(index).copied().unwrap_or(false) {
                        // ONBUILD triggers of the base stage run first, reported at this FROM.
                        triggers = base.onbuild.clone();
                        for t in &mut triggers {
                            t.span = stage.node.span;
                            t.comments.clear();
                        }
                    }
                    StageState {
                        onbuild: Vec::new(),
                        ..base.clone()
                    }
                }
                None => self.image_state(from),
            };
            let mut ctx = StageContext {
                index,
                name: match stage.name.as_str() {
                    "" => format!("stage-{index}"),
                    n => n.to_string(),
                },
                state,
                single_use: SingleUse::default(),
                sources,
            };
            for node in triggers.iter().chain(stage.commands.iter().copied()) {
                self.dispatch(node, &mut ctx)
                    .map_err(|e| e.or_at(node.span))?;
            }
            done.push(ctx.state);
        }
        Ok(())
    }

    /// The starting state of a stage built on an image (or `scratch`).
    fn image_state(&self, from: &ResolvedFrom) -> StageState {
        let mut env = EnvList::new();
        if from.base_name != SCRATCH {
            if let Some(entries) = self.options.image_env.get(&from.base_name) {
                env = EnvList::from_entries(entries);
            }
        }
        let os = from
            .platform
            .as_ref()
            .map_or(self.options.platform.os.clone(), |p| p.os.clone());
        if os != "windows" && env.get("PATH").is_none() {
            env.set("PATH", DEFAULT_PATH);
        }
        StageState {
            env,
            os,
            ..StageState::default()
        }
    }

    fn dispatch(&mut self, node: &Node, ctx: &mut StageContext<'_>) -> Result<(), BuildError> {
        let config = self.config.with_comments(&node.comments);
        let config = config.as_ref();
        let span = node.span;
        match node.command().as_str() {
            "env" => {
                let pairs = self.expand_pairs(node, ctx, config)?;
                for (key, value, legacy) in pairs {
                    if legacy {
                        self.legacy_key_value(node, config);
                    }
                    secrets::check("ENV", &key, span, config, self.linter);
                    ctx.state.env.set(key, value);
                }
            }
            "label" => {
                let pairs = self.expand_pairs(node, ctx, config)?;
                for (_, _, legacy) in pairs {
                    if legacy {
                        self.legacy_key_value(node, config);
                    }
                }
            }
            "add" | "copy" => self.dispatch_copy(node, ctx, config)?,
            "workdir" => {
                let Some(path) = node.args.first() else {
                    return Ok(());
                };
                let path = self.expand(path, ctx, span, config)?;
                if !ctx.state.workdir_set && !is_absolute(&path, &ctx.state.os) {
                    self.linter.run(
                        config,
                        &rules::WORKDIR_RELATIVE_PATH,
                        span,
                        format!(
                            "Relative workdir {} can have unexpected results if the base image changes",
                            go_quote(&path)
                        ),
                    );
                }
                ctx.state.workdir_set = true;
            }
            "run" => {
                for mount in flags::values(node, "mount") {
                    for field in mounts::fields(mount) {
                        if let Some((_, value)) = field.split_once('=') {
                            self.expand(value, ctx, span, config)?;
                        }
                    }
                }
            }
            "user" | "stopsignal" => {
                if let Some(word) = node.args.first() {
                    self.expand(word, ctx, span, config)?;
                }
            }
            "volume" => {
                for word in &node.args {
                    self.expand(word, ctx, span, config)?;
                }
            }
            "cmd" => {
                let previous = ctx.single_use.cmd.replace(span);
                self.single_use(node, previous, config);
                self.json_args(node, ctx, config);
            }
            "entrypoint" => {
                let previous = ctx.single_use.entrypoint.replace(span);
                self.single_use(node, previous, config);
                self.json_args(node, ctx, config);
            }
            "healthcheck" => {
                let previous = ctx.single_use.healthcheck.replace(span);
                self.single_use(node, previous, config);
            }
            "expose" => {
                for word in &node.args {
                    let ports = self
                        .lexer
                        .process_words(word, &ctx.state.env)
                        .map_err(|e| BuildError::at(e.with_word(word), span))?;
                    for port in ports {
                        expose::check_port(&port, span, config, self.linter)
                            .map_err(|e| BuildError::at(e, span))?;
                    }
                }
            }
            "shell" => ctx.state.shell_set = !node.args.is_empty(),
            "arg" => self.dispatch_arg(node, ctx, config)?,
            "onbuild" => {
                if let Some(inner) = &node.onbuild {
                    ctx.state.onbuild.push((**inner).clone());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// ENV and LABEL pairs, each key and value expanded with the environment before the
    /// instruction: (key, value, written in the legacy `key value` form).
    fn expand_pairs(
        &mut self,
        node: &Node,
        ctx: &StageContext<'_>,
        config: &CheckConfig,
    ) -> Result<Vec<(String, String, bool)>, BuildError> {
        if node.args.len() % 3 != 0 {
            return Ok(Vec::new());
        }
        let mut pairs = Vec::with_capacity(node.args.len() / 3);
        for triple in node.args.chunks_exact(3) {
            let key = self.expand(&triple[0], ctx, node.span, config)?;
            let value = self.expand(&triple[1], ctx, node.span, config)?;
            pairs.push((key, value, triple[2].is_empty()));
        }
        Ok(pairs)
    }

    fn legacy_key_value(&mut self, node: &Node, config: &CheckConfig) {
        let name = &node.keyword;
        self.linter.run(
            config,
            &rules::LEGACY_KEY_VALUE_FORMAT,
            node.span,
            format!(
                "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
            ),
        );
    }

    /// ADD and COPY: flags, sources and destination, then unquoted heredoc bodies; a
    /// `COPY --from` stage must come before the current one.
    fn dispatch_copy(
        &mut self,
        node: &Node,
        ctx: &mut StageContext<'_>,
        config: &CheckConfig,
    ) -> Result<(), BuildError> {
        let span = node.span;
        let is_add = node.command() == "add";
        let Some((dest, sources)) = node.args.split_last() else {
            return Ok(());
        };
        if sources.is_empty() {
            return Ok(());
        }
        let flag_names: &[&str] = if is_add {
            &["chown", "chmod", "checksum"]
        } else {
            &["chown", "chmod"]
        };
        for name in flag_names {
            if let Some(value) = flags::value(node, name) {
                self.expand(value, ctx, span, config)?;
            }
        }
        let mut bodies = Vec::new();
        for source in sources {
            match parse_heredoc(source).ok().flatten() {
                Some(marker) => {
                    let body = node.heredocs.iter().find(|h| h.name == marker.name);
                    if marker.expand {
                        bodies.push(body.map_or("", |h| h.content.as_str()));
                    }
                }
                None => {
                    self.expand(source, ctx, span, config)?;
                }
            }
        }
        self.expand(dest, ctx, span, config)?;
        // Heredoc bodies keep their quotes and use `\` whatever the file's escape character.
        let raw = Lexer::new('\\').skip_process_quotes(true);
        for body in bodies {
            let result = raw
                .process_word_with_matches(body, &ctx.state.env)
                .map_err(|e| BuildError::at(e.with_word(body), span))?;
            self.report_unmatched(&result.unmatched, ctx, span, config);
        }

        if let Some(from) = flags::value(node, "from").filter(|f| !f.is_empty() && !is_add) {
            if let Some(source) = ctx.sources.copy_source(from)? {
                if source > ctx.index {
                    return Err(BuildError::at(
                        format!(
                            "cannot copy from stage {}, it needs to be defined before current stage {}",
                            go_quote(from),
                            go_quote(&ctx.name)
                        ),
                        span,
                    ));
                }
            }
        }
        Ok(())
    }

    /// ARG inside a stage: a name without a default takes the global ARG's value; a default
    /// is expanded; either way the name is declared from here on.
    fn dispatch_arg(
        &mut self,
        node: &Node,
        ctx: &mut StageContext<'_>,
        config: &CheckConfig,
    ) -> Result<(), BuildError> {
        for (key, default) in arg_pairs(node) {
            secrets::check("ARG", &key, node.span, config, self.linter);
            let value = match default {
                None => self.global.args.get(&key).map(str::to_string),
                Some(word) => Some(self.expand(&word, ctx, node.span, config)?),
            };
            if let Some(value) = value {
                if !NON_ENV_ARGS.contains(&key.as_str()) {
                    ctx.state.env.set(key.clone(), value);
                }
            }
            ctx.state.build_args.push(key);
        }
        Ok(())
    }

    fn single_use(&mut self, node: &Node, previous: Option<Span>, config: &CheckConfig) {
        if let Some(previous) = previous {
            // The earlier instruction is the one that has no effect.
            self.linter.run(
                config,
                &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                previous,
                format!(
                    "Multiple {} instructions should not be used in the same stage because only the last one will be used",
                    node.keyword
                ),
            );
        }
    }

    fn json_args(&mut self, node: &Node, ctx: &StageContext<'_>, config: &CheckConfig) {
        if !node.json && !ctx.state.shell_set {
            self.linter.run(
                config,
                &rules::JSON_ARGS_RECOMMENDED,
                node.span,
                format!(
                    "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                    node.keyword
                ),
            );
        }
    }

    /// Expands one word with the stage's environment, reporting the names it could not find.
    fn expand(
        &mut self,
        word: &str,
        ctx: &StageContext<'_>,
        span: Span,
        config: &CheckConfig,
    ) -> Result<String, BuildError> {
        let result = self
            .lexer
            .process_word_with_matches(word, &ctx.state.env)
            .map_err(|e| BuildError::at(e.with_word(word), span))?;
        self.report_unmatched(&result.unmatched, ctx, span, config);
        Ok(result.value)
    }

    /// UndefinedVar for each unset name that is not a declared ARG.
    fn report_unmatched(
        &mut self,
        unmatched: &BTreeSet<String>,
        ctx: &StageContext<'_>,
        span: Span,
        config: &CheckConfig,
    ) {
        for name in unmatched {
            if ctx.state.build_args.contains(name) || NON_ENV_ARGS.contains(&name.as_str()) {
                continue;
            }
            let mut message = format!("Usage of undefined variable '${name}'");
            if let Some(s) = suggest::closest(name, ctx.state.env.keys(), true) {
                message.push_str(&format!(" (did you mean ${s}?)"));
            }
            self.linter
                .run(config, &rules::UNDEFINED_VAR, span, message);
        }
    }
}

/// Whether a WORKDIR path is absolute on `os`.
fn is_absolute(path: &str, os: &str) -> bool {
    if os != "windows" {
        return path.starts_with('/');
    }
    let b = path.as_bytes();
    path.starts_with(['/', '\\'])
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'/' | b'\\'))
}
