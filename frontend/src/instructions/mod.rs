//! The typed instruction layer: parsed AST nodes in, typed and validated instructions out,
//! then grouped into stages and resolved the way BuildKit checks a Dockerfile before it
//! builds anything.
//!
//! Role: this is BuildKit's `frontend/dockerfile/instructions` package (`parse.go`,
//! `commands*.go`, `bflag.go`) plus the checks its `dockerfile2llb` converter makes before
//! producing LLB (target lookup, stage dependencies, `--from` rules, meta-ARG expansion,
//! chmod/checksum/URL rules, SOURCE_DATE_EPOCH).
//!
//! Main types and entry points:
//! - [`parse_instruction`]: one [`Node`] → one [`Instruction`] (one struct per instruction,
//!   each carrying its [`Origin`]: keyword as written, source text, span, comments);
//! - [`parse_stages`]: a whole [`Dockerfile`] → [`Stage`]s and the meta [`ArgInstruction`]s
//!   before the first FROM;
//! - [`resolve`]: stages + build args + target → a [`Resolution`] (target, reachable stages
//!   in dispatch order, base of each stage, dependencies, each stage's instructions with their
//!   words expanded), or BuildKit's error;
//! - [`Error`]: every failure, `Display` being BuildKit's message and the span kept aside.
//!
//! Key decision: the layer keeps BuildKit's two-step reading. Parsing an instruction never
//! expands variables (a `--mount` is only checked for `from=$VAR`, `--chmod` not at all);
//! everything that depends on ARG/ENV values is checked by [`resolve`], which walks the
//! reachable stages in BuildKit's dispatch order with the same variable scopes, so errors
//! come out in the same order and with the same texts. Nothing here touches the build
//! context or a registry: what a base image would contribute (its ENV, WORKDIR) can be
//! passed in, and is otherwise taken as empty.

mod arg;
mod chmod;
mod cmd;
mod command_line;
mod copy;
mod csv;
mod digest;
mod entrypoint;
mod env;
mod epoch;
mod error;
mod expose;
mod flags;
mod from;
mod git_ref;
mod go_format;
mod healthcheck;
mod key_value;
mod label;
mod maintainer;
mod mount;
mod onbuild;
mod platform;
mod ports;
mod reference;
mod resolve;
mod run;
mod shell_instruction;
mod signal;
mod stages;
mod stopsignal;
pub(crate) mod suggest;
pub(crate) use ports::port_range;
mod user;
mod volume;
mod workdir;

use crate::parser::{Dockerfile, Node, Span};

pub use arg::{ArgDefinition, ArgInstruction};
pub use chmod::{validate_chmod, Chmod};
pub use cmd::CmdInstruction;
pub use command_line::{CommandLine, InlineFile};
pub use copy::{AddInstruction, CopyInstruction, SourceContent, SourcesAndDest};
pub use entrypoint::EntrypointInstruction;
pub use env::EnvInstruction;
pub use epoch::SourceDateEpoch;
pub use error::Error;
pub use expose::{expose_created_by, ExposeInstruction};
pub use flags::{BFlags, FlagError, FlagId, FlagKind};
pub use from::FromInstruction;
pub use git_ref::{is_git_source, is_http_source, parse_git_ref, GitRef, GitRefError};
pub use healthcheck::{healthcheck_created_by, HealthConfig, HealthcheckInstruction};
pub use key_value::KeyValue;
pub use label::LabelInstruction;
pub use maintainer::MaintainerInstruction;
pub use mount::{
    parse_mount, ram_in_bytes, Mount, MountError, MountSpec, MountType, ShareMode, ValueExpander,
};
pub use onbuild::OnbuildInstruction;
pub use platform::{parse_platform, Platform};
pub use ports::{parse_port, parse_ports, PortError};
pub use reference::{parse_image_reference, ImageReference};
pub use resolve::{
    resolve, BaseImage, Dependency, DependencySource, Resolution, ResolveOptions, ResolvedStage,
    StageBase, DEFAULT_PATH,
};
pub use run::{Device, NetworkMode, RunInstruction, SecurityMode};
pub use shell_instruction::ShellInstruction;
pub use signal::parse_signal;
pub use stages::{parse_stages, MetaArg, Stage};
pub use stopsignal::StopSignalInstruction;
pub use user::UserInstruction;
pub use volume::VolumeInstruction;
pub use workdir::WorkdirInstruction;

