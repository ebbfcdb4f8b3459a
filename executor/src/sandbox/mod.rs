//! The native backend: a sandbox made directly with Linux namespaces, no runtime binary.
//!
//! Role: [`run`] prepares a [`Plan`](plan::Plan), clones a child into new mount, PID, UTS, IPC
//! (and network) namespaces, and supervises it: streams its output, answers its request for
//! the user (resolved from the sandbox's own `/etc/passwd`, read through `/proc/<pid>/root`),
//! watches its pidfd and the cancel token, reaps it, and removes mount stubs from the layer.
//!
//! Key decisions:
//! - All sandbox state lives in the sandbox's mount namespace, including the tmpfs holding
//!   the generated `/etc` files and the rootfs mountpoint (a private tmpfs over the
//!   executor's state dir): when its last process dies the kernel unmounts everything, so a
//!   `kill -9` of the supervisor leaves no mount behind, and the child's parent-death signal
//!   (SIGKILL) takes the sandbox down with its supervisor.
//! - Cancelling sends SIGKILL to PID 1 of the sandbox through its pidfd; the kernel then kills
//!   every process of the PID namespace, and the wait returns only when they are all gone.
//! - The supervisor is synchronous (poll on pipes, control socket, pidfd and cancel eventfd):
//!   one blocking thread per running step, no async runtime inside the executor.

mod child;
mod plan;
mod protocol;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    recv, send, socketpair, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{pidfd_send_signal, waitid, Pid, Signal, WaitId, WaitIdOptions};

use crate::cancel::CancelToken;
use crate::error::ExecError;
use crate::layers::LayerScratch;
use crate::output::OutputSink;
use crate::process::{self, ExitStatus};
use crate::rootfs::{self, Stub};
use crate::seccomp::SeccompError;
use crate::spec::RunSpec;
use crate::supervise::Pump;
use crate::{sys, user};

pub(crate) use plan::working_dir;
use plan::Plan;
use protocol::{Step, READY_HEADER, STUB_RECORD, USER_HEADER};

/// Why the native sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A syscall of the supervisor failed.
    #[error("sandbox: {what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A setup step inside the sandbox failed.
    #[error("sandbox setup: {step}{}: {reason}", path.as_deref().map(|p| format!(" {p}")).unwrap_or_default())]
    Setup {
        /// The step.
        step: &'static str,
        /// The path involved, if any.
        path: Option<String>,
        /// The error, as Go prints it.
        reason: String,
    },
    /// The command could not be started (text as runc's).
    #[error("unable to start container process: {message}")]
    Start {
        /// What went wrong.
        message: String,
    },
    /// The sandbox's init died without reporting the payload's status.
    #[error("sandbox init ended unexpectedly ({status:?})")]
    InitDied {
        /// How it ended.
        status: Option<ExitStatus>,
    },
    /// The seccomp profile could not be built.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

fn os(what: &'static str) -> impl FnOnce(Errno) -> ExecError {
    move |e| {
        ExecError::Sandbox(SandboxError::Os {
            what,
            source: e.into(),
        })
    }
}

/// Longest `/etc/passwd` or `/etc/group` read.
const MAX_ID_FILE: u64 = 16 << 20;

/// Kills and reaps the sandbox's init if the supervisor unwinds or returns early.
struct Reaper {
    pidfd: Option<OwnedFd>,
}

impl Reaper {
    fn kill(&self) {
        if let Some(fd) = &self.pidfd {
            let _ = pidfd_send_signal(fd, Signal::KILL);
        }
    }

