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
//! 6. the stages reachable from the target are found, ONBUILD triggers of base stages
//!    prepended;
//! 7. each reachable stage is "dispatched" in file order: its words are expanded with the
//!    ARG/ENV scope in force and the dispatch-time rules applied (mount options, chmod,
//!    checksum, URL/Git sources, ports, stop signal, stages used before being defined).
//!
//! What a base image contributes (ENV, WORKDIR, ONBUILD) is unknown here unless given in
//! [`ResolveOptions::base_images`]; otherwise only BuildKit's default `PATH` is assumed.

use super::chmod::validate_chmod;
use super::digest::validate_digest;
use super::epoch::{resolve_epoch, SourceDateEpoch};
use super::git_ref::{is_http_source, parse_git_ref};
use super::mount::{MountError, MountType};
use super::ports::parse_ports;
use super::signal::parse_signal;
use super::stages::{MetaArg, Stage};
use super::workdir::{clean_path, normalize_workdir};
use super::{parse_instruction, parse_platform, suggest, Error, Instruction, Platform, Span};
use crate::shell::{Env, EnvList, Lexer, ShellError};
use std::collections::{BTreeMap, HashMap};

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
                    Err(_) => self.state_by_name(from),
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
                    self.state_by_name(from)
                })
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    /// The stage named `name` (case-insensitive), or a new external state for an image.
    fn state_by_name(&mut self, name: &str) -> usize {
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
        });
        self.states.len() - 1
    }

    /// BuildKit's `validateCircularDependency`.
    fn check_cycles(&self) -> Result<(), Error> {
        let mut visited = vec![false; self.states.len()];
        let mut on_path = vec![false; self.states.len()];
        for start in 0..self.states.len() {
            let mut trail = Vec::new();
            if self.visit(start, &mut visited, &mut on_path, &mut trail) {
                return Err(Error::CircularDependency {
                    stage: self.states[start].display_name(),
                    spans: trail,
                });
            }
        }
        Ok(())
    }

    fn visit(
        &self,
        state: usize,
        visited: &mut [bool],
        on_path: &mut [bool],
        trail: &mut Vec<Span>,
    ) -> bool {
        if visited[state] {
            return false;
        }
        visited[state] = true;
        on_path[state] = true;
        for &(dep, span) in &self.states[state].deps {
            trail.push(span);
            if on_path[dep] || self.visit(dep, visited, on_path, trail) {
                return true;
            }
            trail.pop();
        }
        on_path[state] = false;
        false
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
        commands.append(&mut self.states[s].commands);
        self.states[s].commands = commands;
        Ok(new_deps)
    }

    // --- 7. dispatch ----------------------------------------------------------------------

    fn dispatch_all(&mut self) -> Result<Vec<usize>, Error> {
        let mut order = Vec::new();
        for s in 0..self.states.len() {
            let state = &self.states[s];
            if !state.reachable || state.dispatched {
                continue;
            }
            let Some(stage_index) = state.stage else {
                continue;
            };
            self.states[s].dispatched = true;
            self.dispatch_stage(s, stage_index)?;
            order.push(stage_index);
        }
        Ok(order)
    }

    fn initial_scope(&self, s: usize, stage_index: usize) -> Scope {
        if let Some(base) = self.states[s].base {
            if let Some(Some(scope)) = self.states[base].stage.map(|i| &self.scopes[i]) {
                return scope.clone();
            }
        }
        let mut scope = Scope {
            env: EnvList::new(),
            working_dir: "/".to_string(),
        };
        if let StageBase::Image(name) = &self.bases[stage_index] {
            if let Some(image) = self.options.base_images.get(name) {
                scope.env = EnvList::from_entries(&image.env);
                if !image.working_dir.is_empty() {
                    scope.working_dir = normalize_workdir("/", &image.working_dir);
                }
            }
        }
        if scope.env.get("PATH").is_none() {
            scope.env.set("PATH", DEFAULT_PATH);
        }
        scope
    }

    fn dispatch_stage(&mut self, s: usize, stage_index: usize) -> Result<(), Error> {
        let mut scope = self.initial_scope(s, stage_index);
        let commands = self.states[s].commands.clone();
        let mut out = Vec::with_capacity(commands.len());
        for command in commands {
            out.push(self.dispatch(s, &mut scope, command)?);
        }
        self.expanded[stage_index] = out;
        self.scopes[stage_index] = Some(scope);
        Ok(())
    }

    fn word(&self, scope: &Scope, word: &str, span: Span) -> Result<String, Error> {
        self.lexer
            .process_word(word, &scope.env)
            .map_err(|e| expansion(&e, word, span))
    }

    fn opt_word(
        &self,
        scope: &Scope,
        word: &Option<String>,
        span: Span,
    ) -> Result<Option<String>, Error> {
        match word {
            Some(w) => Ok(Some(self.word(scope, w, span)?)),
            None => Ok(None),
        }
    }

    /// One instruction: BuildKit's `Expand` of its words, then its dispatch-time checks.
    fn dispatch(
        &self,
        s: usize,
        scope: &mut Scope,
        command: Command,
    ) -> Result<Instruction, Error> {
        let span = command.instruction.span();
        let instruction = match command.instruction {
            Instruction::Env(mut env) => {
                // All pairs are expanded before any is set, as in BuildKit.
                for pair in &mut env.pairs {
                    pair.key = self.word(scope, &pair.key, span)?;
                    pair.value = self.word(scope, &pair.value, span)?;
                }
                for pair in &env.pairs {
                    scope.env.set(pair.key.clone(), pair.value.clone());
                }
                Instruction::Env(env)
            }
            Instruction::Label(mut label) => {
                for pair in &mut label.pairs {
                    pair.key = self.word(scope, &pair.key, span)?;
                    pair.value = self.word(scope, &pair.value, span)?;
                }
                Instruction::Label(label)
            }
            Instruction::Workdir(mut workdir) => {
                workdir.path = self.word(scope, &workdir.path, span)?;
                scope.working_dir = normalize_workdir(&scope.working_dir, &workdir.path);
                Instruction::Workdir(workdir)
            }
            Instruction::User(mut user) => {
                user.user = self.word(scope, &user.user, span)?;
                Instruction::User(user)
            }
            Instruction::Volume(mut volume) => {
                for v in &mut volume.volumes {
                    *v = self.word(scope, v, span)?;
                    if v.is_empty() {
                        return Err(Error::EmptyVolume { span });
                    }
                }
                Instruction::Volume(volume)
            }
            Instruction::StopSignal(mut stop) => {
                stop.signal = self.word(scope, &stop.signal, span)?;
                if parse_signal(&stop.signal).is_none() {
                    return Err(Error::InvalidSignal {
                        signal: stop.signal,
                        span,
                    });
                }
                Instruction::StopSignal(stop)
            }
            Instruction::Expose(mut expose) => {
                let mut words = Vec::new();
                for port in &expose.ports {
                    words.extend(
                        self.lexer
                            .process_words(port, &scope.env)
                            .map_err(|e| expansion(&e, port, span))?,
                    );
                }
                parse_ports(&words).map_err(|error| Error::Port { error, span })?;
                expose.ports = words;
                Instruction::Expose(expose)
            }
            Instruction::Arg(mut arg) => {
                for def in &mut arg.args {
                    let from_build = self.build_args.get(&def.key);
                    if def.value.is_none() && from_build.is_none() {
                        def.value = self.global_args.get(&def.key).map(str::to_string);
                    } else if let Some(v) = from_build {
                        def.value = Some(v.clone());
                    } else if let Some(default) = &def.value {
                        def.value = Some(self.word(scope, default, span)?);
                    }
                    if let Some(v) = &def.value {
                        if !NON_ENV_ARGS.contains(&def.key.as_str()) {
                            scope.env.set(def.key.clone(), v.clone());
                        }
                    }
                }
                Instruction::Arg(arg)
            }
            Instruction::Run(run) => {
                let mut run = run;
                let mut expand = |word: &str| {
                    self.lexer
                        .process_word(word, &scope.env)
                        .map_err(|e| e.with_word(word))
                };
                let mut mounts = Vec::with_capacity(run.mounts.len());
                for spec in &run.mounts {
                    mounts.push(
                        spec.resolve(&mut expand)
                            .map_err(|error| Error::Mount { error, span })?,
                    );
                }
                for (i, mount) in mounts.iter_mut().enumerate() {
                    if mount.from.is_empty() && mount.kind == MountType::Cache {
                        mount.from = "scratch".to_string();
                    }
                    if !mount.from.is_empty() {
                        if let Some(&src) = command.sources.get(i) {
                            if !self.is_dispatched(src) {
                                return Err(Error::MountFromLaterStage {
                                    from: mount.from.clone(),
                                    target: mount.target.clone(),
                                    span,
                                });
                            }
                        }
                    }
                    match mount.kind {
                        MountType::Secret => continue,
                        MountType::Ssh => {
                            if !mount.source.is_empty() {
                                return Err(Error::Mount {
                                    error: MountError::SshSource,
                                    span,
                                });
                            }
                            continue;
                        }
                        _ => {}
                    }
                    // BuildKit keeps an absolute target as written and joins a relative one
                    // onto the working directory.
                    let target = if mount.target.starts_with('/') {
                        mount.target.clone()
                    } else {
                        clean_path(&format!("/{}/{}", scope.working_dir, mount.target))
                    };
                    if target == "/" {
                        return Err(Error::InvalidMountTarget { target, span });
                    }
                }
                if !run.devices.is_empty() {
                    return Err(Error::DeviceUnsupported { span });
                }
                run.mounts = run
                    .mounts
                    .into_iter()
                    .zip(mounts)
                    .map(|(mut spec, mount)| {
                        spec.resolved = Some(mount);
                        spec
                    })
                    .collect();
                Instruction::Run(run)
            }
            Instruction::Copy(mut copy) => {
                copy.chown = self.opt_word(scope, &copy.chown, span)?;
                copy.chmod = self.opt_word(scope, &copy.chmod, span)?;
                self.expand_files(scope, &mut copy.files, span)?;
                if let Some(&src) = command.sources.first() {
                    if !self.is_dispatched(src) {
                        return Err(Error::CopyFromLaterStage {
                            from: copy.from.clone().unwrap_or_default(),
                            current: self.states[s].display_name(),
                            span,
                        });
                    }
                }
                if let Some(chmod) = &copy.chmod {
                    validate_chmod(chmod, span)?;
                }
                for source in &copy.files.paths {
                    match parse_git_ref(source) {
                        Err(e) if e.is_git => {
                            return Err(Error::GitRef {
                                message: e.message,
                                span,
                            })
                        }
                        Ok(git) if !git.indistinguishable_from_local => {
                            return Err(Error::CopyGitSource { span })
                        }
                        _ => {}
                    }
                    if is_http_source(source) {
                        return Err(Error::CopyUrlSource { span });
                    }
                }
                Instruction::Copy(copy)
            }
            Instruction::Add(mut add) => {
                add.chown = self.opt_word(scope, &add.chown, span)?;
                add.chmod = self.opt_word(scope, &add.chmod, span)?;
                add.checksum = self
                    .opt_word(scope, &add.checksum, span)?
                    .filter(|c| !c.is_empty());
                self.expand_files(scope, &mut add.files, span)?;
                if let Some(chmod) = &add.chmod {
                    validate_chmod(chmod, span)?;
                }
                if add.checksum.is_some() {
                    let [source] = add.files.paths.as_slice() else {
                        return Err(Error::ChecksumMultipleSources { span });
                    };
                    if !is_http_source(source) && parse_git_ref(source).is_err() {
                        return Err(Error::ChecksumSource { span });
                    }
                }
                for source in &add.files.paths {
                    match parse_git_ref(source) {
                        Err(e) if e.is_git => {
                            return Err(Error::GitRef {
                                message: e.message,
                                span,
                            })
                        }
                        Ok(git) if !git.indistinguishable_from_local => {
                            if let (Some(flag), Some(url)) = (add.keep_git_dir, git.keep_git_dir) {
                                if flag != url {
                                    return Err(Error::KeepGitDirConflict { span });
                                }
                            }
                            if let Some(flag) = &add.checksum {
                                if !git.checksum.is_empty() && *flag != git.checksum {
                                    return Err(Error::ChecksumMismatch {
                                        flag: flag.clone(),
                                        url: git.checksum.clone(),
                                        span,
                                    });
                                }
                            }
                            continue;
                        }
                        _ => {}
                    }
                    if is_http_source(source) {
                        if let Some(checksum) = &add.checksum {
                            validate_digest(checksum)
                                .map_err(|message| Error::Digest { message, span })?;
                        }
                    }
                }
                Instruction::Add(add)
            }
            other => other,
        };
        Ok(instruction)
    }

    /// `SourcesAndDest.Expand` and `ExpandRaw`: paths and destination with the stage's
    /// lexer; heredoc bodies (unless quoted) with a `\` lexer that keeps quotes.
    fn expand_files(
        &self,
        scope: &Scope,
        files: &mut super::SourcesAndDest,
        span: Span,
    ) -> Result<(), Error> {
        for path in &mut files.paths {
            *path = self.word(scope, path, span)?;
        }
        files.dest = self.word(scope, &files.dest, span)?;
        let raw = Lexer::new('\\').skip_process_quotes(true);
        for content in &mut files.contents {
            if content.expand {
                content.data = raw
                    .process_word(&content.data, &scope.env)
                    .map_err(|e| expansion(&e, &content.data, span))?;
            }
        }
        Ok(())
    }

    fn is_dispatched(&self, state: usize) -> bool {
        self.states.get(state).is_some_and(|s| s.dispatched)
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
