//! Per-stage lowering state and the dispatch loop: BuildKit's `dispatchState` and
//! `dispatch`, minus everything resolution already did.
//!
//! A [`StageState`] is what BuildKit's LLB state and image config carry while a stage's
//! instructions are dispatched: the vertex whose output is the stage's filesystem so far,
//! the environment (ENV and ARG values, in BuildKit's order), working directory, user,
//! network, platform, the image config with its history, the build args declared so far,
//! and the step counter used in progress names (`[build 2/4] RUN make`).
//!
//! Key decision: a stage starting `FROM` another stage clones that stage's final state, as
//! BuildKit does, so identical steps on top of it become the same vertex.

use super::config::Image;
use super::context;
use super::{LowerError, LowerOptions};
use crate::instructions::{
    parse_platform, DependencySource, Instruction, Platform, Resolution, StageBase,
};
use crate::shell::{Env, Lexer};
use std::collections::BTreeMap;
use strata_solver::op::{NetworkMode, Op, Owner, Platform as GraphPlatform, VertexMeta};
use strata_solver::{Graph, Input, VertexId};

/// Build arguments that never become environment variables.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// An environment with BuildKit's LLB ordering: setting a name again moves it to the end
/// (`llb.EnvList.AddOrReplace`), unlike an image config's `Env`, which replaces in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateEnv {
    entries: Vec<(String, String)>,
}

