//! Stage resolution: the checks BuildKit's converter (`dockerfile2llb`) makes before it
//! produces a build graph, as a pure function of the stages, the build arguments and the
//! target.
//!
//! The walk follows BuildKit's `toDispatchState` step by step, so that the first error found
//! is the one BuildKit reports:
//! 1. meta ARGs are expanded with the built-in platform arguments and `--build-arg`s;
//! 2. `SOURCE_DATE_EPOCH` is read;
//! 3. each FROM's base name and `--platform` are expanded with the meta ARGs;
//! 4. `--target` is looked up;
//! 5. `COPY --from` and `RUN --mount=from=` give each stage its dependencies (images not
//!    named as stages become external sources), and loops are rejected;
//! 6. every image reference (base images, `--from` images) is checked, the stages reachable
//!    from the target are found, and ONBUILD triggers of base stages prepended;
//! 7. each reachable stage is "dispatched" in file order: its words are expanded with the
//!    ARG/ENV scope in force and the dispatch-time rules applied (mount options, chmod,
//!    checksum, URL/Git sources, ports, stop signal, stages used before being defined);
//!    that step lives in `resolve/dispatch.rs`.
//!
//! What a base image contributes (ENV, WORKDIR, ONBUILD) is unknown here unless given in
//! [`ResolveOptions::base_images`]; otherwise only BuildKit's default `PATH` is assumed.

use super::epoch::{resolve_epoch, SourceDateEpoch};
use super::reference::parse_image_reference;
use super::stages::{MetaArg, Stage};
use super::{parse_instruction, parse_platform, suggest, Error, Instruction, Platform, Span};
use crate::shell::{Env, EnvList, Lexer, ShellError};
use std::collections::{BTreeMap, HashMap};

mod dispatch;

/// BuildKit's default `PATH` for Linux images that do not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build arguments that never become environment variables.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// What a base image contributes to a stage, when the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseImage {
    /// `KEY=VALUE` entries of the image config's `Env`.
    pub env: Vec<String>,
    /// The image config's `WorkingDir`.
    pub working_dir: String,
    /// The image config's `OnBuild` triggers.
    pub onbuild: Vec<String>,
}

/// Inputs of [`resolve`] besides the stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// `--target`; the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// The platform the build runs on (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--platform`; the build platform when `None`.
    pub target_platform: Option<Platform>,
    /// The Dockerfile's escape character.
    pub escape: char,
    /// Known base images, by their expanded name as written after FROM.
    pub base_images: HashMap<String, BaseImage>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            target: None,
            build_args: BTreeMap::new(),
            build_platform: Platform::host(),
            target_platform: None,
            escape: '\\',
            base_images: HashMap::new(),
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// `FROM scratch`.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference, expanded.
    Image(String),
}

/// Where a `COPY --from` or `RUN --mount` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencySource {
    /// A stage, by index.
    Stage(usize),
    /// An image (or `scratch` for mounts without `from=`).
    Image(String),
}

/// One use of another stage or image by a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// What is read.
    pub source: DependencySource,
    /// The instruction reading it.
    pub span: Span,
}

/// The resolution of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStage {
    /// BuildKit's name for it: the `AS` name, or `stage-N`; empty when the file has a single
    /// stage and no external sources.
    pub name: String,
    /// Where its FROM is.
    pub span: Span,
    /// Its base, expanded.
    pub base: StageBase,
    /// `--platform`, expanded and parsed.
    pub platform: Option<Platform>,
    /// `COPY --from` / `RUN --mount` sources, in instruction order.
    pub dependencies: Vec<Dependency>,
    /// Whether the target needs it.
    pub reachable: bool,
    /// For reachable stages: the instructions as BuildKit dispatches them (base-stage
    /// ONBUILD triggers first), words expanded with the stage's ARG/ENV scope: ENV/LABEL
    /// pairs, ADD/COPY flags, paths and heredoc bodies, WORKDIR, USER, VOLUME, STOPSIGNAL,
    /// EXPOSE (word-split), ARG values in force, RUN mounts (parsed). Empty otherwise.
    pub instructions: Vec<Instruction>,
    /// Parallel to `instructions`: what each one reads from other stages or images — one
    /// entry for `COPY --from`, one per `--mount` for RUN (`Image("scratch")` for a mount
    /// without `from=`), none otherwise.
    pub sources: Vec<Vec<DependencySource>>,
    /// How many of the first `instructions` are ONBUILD triggers of the base (stage or
    /// image), which BuildKit runs before the stage's own instructions.
    pub onbuild_triggers: usize,
    /// For reachable stages: the environment at the end of the stage (image ENV, ENV and
    /// ARG values), in definition order.
    pub env: Vec<(String, String)>,
    /// For reachable stages: the working directory at the end of the stage.
    pub working_dir: String,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Index of the target stage.
    pub target: usize,
    /// One entry per stage, in file order.
    pub stages: Vec<ResolvedStage>,
    /// Reachable stages in the order BuildKit dispatches them.
    pub order: Vec<usize>,
    /// The meta ARGs and built-in arguments in force for FROM lines, in definition order.
    pub global_args: Vec<(String, String)>,
    /// `SOURCE_DATE_EPOCH`, when set.
    pub source_date_epoch: Option<SourceDateEpoch>,
}