/// Every instruction keyword, upper case, in alphabetical order (the suggestion candidates).
pub const INSTRUCTION_NAMES: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// What every instruction keeps of its source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The keyword exactly as written (`RUN`, `run`, `Run`), for casing lints.
    pub keyword: String,
    /// The logical line, trimmed: BuildKit's `String()` of a command, used in progress names
    /// and the `com.docker.dockerfile.v1.command` description.
    pub code: String,
    /// Where the instruction is.
    pub span: Span,
    /// Comment lines directly above it.
    pub comments: Vec<String>,
}

impl Origin {
    fn of(node: &Node) -> Origin {
        Origin {
            keyword: node.keyword.clone(),
            code: node.original.trim().to_string(),
            span: node.span,
            comments: node.comments.clone(),
        }
    }
}

/// One typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM [--platform=…] base [AS name]`: starts a stage.
    From(FromInstruction),
    /// `RUN`.
    Run(RunInstruction),
    /// `CMD`.
    Cmd(CmdInstruction),
    /// `ENTRYPOINT`.
    Entrypoint(EntrypointInstruction),
    /// `SHELL [...]`.
    Shell(ShellInstruction),
    /// `LABEL k=v …`.
    Label(LabelInstruction),
    /// `ENV k=v …`.
    Env(EnvInstruction),
    /// `MAINTAINER name`.
    Maintainer(MaintainerInstruction),
    /// `EXPOSE ports…`.
    Expose(ExposeInstruction),
    /// `ADD`.
    Add(AddInstruction),
    /// `COPY`.
    Copy(CopyInstruction),
    /// `VOLUME`.
    Volume(VolumeInstruction),
    /// `USER`.
    User(UserInstruction),
    /// `WORKDIR`.
    Workdir(WorkdirInstruction),
    /// `ARG name[=default] …`.
    Arg(ArgInstruction),
    /// `ONBUILD instruction`.
    Onbuild(OnbuildInstruction),
    /// `STOPSIGNAL`.
    StopSignal(StopSignalInstruction),
    /// `HEALTHCHECK`.
    Healthcheck(HealthcheckInstruction),
}

impl Instruction {
    /// The source line's keyword, text, span and comments.
    pub fn origin(&self) -> &Origin {
        match self {
            Instruction::From(i) => &i.origin,
            Instruction::Run(i) => &i.origin,
            Instruction::Cmd(i) => &i.origin,
            Instruction::Entrypoint(i) => &i.origin,
            Instruction::Shell(i) => &i.origin,
            Instruction::Label(i) => &i.origin,
            Instruction::Env(i) => &i.origin,
            Instruction::Maintainer(i) => &i.origin,
            Instruction::Expose(i) => &i.origin,
            Instruction::Add(i) => &i.origin,
            Instruction::Copy(i) => &i.origin,
            Instruction::Volume(i) => &i.origin,
            Instruction::User(i) => &i.origin,
            Instruction::Workdir(i) => &i.origin,
            Instruction::Arg(i) => &i.origin,
            Instruction::Onbuild(i) => &i.origin,
            Instruction::StopSignal(i) => &i.origin,
            Instruction::Healthcheck(i) => &i.origin,
        }
    }

    /// Where the instruction is.
    pub fn span(&self) -> Span {
        self.origin().span
    }

    /// The instruction's name, upper case (`RUN`).
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Env(_) => "ENV",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

/// Everything an instruction parser needs from its node.
#[derive(Debug)]
struct Request<'a> {
    node: &'a Node,
    /// BuildKit's flattened argument list: for ONBUILD, the nested keyword then its words.
    args: Vec<String>,
    flags: BFlags,
}

impl Request<'_> {
    fn span(&self) -> Span {
        self.node.span
    }

    fn origin(&self) -> Origin {
        Origin::of(self.node)
    }

    /// Checks the flags declared so far against the ones given.
    fn parse_flags(&mut self) -> Result<(), Error> {
        let span = self.span();
        self.flags
            .parse()
            .map_err(|error| Error::Flag { error, span })
    }
}

