//! Lowering: resolved stages → a build graph (the solver's [`Graph`]) plus the image config
//! and history of the target, as BuildKit's `dockerfile2llb` (`convert.go`,
//! `convert_copy.go`, `convert_runmount.go`, `convert_secrets.go`, `convert_ssh.go`) builds
//! LLB and the image config.
//!
//! Role: the last step of the frontend. Input: a [`Resolution`] from
//! [`crate::instructions::resolve`] (stages reachable from the target in dispatch order,
//! words expanded, ONBUILD triggers first) and [`LowerOptions`] (what the client and the
//! registry told the caller: base image configs, `.dockerignore`, platform, labels,
//! entitlements). Output: [`Lowered`] — the graph, the target vertex, the image config, and
//! each lowered stage's vertex and config.
//!
//! Main entry points: [`lower`]; [`dump`] prints a stable text form of a result (used by
//! the snapshot tests). One file per instruction (`run.rs`, `copy.rs` for COPY and ADD,
//! `workdir.rs`, `env.rs`, …); `from.rs` starts a stage, `stage.rs` holds the per-stage
//! state and the dispatch loop, `context.rs` the source vertices, `config.rs` the image
//! config types.
//!
//! # Contract with the worker: the build context
//!
//! The frontend touches no filesystem. The context is a
//! `SourceOp::Local { name: "context", include, exclude, follow_paths }` vertex, one per
//! distinct set of paths a step reads: a COPY/ADD from the context gets a vertex whose
//! `include` and `follow_paths` are exactly its (cleaned, root-relative) source paths —
//! wildcards included, as patterns — and a `RUN --mount` bind of the context one with its
//! `source`; a step reading the whole context (`COPY . .`) has an empty `include`.
//! `exclude` is always the `.dockerignore` patterns. The worker must checksum exactly what
//! a context vertex selects (the included paths minus the excluded ones, symlinks on the
//! included paths followed) and nothing else: then editing a file a COPY does not select
//! never changes that COPY's cache key. The COPY actions' `src` paths name what is read
//! inside that selection.
//!
//! # Other contracts
//!
//! - Base images: the caller resolves each base image (and `--from`/`from=` image) and
//!   passes its config as a value in [`LowerOptions::base_images`], keyed by the name as
//!   written after expansion (the key resolution uses; give resolution the same images
//!   with [`Image::to_base_image`]). An image not given is taken as an empty config.
//! - Image sources carry the normalized reference (`docker.io/library/alpine:3.19`),
//!   pinned with `@digest` when [`BaseImageConfig::digest`] is known.
//! - Proxy build args (`HTTP_PROXY`…) are not in any exec's `env`: they are in
//!   [`strata_solver::op::VertexMeta::proxy_env`], out of the cache key, and the worker
//!   adds them to the process environment (BuildKit's `ProxyEnv`).
//! - Secrets and SSH agents: mounts name their ids; whether a `required` one exists is
//!   checked by the worker, which holds the session.
//! - History entries of RUN/COPY/ADD/WORKDIR carry the vertex whose output is the image
//!   after the step ([`History::layer`]); the exporter sets `empty_layer` when its diff
//!   against the previous step is empty.
//!
//! Key decision: the code follows BuildKit's dispatch step by step (same state, same
//! order, same names and history texts) rather than a cleaner model, because the graph's
//! shape is what makes caching and deduplication match BuildKit: identical steps in
//! different stages produce identical ops over identical inputs, so [`Graph::add`] makes
//! them one vertex; unused stages are never lowered, so they have no vertex.

mod arg;
mod cmd;
pub mod config;
mod context;
mod copy;
mod dump;
mod entrypoint;
mod env;
mod error;
mod expose;
mod from;
mod healthcheck;
mod label;
mod maintainer;
mod mount;
mod onbuild;
mod paths;
mod run;
mod shell;
mod stage;
mod stopsignal;
mod user;
mod volume;
mod workdir;

