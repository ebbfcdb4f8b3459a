//! Errors of the typed instruction layer and of stage resolution.
//!
//! Each variant's `Display` is BuildKit's message, word for word (capitals included where
//! BuildKit has them), so users and tests can compare it; the location is kept beside it in
//! `span` fields and never printed by `Display`.

use super::flags::FlagError;
use super::go_format::go_quote;
use super::mount::MountError;
use super::ports::PortError;
use super::suggest;
use super::Span;

/// An instruction that cannot be typed, or a set of stages that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- argument counts and shapes -------------------------------------------------------
    /// MAINTAINER, WORKDIR, USER, STOPSIGNAL without exactly one argument.
    #[error("{keyword} requires exactly one argument")]
    ExactlyOneArgument {
        /// Instruction name, upper case.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// An instruction that needs arguments and has none.
    #[error("{keyword} requires at least one argument")]
    AtLeastOneArgument {
        /// Instruction name, upper case.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// ADD/COPY with a single argument.
    #[error("{keyword} requires at least two arguments, but only one was provided. Destination could not be determined")]
    NoDestination {
        /// `ADD` or `COPY`.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// ADD/COPY whose last argument is a heredoc.
    #[error("{keyword} cannot accept a heredoc as a destination")]
    HeredocDestination {
        /// `ADD` or `COPY`.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// ENV/LABEL/ARG with an empty name.
    #[error("{keyword} names can not be blank")]
    BlankName {
        /// `ENV`, `LABEL` or `ARG`.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// ENV/LABEL whose AST does not come in (key, value, delimiter) triples.
    #[error("Bad input to {keyword}, too many arguments")]
    TooManyArguments {
        /// `ENV` or `LABEL`.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// SHELL in shell form.
    #[error("{keyword} requires the arguments to be in JSON form")]
    NotJson {
        /// `SHELL`.
        keyword: &'static str,
        /// Where.
        span: Span,
    },
    /// FROM with 2 or more than 3 words, or a 3-word form without `AS`.
    #[error("FROM requires either one or three arguments")]
    FromArguments {
        /// Where.
        span: Span,
    },
    /// `FROM x AS <name>` with a name that is not `[a-z][a-z0-9-_.]*` once lower-cased.
    #[error(
        "invalid name for build stage: {}, name can't start with a number or contain symbols",
        go_quote(name)
    )]
    InvalidStageName {
        /// The name as written.
        name: String,
        /// Where.
        span: Span,
    },
    /// `ONBUILD ONBUILD …`.
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChained {
        /// Where.
        span: Span,
    },
    /// `ONBUILD FROM …` / `ONBUILD MAINTAINER …`.
    #[error("{trigger} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger {
        /// The trigger keyword, upper case.
        trigger: String,
        /// Where.
        span: Span,
    },
    /// A keyword that is not an instruction.
    #[error("unknown instruction: {instruction}{}", suggest::suffix(suggestion))]
    UnknownInstruction {
        /// The keyword as written.
        instruction: String,
        /// Closest instruction name.
        suggestion: Option<String>,
        /// Where.
        span: Span,
    },
    /// A bad `--flag`.
    #[error("{error}")]
    Flag {
        /// What is wrong with it.
        error: FlagError,
        /// Where.
        span: Span,
    },

    // --- HEALTHCHECK ----------------------------------------------------------------------
    /// `HEALTHCHECK NONE something`.
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments {
        /// Where.
        span: Span,
    },
    /// `HEALTHCHECK CMD` with nothing after it.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand {
        /// Where.
        span: Span,
    },
    /// `HEALTHCHECK FOO …`.
    #[error("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(kind))]
    HealthcheckType {
        /// The type word, upper case.
        kind: String,
        /// Where.
        span: Span,
    },
    /// A duration flag that is not Go duration syntax (Go's `time:` message).
    #[error("{message}")]
    Duration {
        /// Go's message, e.g. `time: invalid duration "x"`.
        message: String,
        /// Where.
        span: Span,
    },
    /// A duration flag between 0 and 1ms (exclusive), or negative.
    #[error("Interval {} cannot be less than 1ms", go_quote(flag))]
    IntervalTooShort {
        /// Flag name without dashes.
        flag: String,
        /// Where.
        span: Span,
    },
    /// `--retries` that is not a 32-bit integer (Go's `strconv` message).
    #[error("{message}")]
    Retries {
        /// Go's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// `--retries` below zero.
    #[error("--retries cannot be negative ({value})")]
    NegativeRetries {
        /// The value.
        value: i64,
        /// Where.
        span: Span,
    },

    // --- RUN ------------------------------------------------------------------------------
    /// `--network` other than default/none/host.
    #[error("invalid network mode {}", go_quote(value))]
    NetworkMode {
        /// The value given.
        value: String,
        /// Where.
        span: Span,
    },
    /// `--security` other than sandbox/insecure.
    #[error("security {} is not valid", go_quote(value))]
    SecurityMode {
        /// The value given.
        value: String,
        /// Where.
        span: Span,
    },
    /// A bad `--mount` (at parse time, or once expanded).
    #[error("{error}")]
    Mount {
        /// What is wrong with it.
        error: MountError,
        /// Where.
        span: Span,
    },
    /// A bad `--device`.
    #[error("{message}")]
    Device {
        /// BuildKit's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// `RUN --device` outside the labs channel, as in BuildKit's default build.
    #[error("device feature is only supported in Dockerfile frontend 1.14.0-labs or later")]
    DeviceUnsupported {
        /// Where.
        span: Span,
    },

    // --- VOLUME / STOPSIGNAL / EXPOSE -------------------------------------------------------
    /// An empty VOLUME path.
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume {
        /// Where.
        span: Span,
    },
    /// STOPSIGNAL that is neither a number nor a known signal name.
    #[error("invalid signal: {signal}")]
    InvalidSignal {
        /// The value given.
        signal: String,
        /// Where.
        span: Span,
    },
    /// An EXPOSE port that is not a port spec.
    #[error("{error}")]
    Port {
        /// What is wrong with it.
        error: PortError,
        /// Where.
        span: Span,
    },

    // --- grouping into stages -------------------------------------------------------------
    /// An instruction other than ARG before the first FROM.
    #[error("no build stage in current context")]
    NoBuildStage {
        /// Where.
        span: Span,
    },
    /// No FROM at all.
    #[error("dockerfile contains no stages to build")]
    NoStages,
    /// An instruction error as BuildKit reports it for a whole file.
    #[error("dockerfile parse error on line {line}: {error}")]
    AtLine {
        /// First line of the instruction.
        line: usize,
        /// The instruction's error.
        error: Box<Error>,
    },

    // --- stage resolution -----------------------------------------------------------------
    /// Variable expansion failed (`${VAR:?message}`, bad syntax); the shell's message.
    #[error("{message}")]
    Expansion {
        /// The expander's message, e.g. `FOO: custom error`.
        message: String,
        /// Where.
        span: Span,
    },
    /// FROM whose base name is empty after expansion.
    #[error("base name ({base}) should not be blank")]
    BlankBaseName {
        /// The base name as written.
        base: String,
        /// Where.
        span: Span,
    },
    /// `FROM --platform=` whose expansion failed.
    #[error("failed to process arguments for platform {result}: {message}")]
    PlatformExpansion {
        /// What the expansion produced so far.
        result: String,
        /// The expander's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// `FROM --platform=` that expands to nothing.
    #[error(
        "empty platform value from expression {expression}{}",
        suggest::suffix(suggestion)
    )]
    EmptyPlatform {
        /// The flag value as written.
        expression: String,
        /// A close build argument name, when an unknown variable was used.
        suggestion: Option<String>,
        /// Where.
        span: Span,
    },
    /// `FROM --platform=` that is not a platform.
    #[error("failed to parse platform {expression}: {message}")]
    InvalidPlatform {
        /// The flag value as written.
        expression: String,
        /// Why (containerd's message, with a suggestion when there is one).
        message: String,
        /// Where.
        span: Span,
    },
    /// A base image or `--from` image that is not a valid image reference.
    #[error("failed to parse stage name {}: {message}", go_quote(name))]
    InvalidReference {
        /// The name, expanded.
        name: String,
        /// Why (distribution/reference's message).
        message: String,
        /// Where.
        span: Span,
    },
    /// `--target` naming no stage.
    #[error(
        "target stage {} could not be found{}",
        go_quote(target),
        suggest::suffix(suggestion)
    )]
    TargetNotFound {
        /// The requested target.
        target: String,
        /// Closest stage name.
        suggestion: Option<String>,
    },
    /// `COPY --from=$VAR`.
    #[error("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")]
    FromVariable {
        /// Where.
        span: Span,
    },
    /// `COPY --from=<n>` with no stage `n`.
    #[error("invalid stage index {index}")]
    InvalidStageIndex {
        /// The index given.
        index: i64,
        /// Where.
        span: Span,
    },
    /// Stages that copy or mount from each other in a loop.
    #[error("circular dependency detected on stage: {stage}")]
    CircularDependency {
        /// The stage where the loop was found.
        stage: String,
        /// The instructions forming the loop.
        spans: Vec<Span>,
    },
    /// `COPY --from` a stage that is defined later in the file.
    #[error(
        "cannot copy from stage {}, it needs to be defined before current stage {}",
        go_quote(from),
        go_quote(current)
    )]
    CopyFromLaterStage {
        /// The `--from` value.
        from: String,
        /// The copying stage's name.
        current: String,
        /// Where.
        span: Span,
    },
    /// `RUN --mount=from=` a stage that is defined later in the file.
    #[error(
        "cannot mount from stage {} to {}, stage needs to be defined before current command",
        go_quote(from),
        go_quote(target)
    )]
    MountFromLaterStage {
        /// The `from=` value.
        from: String,
        /// The mount target.
        target: String,
        /// Where.
        span: Span,
    },
    /// A mount whose target resolves to `/`.
    #[error("invalid mount target {}", go_quote(target))]
    InvalidMountTarget {
        /// The resolved target.
        target: String,
        /// Where.
        span: Span,
    },
    /// `--chmod` that looks numeric but is not an octal mode up to 07777.
    #[error(
        "invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777"
    )]
    InvalidChmod {
        /// The value given.
        value: String,
        /// Where.
        span: Span,
    },
    /// `--chmod` that is neither octal nor a symbolic mode.
    #[error("invalid syntax")]
    ChmodSyntax {
        /// Where.
        span: Span,
    },
    /// `COPY --checksum` (reachable only through hand-built values).
    #[error("checksum can't be specified for COPY")]
    ChecksumForCopy {
        /// Where.
        span: Span,
    },
    /// `ADD --checksum` with several sources.
    #[error("checksum can't be specified for multiple sources")]
    ChecksumMultipleSources {
        /// Where.
        span: Span,
    },
    /// `ADD --checksum` on a source that is neither HTTP(S) nor Git.
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumSource {
        /// Where.
        span: Span,
    },
    /// `COPY` of a Git URL.
    #[error("source can't be a git ref for COPY")]
    CopyGitSource {
        /// Where.
        span: Span,
    },
    /// `COPY` of an HTTP(S) URL.
    #[error("source can't be a URL for COPY")]
    CopyUrlSource {
        /// Where.
        span: Span,
    },
    /// A Git source whose URL or query is malformed.
    #[error("{message}")]
    GitRef {
        /// BuildKit's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// `ADD --keep-git-dir` contradicting the URL's `keep-git-dir=` query.
    #[error("inconsistent keep-git-dir configuration")]
    KeepGitDirConflict {
        /// Where.
        span: Span,
    },
    /// `ADD --checksum` contradicting the URL's `checksum=` query.
    #[error("checksum mismatch {} != {}", go_quote(flag), go_quote(url))]
    ChecksumMismatch {
        /// The flag's value.
        flag: String,
        /// The URL's value.
        url: String,
        /// Where.
        span: Span,
    },
    /// `ADD --checksum` that is not a digest.
    #[error("{message}")]
    Digest {
        /// go-digest's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// `SOURCE_DATE_EPOCH` that is neither a number, `context`, nor a stage name.
    #[error("invalid SOURCE_DATE_EPOCH: {value}")]
    SourceDateEpoch {
        /// The value.
        value: String,
    },
    /// A `SOURCE_DATE_EPOCH` source stage that is not a single remote ADD on scratch.
    #[error("{message}")]
    SourceDateEpochStage {
        /// BuildKit's message.
        message: String,
        /// Where.
        span: Span,
    },
    /// An ONBUILD trigger of a base stage that does not parse as one instruction.
    #[error("{message}")]
    OnbuildExpression {
        /// The parser's message.
        message: String,
        /// Where (the inheriting stage's FROM).
        span: Span,
    },
}

impl Error {
    /// Where the error is, when it concerns one place.
    pub fn span(&self) -> Option<Span> {
        use Error::*;
        match self {
            NoStages | SourceDateEpoch { .. } | TargetNotFound { .. } => None,
            AtLine { error, .. } => error.span(),
            CircularDependency { spans, .. } => spans.first().copied(),
            ExactlyOneArgument { span, .. }
            | AtLeastOneArgument { span, .. }
            | NoDestination { span, .. }
            | HeredocDestination { span, .. }
            | BlankName { span, .. }
            | TooManyArguments { span, .. }
            | NotJson { span, .. }
            | FromArguments { span }
            | InvalidStageName { span, .. }
            | OnbuildChained { span }
            | OnbuildTrigger { span, .. }
            | UnknownInstruction { span, .. }
            | Flag { span, .. }
            | HealthcheckNoneArguments { span }
            | HealthcheckMissingCommand { span }
            | HealthcheckType { span, .. }
            | Duration { span, .. }
            | IntervalTooShort { span, .. }
            | Retries { span, .. }
            | NegativeRetries { span, .. }
            | NetworkMode { span, .. }
            | SecurityMode { span, .. }
            | Mount { span, .. }
            | Device { span, .. }
            | DeviceUnsupported { span }
            | EmptyVolume { span }
            | InvalidSignal { span, .. }
            | Port { span, .. }
            | NoBuildStage { span }
            | Expansion { span, .. }
            | BlankBaseName { span, .. }
            | PlatformExpansion { span, .. }
            | EmptyPlatform { span, .. }
            | InvalidPlatform { span, .. }
            | InvalidReference { span, .. }
            | FromVariable { span }
            | InvalidStageIndex { span, .. }
            | CopyFromLaterStage { span, .. }
            | MountFromLaterStage { span, .. }
            | InvalidMountTarget { span, .. }
            | InvalidChmod { span, .. }
            | ChmodSyntax { span }
            | ChecksumForCopy { span }
            | ChecksumMultipleSources { span }
            | ChecksumSource { span }
            | CopyGitSource { span }
            | CopyUrlSource { span }
            | GitRef { span, .. }
            | KeepGitDirConflict { span }
            | ChecksumMismatch { span, .. }
            | Digest { span, .. }
            | SourceDateEpochStage { span, .. }
            | OnbuildExpression { span, .. } => Some(*span),
        }
    }

    /// The error without BuildKit's `dockerfile parse error on line N:` wrapper.
    pub fn inner(&self) -> &Error {
        match self {
            Error::AtLine { error, .. } => error.inner(),
            other => other,
        }
    }
}