/// Turns one AST node into a typed instruction, with BuildKit's validation and messages.
///
/// The error is the bare message (`MAINTAINER requires exactly one argument`); see
/// [`parse_stages`] for the file-level form with its line number.
pub fn parse_instruction(node: &Node) -> Result<Instruction, Error> {
    let mut args = node.args.clone();
    if let Some(inner) = &node.onbuild {
        args = std::iter::once(inner.keyword.clone())
            .chain(inner.args.iter().cloned())
            .collect();
    }
    let mut req = Request {
        node,
        args,
        flags: BFlags::new(&node.flags),
    };
    let instruction = match node.keyword.to_lowercase().as_str() {
        "env" => Instruction::Env(env::parse(&mut req)?),
        "maintainer" => Instruction::Maintainer(maintainer::parse(&mut req)?),
        "label" => Instruction::Label(label::parse(&mut req)?),
        "add" => Instruction::Add(copy::parse_add(&mut req)?),
        "copy" => Instruction::Copy(copy::parse_copy(&mut req)?),
        "from" => Instruction::From(from::parse(&mut req)?),
        "onbuild" => Instruction::Onbuild(onbuild::parse(&mut req)?),
        "workdir" => Instruction::Workdir(workdir::parse(&mut req)?),
        "run" => Instruction::Run(run::parse(&mut req)?),
        "cmd" => Instruction::Cmd(cmd::parse(&mut req)?),
        "healthcheck" => Instruction::Healthcheck(healthcheck::parse(&mut req)?),
        "entrypoint" => Instruction::Entrypoint(entrypoint::parse(&mut req)?),
        "expose" => Instruction::Expose(expose::parse(&mut req)?),
        "user" => Instruction::User(user::parse(&mut req)?),
        "volume" => Instruction::Volume(volume::parse(&mut req)?),
        "stopsignal" => Instruction::StopSignal(stopsignal::parse(&mut req)?),
        "arg" => Instruction::Arg(arg::parse(&mut req)?),
        "shell" => Instruction::Shell(shell_instruction::parse(&mut req)?),
        _ => {
            return Err(Error::UnknownInstruction {
                instruction: node.keyword.clone(),
                suggestion: suggest::closest(&node.keyword, INSTRUCTION_NAMES, false),
                span: node.span,
            })
        }
    };
    Ok(instruction)
}

/// BuildKit's `getDocComment`: the text after `name ` on the first comment line starting so.
fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Hand-built nodes, so the layer can be tested without the parser.
    use crate::parser::{Heredoc, Node, Span};

    /// A node with the given keyword, flags and argument words.
    pub fn node(keyword: &str, flags: &[&str], args: &[&str]) -> Node {
        let mut original = keyword.to_string();
        for w in flags.iter().chain(args) {
            original.push(' ');
            original.push_str(w);
        }
        Node {
            keyword: keyword.to_string(),
            flags: flags.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            onbuild: None,
            json: false,
            heredocs: Vec::new(),
            original,
            comments: Vec::new(),
            span: Span {
                start_line: 1,
                end_line: 1,
                column: 1,
            },
        }
    }

    /// The same in JSON (exec) form.
    pub fn json_node(keyword: &str, args: &[&str]) -> Node {
        Node {
            json: true,
            ..node(keyword, &[], args)
        }
    }

    /// A heredoc body.
    pub fn heredoc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
        Heredoc {
            name: name.to_string(),
            content: content.to_string(),
            expand,
            chomp,
            file_descriptor: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::node;
    use super::*;

    #[test]
    fn unknown_instructions_get_suggestions() {
        let err = parse_instruction(&node("FNTRYPOINT", &[], &[""])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown instruction: FNTRYPOINT (did you mean ENTRYPOINT?)"
        );
        let err = parse_instruction(&node("runn", &[], &[""])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown instruction: runn (did you mean run?)"
        );
        let err = parse_instruction(&node("XYZZY", &[], &["bar"])).unwrap_err();
        assert_eq!(err.to_string(), "unknown instruction: XYZZY");
    }

    #[test]
    fn keyword_is_case_insensitive_and_kept() {
        let i = parse_instruction(&node("wOrKdIr", &[], &["/x"])).unwrap();
        assert_eq!(i.name(), "WORKDIR");
        assert_eq!(i.origin().keyword, "wOrKdIr");
    }

    #[test]
    fn nothing_panics_on_odd_argument_lists() {
        // BuildKit's TestNilLinter: every keyword with a handful of argument shapes.
        let shapes: &[&[&str]] = &[
            &[],
            &["foo=bar"],
            &["a"],
            &["a", "b"],
            &["a", "b", "c"],
            &["0", "0"],
            &[""],
            &["", "", ""],
            &["<<EOF"],
            &["a", "<<EOF"],
        ];
        for name in INSTRUCTION_NAMES {
            for shape in shapes {
                for flags in [
                    &[][..],
                    &["--x"][..],
                    &["--mount=type=cache", "--network=none"][..],
                ] {
                    let _ = parse_instruction(&node(name, flags, shape));
                    let mut json = node(name, flags, shape);
                    json.json = true;
                    let _ = parse_instruction(&json);
                }
            }
        }
    }

    #[test]
    fn doc_comments() {
        let comments = vec!["foo sets foo".to_string(), "bar is bar".to_string()];
        assert_eq!(doc_comment(&comments, "bar"), "is bar");
        assert_eq!(doc_comment(&comments, "baz"), "");
        assert_eq!(doc_comment(&comments, ""), "");
    }
}
