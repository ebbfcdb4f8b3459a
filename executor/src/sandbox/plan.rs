//! Everything the sandbox's child needs, prepared before the clone: [`Plan`].
//!
//! Role: the child of a multi-threaded process may not allocate, so every path becomes a C
//! string here, every buffer it will fill is sized here, argv/envp pointer arrays are built
//! here, and so are the seccomp programs. The parent keeps its own copy of the plan to turn
//! the child's error reports (step + index) back into paths.

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rustix::process::Gid;
use seccompiler::BpfProgram;

use super::protocol::{READY_HEADER, STUB_RECORD, USER_HEADER};
use super::SandboxError;
use crate::error::ExecError;
use crate::layers::LayerScratch;
use crate::mount::{self, EtcFile, MountError};
use crate::rootfs::OverlayMount;
use crate::spec::{MountSpec, Rootfs, RunSpec, Security};
use crate::{capability, namespace, process, seccomp, user};

/// A path in the sandbox to mount on, with the stub slots of its components.
#[derive(Debug)]
pub(super) struct Target {
    pub path: CString,
    pub stubs: Range<usize>,
}

/// A path component that may have to be created as a mount target.
#[derive(Debug)]
pub(super) struct StubSlot {
    pub path: CString,
    pub parent: CString,
    pub dir: bool,
}

#[derive(Debug)]
pub(super) enum RootfsPlan {
    Overlay(OverlayMount),
    Dir(CString),
}

#[derive(Debug)]
pub(super) struct EtcPlan {
    /// Where the generated file is written in the scratch tmpfs.
    pub scratch: CString,
    pub content: Vec<u8>,
    /// A host file to bind instead of generating one.
    pub host_source: Option<CString>,
    pub target: Target,
}

#[derive(Debug)]
pub(super) struct DevicePlan {
    pub host: CString,
    pub target: CString,
}

#[derive(Debug)]
pub(super) enum UserMountPlan {
    Bind {
        /// The host path (for a layered source: its mountpoint and path, for messages).
        source: CString,
        recursive: bool,
        target: Target,
        readonly: bool,
        /// A layered source, mounted in the scratch tmpfs before it is captured.
        layers: Option<LayersPlan>,
    },
    Tmpfs {
        target: Target,
        data: CString,
    },
}

/// A layered bind source: the overlay, where it is mounted in the scratch tmpfs, and the
/// resolved path inside it (relative, `.` for its root).
#[derive(Debug)]
pub(super) struct LayersPlan {
    pub overlay: OverlayMount,
    pub mountpoint: CString,
    pub path: CString,
}

/// The prepared run. Raw pointers (argv/envp) make it `!Send`: it lives on one thread.
#[derive(Debug)]
pub(super) struct Plan {
    pub namespaces: u64,
    /// The executor's state dir: a private tmpfs is mounted on it in the sandbox.
    pub scratch: CString,
    /// `scratch/root`, where the rootfs is mounted before `pivot_root`.
    pub root: CString,
    pub rootfs: RootfsPlan,
    pub etc: Vec<EtcPlan>,
    pub devices: Vec<DevicePlan>,
    pub dev_symlinks: Vec<(CString, CString)>,
    pub mounts: Vec<UserMountPlan>,
    pub dev: Target,
    pub sys: Target,
    pub proc_: Target,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub sandboxed: bool,
    pub network_none: bool,
    pub hostname: Vec<u8>,
    pub cwd: CString,
    pub cwd_prefixes: Vec<CString>,
    /// Owns the strings `argv_ptrs` points to.
    #[allow(dead_code)]
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    /// Owns the strings `envp` points to.
    #[allow(dead_code)]
    pub env: Vec<CString>,
    pub envp: Vec<*const c_char>,
    /// Index in `envp` reserved for `HOME`, when the spec's environment has none.
    pub home_slot: Option<usize>,
    pub home_env: Vec<u8>,
    pub candidates: Vec<CString>,
    pub stubs: Vec<StubSlot>,
    /// Slot indices of each target's prefixes (targets hold ranges into it).
    pub stub_order: Vec<usize>,
    /// The `Ready` message, filled by the child.
    pub report: Vec<u8>,
    /// Receive buffer for the `User` message.
    pub user_msg: Vec<u8>,
    /// Supplementary groups, filled by the child (first `ngroups` used).
    pub groups: Vec<Gid>,
    pub ngroups: usize,
    pub uid: u32,
    pub gid: u32,
    pub last_cap: u32,
    /// Capabilities granted under `Security::Insecure`: all this process holds.
    pub insecure_caps: u64,
    pub seccomp: &'static [BpfProgram],
    /// Mount fds captured before `pivot_root`: devices, then etc files, then user mounts.
    pub captured: Vec<Option<OwnedFd>>,
}

/// Longest home directory passed through `HOME`.
pub(super) const MAX_HOME: usize = 4096;

