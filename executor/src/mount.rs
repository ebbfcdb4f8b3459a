//! The sandbox's own mounts, as Docker lays them out, shared by both backends.
//!
//! Role: the fixed part of a container's filesystem: `/proc`, a minimal `/dev` (device nodes
//! bind-mounted from the host, a private devpts, `shm`, `mqueue`), `/sys` read-only, the masked
//! and read-only paths, and the generated `/etc` files. The native sandbox turns this into
//! syscalls; the runc backend into `config.json` mounts.
//!
//! Key decision: mount targets are validated and normalised here, once: absolute, no `..`.
//! They are resolved later inside the sandbox's root only, so a symlink in an image cannot
//! aim a mount at the host.

use std::ffi::CStr;
use std::sync::OnceLock;

/// Why a mount could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A target that is not an absolute path below `/`.
    #[error("invalid mount target {target:?}: must be an absolute path below /")]
    InvalidTarget {
        /// The target given.
        target: String,
    },
    /// A bind mount's `source=` path that its filesystem does not have.
    #[error("bind source {path:?}: not found in the mounted filesystem")]
    NotFound {
        /// The path given (inside the mounted filesystem).
        path: String,
    },
    /// A bind source that cannot be used.
    #[error("bind source {path:?}: {source}")]
    Source {
        /// The host path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Paths Docker hides: directories under a read-only empty tmpfs, files under `/dev/null`.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths Docker makes read-only.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's masked paths, plus each CPU's `thermal_throttle` directory present on this host
/// (moby GHSA-6fw5-f8r9-fgfm). Computed once.
pub(crate) fn masked_paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let mut out: Vec<String> = MASKED_PATHS.iter().map(|s| (*s).to_owned()).collect();
        if let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") {
            let mut cpus: Vec<String> = dir
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.strip_prefix("cpu")
                        .is_some_and(|d| d.parse::<u32>().is_ok())
                })
                .map(|n| format!("/sys/devices/system/cpu/{n}/thermal_throttle"))
                .filter(|p| std::path::Path::new(p).exists())
                .collect();
            cpus.sort();
            out.extend(cpus);
        }
        out
    })
}

/// Device nodes bind-mounted from the host into the sandbox's `/dev`.
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks in the sandbox's `/dev`: (name, target).
pub(crate) const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// Options of the `/dev` tmpfs.
pub(crate) const DEV_TMPFS: &CStr = c"mode=755,size=65536k";
/// Options of the private devpts instance.
pub(crate) const DEVPTS: &CStr = c"newinstance,ptmxmode=0666,mode=0620,gid=5";
/// Options of `/dev/shm` (Docker's default 64 MiB).
pub(crate) const SHM: &CStr = c"mode=1777,size=65536k";

/// A file generated for the sandbox and bind-mounted read-only under `/etc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtcFile {
    Hosts,
    ResolvConf,
    Hostname,
}

impl EtcFile {
    /// All of them, in mount order.
    pub(crate) const ALL: [EtcFile; 3] = [EtcFile::Hosts, EtcFile::ResolvConf, EtcFile::Hostname];

    /// File name (in the scratch directory and under `/etc`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            EtcFile::Hosts => "hosts",
            EtcFile::ResolvConf => "resolv.conf",
            EtcFile::Hostname => "hostname",
        }
    }

    /// Path in the sandbox.
    pub(crate) fn target(self) -> String {
        format!("/etc/{}", self.name())
    }
}

/// The host's `/etc/resolv.conf`, given to sandboxes when the caller provides none.
pub(crate) fn host_resolv_conf() -> Vec<u8> {
    std::fs::read("/etc/resolv.conf").unwrap_or_default()
}

/// `target` made canonical: absolute, `.`, `..` and repeated slashes resolved lexically, not
/// `/` itself.
pub(crate) fn normalize_target(target: &str) -> Result<String, MountError> {
    let bad = || MountError::InvalidTarget {
        target: target.to_owned(),
    };
    if !target.starts_with('/') || target.contains('\0') {
        return Err(bad());
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The prefixes of a normalised path: `/a/b/c` → `/a`, `/a/b`, `/a/b/c`.
pub(crate) fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize_target("/a//b/./c/../d/").unwrap(), "/a/b/d");
        assert_eq!(normalize_target("/../../etc").unwrap(), "/etc");
        assert!(normalize_target("relative").is_err());
        assert!(normalize_target("/..").is_err());
    }

    #[test]
    fn prefix_list() {
        let p: Vec<_> = prefixes("/a/b/c").collect();
        assert_eq!(p, ["/a", "/a/b", "/a/b/c"]);
        let p: Vec<_> = prefixes("/a").collect();
        assert_eq!(p, ["/a"]);
    }

    #[test]
    fn masks_include_docker_defaults() {
        let m = masked_paths();
        assert!(m.iter().any(|p| p == "/proc/kcore"));
        assert!(m.iter().any(|p| p == "/sys/firmware"));
    }
}