impl StateEnv {
    /// Sets `key`, moving it to the end.
    pub fn set(&mut self, key: &str, value: &str) {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_string(), value.to_string()));
    }

    /// Sets `key` only when it is not set.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if Env::get(self, key).is_none() {
            self.set(key, value);
        }
    }

    /// The names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `KEY=VALUE` entries in order.
    pub fn to_vec(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

impl Env for StateEnv {
    fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The state of one stage while its instructions are lowered.
#[derive(Debug, Clone)]
pub struct StageState {
    /// Stage index in the Dockerfile.
    pub index: usize,
    /// BuildKit's stage name (`AS` name, `stage-N`, or empty for a lone stage).
    pub name: String,
    /// The vertex whose output 0 is the stage's filesystem; `None` for the empty
    /// filesystem (`FROM scratch` with nothing on it yet), which BuildKit has no vertex for.
    pub vertex: Option<VertexId>,
    /// ENV and ARG values in force.
    pub env: StateEnv,
    /// Working directory of RUN and relative COPY destinations.
    pub dir: String,
    /// User of RUN and owner of WORKDIR directories.
    pub user: String,
    /// Network of RUN when it gives no `--network`.
    pub network: NetworkMode,
    /// The stage's platform.
    pub platform: Platform,
    /// The image config being built, with its history.
    pub image: Image,
    /// ARGs declared so far (base stage's first), with their values.
    pub build_args: Vec<(String, Option<String>)>,
    /// Steps counted in progress names (BuildKit's `cmdTotal`).
    pub cmd_total: usize,
    /// Steps named so far (BuildKit's `cmdIndex`).
    pub cmd_index: usize,
    /// The instruction being lowered is an ONBUILD trigger.
    pub cmd_is_onbuild: bool,
    /// A CMD was seen in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// `--no-cache-filter` names this stage.
    pub ignore_cache: bool,
    /// Dockerfile lines of the instruction being lowered.
    pub lines: Option<(usize, usize)>,
}

impl StageState {
    /// BuildKit's `prefixCommand`: `[name k/n] text`, with the platform first in
    /// multi-platform builds, `ONBUILD ` for triggers; the bare text when the stage counts no
    /// step. Each call takes the next step number.
    pub fn prefix_command(&mut self, text: &str, multi_platform: bool, with_env: bool) -> String {
        if self.cmd_total == 0 {
            return text.to_string();
        }
        self.cmd_index += 1;
        let arrow = if multi_platform && with_env {
            format_target_platform(&self.platform, &self.env)
        } else {
            String::new()
        };
        let platform = multi_platform.then_some((&self.platform, arrow.as_str()));
        step_name(
            &self.name,
            platform,
            self.cmd_index,
            self.cmd_total,
            self.cmd_is_onbuild,
            text,
        )
    }

    /// The owner BuildKit gives what WORKDIR creates: the current USER, if any.
    pub fn user_owner(&self) -> Option<Owner> {
        parse_owner(&self.image.config.user)
    }

    /// Default shell for shell-form commands: SHELL, else the OS default.
    pub fn shell(&self) -> Vec<String> {
        if !self.image.config.shell.is_empty() {
            return self.image.config.shell.clone();
        }
        if self.image.os == "windows" {
            vec!["cmd".into(), "/S".into(), "/C".into()]
        } else {
            vec!["/bin/sh".into(), "-c".into()]
        }
    }

    /// BuildKit's `withShell`: the shell, then the words joined by spaces.
    pub fn with_shell(&self, args: &[String]) -> Vec<String> {
        let mut out = self.shell();
        out.push(args.join(" "));
        out
    }
}

/// The text of a progress name: `[platform->target name k/n] ONBUILD text`.
pub fn step_name(
    stage: &str,
    platform: Option<(&Platform, &str)>,
    index: usize,
    total: usize,
    onbuild: bool,
    text: &str,
) -> String {
    let mut out = String::from("[");
    if let Some((p, arrow)) = platform {
        out.push_str(&p.format_all());
        out.push_str(arrow);
        out.push(' ');
    }
    if !stage.is_empty() {
        out.push_str(stage);
        out.push(' ');
    }
    // Go's `%*d` with BuildKit's width: the number of digits of the total.
    let width = total.to_string().len();
    out.push_str(&format!("{index:>width$}/{total}] "));
    if onbuild {
        out.push_str("ONBUILD ");
    }
    out.push_str(text);
    out
}

/// `user[:group]` → an owner (`None` when empty).
pub fn parse_owner(chown: &str) -> Option<Owner> {
    if chown.is_empty() {
        return None;
    }
    let (user, group) = chown.split_once(':').unwrap_or((chown, ""));
    Some(Owner {
        user: user.to_string(),
        group: group.to_string(),
    })
}

/// The solver's platform type.
pub fn graph_platform(p: &Platform) -> GraphPlatform {
    GraphPlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    }
}

/// BuildKit's `formatTargetPlatform`: `->arm64` when the stage's TARGET* arguments name
/// another architecture than the platform it runs on, `->os/arch` for another OS.
fn format_target_platform(base: &Platform, env: &StateEnv) -> String {
    let mut target = Platform::default();
    let mut set = false;
    for key in env.keys() {
        let value = env.get(key).unwrap_or_default();
        match key {
            "TARGETPLATFORM" => match parse_platform(value) {
                Ok(p) => {
                    target = p;
                    set = true;
                    break;
                }
                Err(_) => continue,
            },
            "TARGETOS" => {
                target.os = value.to_string();
                set = true;
            }
            "TARGETARCH" => {
                target.architecture = value.to_string();
                set = true;
            }
            "TARGETVARIANT" => {
                target.variant = value.to_string();
                set = true;
            }
            _ => {}
        }
    }
    if !set {
        return String::new();
    }
    if target.os.is_empty() {
        target.os = base.os.clone();
    }
    if target.architecture.is_empty() {
        target.architecture = base.architecture.clone();
    }
    let target = parse_platform(&target.format()).unwrap_or(target);
    if target.os == base.os && target.architecture != base.architecture {
        let mut arch = target.architecture.clone();
        if !target.variant.is_empty() {
            arch.push('/');
            arch.push_str(&target.variant);
        }
        return format!("->{arch}");
    }
    if target.os != base.os {
        return format!("->{}", target.format_all());
    }
    String::new()
}

/// BuildKit's `uppercaseCmd`: the first word upper-cased.
pub fn uppercase_cmd(s: &str) -> String {
    match s.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// BuildKit's `processCmdEnv`: the text with variables expanded, or unchanged on error.
pub fn process_cmd_env<E: Env + ?Sized>(lexer: &Lexer, text: &str, env: &E) -> String {
    lexer
        .process_word(text, env)
        .unwrap_or_else(|_| text.to_string())
}

/// Everything one call of [`super::lower`] shares between stages.
#[derive(Debug)]
pub struct Lowerer<'a> {
    /// The resolved stages.
    pub resolution: &'a Resolution,
    /// The caller's options.
    pub options: &'a LowerOptions,
    /// The graph being built.
    pub graph: Graph,
    /// Each stage's final state, once lowered.
    pub stages: Vec<Option<StageState>>,
    /// The Dockerfile's lexer (its escape character).
    pub lexer: Lexer,
    /// The target platform.
    pub target_platform: Platform,
    /// `SOURCE_DATE_EPOCH` in seconds.
    pub epoch: Option<i64>,
    /// `SOURCE_DATE_EPOCH` as history `created`.
    pub created: Option<String>,
    /// Proxy variables for execs.
    pub proxy_env: Vec<String>,
}

impl Lowerer<'_> {
    /// Adds a vertex.
    pub fn add(
        &mut self,
        op: Op,
        inputs: Vec<Input>,
        meta: VertexMeta,
    ) -> Result<VertexId, LowerError> {
        Ok(self.graph.add(op, inputs, meta)?)
    }

    /// A vertex's meta with a progress name, the instruction's lines and the stage's cache
    /// setting.
    pub fn meta(&self, st: &StageState, name: String) -> VertexMeta {
        VertexMeta {
            name,
            lines: st.lines,
            ignore_cache: st.ignore_cache,
            ..VertexMeta::default()
        }
    }

    /// The filesystem a `COPY --from` / `--mount from=` source provides.
    pub fn dependency_vertex(
        &mut self,
        source: &DependencySource,
        line: usize,
    ) -> Result<Option<VertexId>, LowerError> {
        match source {
            DependencySource::Stage(j) => match self.stages.get(*j).and_then(|s| s.as_ref()) {
                Some(st) => {
                    let vertex = st.vertex;
                    self.materialize(vertex).map(Some)
                }
                None => Ok(None),
            },
            DependencySource::Image(name) => {
                let platform = self.target_platform.clone();
                context::image_or_scratch(self, name, &platform, None, line).map(Some)
            }
        }
    }

    /// A stage's filesystem as a vertex: a scratch source for the empty one, where a vertex
    /// is needed (the target, a `COPY --from` source).
    pub fn materialize(&mut self, vertex: Option<VertexId>) -> Result<VertexId, LowerError> {
        match vertex {
            Some(v) => Ok(v),
            None => context::scratch(self),
        }
    }

    /// Whether a source is the empty filesystem (`scratch`, a known image without layers, a
    /// stage with nothing on its scratch base), which a mount reads as no input at all.
    pub fn is_empty_fs(&self, source: &DependencySource) -> bool {
        match source {
            DependencySource::Stage(j) => self
                .stages
                .get(*j)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.vertex.is_none()),
            DependencySource::Image(name) => {
                name == "scratch"
                    || self
                        .options
                        .base_images
                        .get(name)
                        .is_some_and(|b| b.image.has_no_layers())
            }
        }
    }

    /// Lowers stage `index` (its bases and sources must be lowered already).
    pub fn lower_stage(&mut self, index: usize) -> Result<(), LowerError> {
        let resolved = self
            .resolution
            .stages
            .get(index)
            .ok_or_else(|| LowerError::Unresolved {
                what: format!("stage {index}"),
                line: 0,
            })?;
        let mut st = super::from::start_stage(self, index, resolved)?;
        let triggers = resolved.onbuild_triggers.min(resolved.instructions.len());
        let from_span = st.lines;
        for (k, instruction) in resolved.instructions.iter().enumerate() {
            let sources: &[DependencySource] = resolved
                .sources
                .get(k)
                .map(Vec::as_slice)
                .unwrap_or_default();
            st.cmd_is_onbuild = k < triggers;
            // BuildKit reports a trigger at the FROM that fires it.
            st.lines = if st.cmd_is_onbuild {
                from_span
            } else {
                let span = instruction.span();
                Some((span.start_line, span.end_line))
            };
            self.dispatch(&mut st, instruction, sources)?;
        }
        st.cmd_is_onbuild = false;
        st.lines = from_span;
        self.stages[index] = Some(st);
        Ok(())
    }

    fn dispatch(
        &mut self,
        st: &mut StageState,
        instruction: &Instruction,
        sources: &[DependencySource],
    ) -> Result<(), LowerError> {
        let created = self.created.clone();
        match instruction {
            Instruction::Env(i) => super::env::lower(st, i, &created),
            Instruction::Run(i) => super::run::lower(self, st, i, sources)?,
            Instruction::Workdir(i) => super::workdir::lower(self, st, i)?,
            Instruction::Add(i) => super::copy::lower_add(self, st, i)?,
            Instruction::Copy(i) => super::copy::lower_copy(self, st, i, sources)?,
            Instruction::Label(i) => super::label::lower(st, i, &created),
            Instruction::Onbuild(i) => super::onbuild::lower(st, i),
            Instruction::Cmd(i) => super::cmd::lower(st, i, &created),
            Instruction::Entrypoint(i) => super::entrypoint::lower(st, i, &created),
            Instruction::Healthcheck(i) => super::healthcheck::lower(st, i, &created),
            Instruction::Expose(i) => super::expose::lower(st, i, &created)?,
            Instruction::User(i) => super::user::lower(st, i, &created),
            Instruction::Volume(i) => super::volume::lower(st, i, &created),
            Instruction::StopSignal(i) => super::stopsignal::lower(st, i, &created),
            Instruction::Shell(i) => super::shell::lower(st, i, &created),
            Instruction::Arg(i) => super::arg::lower(st, i, &created),
            Instruction::Maintainer(i) => super::maintainer::lower(st, i, &created),
            // A FROM never appears inside a stage.
            Instruction::From(_) => {}
        }
        Ok(())
    }
}