fn c(s: impl Into<Vec<u8>>) -> Result<CString, ExecError> {
    CString::new(s).map_err(|e| ExecError::InvalidSpec {
        reason: format!(
            "string with a NUL byte: {:?}",
            String::from_utf8_lossy(&e.into_vec())
        ),
    })
}

fn c_path(p: &Path) -> Result<CString, ExecError> {
    c(p.as_os_str().as_bytes())
}

fn last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(capability::last_cap)
}

/// The working directory, absolute and normalised (a relative one is taken from `/`).
pub(crate) fn working_dir(cwd: &str) -> String {
    mount::normalize_target(&format!("/{cwd}")).unwrap_or_else(|_| "/".to_owned())
}

/// Builds stub slots, shared between targets with common prefixes (`/etc` serves three
/// targets). A target refers to its own prefixes, in order, through a range of `order`.
#[derive(Default)]
struct Stubs {
    slots: Vec<StubSlot>,
    index: HashMap<String, usize>,
    order: Vec<usize>,
}

impl Stubs {
    fn target(&mut self, path: &str, leaf_dir: bool) -> Result<Target, ExecError> {
        let start = self.order.len();
        let prefixes: Vec<&str> = mount::prefixes(path).collect();
        for (i, p) in prefixes.iter().enumerate() {
            let dir = i + 1 < prefixes.len() || leaf_dir;
            let idx = match self.index.get(*p) {
                Some(&idx) => idx,
                None => {
                    let parent = match p.rfind('/') {
                        Some(0) | None => "/",
                        Some(n) => &p[..n],
                    };
                    self.slots.push(StubSlot {
                        path: c(*p)?,
                        parent: c(parent)?,
                        dir,
                    });
                    self.index.insert((*p).to_owned(), self.slots.len() - 1);
                    self.slots.len() - 1
                }
            };
            // A path that is a directory for any target is created as one.
            self.slots[idx].dir |= dir;
            self.order.push(idx);
        }
        Ok(Target {
            path: c(path)?,
            stubs: start..self.order.len(),
        })
    }
}