/// A node of BuildKit's dispatch-state list: a stage, or an image used as a source.
#[derive(Debug)]
struct State {
    stage: Option<usize>,
    /// For an external source: the image reference.
    image: String,
    name: String,
    base: Option<usize>,
    deps: Vec<(usize, Span)>,
    reachable: bool,
    dispatched: bool,
    commands: Vec<Command>,
    onbuild_init: bool,
    /// How many of `commands` are ONBUILD triggers (they come first).
    onbuild_triggers: usize,
    /// Its image reference (if any) was checked.
    reference_checked: bool,
    /// Where it is used from, for errors about it.
    span: Span,
}

#[derive(Debug, Clone)]
struct Command {
    instruction: Instruction,
    /// State index per source: one for `COPY --from`, one per mount for RUN.
    sources: Vec<usize>,
}

/// Variables and directory a stage accumulates while dispatched.
#[derive(Debug, Clone, Default)]
struct Scope {
    env: EnvList,
    working_dir: String,
}

/// Runs BuildKit's pre-build checks over `stages` and returns what they establish.
pub fn resolve(
    stages: &[Stage],
    meta_args: &[MetaArg],
    options: &ResolveOptions,
) -> Result<Resolution, Error> {
    Resolver::new(stages, options).run(meta_args)
}

struct Resolver<'a> {
    stages: &'a [Stage],
    options: &'a ResolveOptions,
    lexer: Lexer,
    states: Vec<State>,
    by_name: HashMap<String, usize>,
    bases: Vec<StageBase>,
    platforms: Vec<Option<Platform>>,
    scopes: Vec<Option<Scope>>,
    expanded: Vec<Vec<Instruction>>,
    /// Per stage, per expanded instruction: its sources.
    expanded_sources: Vec<Vec<Vec<DependencySource>>>,
    global_args: EnvList,
    /// `--build-arg`s, as BuildKit updates them (SOURCE_DATE_EPOCH normalised).
    build_args: BTreeMap<String, String>,
}

impl<'a> Resolver<'a> {
    fn new(stages: &'a [Stage], options: &'a ResolveOptions) -> Self {
        Resolver {
            stages,
            options,
            lexer: Lexer::new(options.escape),
            states: Vec::new(),
            by_name: HashMap::new(),
            bases: Vec::new(),
            platforms: Vec::new(),
            scopes: vec![None; stages.len()],
            expanded: vec![Vec::new(); stages.len()],
            expanded_sources: vec![Vec::new(); stages.len()],
            global_args: EnvList::new(),
            build_args: options.build_args.clone(),
        }
    }

