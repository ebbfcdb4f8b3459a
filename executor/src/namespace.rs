//! Which Linux namespaces a sandbox gets.
//!
//! Role: one place that maps a [`RunSpec`](crate::RunSpec) to `CLONE_NEW*` flags (native) and
//! OCI namespace entries (runc). Mount, PID, UTS and IPC namespaces always; a network
//! namespace for [`Network::None`]. Key decision: no user namespace (the build runs as real
//! root, as BuildKit's runc worker does) and no cgroup namespace (Docker's default on a
//! cgroup v1 host, which this machine is).

use crate::spec::Network;

/// The namespaces of a sandbox with `network`.
pub(crate) fn kinds(network: Network) -> Vec<Kind> {
    let mut out = vec![Kind::Mount, Kind::Pid, Kind::Uts, Kind::Ipc];
    if network == Network::None {
        out.push(Kind::Network);
    }
    out
}

/// A kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Mount,
    Pid,
    Uts,
    Ipc,
    Network,
}

impl Kind {
    /// Its `CLONE_NEW*` flag.
    pub(crate) fn clone_flag(self) -> u64 {
        (match self {
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Network => libc::CLONE_NEWNET,
        }) as u64
    }
}

/// The `clone3` flags for a sandbox with `network`.
pub(crate) fn clone_flags(network: Network) -> u64 {
    kinds(network).iter().fold(0, |f, k| f | k.clone_flag())
}