impl Plan {
    /// Prepares `spec` for a sandbox whose scratch mountpoint is `state_dir`.
    pub(super) fn new(
        state_dir: &Path,
        scratch: &mut LayerScratch,
        spec: &RunSpec,
    ) -> Result<Plan, ExecError> {
        if spec.args.is_empty() {
            return Err(ExecError::InvalidSpec {
                reason: "no command".into(),
            });
        }
        let sandboxed = spec.security == Security::Sandbox;
        let mut stubs = Stubs::default();

        let rootfs = match &spec.rootfs {
            Rootfs::Overlay {
                lowerdirs,
                upperdir,
                workdir,
            } => RootfsPlan::Overlay(OverlayMount::new(lowerdirs, upperdir, workdir)?),
            Rootfs::Dir(d) => RootfsPlan::Dir(c_path(d)?),
        };

        let dev = stubs.target("/dev", true)?;
        let devices = mount::DEVICES
            .iter()
            .map(|d| {
                Ok(DevicePlan {
                    host: c(format!("/dev/{d}"))?,
                    target: c(format!("/dev/{d}"))?,
                })
            })
            .collect::<Result<Vec<_>, ExecError>>()?;
        let dev_symlinks = mount::DEV_SYMLINKS
            .iter()
            .map(|(name, link)| Ok((c(format!("/dev/{name}"))?, c(*link)?)))
            .collect::<Result<Vec<_>, ExecError>>()?;

        let mut etc = Vec::new();
        for f in EtcFile::ALL {
            let (content, host_source) = match f {
                EtcFile::Hosts => (spec.hosts_file().into_bytes(), None),
                EtcFile::Hostname => (format!("{}\n", spec.hostname).into_bytes(), None),
                EtcFile::ResolvConf => match &spec.resolv_conf {
                    Some(p) => (Vec::new(), Some(c_path(p)?)),
                    None => (mount::host_resolv_conf(), None),
                },
            };
            etc.push(EtcPlan {
                scratch: c_path(&state_dir.join(f.name()))?,
                content,
                host_source,
                target: stubs.target(&f.target(), false)?,
            });
        }

        let mut mounts = Vec::new();
        for (i, m) in spec.mounts.iter().enumerate() {
            let target = mount::normalize_target(m.target())?;
            mounts.push(match m {
                MountSpec::Bind {
                    source, readonly, ..
                } => {
                    let meta = std::fs::metadata(source).map_err(|e| MountError::Source {
                        path: source.clone(),
                        source: e,
                    })?;
                    UserMountPlan::Bind {
                        source: c_path(source)?,
                        recursive: meta.is_dir(),
                        target: stubs.target(&target, meta.is_dir())?,
                        readonly: *readonly,
                        layers: None,
                    }
                }
                MountSpec::Layers {
                    lowerdirs,
                    source,
                    readonly,
                    ..
                } => {
                    let prepared = scratch.prepare(i, lowerdirs, source)?;
                    let mountpoint = state_dir.join(format!("layers-{i}"));
                    UserMountPlan::Bind {
                        source: c_path(&mountpoint.join(&prepared.path))?,
                        recursive: true,
                        target: stubs.target(&target, prepared.is_dir)?,
                        readonly: *readonly,
                        layers: Some(LayersPlan {
                            overlay: prepared.overlay,
                            mountpoint: c_path(&mountpoint)?,
                            path: c(prepared.path)?,
                        }),
                    }
                }
                MountSpec::Tmpfs { size, .. } => UserMountPlan::Tmpfs {
                    target: stubs.target(&target, true)?,
                    data: c(match size {
                        Some(s) => format!("mode=1777,size={s}"),
                        None => "mode=1777".to_owned(),
                    })?,
                },
            });
        }
        let sys = stubs.target("/sys", true)?;
        let proc_ = stubs.target("/proc", true)?;

        let cwd = working_dir(&spec.cwd);
        let cwd_prefixes = if cwd == "/" {
            Vec::new()
        } else {
            mount::prefixes(&cwd).map(c).collect::<Result<_, _>>()?
        };

        let argv: Vec<CString> = spec
            .args
            .iter()
            .map(|a| c(a.as_str()))
            .collect::<Result<_, _>>()?;
        let argv_ptrs = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let env_list = spec.effective_env();
        let has_home = env_list.iter().any(|e| e.starts_with("HOME="));
        let env: Vec<CString> = env_list
            .iter()
            .map(|e| c(e.as_str()))
            .collect::<Result<_, _>>()?;
        let mut home_env = vec![0u8; 5 + MAX_HOME + 1];
        home_env[..6].copy_from_slice(b"HOME=/");
        let mut envp: Vec<*const c_char> = env.iter().map(|e| e.as_ptr()).collect();
        let home_slot = if has_home {
            None
        } else {
            envp.push(home_env.as_ptr().cast());
            Some(envp.len() - 1)
        };
        envp.push(std::ptr::null());

        let candidates = process::exec_candidates(&spec.args[0], &spec.path_env());
        let nstubs = stubs.slots.len();
        let captured_len = devices.len() + etc.len() + mounts.len();
        let plan = Plan {
            namespaces: namespace::clone_flags(spec.network),
            scratch: c_path(state_dir)?,
            root: c_path(&state_dir.join("root"))?,
            rootfs,
            etc,
            devices,
            dev_symlinks,
            mounts,
            dev,
            sys,
            proc_,
            masked: if sandboxed {
                mount::masked_paths()
                    .iter()
                    .map(|p| c(p.as_str()))
                    .collect::<Result<_, _>>()?
            } else {
                Vec::new()
            },
            readonly: if sandboxed {
                mount::READONLY_PATHS
                    .iter()
                    .map(|p| c(*p))
                    .collect::<Result<_, _>>()?
            } else {
                Vec::new()
            },
            sandboxed,
            network_none: spec.network == crate::Network::None,
            hostname: spec.hostname.clone().into_bytes(),
            cwd: c(cwd)?,
            cwd_prefixes,
            argv,
            argv_ptrs,
            env,
            envp,
            home_slot,
            home_env,
            candidates,
            stubs: stubs.slots,
            stub_order: stubs.order,
            report: vec![0; READY_HEADER + STUB_RECORD * nstubs],
            user_msg: vec![0; USER_HEADER + 4 * user::MAX_GROUPS + MAX_HOME],
            groups: vec![Gid::ROOT; user::MAX_GROUPS],
            ngroups: 0,
            uid: 0,
            gid: 0,
            last_cap: last_cap(),
            insecure_caps: capability::current_permitted(),
            seccomp: if sandboxed {
                seccomp::filters().map_err(SandboxError::from)?
            } else {
                &[]
            },
            captured: (0..captured_len).map(|_| None).collect(),
        };
        Ok(plan)
    }

    /// Index in `captured` of the first etc file and of the first user mount.
    pub(super) fn etc_base(&self) -> usize {
        self.devices.len()
    }
    pub(super) fn mounts_base(&self) -> usize {
        self.devices.len() + self.etc.len()
    }

    /// The stub slots' paths as text, for the parent.
    pub(super) fn stub_path(&self, i: usize) -> String {
        self.stubs
            .get(i)
            .map(|s| s.path.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Where writes of the run land on the host: the upper dir or the rootfs dir.
    pub(super) fn write_base(spec: &RunSpec) -> PathBuf {
        match &spec.rootfs {
            Rootfs::Overlay { upperdir, .. } => upperdir.clone(),
            Rootfs::Dir(d) => d.clone(),
        }
    }
}
