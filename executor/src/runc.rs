//! The OCI runtime backend: the same sandbox described as an OCI bundle and run by `runc` or
//! `crun` (their command lines agree on what is used here).
//!
//! Role: a second, independent implementation of the executor's contract, so the test suite
//! can show the native sandbox behaves as a real OCI runtime does. [`Runc::run`] writes a
//! bundle (`config.json` built with `oci-spec`: the same namespaces, mounts, capabilities,
//! seccomp rules and masked paths as the native sandbox), runs `runc run` with its stdout and
//! stderr streamed to the sink, and cleans up.
//!
//! Key decisions:
//! - crun runs with `--cgroup-manager=disabled` and without the host's cgroup v2 hierarchy
//!   (unmounted in its private mount namespace): Debian's crun 1.8.1 otherwise refuses a
//!   hybrid cgroup v1/v2 host ("cgroups in hybrid mode not supported"). Build steps set no
//!   resource limits, and the native sandbox makes no cgroup either.
//! - Layered bind sources (`RUN --mount=type=bind,from=…`) are overlays mounted beside the
//!   rootfs in the same private namespace; `config.json` binds their resolved paths.
//! - The rootfs is mounted in a private mount namespace that `runc` itself is started in (a
//!   `pre_exec` hook: `unshare(CLONE_NEWNS)`, then the overlay), never in the host's: a crash
//!   cannot leave a mount behind. The bundle dir only holds `config.json`, an empty mountpoint
//!   and the generated `/etc` files; stale bundles and containers of dead supervisors are
//!   removed when a backend starts.
//! - The user is resolved by reading `/etc/passwd` and `/etc/group` through the layers
//!   (upper first, honouring whiteouts), since the merged view exists only inside runc's
//!   namespace; OCI takes numeric ids only.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};
use rustix::io::Errno;
use rustix::mount::{mount_bind, mount_change, MountPropagationFlags};
use rustix::process::{pidfd_open, waitid, Pid, PidfdFlags, WaitId, WaitIdOptions};

use crate::cancel::CancelToken;
use crate::error::ExecError;
use crate::layers::LayerScratch;
use crate::mount::{self as layout, EtcFile};
use crate::namespace::{self, Kind};
use crate::output::OutputSink;
use crate::process::ExitStatus;
use crate::rootfs::{self, OverlayMount, Stub};
use crate::seccomp::{self, Action, Op};
use crate::spec::{MountSpec, Rootfs, RunSpec, Security};
use crate::supervise::Pump;
use crate::{capability, sys, user};

/// Why the runc backend failed.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    /// Writing the bundle or a runtime invocation failed.
    #[error("{runtime}: {what}: {source}")]
    Io {
        /// The runtime (`runc`, `crun`).
        runtime: &'static str,
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// `config.json` could not be built.
    #[error("building config.json: {reason}")]
    Config {
        /// oci-spec's message.
        reason: String,
    },
    /// The runtime could not start the container (its own message).
    #[error("{runtime} run failed: {message}")]
    Start {
        /// The runtime (`runc`, `crun`).
        runtime: &'static str,
        /// runc's error text.
        message: String,
    },
}

fn io_of(runtime: &'static str) -> impl Fn(&str) -> Box<dyn FnOnce(std::io::Error) -> ExecError> {
    move |what: &str| {
        let what = what.to_owned();
        Box::new(move |source| {
            ExecError::Runc(RuncError::Io {
                runtime,
                what,
                source,
            })
        })
    }
}

fn config_err(e: impl std::fmt::Display) -> ExecError {
    ExecError::Runc(RuncError::Config {
        reason: e.to_string(),
    })
}

/// The runc backend: a runc binary and the directories it works in.
#[derive(Debug)]
pub(crate) struct Runc {
    binary: PathBuf,
    /// `runc` or `crun`, for messages.
    name: &'static str,
    /// runc's `--root` (its container state).
    state: PathBuf,
    bundles: PathBuf,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Longest `/etc/passwd` or `/etc/group` read.
const MAX_ID_FILE: u64 = 16 << 20;

impl Runc {
    /// A backend keeping its state under `state_dir`; removes what dead supervisors left.
    pub(crate) fn new(
        state_dir: &Path,
        binary: PathBuf,
        name: &'static str,
    ) -> Result<Self, ExecError> {
        let r = Runc {
            binary,
            name,
            // Each runtime keeps its own state: their formats differ.
            state: state_dir.join(format!("{name}-state")),
            bundles: state_dir.join(format!("{name}-bundles")),
        };
        for d in [&r.state, &r.bundles] {
            std::fs::create_dir_all(d).map_err(|e| ExecError::StateDir {
                path: d.clone(),
                source: e,
            })?;
        }
        r.clean_stale();
        Ok(r)
    }