    /// Waits for init to exit; returns its raw status.
    fn reap(&mut self) -> Option<i32> {
        let fd = self.pidfd.take()?;
        loop {
            match waitid(WaitId::PidFd(fd.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(st)) => {
                    return match (st.exit_status(), st.terminating_signal()) {
                        (Some(c), _) => Some(c << 8),
                        (None, Some(s)) => Some(s),
                        _ => None,
                    }
                }
                Ok(None) | Err(Errno::INTR) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.pidfd.is_some() {
            self.kill();
            self.reap();
        }
    }
}

/// What the supervisor learned from the child.
#[derive(Default)]
struct Outcome {
    failure: Option<ExecError>,
    exit: Option<i32>,
    stubs: Vec<Stub>,
    cancelled: bool,
}

/// Runs `spec` in a native sandbox whose scratch mountpoint is `state_dir`. A `--network
/// none` sandbox enters `netns` (a fresh namespace made ahead of time) when given, else it is
/// cloned into a new one.
pub(crate) fn run(
    state_dir: &Path,
    scratch: &mut LayerScratch,
    spec: &RunSpec,
    netns: Option<OwnedFd>,
    sink: &mut dyn OutputSink,
    cancel: &CancelToken,
) -> Result<ExitStatus, ExecError> {
    if cancel.is_cancelled() {
        return Err(ExecError::Cancelled);
    }
    let mut plan = Plan::new(state_dir, scratch, spec)?;
    let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC).map_err(os("pipe"))?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(os("pipe"))?;
    let (ctrl, ctrl_child) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(os("socketpair"))?;
    let devnull = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(os("open /dev/null"))?;

    let netns = netns.filter(|_| plan.network_none);
    let mut flags = plan.namespaces;
    if netns.is_some() {
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    let mut ctx = child::ChildCtx {
        plan: &mut plan,
        stdin: devnull,
        stdout: out_w,
        stderr: err_w,
        ctrl: ctrl_child,
        netns,
    };
    let (pid, pidfd) = sys::clone_sandbox(flags, &mut ctx, child::init).map_err(|e| {
        ExecError::Sandbox(SandboxError::Os {
            what: "clone into new namespaces",
            source: e,
        })
    })?;
    // The child's ends belong to the child now.
    drop(ctx);
    let mut reaper = Reaper { pidfd: Some(pidfd) };
    let mut pump = Pump::new(out_r, err_r, sink);
    let mut outcome = Outcome::default();
    let mut msg = vec![0u8; plan.report.len().max(64)];
    let init_status;

    loop {
        let pidfd = reaper.pidfd.as_ref().map(|f| f.as_fd()).ok_or(Errno::BADF);
        let pidfd = pidfd.map_err(os("pidfd"))?;
        let mut events = vec![ctrl.as_fd(), pidfd];
        if !outcome.cancelled {
            events.push(cancel.fd());
        }
        match pump.wait(&events).map_err(os("poll"))? {
            0 => {
                if !receive(&ctrl, &mut msg, pid, spec, &plan, &mut outcome, &reaper) {
                    // Control socket closed: init is gone or going; wait for its exit.
                    init_status = reaper.reap();
                    break;
                }
            }
            1 => {
                init_status = reaper.reap();
                break;
            }
            _ => {
                outcome.cancelled = true;
                reaper.kill();
            }
        }
    }
    // Messages sent just before init exited.
    while let Ok((_, n)) = recv(&ctrl, &mut msg[..], RecvFlags::DONTWAIT) {
        if n == 0 {
            break;
        }
        handle(&msg[..n], pid, spec, &plan, &mut outcome, &ctrl, &reaper);
    }
    pump.drain();
    drop(reaper);

    if !outcome.stubs.is_empty() {
        let lowers: Vec<&Path> = match &spec.rootfs {
            crate::Rootfs::Overlay { lowerdirs, .. } => {
                lowerdirs.iter().map(|p| p.as_path()).collect()
            }
            crate::Rootfs::Dir(_) => Vec::new(),
        };
        rootfs::remove_stubs(&Plan::write_base(spec), &lowers, &outcome.stubs);
    }
    if outcome.cancelled {
        return Err(ExecError::Cancelled);
    }
    if let Some(f) = outcome.failure {
        return Err(f);
    }
    match outcome.exit {
        Some(raw) => Ok(ExitStatus::from_raw(raw)),
        None => Err(SandboxError::InitDied {
            status: init_status.map(ExitStatus::from_raw),
        }
        .into()),
    }
}

/// Reads one control message; false once the socket is closed.
fn receive(
    ctrl: &OwnedFd,
    msg: &mut [u8],
    pid: Pid,
    spec: &RunSpec,
    plan: &Plan,
    outcome: &mut Outcome,
    reaper: &Reaper,
) -> bool {
    match recv(ctrl, &mut msg[..], RecvFlags::DONTWAIT) {
        Ok((_, 0)) => false,
        Ok((_, n)) => {
            handle(&msg[..n], pid, spec, plan, outcome, ctrl, reaper);
            true
        }
        Err(Errno::AGAIN) | Err(Errno::INTR) => true,
        Err(_) => false,
    }
}

fn handle(
    msg: &[u8],
    pid: Pid,
    spec: &RunSpec,
    plan: &Plan,
    outcome: &mut Outcome,
    ctrl: &OwnedFd,
    reaper: &Reaper,
) {
    match protocol::u32_at(msg, 0) {
        protocol::READY => {
            outcome.stubs = created_stubs(msg, plan);
            match resolve_user(pid, spec) {
                Ok(u) => {
                    let _ = send(ctrl, &encode_user(&u), SendFlags::empty());
                }
                Err(e) => {
                    outcome.failure.get_or_insert(e);
                    reaper.kill();
                }
            }
        }
        protocol::ERROR => {
            let step = protocol::u32_at(msg, 4);
            let errno = protocol::u32_at(msg, 8) as i32;
            let index = protocol::u32_at(msg, 12) as usize;
            outcome
                .failure
                .get_or_insert_with(|| setup_error(step, errno, index, spec, plan));
        }
        protocol::EXIT => outcome.exit = Some(protocol::u32_at(msg, 4) as i32),
        _ => {}
    }
}

fn created_stubs(msg: &[u8], plan: &Plan) -> Vec<Stub> {
    let count = (protocol::u32_at(msg, 4) as usize).min(plan.stubs.len());
    (0..count)
        .filter_map(|i| {
            let at = READY_HEADER + STUB_RECORD * i;
            (protocol::u32_at(msg, at) == 1).then(|| Stub {
                path: plan.stub_path(i),
                parent_mtime: (protocol::u32_at(msg, at + 4) == 1).then(|| {
                    (
                        protocol::i64_at(msg, at + 8),
                        protocol::i64_at(msg, at + 16),
                    )
                }),
            })
        })
        .collect()
}

/// Resolves the spec's user from the sandbox's own files, seen through its root.
fn resolve_user(pid: Pid, spec: &RunSpec) -> Result<user::ExecUser, ExecError> {
    let root = rustix::fs::open(
        format!("/proc/{}/root", pid.as_raw_nonzero()),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(os("open sandbox root"))?;
    let read = |p: &str| {
        rootfs::read_in_root(&root, p, MAX_ID_FILE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let (passwd, group) = (read("/etc/passwd"), read("/etc/group"));
    Ok(user::resolve(&spec.user, &passwd, &group)?)
}

fn encode_user(u: &user::ExecUser) -> Vec<u8> {
    let home = u.home.as_bytes();
    let home = &home[..home.len().min(plan::MAX_HOME)];
    let mut out = Vec::with_capacity(USER_HEADER + 4 * u.groups.len() + home.len());
    for v in [u.uid, u.gid, u.groups.len() as u32, home.len() as u32] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for g in &u.groups {
        out.extend_from_slice(&g.to_ne_bytes());
    }
    out.extend_from_slice(home);
    out
}

/// Turns a child's (step, errno, index) report into an error with the path involved.
fn setup_error(step: u32, errno: i32, index: usize, spec: &RunSpec, plan: &Plan) -> ExecError {
    let Some(step) = Step::from_u32(step) else {
        return SandboxError::InitDied { status: None }.into();
    };
    let errno_text = process::describe_errno(Errno::from_raw_os_error(errno));
    let text = |c: &std::ffi::CString| Some(c.to_string_lossy().into_owned());
    let target_path = |i: usize| -> Option<String> {
        let m = plan.mounts.get(i)?;
        match m {
            plan::UserMountPlan::Bind { target, .. }
            | plan::UserMountPlan::Tmpfs { target, .. } => text(&target.path),
        }
    };
    let path = match step {
        Step::Exec => {
            return SandboxError::Start {
                message: process::start_failure(&spec.args[0], errno),
            }
            .into()
        }
        Step::Chdir => {
            return SandboxError::Start {
                message: format!(
                    "chdir to cwd (\"{}\") set in config.json failed: {errno_text}",
                    plan.cwd.to_string_lossy()
                ),
            }
            .into()
        }
        Step::Target => Some(plan.stub_path(index)),
        Step::Device => plan.devices.get(index).and_then(|d| text(&d.target)),
        Step::EtcMount | Step::EtcFile => plan.etc.get(index).and_then(|e| text(&e.target.path)),
        Step::UserMount => target_path(index),
        Step::Readonly if index >= 100 => target_path(index - 100),
        Step::Readonly => plan.etc.get(index).and_then(|e| text(&e.target.path)),
        Step::Capture => match index {
            0..100 => plan.devices.get(index).and_then(|d| text(&d.host)),
            100..200 => plan.etc.get(index - 100).and_then(|e| {
                e.host_source
                    .as_ref()
                    .and_then(text)
                    .or_else(|| text(&e.scratch))
            }),
            _ => plan.mounts.get(index - 200).and_then(|m| match m {
                plan::UserMountPlan::Bind { source, .. } => text(source),
                plan::UserMountPlan::Tmpfs { .. } => None,
            }),
        },
        Step::Mask => plan.masked.get(index).and_then(text),
        Step::ReadonlyPath => plan.readonly.get(index).and_then(text),
        Step::Cwd => plan.cwd_prefixes.get(index).and_then(text),
        Step::Rootfs => Some(format!("{:?}", spec.rootfs)),
        _ => None,
    };
    SandboxError::Setup {
        step: step.describe(),
        path,
        reason: errno_text,
    }
    .into()
}