    fn run(mut self, meta_args: &[MetaArg]) -> Result<Resolution, Error> {
        if self.stages.is_empty() {
            return Err(Error::NoStages);
        }
        self.global_args = self.builtin_args();
        self.expand_meta_args(meta_args)?;
        let source_date_epoch = self.source_date_epoch()?;
        self.add_stage_states()?;
        let target = self.find_target()?;
        self.build_dependency_graph()?;
        self.check_cycles()?;
        if self.states.len() == 1 {
            self.states[0].name.clear();
        }
        self.resolve_reachable(target)?;
        let order = self.dispatch_all()?;

        let stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let state = &self.states[i];
                let scope = self.scopes[i].clone().unwrap_or_default();
                ResolvedStage {
                    name: state.name.clone(),
                    span: self.stages[i].span(),
                    base: self.bases[i].clone(),
                    platform: self.platforms[i].clone(),
                    dependencies: state
                        .deps
                        .iter()
                        .map(|(s, span)| Dependency {
                            source: self.dependency_source(*s),
                            span: *span,
                        })
                        .collect(),
                    reachable: state.reachable,
                    instructions: std::mem::take(&mut self.expanded[i]),
                    sources: std::mem::take(&mut self.expanded_sources[i]),
                    onbuild_triggers: if state.reachable {
                        state.onbuild_triggers
                    } else {
                        0
                    },
                    env: env_pairs(&scope.env),
                    working_dir: scope.working_dir,
                }
            })
            .collect();
        Ok(Resolution {
            target,
            stages,
            order,
            global_args: env_pairs(&self.global_args),
            source_date_epoch,
        })
    }

    fn dependency_source(&self, state: usize) -> DependencySource {
        match self.states[state].stage {
            Some(i) => DependencySource::Stage(i),
            None => DependencySource::Image(self.states[state].image.clone()),
        }
    }

    // --- 1. arguments ---------------------------------------------------------------------

    /// BuildKit's `defaultArgs`: platform arguments and `TARGETSTAGE`, overridable by
    /// build args of the same name.
    fn builtin_args(&self) -> EnvList {
        let build = &self.options.build_platform;
        let target = self.options.target_platform.as_ref().unwrap_or(build);
        let target_stage = match &self.options.target {
            Some(t) if !t.is_empty() => t.clone(),
            _ => self
                .stages
                .last()
                .and_then(|s| s.name().map(str::to_string))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_string()),
        };
        let pairs = [
            ("BUILDPLATFORM", build.format()),
            ("BUILDOS", build.os.clone()),
            ("BUILDOSVERSION", build.os_version.clone()),
            ("BUILDARCH", build.architecture.clone()),
            ("BUILDVARIANT", build.variant.clone()),
            ("TARGETPLATFORM", target.format_all()),
            ("TARGETOS", target.os.clone()),
            ("TARGETOSVERSION", target.os_version.clone()),
            ("TARGETARCH", target.architecture.clone()),
            ("TARGETVARIANT", target.variant.clone()),
            ("TARGETSTAGE", target_stage),
        ];
        let mut env = EnvList::new();
        for (key, value) in pairs {
            let value = self.build_args.get(key).cloned().unwrap_or(value);
            env.set(key, value);
        }
        env
    }

    /// BuildKit's `buildMetaArgs`.
    fn expand_meta_args(&mut self, meta_args: &[MetaArg]) -> Result<(), Error> {
        for arg in meta_args {
            for def in &arg.args {
                let value = match self.build_args.get(&def.key) {
                    Some(v) => Some(v.clone()),
                    None => match &def.value {
                        Some(default) => Some(
                            self.lexer
                                .process_word(default, &self.global_args)
                                .map_err(|e| expansion(&e, default, arg.origin.span))?,
                        ),
                        None => None,
                    },
                };
                if let Some(v) = value {
                    self.global_args.set(def.key.clone(), v);
                }
            }
        }
        Ok(())
    }

    fn source_date_epoch(&mut self) -> Result<Option<SourceDateEpoch>, Error> {
        const KEY: &str = "SOURCE_DATE_EPOCH";
        let value = match self.build_args.get(KEY) {
            Some(v) => v.clone(),
            None => match self.global_args.get(KEY) {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => return Ok(None),
            },
        };
        let epoch = resolve_epoch(
            &value,
            self.stages,
            &self.global_args,
            &self.build_args,
            &self.lexer,
        )?;
        if let Some(SourceDateEpoch::Unix(seconds)) = epoch {
            // BuildKit re-formats the value it resolved, wherever it came from.
            if self.global_args.get(KEY).is_some() {
                self.global_args.set(KEY, seconds.to_string());
            }
            if let Some(v) = self.build_args.get_mut(KEY) {
                *v = seconds.to_string();
            }
        }
        Ok(epoch)
    }

    // --- 3. FROM lines --------------------------------------------------------------------

    /// BuildKit's `buildDispatchStates`.
    fn add_stage_states(&mut self) -> Result<(), Error> {
        for (i, stage) in self.stages.iter().enumerate() {
            let span = stage.span();
            let raw = stage.base_name();
            let base_name = self
                .lexer
                .process_word_with_matches(raw, &self.global_args)
                .map_err(|e| expansion(&e, raw, span))?
                .value;
            if base_name.is_empty() {
                return Err(Error::BlankBaseName {
                    base: raw.to_string(),
                    span,
                });
            }
            let platform = match &stage.from.platform {
                Some(expression) => Some(self.expand_platform(expression, span)?),
                None => None,
            };
            // A base names an earlier stage only when it matches its (lower-case) name exactly.
            let base_state = self.by_name.get(&base_name).copied();
            let base = match base_state {
                Some(s) => StageBase::Stage(s),
                None if base_name == "scratch" => StageBase::Scratch,
                None => StageBase::Image(base_name),
            };
            let name = match stage.name() {
                Some(n) => n.to_string(),
                None => format!("stage-{i}"),
            };
            self.bases.push(base);
            self.platforms.push(platform);
            self.states.push(State {
                stage: Some(i),
                image: String::new(),
                name,
                base: base_state,
                deps: Vec::new(),
                reachable: false,
                dispatched: false,
                commands: stage
                    .instructions
                    .iter()
                    .map(|instruction| Command {
                        instruction: instruction.clone(),
                        sources: Vec::new(),
                    })
                    .collect(),
                onbuild_init: false,
                onbuild_triggers: 0,
                reference_checked: false,
                span,
            });
            if let Some(n) = stage.name() {
                self.by_name.insert(n.to_lowercase(), i);
            }
        }
        Ok(())
    }

    fn expand_platform(&self, expression: &str, span: Span) -> Result<Platform, Error> {
        let expanded = self
            .lexer
            .process_word_with_matches(expression, &self.global_args)
            .map_err(|e| Error::PlatformExpansion {
                result: String::new(),
                message: e.with_word(expression),
                span,
            })?;
        // BuildKit suggests a build argument close to an unknown variable that was used.
        let suggestion = || {
            expanded
                .unmatched
                .iter()
                .find_map(|name| suggest::closest(name, self.global_args.keys(), true))
        };
        if expanded.value.is_empty() {
            return Err(Error::EmptyPlatform {
                expression: expression.to_string(),
                suggestion: suggestion(),
                span,
            });
        }
        parse_platform(&expanded.value).map_err(|message| Error::InvalidPlatform {
            expression: expression.to_string(),
            message: format!("{message}{}", suggest::suffix(&suggestion())),
            span,
        })
    }

    // --- 4. target ------------------------------------------------------------------------

    fn find_target(&self) -> Result<usize, Error> {
        match self.options.target.as_deref() {
            None | Some("") => Ok(self.stages.len() - 1),
            Some(target) => self
                .by_name
                .get(&target.to_lowercase())
                .copied()
                .ok_or_else(|| Error::TargetNotFound {
                    target: target.to_string(),
                    suggestion: suggest::closest(
                        target,
                        self.states
                            .iter()
                            .map(|s| s.name.as_str())
                            .filter(|n| !n.is_empty()),
                        true,
                    ),
                }),
        }
    }

    // --- 5. dependencies ------------------------------------------------------------------

    fn build_dependency_graph(&mut self) -> Result<(), Error> {
        for s in 0..self.states.len() {
            for c in 0..self.states[s].commands.len() {
                let instruction = self.states[s].commands[c].instruction.clone();
                let sources = self.command_sources(&instruction)?;
                for &src in &sources {
                    self.add_dependency(s, src, instruction.span());
                }
                self.states[s].commands[c].sources = sources;
            }
        }
        Ok(())
    }

    fn add_dependency(&mut self, state: usize, source: usize, span: Span) {
        let deps = &mut self.states[state].deps;
        // BuildKit keeps one entry per source (a map), the last command winning.
        match deps.iter_mut().find(|(s, _)| *s == source) {
            Some(entry) => entry.1 = span,
            None => deps.push((source, span)),
        }
    }

    /// BuildKit's `toCommand`: which states a COPY or RUN reads from.
    fn command_sources(&mut self, instruction: &Instruction) -> Result<Vec<usize>, Error> {
        match instruction {
            Instruction::Copy(copy) => {
                let Some(from) = &copy.from else {
                    return Ok(Vec::new());
                };
                let span = copy.origin.span;
                let expanded = self
                    .lexer
                    .process_word_with_matches(from, &EnvList::new())
                    .map_err(|e| expansion(&e, from, span))?;
                if expanded.value != *from {
                    return Err(Error::FromVariable { span });
                }
                let state = match from.parse::<i64>() {
                    Ok(index) => {
                        if index < 0 || index as usize >= self.states.len() {
                            return Err(Error::InvalidStageIndex { index, span });
                        }
                        index as usize
                    }
                    Err(_) => self.state_by_name(from, span),
                };
                Ok(vec![state])
            }
            Instruction::Run(run) => Ok(run
                .mounts
                .iter()
                .map(|m| {
                    // Mounts without `from=` read scratch (or the context, for binds).
                    let from = if m.from.is_empty() {
                        "scratch"
                    } else {
                        m.from.as_str()
                    };
                    self.state_by_name(from, run.origin.span)
                })
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// The stage named `name` (case-insensitive), or a new external state for an image.
    fn state_by_name(&mut self, name: &str, span: Span) -> usize {
        if let Some(&i) = self.by_name.get(&name.to_lowercase()) {
            return i;
        }
        // Like BuildKit, every reference to an image gets its own (already resolved) state.
        self.states.push(State {
            stage: None,
            image: name.to_string(),
            name: String::new(),
            base: None,
            deps: Vec::new(),
            reachable: false,
            dispatched: true,
            commands: Vec::new(),
            onbuild_init: true,
            onbuild_triggers: 0,
            reference_checked: false,
            span,
        });
        self.states.len() - 1
    }

    /// BuildKit's `validateCircularDependency`: a depth-first walk from each state in
    /// order; the first state from which a loop is reachable is named. Iterative, so a long
    /// chain of stages cannot exhaust the stack.
    fn check_cycles(&self) -> Result<(), Error> {
        let n = self.states.len();
        let mut visited = vec![false; n];
        let mut on_path = vec![false; n];
        for start in 0..n {
            if visited[start] {
                continue;
            }
            visited[start] = true;
            on_path[start] = true;
            // (state, index of its next dependency); `trail` holds the edge into each frame
            // but the first.
            let mut stack = vec![(start, 0usize)];
            let mut trail: Vec<Span> = Vec::new();
            while let Some((state, next)) = stack.last_mut() {
                let state = *state;
                if let Some(&(dep, span)) = self.states[state].deps.get(*next) {
                    *next += 1;
                    if on_path[dep] {
                        trail.push(span);
                        return Err(Error::CircularDependency {
                            stage: self.states[start].display_name(),
                            spans: trail,
                        });
                    }
                    if !visited[dep] {
                        visited[dep] = true;
                        on_path[dep] = true;
                        trail.push(span);
                        stack.push((dep, 0));
                    }
                } else {
                    on_path[state] = false;
                    stack.pop();
                    trail.truncate(stack.len().saturating_sub(1));
                }
            }
        }
        Ok(())
    }

    // --- 6. reachability and ONBUILD ------------------------------------------------------

    fn resolve_reachable(&mut self, target: usize) -> Result<(), Error> {
        loop {
            for state in &mut self.states {
                state.reachable = false;
            }
            let mut stack = vec![target];
            while let Some(s) = stack.pop() {
                if std::mem::replace(&mut self.states[s].reachable, true) {
                    continue;
                }
                stack.extend(self.states[s].base);
                stack.extend(self.states[s].deps.iter().map(|(d, _)| *d));
            }
            self.check_references()?;
            let mut new_deps = false;
            for s in 0..self.states.len() {
                if !self.states[s].reachable || self.states[s].onbuild_init {
                    continue;
                }
                self.states[s].onbuild_init = true;
                if self.add_onbuild_triggers(s)? {
                    new_deps = true;
                }
            }
            if !new_deps {
                return Ok(());
            }
        }
    }

    /// BuildKit parses every image reference (reachable or not) before resolving it.
    fn check_references(&mut self) -> Result<(), Error> {
        for s in 0..self.states.len() {
            if std::mem::replace(&mut self.states[s].reference_checked, true) {
                continue;
            }
            let state = &self.states[s];
            let name = match state.stage {
                Some(i) => match &self.bases[i] {
                    StageBase::Image(name) => name,
                    _ => continue,
                },
                None if state.image == "scratch" => continue,
                None => &state.image,
            };
            if let Err(message) = parse_image_reference(name) {
                return Err(Error::InvalidReference {
                    name: name.clone(),
                    message,
                    span: state.span,
                });
            }
        }
        Ok(())
    }

    /// BuildKit's `initOnBuildTriggers`: a base stage's ONBUILD instructions (or a known
    /// base image's triggers) run first in the stage that builds on it.
    fn add_onbuild_triggers(&mut self, s: usize) -> Result<bool, Error> {
        let Some(stage_index) = self.states[s].stage else {
            return Ok(false);
        };
        let from_span = self.stages[stage_index].span();
        let triggers: Vec<Instruction> = match self.states[s].base {
            Some(base) => {
                let mut out = Vec::new();
                for command in &self.states[base].commands {
                    if let Instruction::Onbuild(onbuild) = &command.instruction {
                        out.push(onbuild.parse_trigger()?);
                    }
                }
                out
            }
            None => match &self.bases[stage_index] {
                StageBase::Image(name) => match self.options.base_images.get(name) {
                    Some(image) => image
                        .onbuild
                        .iter()
                        .map(|expression| parse_trigger_text(expression, from_span))
                        .collect::<Result<_, _>>()?,
                    None => Vec::new(),
                },
                _ => Vec::new(),
            },
        };
        if triggers.is_empty() {
            return Ok(false);
        }
        let mut commands = Vec::with_capacity(triggers.len());
        let mut new_deps = false;
        for instruction in triggers {
            let sources = self.command_sources(&instruction)?;
            new_deps |= !sources.is_empty();
            for &src in &sources {
                self.add_dependency(s, src, instruction.span());
            }
            commands.push(Command {
                instruction,
                sources,
            });
        }
        self.states[s].onbuild_triggers = commands.len();
        commands.append(&mut self.states[s].commands);
        self.states[s].commands = commands;
        Ok(new_deps)
    }
}

impl State {
    /// The name BuildKit prints for this state ("" for images).
    fn display_name(&self) -> String {
        if self.stage.is_some() {
            self.name.clone()
        } else {
            String::new()
        }
    }
}

/// Parses an image's ONBUILD trigger text as one instruction.
fn parse_trigger_text(expression: &str, span: Span) -> Result<Instruction, Error> {
    let file =
        crate::parser::parse(expression.as_bytes()).map_err(|e| Error::OnbuildExpression {
            message: e.to_string(),
            span,
        })?;
    let [node] = file.nodes.as_slice() else {
        return Err(Error::OnbuildExpression {
            message: "onbuild trigger should be a single expression".to_string(),
            span,
        });
    };
    parse_instruction(node)
}

fn expansion(error: &ShellError, word: &str, span: Span) -> Error {
    Error::Expansion {
        message: error.with_word(word),
        span,
    }
}

fn env_pairs(env: &EnvList) -> Vec<(String, String)> {
    env.keys()
        .map(|k| (k.to_string(), env.get(k).unwrap_or("").to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{parse_stages, Instruction};
    use super::*;

    fn run(src: &str, options: ResolveOptions) -> Result<Resolution, String> {
        let file = crate::parser::parse(src.as_bytes()).map_err(|e| format!("parse: {e}"))?;
        let (stages, meta) = parse_stages(&file).map_err(|e| e.to_string())?;
        let options = ResolveOptions {
            escape: file.escape,
            ..options
        };
        resolve(&stages, &meta, &options).map_err(|e| e.to_string())
    }

    fn ok(src: &str) -> Resolution {
        run(src, ResolveOptions::default()).unwrap()
    }

    fn err(src: &str) -> String {
        run(src, ResolveOptions::default()).unwrap_err()
    }

    fn with_args(args: &[(&str, &str)]) -> ResolveOptions {
        ResolveOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ResolveOptions::default()
        }
    }

    #[test]
    fn bases_dependencies_and_order() {
        let r = ok("FROM alpine AS base\nFROM base AS build\nRUN --mount=type=cache,target=/c x\nFROM scratch\nCOPY --from=build /a /\nCOPY --from=busybox:1 /bin/sh /\nCOPY --from=0 /b /\n");
        assert_eq!(r.target, 2);
        assert_eq!(r.order, vec![0, 1, 2]);
        assert_eq!(r.stages[0].base, StageBase::Image("alpine".into()));
        assert_eq!(r.stages[1].base, StageBase::Stage(0));
        assert_eq!(r.stages[2].base, StageBase::Scratch);
        assert_eq!(r.stages[2].name, "stage-2");
        let sources: Vec<_> = r.stages[2]
            .dependencies
            .iter()
            .map(|d| d.source.clone())
            .collect();
        assert_eq!(
            sources,
            vec![
                DependencySource::Stage(1),
                DependencySource::Image("busybox:1".into()),
                DependencySource::Stage(0)
            ]
        );
        assert_eq!(
            r.stages[1].dependencies[0].source,
            DependencySource::Image("scratch".into())
        );
    }

    #[test]
    fn unreachable_stages_are_not_dispatched() {
        let src = "FROM alpine AS unused\nCOPY --chmod=999 a /\nFROM alpine AS used\nRUN true\n";
        let r = ok(src);
        assert_eq!(r.order, vec![1]);
        assert!(!r.stages[0].reachable && r.stages[0].instructions.is_empty());
        let target_unused = ResolveOptions {
            target: Some("UNUSED".into()),
            ..ResolveOptions::default()
        };
        assert!(run(src, target_unused)
            .unwrap_err()
            .contains("invalid chmod parameter: '999'"));
    }

    #[test]
    fn single_stage_has_no_name() {
        assert_eq!(ok("FROM alpine\nRUN true\n").stages[0].name, "");
        assert_eq!(ok("FROM alpine AS a\n").stages[0].name, "");
    }

    #[test]
    fn meta_args_and_build_args() {
        let src = "ARG TAG=3.19\nARG IMG=alpine:${TAG}\nFROM ${IMG} AS a\nARG TAG\nARG OTHER=x-$TAG\nRUN echo\n";
        let r = ok(src);
        assert_eq!(r.stages[0].base, StageBase::Image("alpine:3.19".into()));
        let Instruction::Arg(arg) = &r.stages[0].instructions[1] else {
            panic!("not ARG")
        };
        assert_eq!(arg.args[0].value.as_deref(), Some("x-3.19"));
        let r = run(src, with_args(&[("TAG", "edge")])).unwrap();
        assert_eq!(r.stages[0].base, StageBase::Image("alpine:edge".into()));
        assert!(r.stages[0].env.contains(&("OTHER".into(), "x-edge".into())));
        assert!(r
            .global_args
            .contains(&("IMG".into(), "alpine:edge".into())));
    }

    #[test]
    fn env_expansion_follows_buildkit_order() {
        let r = ok("FROM scratch\nENV A=1\nENV A=2 B=$A\nLABEL l=\"$B\"\nWORKDIR /app\nWORKDIR sub\nUSER ${A}\n");
        let s = &r.stages[0];
        assert!(s.env.contains(&("B".into(), "1".into())), "{:?}", s.env);
        assert_eq!(s.working_dir, "/app/sub");
        let Instruction::Label(l) = &s.instructions[2] else {
            panic!("not LABEL")
        };
        assert_eq!(l.pairs[0].value, "1");
        let Instruction::User(u) = &s.instructions[5] else {
            panic!("not USER")
        };
        assert_eq!(u.user, "2");
        assert!(s.env.iter().any(|(k, v)| k == "PATH" && v == DEFAULT_PATH));
    }

    #[test]
    fn base_image_config_is_used_when_known() {
        let mut options = ResolveOptions::default();
        options.base_images.insert(
            "img".into(),
            BaseImage {
                env: vec!["HOME=/root".into(), "PATH=/x".into()],
                working_dir: "/w".into(),
                onbuild: vec!["RUN echo from-image".into()],
            },
        );
        let r = run(
            "FROM img\nENV P=$HOME\nRUN --mount=type=bind,target=. x\n",
            options.clone(),
        )
        .unwrap();
        let s = &r.stages[0];
        assert!(s.env.contains(&("P".into(), "/root".into())));
        assert!(s.env.contains(&("PATH".into(), "/x".into())));
        assert!(
            matches!(s.instructions[0], Instruction::Run(_)),
            "image trigger first"
        );
        assert_eq!(s.working_dir, "/w");
        // Without the image's WORKDIR, a mount on `.` would cover the root.
        assert_eq!(
            err("FROM img\nRUN --mount=type=bind,target=. x\n"),
            "invalid mount target \"/\""
        );
        options.base_images.get_mut("img").unwrap().onbuild = vec!["RUN a\nRUN b".into()];
        assert_eq!(
            run("FROM img\n", options).unwrap_err(),
            "onbuild trigger should be a single expression"
        );
    }

    #[test]
    fn onbuild_triggers_of_base_stages_run_first() {
        let r = ok("FROM alpine AS base\nONBUILD COPY --from=src /x /\nFROM alpine AS src\nFROM base\nRUN true\n");
        assert_eq!(r.order, vec![0, 1, 2]);
        let first = &r.stages[2].instructions[0];
        assert!(matches!(first, Instruction::Copy(_)), "{first:?}");
        assert_eq!(r.stages[2].onbuild_triggers, 1);
        assert_eq!(r.stages[2].sources[0], vec![DependencySource::Stage(1)]);
        assert_eq!(r.stages[2].sources[1], Vec::<DependencySource>::new());
        assert_eq!(
            r.stages[2].dependencies[0].source,
            DependencySource::Stage(1)
        );
        let e = err("FROM alpine AS base\nONBUILD RUNN x\nFROM base\n");
        assert_eq!(e, "unknown instruction: RUNN (did you mean RUN?)");
    }

    #[test]
    fn later_stage_errors() {
        assert_eq!(
            err("FROM alpine AS a\nRUN --mount=from=b,target=/b x\nFROM alpine AS b\nFROM a\n"),
            "cannot mount from stage \"b\" to \"/b\", stage needs to be defined before current command"
        );
        let target_a = ResolveOptions {
            target: Some("a".into()),
            ..ResolveOptions::default()
        };
        assert_eq!(
            run(
                "FROM alpine AS a\nCOPY --from=1 x /\nFROM alpine\n",
                target_a
            )
            .unwrap_err(),
            "cannot copy from stage \"1\", it needs to be defined before current stage \"a\""
        );
        assert_eq!(
            err("FROM alpine AS a\nCOPY --from=b x /\nFROM alpine AS b\nCOPY --from=a y /\n"),
            "circular dependency detected on stage: a"
        );
        assert_eq!(
            err("FROM alpine\nCOPY --from=5 x /\n"),
            "invalid stage index 5"
        );
        assert_eq!(
            err("FROM alpine\nCOPY --from=-1 x /\n"),
            "invalid stage index -1"
        );
    }

    #[test]
    fn from_lines() {
        assert_eq!(
            err("ARG P=\nFROM --platform=$P alpine\n"),
            "empty platform value from expression $P"
        );
        assert_eq!(
            err("FROM --platform=$BUILDPLATFROM alpine\n"),
            "empty platform value from expression $BUILDPLATFROM (did you mean BUILDPLATFORM?)"
        );
        assert_eq!(
            err("FROM --platform=bogus alpine\n"),
            "failed to parse platform bogus: \"bogus\": unknown operating system or architecture: invalid argument"
        );
        let r = ok("FROM --platform=$BUILDPLATFORM alpine\n");
        assert_eq!(r.stages[0].platform, Some(Platform::host()));
        assert_eq!(
            err("FROM ${X:?nobase}\n"),
            "failed to process \"${X:?nobase}\": X: nobase"
        );
        // A base names a stage only by its exact (lower-case) name; otherwise it is an image.
        assert_eq!(
            err("FROM alpine AS build\nFROM Build\n"),
            "failed to parse stage name \"Build\": invalid reference format: repository name (library/Build) must be lowercase"
        );
        assert_eq!(
            err("FROM alpine\nCOPY --from=Some/Image x /\n"),
            "failed to parse stage name \"Some/Image\": invalid reference format: repository name (Image) must be lowercase"
        );
    }

    #[test]
    fn copy_and_add_rules() {
        assert_eq!(
            err("FROM scratch\nCOPY --chmod=abc a /\n"),
            "invalid syntax"
        );
        assert!(run(
            "FROM scratch\nARG M=u+x\nCOPY --chmod=$M a /\n",
            ResolveOptions::default()
        )
        .is_ok());
        assert_eq!(
            err("FROM scratch\nARG M=8\nADD --chmod=${M} a /\n"),
            "invalid chmod parameter: '8'. it should be octal string and between 0 and 07777"
        );
        assert_eq!(
            err("FROM scratch\nCOPY https://github.com/a/b.git /\n"),
            "source can't be a git ref for COPY"
        );
        assert_eq!(
            err("FROM scratch\nADD --checksum=sha256:abc a b /\n"),
            "checksum can't be specified for multiple sources"
        );
        assert_eq!(
            err("FROM scratch\nADD --checksum=sha256:abc https://example.com/f /\n"),
            "invalid checksum digest length"
        );
        assert!(run(
            "FROM scratch\nADD --checksum=abc123 https://github.com/a/b.git /\n",
            ResolveOptions::default()
        )
        .is_ok());
        assert_eq!(
            err("FROM scratch\nADD --keep-git-dir=false https://github.com/a/b.git?keep-git-dir=true /\n"),
            "inconsistent keep-git-dir configuration"
        );
        assert_eq!(
            err("FROM scratch\nADD https://github.com/a/b.git?nope=1 /\n"),
            "unexpected query \"nope\""
        );
        let r = ok("FROM scratch\nARG NAME=world\nCOPY <<EOF <<'RAW' /dst/\nhello $NAME\nEOF\nkeep $NAME\nRAW\n");
        let Instruction::Copy(c) = &r.stages[0].instructions[1] else {
            panic!("not COPY")
        };
        assert_eq!(c.files.contents[0].data, "hello world\n");
        assert_eq!(c.files.contents[1].data, "keep $NAME\n");
    }

    #[test]
    fn run_expose_stopsignal_volume() {
        let r = ok("FROM scratch\nARG T=/cache\nRUN --mount=type=cache,target=$T,id=x x\n");
        let Instruction::Run(run_instruction) = &r.stages[0].instructions[1] else {
            panic!("not RUN")
        };
        let mount = run_instruction.mounts[0].resolved.as_ref().unwrap();
        assert_eq!(
            (
                mount.target.as_str(),
                mount.id.as_str(),
                mount.from.as_str()
            ),
            ("/cache", "x", "scratch")
        );
        assert_eq!(
            err("FROM scratch\nRUN --mount=type=ssh,src=x x\n"),
            "ssh does not support source"
        );
        assert_eq!(
            err("FROM scratch\nRUN --device=gpu x\n"),
            "device feature is only supported in Dockerfile frontend 1.14.0-labs or later"
        );
        assert_eq!(
            err("FROM scratch\nEXPOSE 80/xyz\n"),
            "invalid port: \"80/xyz\": invalid proto: xyz"
        );
        assert_eq!(
            err("FROM scratch\nSTOPSIGNAL SIGNOPE\n"),
            "invalid signal: SIGNOPE"
        );
        assert!(run(
            "FROM scratch\nARG S=9\nSTOPSIGNAL $S\n",
            ResolveOptions::default()
        )
        .is_ok());
        assert_eq!(
            err("FROM scratch\nARG V\nVOLUME $V\n"),
            "VOLUME specified can not be an empty string"
        );
    }

    #[test]
    fn source_date_epoch() {
        let epoch = |src: &str, args: &[(&str, &str)]| {
            run(src, with_args(args)).map(|r| r.source_date_epoch)
        };
        assert_eq!(
            epoch("FROM scratch\n", &[("SOURCE_DATE_EPOCH", "+5")]),
            Ok(Some(SourceDateEpoch::Unix(5)))
        );
        assert_eq!(
            epoch("ARG SOURCE_DATE_EPOCH=context\nFROM scratch\n", &[]),
            Ok(Some(SourceDateEpoch::Context))
        );
        assert_eq!(
            epoch("FROM scratch\n", &[("SOURCE_DATE_EPOCH", "")]),
            Ok(None)
        );
        let src = "FROM scratch AS src\nADD https://example.com/a.tar /\nFROM scratch\n";
        assert_eq!(
            epoch(src, &[("SOURCE_DATE_EPOCH", "SRC")]),
            Ok(Some(SourceDateEpoch::Stage(0)))
        );
        let bad = "FROM alpine AS src\nADD https://example.com/a.tar /\nFROM scratch\n";
        assert_eq!(
            epoch(bad, &[("SOURCE_DATE_EPOCH", "src")]).unwrap_err(),
            "SOURCE_DATE_EPOCH stage must use FROM scratch"
        );
        let bad = "FROM scratch AS src\nRUN x\nFROM scratch\n";
        assert_eq!(
            epoch(bad, &[("SOURCE_DATE_EPOCH", "src")]).unwrap_err(),
            "SOURCE_DATE_EPOCH stage does not meet source-only requirements: unsupported RUN instruction"
        );
        let bad = "FROM scratch AS src\nADD ./local /\nFROM scratch\n";
        assert_eq!(
            epoch(bad, &[("SOURCE_DATE_EPOCH", "src")]).unwrap_err(),
            "SOURCE_DATE_EPOCH stage source must be a single HTTP(S) or Git ADD"
        );
        // The normalised value reaches stage ARGs.
        let r = run(
            "FROM scratch\nARG SOURCE_DATE_EPOCH\n",
            with_args(&[("SOURCE_DATE_EPOCH", "+7")]),
        )
        .unwrap();
        assert!(r.stages[0]
            .env
            .contains(&("SOURCE_DATE_EPOCH".into(), "7".into())));
    }

    #[test]
    fn long_chains_do_not_exhaust_the_stack() {
        let mut src = String::from("FROM scratch AS s0\n");
        for i in 1..3000 {
            src.push_str(&format!(
                "FROM scratch AS s{i}\nCOPY --from=s{} /a /\n",
                i - 1
            ));
        }
        let r = ok(&src);
        assert_eq!(r.order.len(), 3000);
    }

    #[test]
    fn onbuild_heredoc_triggers_keep_their_body() {
        let r = ok("FROM alpine AS base\nONBUILD RUN <<EOF\necho hi\nEOF\nFROM base\n");
        let Instruction::Run(run_instruction) = &r.stages[1].instructions[0] else {
            panic!("not RUN")
        };
        assert_eq!(run_instruction.command.files[0].data, "echo hi\n");
    }

    #[test]
    fn random_dockerfiles_never_panic() {
        // A small deterministic generator over Dockerfile fragments (no fuzzing crate here).
        const PARTS: [&str; 44] = [
            "FROM ",
            "scratch",
            "alpine",
            " AS ",
            "b",
            "--platform=",
            "$BUILDPLATFORM",
            "ARG ",
            "X=",
            "${X:-y}",
            "${X:?e}",
            "RUN ",
            "--mount=",
            "type=cache,",
            "target=",
            "from=b,",
            "/",
            ".",
            "COPY ",
            "ADD ",
            "--from=",
            "0",
            "1",
            "--chmod=",
            "u+x",
            "777",
            "64a",
            "--checksum=",
            "sha256:",
            "https://e.com/a.git",
            "http://e.com/f",
            "<<EOF",
            "\nEOF\n",
            "EXPOSE ",
            "80/udp",
            "1-2:3",
            "ONBUILD ",
            "ENV ",
            "a=b",
            "STOPSIGNAL ",
            "9",
            "WORKDIR ",
            "\"",
            "\n",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..3000 {
            let mut src = String::from("FROM alpine AS a\n");
            for _ in 0..(next() % 30) {
                src.push_str(PARTS[next() % PARTS.len()]);
            }
            let Ok(file) = crate::parser::parse(src.as_bytes()) else {
                continue;
            };
            let Ok((stages, meta)) = parse_stages(&file) else {
                continue;
            };
            for target in [None, Some("b".to_string())] {
                let options = ResolveOptions {
                    target,
                    escape: file.escape,
                    ..ResolveOptions::default()
                };
                let _ = resolve(&stages, &meta, &options);
            }
        }
    }
}