    fn runc(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.state);
        if self.name == "crun" {
            // Build steps set no resource limits (the native sandbox makes no cgroup either);
            // crun 1.8 refuses a hybrid cgroup v1/v2 host, whose v2 part is hidden from it
            // (see `run_in`), and needs no cgroup of its own.
            c.arg("--cgroup-manager=disabled");
        }
        c
    }

    /// Deletes containers and bundles whose supervisor (the pid in the id) is gone.
    fn clean_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.bundles) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix("strata-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
                .and_then(Pid::from_raw);
            let alive = owner.is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
            if !alive {
                let _ = self
                    .runc()
                    .args(["delete", "--force", &name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Runs `spec` with `runc run`.
    pub(crate) fn run(
        &self,
        scratch: &mut LayerScratch,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError> {
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        if spec.args.is_empty() {
            return Err(ExecError::InvalidSpec {
                reason: "no command".into(),
            });
        }
        let id = format!(
            "strata-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let bundle = self.bundles.join(&id);
        let result = self.run_in(&id, &bundle, scratch, spec, sink, cancel);
        let _ = std::fs::remove_dir_all(&bundle);
        result
    }

    fn run_in(
        &self,
        id: &str,
        bundle: &Path,
        scratch: &mut LayerScratch,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
        cancel: &CancelToken,
    ) -> Result<ExitStatus, ExecError> {
        let io = io_of(self.name);
        let rootfs_dir = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs_dir).map_err(io("create bundle"))?;
        // Layered bind sources: mounted next to the rootfs in runc's mount namespace; the
        // config binds the resolved path inside each.
        let mut layered: Vec<(OverlayMount, CString)> = Vec::new();
        let mut bind_sources: Vec<Option<PathBuf>> = Vec::new();
        for (i, m) in spec.mounts.iter().enumerate() {
            let MountSpec::Layers {
                lowerdirs, source, ..
            } = m
            else {
                bind_sources.push(None);
                continue;
            };
            let prepared = scratch.prepare(i, lowerdirs, source)?;
            let mountpoint = bundle.join(format!("layers-{i}"));
            std::fs::create_dir_all(&mountpoint).map_err(io("create bundle"))?;
            bind_sources.push(Some(mountpoint.join(&prepared.path)));
            let c = CString::new(mountpoint.as_os_str().as_bytes()).map_err(|_| {
                ExecError::InvalidSpec {
                    reason: "bundle path with a NUL byte".into(),
                }
            })?;
            layered.push((prepared.overlay, c));
        }

        let (layers, write_base): (Vec<&Path>, PathBuf) = match &spec.rootfs {
            Rootfs::Overlay {
                lowerdirs,
                upperdir,
                ..
            } => (
                std::iter::once(upperdir.as_path())
                    .chain(lowerdirs.iter().map(PathBuf::as_path))
                    .collect(),
                upperdir.clone(),
            ),
            Rootfs::Dir(d) => (vec![d.as_path()], d.clone()),
        };
        let read = |p: &str| -> String {
            let bytes = match &spec.rootfs {
                Rootfs::Dir(d) => rustix::fs::open(
                    d,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                    rustix::fs::Mode::empty(),
                )
                .ok()
                .and_then(|fd| rootfs::read_in_root(&fd, p, MAX_ID_FILE)),
                Rootfs::Overlay { .. } => rootfs::read_in_layers(&layers, p, MAX_ID_FILE),
            };
            bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let user = user::resolve(&spec.user, &read("/etc/passwd"), &read("/etc/group"))?;

        // Mount targets that do not exist yet: runc creates them, we remove them afterwards.
        let mut targets: Vec<String> = vec!["/proc".into(), "/dev".into(), "/sys".into()];
        targets.extend(EtcFile::ALL.iter().map(|f| f.target()));
        for m in &spec.mounts {
            targets.push(layout::normalize_target(m.target())?);
        }
        let mut stubs: Vec<Stub> = Vec::new();
        for t in &targets {
            for p in layout::prefixes(t) {
                if !rootfs::exists_in_layers(&layers, p) && !stubs.iter().any(|s| s.path == p) {
                    let parent = p
                        .rsplit_once('/')
                        .map_or("/", |(a, _)| if a.is_empty() { "/" } else { a });
                    stubs.push(Stub {
                        path: p.to_owned(),
                        parent_mtime: rootfs::mtime_in_layers(&layers, parent),
                    });
                }
            }
        }

        for f in EtcFile::ALL {
            let content = match f {
                EtcFile::Hosts => spec.hosts_file().into_bytes(),
                EtcFile::Hostname => format!("{}\n", spec.hostname).into_bytes(),
                EtcFile::ResolvConf => match &spec.resolv_conf {
                    Some(_) => continue,
                    None => layout::host_resolv_conf(),
                },
            };
            std::fs::write(bundle.join(f.name()), content).map_err(io("write bundle file"))?;
        }
        let config = self.config(spec, &user, bundle, &bind_sources)?;
        config
            .save(bundle.join("config.json"))
            .map_err(config_err)?;

        // Mount the rootfs inside the private mount namespace runc will run in.
        let target = CString::new(rootfs_dir.as_os_str().as_bytes()).map_err(|_| {
            ExecError::InvalidSpec {
                reason: "bundle path with a NUL byte".into(),
            }
        })?;
        enum Prepared {
            Overlay(OverlayMount),
            Dir(CString),
        }
        let prepared = match &spec.rootfs {
            Rootfs::Overlay {
                lowerdirs,
                upperdir,
                workdir,
            } => Prepared::Overlay(OverlayMount::new(lowerdirs, upperdir, workdir)?),
            Rootfs::Dir(d) => {
                Prepared::Dir(CString::new(d.as_os_str().as_bytes()).map_err(|_| {
                    ExecError::InvalidSpec {
                        reason: "rootfs path with a NUL byte".into(),
                    }
                })?)
            }
        };
        let log = bundle.join("runc.log");
        let mut cmd = self.runc();
        cmd.arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let hide_unified = self.name == "crun";
        sys::pre_exec(&mut cmd, move || {
            let errno = |e: Errno| std::io::Error::from_raw_os_error(e.raw_os_error());
            sys::unshare_mount_namespace().map_err(errno)?;
            mount_change(
                c"/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            )
            .map_err(errno)?;
            match &prepared {
                Prepared::Overlay(m) => m.mount_at(&target).map_err(errno)?,
                Prepared::Dir(d) => mount_bind(d.as_c_str(), target.as_c_str()).map_err(errno)?,
            }
            for (overlay, mountpoint) in &layered {
                overlay.mount_at(mountpoint).map_err(errno)?;
            }
            if hide_unified {
                // Only in this private namespace: crun 1.8 then sees a plain cgroup v1 host.
                let _ = rustix::mount::unmount(
                    c"/sys/fs/cgroup/unified",
                    rustix::mount::UnmountFlags::DETACH,
                );
            }
            rustix::process::chdir(c"/").map_err(errno)?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(errno)?;
            Ok(())
        });
        let mut child = cmd.spawn().map_err(io("spawn"))?;
        let out: OwnedFd = child
            .stdout
            .take()
            .map(Into::into)
            .ok_or_else(|| io("stdout")(std::io::Error::other("missing pipe")))?;
        let err: OwnedFd = child
            .stderr
            .take()
            .map(Into::into)
            .ok_or_else(|| io("stderr")(std::io::Error::other("missing pipe")))?;
        let pid = Pid::from_raw(child.id() as i32)
            .ok_or_else(|| io("pid")(std::io::Error::other("invalid pid")))?;
        let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|e| io("pidfd_open")(e.into()))?;

        let mut pump = Pump::new(out, err, sink);
        let mut cancelled = false;
        loop {
            let mut events = vec![pidfd.as_fd()];
            if !cancelled {
                events.push(cancel.fd());
            }
            match pump.wait(&events).map_err(|e| io("poll")(e.into()))? {
                0 => break,
                _ => {
                    cancelled = true;
                    // Killing the container's init makes the kernel kill the rest of it.
                    let _ = self
                        .runc()
                        .args(["kill", id, "KILL"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        let status = loop {
            match waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
                Ok(Some(st)) => break st,
                Ok(None) | Err(Errno::INTR) => continue,
                Err(e) => return Err(io("wait")(e.into())),
            }
        };
        pump.drain();
        drop(child);
        if cancelled {
            let _ = self
                .runc()
                .args(["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let lowers: &[&Path] = match &spec.rootfs {
            Rootfs::Overlay { .. } => &layers[1..],
            Rootfs::Dir(_) => &[],
        };
        rootfs::remove_stubs(&write_base, lowers, &stubs);
        if cancelled {
            return Err(ExecError::Cancelled);
        }
        if let Some(message) = start_error(&log, self.name) {
            return Err(RuncError::Start {
                runtime: self.name,
                message,
            }
            .into());
        }
        match (status.exit_status(), status.terminating_signal()) {
            (Some(c), _) => Ok(ExitStatus::Code(c)),
            (None, Some(s)) => Ok(ExitStatus::Signal(s)),
            _ => Ok(ExitStatus::Code(255)),
        }
    }

    /// `config.json` for `spec`, equivalent to what the native sandbox sets up.
    fn config(
        &self,
        spec: &RunSpec,
        user: &user::ExecUser,
        bundle: &Path,
        bind_sources: &[Option<PathBuf>],
    ) -> Result<Spec, ExecError> {
        let sandboxed = spec.security == Security::Sandbox;
        let caps = |names: Vec<String>| -> Result<Capabilities, ExecError> {
            names
                .into_iter()
                .map(|n| serde_json::from_value::<Capability>(serde_json::Value::String(n)))
                .collect::<Result<Capabilities, _>>()
                .map_err(config_err)
        };
        let all = capability::names_of(capability::current_permitted());
        let capabilities = if sandboxed {
            let d = caps(
                capability::DEFAULT
                    .iter()
                    .map(|c| c.name.to_owned())
                    .collect(),
            )?;
            LinuxCapabilitiesBuilder::default()
                .bounding(d.clone())
                .effective(d.clone())
                .permitted(d)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()
        } else {
            let a = caps(all)?;
            LinuxCapabilitiesBuilder::default()
                .bounding(a.clone())
                .effective(a.clone())
                .permitted(a.clone())
                .inheritable(a.clone())
                .ambient(a)
                .build()
        }
        .map_err(config_err)?;

        let mut env = spec.effective_env();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        let cwd = crate::sandbox::working_dir(&spec.cwd);
        let process = ProcessBuilder::default()
            .terminal(false)
            .user(
                UserBuilder::default()
                    .uid(user.uid)
                    .gid(user.gid)
                    .additional_gids(user.groups.clone())
                    .build()
                    .map_err(config_err)?,
            )
            .args(spec.args.clone())
            .env(env)
            .cwd(cwd)
            .capabilities(capabilities)
            .no_new_privileges(sandboxed)
            .build()
            .map_err(config_err)?;

        let m =
            |dest: &str, typ: &str, source: &str, options: &[&str]| -> Result<Mount, ExecError> {
                MountBuilder::default()
                    .destination(dest)
                    .typ(typ)
                    .source(source)
                    .options(options.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                    .build()
                    .map_err(config_err)
            };
        let dev_tmpfs = format!("nosuid,strictatime,{}", layout::DEV_TMPFS.to_string_lossy());
        let devpts = format!("nosuid,noexec,{}", layout::DEVPTS.to_string_lossy());
        let shm = format!("nosuid,noexec,nodev,{}", layout::SHM.to_string_lossy());
        let split = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        let opts = |s: &str| -> Vec<String> { split(s) };
        let mut mounts = vec![
            m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
            MountBuilder::default()
                .destination("/dev")
                .typ("tmpfs")
                .source("tmpfs")
                .options(opts(&dev_tmpfs))
                .build()
                .map_err(config_err)?,
            MountBuilder::default()
                .destination("/dev/pts")
                .typ("devpts")
                .source("devpts")
                .options(opts(&devpts))
                .build()
                .map_err(config_err)?,
            MountBuilder::default()
                .destination("/dev/shm")
                .typ("tmpfs")
                .source("shm")
                .options(opts(&shm))
                .build()
                .map_err(config_err)?,
            m(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            )?,
            m(
                "/sys",
                "sysfs",
                "sysfs",
                if sandboxed {
                    &["nosuid", "noexec", "nodev", "ro"]
                } else {
                    &["nosuid", "noexec", "nodev"]
                },
            )?,
        ];
        for f in EtcFile::ALL {
            let source = match (f, &spec.resolv_conf) {
                (EtcFile::ResolvConf, Some(p)) => p.clone(),
                _ => bundle.join(f.name()),
            };
            mounts.push(m(
                &f.target(),
                "bind",
                &source.to_string_lossy(),
                &["rbind", "ro"],
            )?);
        }
        for (i, um) in spec.mounts.iter().enumerate() {
            let target = layout::normalize_target(um.target())?;
            mounts.push(match um {
                MountSpec::Layers { readonly, .. } => {
                    let source = bind_sources.get(i).cloned().flatten().unwrap_or_default();
                    m(
                        &target,
                        "bind",
                        &source.to_string_lossy(),
                        if *readonly {
                            &["rbind", "ro"]
                        } else {
                            &["rbind"]
                        },
                    )?
                }
                MountSpec::Bind {
                    source, readonly, ..
                } => m(
                    &target,
                    "bind",
                    &source.to_string_lossy(),
                    if *readonly {
                        &["rbind", "ro"]
                    } else {
                        &["rbind"]
                    },
                )?,
                MountSpec::Tmpfs { size, .. } => {
                    let mut o = vec!["nosuid".to_owned(), "nodev".into(), "mode=1777".into()];
                    if let Some(s) = size {
                        o.push(format!("size={s}"));
                    }
                    MountBuilder::default()
                        .destination(target)
                        .typ("tmpfs")
                        .source("tmpfs")
                        .options(o)
                        .build()
                        .map_err(config_err)?
                }
            });
        }

        let namespaces = namespace::kinds(spec.network)
            .into_iter()
            .map(|k| {
                LinuxNamespaceBuilder::default()
                    .typ(match k {
                        Kind::Mount => LinuxNamespaceType::Mount,
                        Kind::Pid => LinuxNamespaceType::Pid,
                        Kind::Uts => LinuxNamespaceType::Uts,
                        Kind::Ipc => LinuxNamespaceType::Ipc,
                        Kind::Network => LinuxNamespaceType::Network,
                    })
                    .build()
                    .map_err(config_err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .masked_paths(if sandboxed {
                layout::masked_paths().to_vec()
            } else {
                Vec::new()
            })
            .readonly_paths(if sandboxed {
                layout::READONLY_PATHS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                Vec::new()
            });
        if sandboxed {
            linux = linux.seccomp(seccomp_section()?);
        }
        SpecBuilder::default()
            .version("1.0.2")
            .root(
                RootBuilder::default()
                    .path("rootfs")
                    .readonly(false)
                    .build()
                    .map_err(config_err)?,
            )
            .hostname(spec.hostname.clone())
            .process(process)
            .mounts(mounts)
            .linux(linux.build().map_err(config_err)?)
            .build()
            .map_err(config_err)
    }
}

/// The seccomp profile as an OCI section (runc compiles it with libseccomp).
fn seccomp_section() -> Result<oci_spec::runtime::LinuxSeccomp, ExecError> {
    let rules = seccomp::resolve(seccomp::go_arch(), capability::default_mask());
    let mut syscalls = Vec::new();
    for r in rules {
        let mut b = LinuxSyscallBuilder::default()
            .names(r.names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        b = match r.action {
            Action::Allow => b.action(LinuxSeccompAction::ScmpActAllow),
            Action::Errno(e) => b.action(LinuxSeccompAction::ScmpActErrno).errno_ret(e),
        };
        if !r.args.is_empty() {
            let args = r
                .args
                .iter()
                .map(|a| {
                    let (op, value, two) = match a.op {
                        Op::Eq => (LinuxSeccompOperator::ScmpCmpEq, a.value, None),
                        Op::Lt => (LinuxSeccompOperator::ScmpCmpLt, a.value, None),
                        Op::Gt => (LinuxSeccompOperator::ScmpCmpGt, a.value, None),
                        Op::MaskedEq(mask) => {
                            (LinuxSeccompOperator::ScmpCmpMaskedEq, mask, Some(a.value))
                        }
                    };
                    let mut ab = LinuxSeccompArgBuilder::default()
                        .index(a.index as usize)
                        .value(value)
                        .op(op);
                    if let Some(t) = two {
                        ab = ab.value_two(t);
                    }
                    ab.build().map_err(config_err)
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.args(args);
        }
        syscalls.push(b.build().map_err(config_err)?);
    }
    let arches = match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        _ => Vec::new(),
    };
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(seccomp::DEFAULT_ERRNO)
        .architectures(arches)
        .syscalls(syscalls)
        .build()
        .map_err(config_err)
}

/// The runtime's error when it could not start the container, from its JSON log.
fn start_error(log: &Path, runtime: &str) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(log)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error" || v["level"] == "fatal")
        .find_map(|v| v["msg"].as_str().map(str::to_owned))
        .map(|m| {
            m.strip_prefix(&format!("{runtime} run failed: "))
                .map(str::to_owned)
                .unwrap_or(m)
        })
}
