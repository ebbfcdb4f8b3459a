//! What to run: [`RunSpec`] and the values it is made of.
//!
//! Role: the executor's input, independent of the backend that carries it out. A spec names a
//! root filesystem ([`Rootfs`]), a command, its environment, user and working directory, extra
//! mounts ([`MountSpec`]), the network mode ([`Network`]), the hardening level ([`Security`]) and
//! the files generated under `/etc` (hostname, hosts, resolv.conf).
//!
//! Key decision: every path in a spec is either a host path (rootfs layers, bind sources) or a
//! path inside the sandbox (mount targets, `cwd`); targets are always absolute and resolved
//! inside the root filesystem, so a symlink in an image can never point a mount at the host.

use std::path::PathBuf;

/// `PATH` given to a process whose environment has none, as BuildKit does.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Hostname of a sandbox when the caller sets none (BuildKit's).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// One process to run inside a root filesystem.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The root filesystem the process sees as `/`.
    pub rootfs: Rootfs,
    /// The command: `args[0]` is looked up in the sandbox's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// `KEY=value` entries; `PATH` is added when missing, `HOME` from the user's passwd entry.
    pub env: Vec<String>,
    /// Working directory inside the sandbox; created (owned by root, mode 0755) when missing.
    pub cwd: String,
    /// `""` (root), `name`, `uid`, `name:group`, `uid:gid`…: resolved in the rootfs's
    /// `/etc/passwd` and `/etc/group`, with supplementary groups, as Docker does.
    pub user: String,
    /// Extra mounts, applied in order after the sandbox's own.
    pub mounts: Vec<MountSpec>,
    /// Network mode.
    pub network: Network,
    /// Hardening level.
    pub security: Security,
    /// Hostname inside the UTS namespace and in `/etc/hostname`.
    pub hostname: String,
    /// Extra `/etc/hosts` entries (`--add-host`).
    pub hosts: Vec<HostEntry>,
    /// A host file bind-mounted read-only as `/etc/resolv.conf`; `None` copies the host's.
    pub resolv_conf: Option<PathBuf>,
}

impl RunSpec {
    /// A spec with BuildKit's defaults: root user, `/` as working directory, host network,
    /// sandboxed, hostname `buildkitsandbox`, no extra mounts.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        RunSpec {
            rootfs,
            args,
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            mounts: Vec::new(),
            network: Network::Host,
            security: Security::Sandbox,
            hostname: DEFAULT_HOSTNAME.to_owned(),
            hosts: Vec::new(),
            resolv_conf: None,
        }
    }

    /// The environment the process gets: the spec's, plus the default `PATH` when it has none.
    pub fn effective_env(&self) -> Vec<String> {
        let mut env = self.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        env
    }

    /// The command as BuildKit quotes it in errors: the arguments joined by spaces.
    pub fn command_line(&self) -> String {
        self.args.join(" ")
    }

    /// The value of `PATH` the process will see.
    pub(crate) fn path_env(&self) -> String {
        self.effective_env()
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
            .unwrap_or_default()
    }

    /// The text of the generated `/etc/hosts`, in BuildKit's format.
    pub fn hosts_file(&self) -> String {
        let mut out = format!(
            "127.0.0.1\tlocalhost {}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            self.hostname
        );
        for h in &self.hosts {
            out.push_str(&format!("{}\t{}\n", h.ip, h.name));
        }
        out
    }
}

/// The root filesystem of a sandbox.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// An overlay of read-only layers under a writable upper directory: what a RUN step sees.
    /// Writes land in `upperdir` (deletions as overlay whiteouts), which then is the layer.
    Overlay {
        /// Layer directories, nearest (topmost) first; at least one (overlayfs needs a lower
        /// layer: an empty base is an empty directory).
        lowerdirs: Vec<PathBuf>,
        /// The writable layer.
        upperdir: PathBuf,
        /// overlayfs's scratch directory, on the same filesystem as `upperdir`.
        workdir: PathBuf,
    },
    /// A plain directory, used read-write as it is.
    Dir(PathBuf),
}

/// A mount added to the sandbox after its own (`RUN --mount`).
#[derive(Debug, Clone)]
pub enum MountSpec {
    /// A host file, directory or socket bind-mounted (recursively) at `target`. Cache, bind,
    /// secret and ssh mounts all arrive as binds of sources the caller prepared.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Absolute path in the sandbox.
        target: String,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A filesystem made of read-only layers (a stage's or an image's snapshot chain, a
    /// staged context selection), with the path `source` inside it shown at `target`
    /// (`RUN --mount=type=bind,from=…`). Symlinks in `source` resolve inside that filesystem.
    /// Writes, when not `readonly`, land in a scratch directory discarded after the run.
    Layers {
        /// Layer directories, nearest (topmost) first; at least one.
        lowerdirs: Vec<PathBuf>,
        /// Absolute path inside the layered filesystem (`/` for all of it).
        source: String,
        /// Absolute path in the sandbox.
        target: String,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs at `target`.
    Tmpfs {
        /// Absolute path in the sandbox.
        target: String,
        /// Size limit in bytes (`None`: the kernel's default, half of RAM).
        size: Option<u64>,
    },
}

impl MountSpec {
    /// The path in the sandbox this mount covers.
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Layers { target, .. }
            | MountSpec::Tmpfs { target, .. } => target,
        }
    }
}

/// Network mode of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network namespace (BuildKit's `default` with host networking, and `host`).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

/// Hardening level of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Docker's defaults: its capability set, no_new_privs, its seccomp profile, masked and
    /// read-only `/proc` paths, read-only `/sys`.
    #[default]
    Sandbox,
    /// `RUN --security=insecure`: all capabilities, no seccomp, nothing masked, `/sys` writable.
    Insecure,
}

/// One extra line of `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Host name.
    pub name: String,
    /// Its address, as text.
    pub ip: String,
}
