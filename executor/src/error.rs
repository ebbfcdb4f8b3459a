//! The executor's error type, [`ExecError`], gathering each module's own.
//!
//! Role: one type for callers to match on; each module keeps its own `thiserror` enum with
//! the context it knows, and this one wraps them. `ProcessFailed` carries BuildKit's exact
//! text for a command that ran and failed.

use crate::mount::MountError;
use crate::process::ExitStatus;
use crate::rootfs::RootfsError;
use crate::runc::RuncError;
use crate::sandbox::SandboxError;
use crate::user::UserError;

/// Why a run did not produce an exit status, or why that status is a failure.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The process ran and failed (see [`ExitStatus::check`]).
    #[error("process \"{command}\" did not complete successfully: exit code: {}", status.exit_code())]
    ProcessFailed {
        /// The arguments joined by spaces, as BuildKit quotes them.
        command: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The run was cancelled; the sandbox was killed and cleaned up.
    #[error("run cancelled")]
    Cancelled,
    /// The spec cannot be run as given.
    #[error("invalid run spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// The user could not be resolved in the rootfs.
    #[error(transparent)]
    User(#[from] UserError),
    /// The root filesystem could not be prepared.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A mount could not be prepared.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The native sandbox failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The runc backend failed.
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// The executor's state directory could not be prepared.
    #[error("executor state dir {path:?}: {source}")]
    StateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
