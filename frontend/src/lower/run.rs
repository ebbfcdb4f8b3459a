//! `RUN`: an exec over the stage's filesystem (mounted at `/` as input 0, output 0), as
//! BuildKit's `dispatchRun` builds it.
//!
//! - Arguments: exec form as written; shell form through the stage's SHELL (default
//!   `/bin/sh -c`), the words joined by spaces.
//! - Heredocs: `RUN <<EOF` alone runs the body through the shell (`/bin/sh -c <body>`);
//!   a body starting with `#!` is written to a file (mode 0755, an inline-document vertex)
//!   mounted read-only at `/dev/pipes/` and executed through the shell
//!   (`/bin/sh -c /dev/pipes/EOF`); a heredoc inside a longer command is handed to the
//!   shell with its bodies and terminators appended, for the shell to read.
//! - Environment: the stage's ENV and ARG values in BuildKit's order, `SSH_AUTH_SOCK` when
//!   an ssh agent is mounted, the default `PATH` when absent. Proxy build args are not in
//!   it: they go to the vertex meta ([`strata_solver::op::VertexMeta::proxy_env`]), out
//!   of the cache key, as BuildKit's `ProxyEnv`.
//! - Mounts: the rootfs and the bind/cache/tmpfs mounts sorted by target (BuildKit sorts
//!   them), then secrets, then ssh sockets; identical inputs are shared.
//! - History: `RUN [|N k=v …] <args> # buildkit`, the `|N` prefix listing the stage's
//!   build args with their values in force.

use super::context::inline_document;
use super::mount::{plan, PlannedMount};
use super::paths::{join, llb_normalize};
use super::stage::{process_cmd_env, uppercase_cmd, Lowerer, StageState, StateEnv};
use super::LowerError;
use crate::instructions::{
    DependencySource, NetworkMode as RunNetwork, RunInstruction, SecurityMode as RunSecurity,
    DEFAULT_PATH,
};
use crate::parser::{chomp_heredoc_content, parse_heredoc};
use crate::shell::Env;
use std::collections::HashMap;
use strata_solver::op::{ExecOp, Mount, MountKind, NetworkMode, Op, SecurityMode};
use strata_solver::{Input, VertexId};

/// Where a `#!` heredoc script is mounted.
const PIPES_DIR: &str = "/dev/pipes/";

