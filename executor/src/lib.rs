//! `strata-executor`: runs one process inside a root filesystem, confined as Docker confines a
//! container, and reports how it ended.
//!
//! Role: the RUN step's sandbox. An [`Executor`] takes a [`RunSpec`] (rootfs as an overlay of
//! snapshot layers or a directory, command, env, user, cwd, extra mounts, network and security
//! modes, hostname and `/etc` files), streams the process's stdout and stderr into an
//! [`OutputSink`], and returns its [`ExitStatus`]; [`ExitStatus::check`] turns a failure into
//! BuildKit's error text. Two backends: [`Backend::Native`] (namespaces made directly, the
//! default, a few milliseconds per run) and [`Backend::Runc`] / [`Backend::Crun`] (an OCI bundle run
//! by `runc` or `crun`, to check the native one against real runtimes).
//!
//! Module map: `spec` (input types), `namespace`, `rootfs` (overlay mounting of any depth,
//! stub cleanup), `mount` (the sandbox's fixed mounts), `user` (USER resolution),
//! `capability`, `seccomp` (Docker's profile → BPF), `process` (exit status, PATH lookup),
//! `supervise` (output pump), `cancel`, `layers` (bind mounts of snapshot layers), `sandbox`
//! (native backend), `runc` (any OCI runtime: runc, crun), and `sys`, the only module with
//! `unsafe`.
//!
//! Key decision — a blocking API with a cancel token, not an async fn: a run is a few
//! syscalls plus one `poll(2)` loop over the output pipes, the sandbox's pidfd and the
//! token's eventfd, so it needs no runtime and the crate depends on none. An async caller runs
//! it on a blocking thread and holds a [`CancelOnDrop`] guard in its future, so dropping the
//! future kills the sandbox:
//!
//! ```ignore
//! let token = CancelToken::new();
//! let guard = token.drop_guard();
//! let status = tokio::task::spawn_blocking(move || exec.run(&spec, &mut sink, &token)).await?;
//! guard.disarm();
//! ```

mod cancel;
mod capability;
mod error;
mod layers;
mod mount;
mod namespace;
mod netns;
mod output;
mod process;
mod rootfs;
mod runc;
mod sandbox;
mod seccomp;
mod spec;
mod supervise;
mod user;

#[allow(unsafe_code)]
mod sys;

use std::path::{Path, PathBuf};

pub use cancel::{CancelOnDrop, CancelToken};
pub use error::ExecError;
pub use mount::MountError;
pub use output::{CollectOutput, DiscardOutput, OutputSink};
pub use process::ExitStatus;
pub use rootfs::RootfsError;
pub use runc::RuncError;
pub use sandbox::SandboxError;
pub use seccomp::SeccompError;
pub use spec::{
    HostEntry, MountSpec, Network, Rootfs, RunSpec, Security, DEFAULT_HOSTNAME, DEFAULT_PATH,
};
pub use user::{ExecUser, UserError};

/// Docker's default capability set as the mask `/proc/<pid>/status` prints
/// (`CapEff: 00000000a80425fb` for root in a sandbox).
pub const DEFAULT_CAPABILITIES: u64 = capability::default_mask();

/// Where the scratch upper directories of layered bind mounts live, under the state dir.
const LAYERS_DIR: &str = "binds";

/// Which implementation runs the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Linux namespaces set up by this crate (the default).
    Native,
    /// An OCI bundle run by `runc` (path to the binary).
    Runc(PathBuf),
    /// An OCI bundle run by `crun` (path to the binary), the same way as runc.
    Crun(PathBuf),
}

/// Runs processes in sandboxes. Cheap to share between threads; runs are independent.
#[derive(Debug)]
pub struct Executor {
    backend: BackendImpl,
    state_dir: PathBuf,
    /// Network namespaces made ahead of time for `--network none` (native backend; started
    /// by the first such run).
    netns: std::sync::OnceLock<Option<netns::NetnsPool>>,
}

#[derive(Debug)]
enum BackendImpl {
    Native,
    Runc(runc::Runc),
}

impl Executor {
    /// An executor keeping its state under `state_dir` (created if missing; an empty
    /// directory of its own, such as `$ROOT/v1/executor`: the native backend mounts a private
    /// tmpfs over it inside each sandbox, and the runc backend keeps bundles there).
    /// The runc backend removes the containers and bundles of dead supervisors here.
    pub fn new(backend: Backend, state_dir: impl Into<PathBuf>) -> Result<Self, ExecError> {
        let state_dir = state_dir.into();
        std::fs::create_dir_all(&state_dir).map_err(|e| ExecError::StateDir {
            path: state_dir.clone(),
            source: e,
        })?;
        let backend = match backend {
            Backend::Native => {
                let dir = state_dir.join("native");
                std::fs::create_dir_all(&dir).map_err(|e| ExecError::StateDir {
                    path: dir,
                    source: e,
                })?;
                BackendImpl::Native
            }
            Backend::Runc(bin) => BackendImpl::Runc(runc::Runc::new(&state_dir, bin, "runc")?),
            Backend::Crun(bin) => BackendImpl::Runc(runc::Runc::new(&state_dir, bin, "crun")?),
        };
        layers::clean_stale(&state_dir.join(LAYERS_DIR));
        Ok(Executor {
            backend,
            state_dir,
            netns: std::sync::OnceLock::new(),
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Runs `spec` to completion, streaming output into `sink`; blocks the calling thread.
    ///
    /// Returns how the process ended (a non-zero exit is `Ok`; see [`ExitStatus::check`]).
    /// When `cancel` fires, the whole sandbox is killed, everything is unmounted and
    /// [`ExecError::Cancelled`] is returned.
    pub fn run(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError> {
        let mut scratch = layers::LayerScratch::new(&self.state_dir.join(LAYERS_DIR));
        match &self.backend {
            BackendImpl::Native => {
                let netns = match spec.network {
                    Network::None => self
                        .netns
                        .get_or_init(netns::NetnsPool::start)
                        .as_ref()
                        .and_then(netns::NetnsPool::take),
                    Network::Host => None,
                };
                sandbox::run(
                    &self.state_dir.join("native"),
                    &mut scratch,
                    spec,
                    netns,
                    sink,
                    cancel,
                )
            }
            BackendImpl::Runc(r) => r.run(&mut scratch, spec, sink, cancel),
        }
    }
}