pub use config::{
    add_env, ContainerConfig, Empty, HealthConfig, History, Image, RootFs, HISTORY_COMMENT,
};
pub use context::CONTEXT_NAME;
pub use dump::{dump, dump_graph};
pub use error::LowerError;

use crate::instructions::{Platform, Resolution, SourceDateEpoch};
use crate::parser::go_quote;
use stage::{apply_labels, Lowerer};
use std::collections::{BTreeMap, HashMap};
use strata_solver::op::NetworkMode;
use strata_solver::{Graph, VertexId};

/// A base image as the caller resolved it from its registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseImageConfig {
    /// Manifest digest (`sha256:…`) the reference resolved to, to pin the source.
    pub digest: Option<String>,
    /// Its config.
    pub image: Image,
}

/// What lowering needs besides the resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerOptions {
    /// The `--build-arg`s (resolution already applied them); read here for the proxy
    /// variables and `BUILDKIT_CACHE_MOUNT_NS`.
    pub build_args: BTreeMap<String, String>,
    /// `--label`s, set on the target image over its own labels.
    pub labels: BTreeMap<String, String>,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// `--platform`; the build platform when `None` (then the config's platform is the
    /// base image's, as in BuildKit).
    pub target_platform: Option<Platform>,
    /// Several platforms were requested: progress names start with the platform.
    pub multi_platform: bool,
    /// The Dockerfile's escape character (for progress names).
    pub escape: char,
    /// `.dockerignore` patterns, the `exclude` of every context vertex.
    pub dockerignore: Vec<String>,
    /// Base image configs by name as written after expansion.
    pub base_images: HashMap<String, BaseImageConfig>,
    /// `--network`: the default network of RUN.
    pub network: NetworkMode,
    /// The `security.insecure` entitlement.
    pub allow_insecure: bool,
    /// The `network.host` entitlement.
    pub allow_network_host: bool,
    /// `--hostname` of RUN.
    pub hostname: Option<String>,
    /// `SOURCE_DATE_EPOCH` in seconds, when the caller resolved one (a `context` or stage
    /// epoch); otherwise the resolution's numeric value is used.
    pub source_date_epoch: Option<i64>,
    /// `--no-cache-filter`: stages whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            build_platform: Platform::host(),
            target_platform: None,
            multi_platform: false,
            escape: '\\',
            dockerignore: Vec::new(),
            base_images: HashMap::new(),
            network: NetworkMode::Default,
            allow_insecure: false,
            allow_network_host: false,
            hostname: None,
            source_date_epoch: None,
            no_cache_filter: Vec::new(),
        }
    }
}

impl LowerOptions {
    /// The base images in the form [`crate::instructions::ResolveOptions::base_images`]
    /// takes, so resolution and lowering see the same bases.
    pub fn resolve_base_images(&self) -> HashMap<String, crate::instructions::BaseImage> {
        self.base_images
            .iter()
            .map(|(k, v)| (k.clone(), v.image.to_base_image()))
            .collect()
    }
}

/// One lowered stage.
#[derive(Debug, Clone)]
pub struct LoweredStage {
    /// Index in the Dockerfile.
    pub index: usize,
    /// BuildKit's name for it (`AS` name, `stage-N`, or empty for a lone stage).
    pub name: String,
    /// The vertex whose output is the stage's filesystem; `None` for the empty filesystem
    /// (a `FROM scratch` stage with no filesystem step).
    pub vertex: Option<VertexId>,
    /// The stage's image config (without `--label`s).
    pub config: Image,
}

/// The result of [`lower`].
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The build graph.
    pub graph: Graph,
    /// The vertex whose output is the target stage's filesystem.
    pub target: VertexId,
    /// The target image config, history included.
    pub config: Image,
    /// Every lowered stage, in dispatch order.
    pub stages: Vec<LoweredStage>,
}