/// Lowers a RUN.
pub fn lower(
    lw: &mut Lowerer,
    st: &mut StageState,
    run: &RunInstruction,
    sources: &[DependencySource],
) -> Result<(), LowerError> {
    let line = run.origin.span.start_line;
    let mut custom_name = run.origin.code.clone();
    let mut args = run.command.args.clone();
    let mut extra = Vec::new();

    if let Some(first) = run.command.files.first() {
        if args.len() != 1 || !run.command.prepend_shell {
            return Err(LowerError::InvalidRunCommand {
                args: super::go_list(&args),
                line,
            });
        }
        if parse_heredoc(&args[0]).ok().flatten().is_some() {
            let data = if first.chomp {
                chomp_heredoc_content(&first.data)
            } else {
                first.data.clone()
            };
            if st.image.os != "windows" && data.starts_with("#!") {
                let file = llb_normalize("/", &first.name, false);
                let doc = inline_document(lw, &file, data.into_bytes(), 0o755)?;
                extra.push(PlannedMount {
                    target: PIPES_DIR.to_string(),
                    source: Some(doc),
                    selector: "/".to_string(),
                    readonly: true,
                    output: false,
                    kind: MountKind::Bind,
                });
                args = vec![join(&[PIPES_DIR, &first.name])];
            } else {
                args = vec![data];
            }
            custom_name.push_str(&format!(" ({})", summarize_heredoc(&first.data)));
        } else {
            let mut script = args[0].clone();
            for file in &run.command.files {
                script.push('\n');
                script.push_str(&file.data);
                script.push_str(&file.name);
            }
            args = vec![script];
        }
    }
    if run.command.prepend_shell {
        args = st.with_shell(&args);
    }
    if args.is_empty() {
        return Err(LowerError::NoArguments { line });
    }

    let mounts = plan(lw, st, run, sources)?;

    let network = match run.network {
        RunNetwork::Default => st.network,
        RunNetwork::None => NetworkMode::None,
        RunNetwork::Host => NetworkMode::Host,
    };
    if network == NetworkMode::Host && !lw.options.allow_network_host {
        return Err(LowerError::NetworkHostNotAllowed { line });
    }
    let security = match run.security {
        RunSecurity::Sandbox => SecurityMode::Sandbox,
        RunSecurity::Insecure => SecurityMode::Insecure,
    };
    if security == SecurityMode::Insecure && !lw.options.allow_insecure {
        return Err(LowerError::InsecureNotAllowed { line });
    }

    // The progress name shows `****` for variables that receive a secret.
    let mut masked = st.env.clone();
    for name in &mounts.secret_env {
        masked.set(name, "****");
    }
    let raw = lw.lexer.raw_quotes(true).skip_unset_env(true);
    let text = uppercase_cmd(&process_cmd_env(&raw, &custom_name, &masked));
    let name = st.prefix_command(&text, lw.options.multi_platform, true);

    let mut env = st.env.clone();
    if let Some(first) = mounts.ssh.first() {
        env.set_default("SSH_AUTH_SOCK", &first.target);
    }
    if st.platform.os != "windows" {
        env.set_default("PATH", DEFAULT_PATH);
    }

    let rootfs = PlannedMount {
        target: "/".to_string(),
        source: st.vertex,
        selector: "/".to_string(),
        readonly: false,
        output: true,
        kind: MountKind::Bind,
    };
    let mut regular = vec![rootfs];
    regular.extend(extra);
    regular.extend(mounts.regular);
    regular.sort_by(|a, b| a.target.cmp(&b.target));

    let mut inputs: Vec<VertexId> = Vec::new();
    let mut out_mounts = Vec::new();
    let mut outputs = 0;
    for m in regular.into_iter().chain(mounts.secrets).chain(mounts.ssh) {
        let input = m.source.map(|v| input_index(&mut inputs, v));
        let output = m.output.then(|| {
            outputs += 1;
            outputs - 1
        });
        out_mounts.push(Mount {
            input,
            selector: m.selector,
            target: m.target,
            readonly: m.readonly,
            output,
            kind: m.kind,
        });
    }

    let op = Op::Exec(ExecOp {
        args: args.clone(),
        env: env.to_vec(),
        cwd: st.dir.clone(),
        user: st.user.clone(),
        network,
        security,
        hostname: lw.options.hostname.clone(),
        mounts: out_mounts,
    });
    let mut meta = lw.meta(st, name);
    meta.proxy_env = lw.proxy_env.clone();
    let vertex = lw.add(op, inputs.into_iter().map(Input::from).collect(), meta)?;
    let history = format!("RUN {}", run_command_string(&args, &st.build_args, &st.env));
    st.vertex = Some(vertex);
    st.image.commit(history, Some(vertex), true, &lw.created);
    Ok(())
}

/// The position of `v` among `inputs`, added when new.
pub fn input_index(inputs: &mut Vec<VertexId>, v: VertexId) -> usize {
    match inputs.iter().position(|&i| i == v) {
        Some(i) => i,
        None => {
            inputs.push(v);
            inputs.len() - 1
        }
    }
}

/// BuildKit's `runCommandString`: `|N k=v … args…`, each declared build arg once (in
/// first-declaration order, last value), its value taken from the environment when set.
pub fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &StateEnv,
) -> String {
    let mut pairs: Vec<String> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (key, value) in build_args {
        let v = env
            .get(key)
            .map(str::to_string)
            .unwrap_or_else(|| value.clone().unwrap_or_default());
        let entry = format!("{key}={v}");
        match index.get(key.as_str()) {
            Some(&i) => pairs[i] = entry,
            None => {
                index.insert(key, pairs.len());
                pairs.push(entry);
            }
        }
    }
    let mut words = Vec::with_capacity(pairs.len() + 1 + args.len());
    if !pairs.is_empty() {
        words.push(format!("|{}", pairs.len()));
        words.extend(pairs);
    }
    words.extend(args.iter().cloned());
    words.join(" ")
}

/// BuildKit's `summarizeHeredoc`: the first line of the trimmed body, `...` when more
/// follow.
pub fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim().replace("\r\n", "\n");
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lists_build_args() {
        let mut env = StateEnv::default();
        env.set("foo", "bar2");
        env.set("bar", "123");
        let args = vec![
            ("foo".to_string(), Some("bar".to_string())),
            ("bar".to_string(), Some("123".to_string())),
            ("foo".to_string(), None),
            ("unset".to_string(), None),
        ];
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), "ls".to_string()];
        assert_eq!(
            run_command_string(&cmd, &args, &env),
            "|3 foo=bar2 bar=123 unset= /bin/sh -c ls"
        );
        assert_eq!(run_command_string(&cmd, &[], &env), "/bin/sh -c ls");
    }

    #[test]
    fn heredoc_summaries() {
        assert_eq!(summarize_heredoc("  echo hi\n"), "echo hi");
        assert_eq!(summarize_heredoc("a\r\nb\n"), "a...");
        assert_eq!(summarize_heredoc(""), "");
    }
}