/// Whether an ARG value becomes an environment variable.
pub fn arg_sets_env(key: &str) -> bool {
    !NON_ENV_ARGS.contains(&key)
}

/// BuildKit's `cmdTotal` of a stage: one for a FROM image, one per ADD/COPY/RUN/WORKDIR of
/// the stage, plus every ONBUILD trigger.
pub fn step_total(base: &StageBase, instructions: &[Instruction], triggers: usize) -> usize {
    let from = usize::from(matches!(base, StageBase::Image(_)));
    let own = instructions
        .iter()
        .skip(triggers)
        .filter(|i| {
            matches!(
                i,
                Instruction::Add(_)
                    | Instruction::Copy(_)
                    | Instruction::Run(_)
                    | Instruction::Workdir(_)
            )
        })
        .count();
    from + own + triggers
}

/// The `--label`s, merged over the config's labels.
pub fn apply_labels(image: &mut Image, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        image.config.labels.insert(k.clone(), v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(total: usize, name: &str) -> StageState {
        StageState {
            index: 0,
            name: name.to_string(),
            vertex: None,
            env: StateEnv::default(),
            dir: "/".into(),
            user: String::new(),
            network: NetworkMode::Default,
            platform: Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                ..Default::default()
            },
            image: Image::default(),
            build_args: Vec::new(),
            cmd_total: total,
            cmd_index: 0,
            cmd_is_onbuild: false,
            cmd_set: false,
            ignore_cache: false,
            lines: None,
        }
    }

    #[test]
    fn progress_names() {
        let mut st = state(4, "builder");
        assert_eq!(
            st.prefix_command("FROM x", false, false),
            "[builder 1/4] FROM x"
        );
        assert_eq!(
            st.prefix_command("RUN make", false, true),
            "[builder 2/4] RUN make"
        );
        let mut st = state(12, "");
        assert_eq!(st.prefix_command("RUN a", false, true), "[ 1/12] RUN a");
        st.cmd_is_onbuild = true;
        assert_eq!(
            st.prefix_command("RUN b", false, true),
            "[ 2/12] ONBUILD RUN b"
        );
        let mut st = state(0, "x");
        assert_eq!(st.prefix_command("RUN a", false, true), "RUN a");
        let mut st = state(2, "b");
        st.env.set("TARGETARCH", "arm64");
        assert_eq!(
            st.prefix_command("RUN a", true, true),
            "[linux/amd64->arm64 b 1/2] RUN a"
        );
    }

    #[test]
    fn state_env_order_is_llb_order() {
        let mut env = StateEnv::default();
        env.set("PATH", "/bin");
        env.set("A", "1");
        env.set("PATH", "/x");
        env.set_default("A", "2");
        env.set_default("B", "3");
        assert_eq!(env.to_vec(), vec!["A=1", "PATH=/x", "B=3"]);
    }

    #[test]
    fn owners_and_commands() {
        assert_eq!(parse_owner(""), None);
        assert_eq!(
            parse_owner("app:staff"),
            Some(Owner {
                user: "app".into(),
                group: "staff".into()
            })
        );
        assert_eq!(parse_owner("1000").unwrap().group, "");
        assert_eq!(uppercase_cmd("run echo hi"), "RUN echo hi");
        assert_eq!(uppercase_cmd("copy"), "COPY");
    }
}
