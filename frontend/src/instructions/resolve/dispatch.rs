//! Step 7 of resolution: each reachable stage "dispatched" in file order, as BuildKit's
//! `dispatch` does before it builds LLB: every instruction's words expanded with the stage's
//! ARG/ENV scope, then the dispatch-time rules applied (mount options and targets, chmod,
//! checksum, URL and Git sources, ports, stop signal, stages used before being defined).

use super::super::chmod::validate_chmod;
use super::super::digest::validate_digest;
use super::super::git_ref::{is_http_source, parse_git_ref};
use super::super::mount::{MountError, MountType};
use super::super::ports::parse_ports;
use super::super::signal::parse_signal;
use super::super::workdir::{clean_path, normalize_workdir};
use super::super::{Error, Instruction, SourcesAndDest, Span};
use super::{expansion, Command, Resolver, Scope, StageBase, DEFAULT_PATH, NON_ENV_ARGS};
use crate::shell::{Env, EnvList, Lexer};

impl Resolver<'_> {
    pub(super) fn dispatch_all(&mut self) -> Result<Vec<usize>, Error> {
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
        let mut sources = Vec::with_capacity(commands.len());
        for command in commands {
            sources.push(
                command
                    .sources
                    .iter()
                    .map(|&src| self.dependency_source(src))
                    .collect(),
            );
            out.push(self.dispatch(s, &mut scope, command)?);
        }
        self.expanded[stage_index] = out;
        self.expanded_sources[stage_index] = sources;
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
        files: &mut SourcesAndDest,
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