/// Lowers a resolution to a build graph and the target's image config.
pub fn lower(resolution: &Resolution, options: &LowerOptions) -> Result<Lowered, LowerError> {
    let target_platform = options
        .target_platform
        .clone()
        .unwrap_or_else(|| options.build_platform.clone());
    let epoch = options
        .source_date_epoch
        .or(match resolution.source_date_epoch {
            Some(SourceDateEpoch::Unix(s)) => Some(s),
            _ => None,
        });
    let mut lw = Lowerer {
        resolution,
        options,
        graph: Graph::new(),
        stages: vec![None; resolution.stages.len()],
        lexer: crate::shell::Lexer::new(options.escape),
        target_platform: target_platform.clone(),
        epoch,
        created: epoch.map(config::rfc3339),
        proxy_env: proxy_env(&options.build_args),
    };
    for &index in &resolution.order {
        lw.lower_stage(index)?;
    }
    let target = lw
        .stages
        .get(resolution.target)
        .and_then(Option::as_ref)
        .ok_or_else(|| LowerError::Unresolved {
            what: "the target stage was not dispatched".to_string(),
            line: 0,
        })?;
    let mut config = target.image.clone();
    let target_vertex = target.vertex;
    let target_vertex = lw.materialize(target_vertex)?;
    apply_labels(&mut config, &options.labels);
    if options.target_platform.is_some() {
        // BuildKit's finalizeResultImage for an explicit platform.
        let same =
            target_platform.os == config.os && target_platform.architecture == config.architecture;
        config.os = target_platform.os.clone();
        config.architecture = target_platform.architecture.clone();
        if !target_platform.variant.is_empty() || !same {
            config.variant = target_platform.variant.clone();
        }
        if !target_platform.os_version.is_empty() || !same {
            config.os_version = target_platform.os_version.clone();
        }
    }
    config.created = lw.created.clone();
    let stages = resolution
        .order
        .iter()
        .filter_map(|&i| lw.stages.get(i).and_then(Option::as_ref))
        .map(|st| LoweredStage {
            index: st.index,
            name: st.name.clone(),
            vertex: st.vertex,
            config: st.image.clone(),
        })
        .collect();
    Ok(Lowered {
        graph: lw.graph,
        target: target_vertex,
        config,
        stages,
    })
}

/// BuildKit's `proxyEnvFromBuildArgs` (keys matched case-insensitively, in sorted order, so
/// `http_proxy` wins over `HTTP_PROXY`) and the worker's `proxyEnvList` (each value under
/// its upper- and lower-case name).
pub fn proxy_env(build_args: &BTreeMap<String, String>) -> Vec<String> {
    const NAMES: [&str; 5] = [
        "http_proxy",
        "https_proxy",
        "ftp_proxy",
        "no_proxy",
        "all_proxy",
    ];
    let mut values: [Option<&str>; 5] = [None; 5];
    for (key, value) in build_args {
        if let Some(i) = NAMES.iter().position(|n| key.eq_ignore_ascii_case(n)) {
            values[i] = Some(value);
        }
    }
    let mut out = Vec::new();
    for (name, value) in NAMES.iter().zip(values) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.push(format!("{}={v}", name.to_uppercase()));
            out.push(format!("{name}={v}"));
        }
    }
    out
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a string slice: `["a" "b c"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_list(&["/a".into(), "/b".into()]), "[/a /b]");
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(go_quoted_list(&[]), "[]");
    }

    #[test]
    fn proxies() {
        let args: BTreeMap<String, String> = [
            ("HTTP_PROXY", "http://upper"),
            ("http_proxy", "http://lower"),
            ("NO_PROXY", "localhost"),
            ("OTHER", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            proxy_env(&args),
            vec![
                "HTTP_PROXY=http://lower",
                "http_proxy=http://lower",
                "NO_PROXY=localhost",
                "no_proxy=localhost",
            ]
        );
        assert!(proxy_env(&BTreeMap::new()).is_empty());
    }
}
