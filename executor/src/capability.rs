//! Linux capabilities: Docker's default set ([`DEFAULT`]) and capability names.
//!
//! Role: the one definition of which capabilities a sandboxed process keeps, shared by the
//! native sandbox (as a bit mask) and the runc backend (as `CAP_*` names).
//!
//! Key decision: inheritable stays empty, as in Docker since 20.10.14 (CVE-2022-24769: an
//! inheritable set lets a non-root user regain capabilities through file capabilities); the
//! default set goes into bounding, permitted and effective, and ambient is cleared.

/// A capability: its number and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Kernel number (`CAP_CHOWN` = 0…).
    pub number: u32,
    /// `CAP_…` name.
    pub name: &'static str,
}

/// Every capability the kernel headers know, by number.
pub const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `caps.DefaultCapabilities`).
pub const DEFAULT: [Capability; 14] = [
    cap(0),  // CHOWN
    cap(1),  // DAC_OVERRIDE
    cap(3),  // FOWNER
    cap(4),  // FSETID
    cap(5),  // KILL
    cap(6),  // SETGID
    cap(7),  // SETUID
    cap(8),  // SETPCAP
    cap(10), // NET_BIND_SERVICE
    cap(13), // NET_RAW
    cap(18), // SYS_CHROOT
    cap(27), // MKNOD
    cap(29), // AUDIT_WRITE
    cap(31), // SETFCAP
];

const fn cap(number: u32) -> Capability {
    Capability {
        number,
        name: ALL[number as usize],
    }
}

/// [`DEFAULT`] as a bit mask, as `/proc/self/status` prints it (`0x00000000a80425fb`).
pub const fn default_mask() -> u64 {
    let mut mask = 0u64;
    let mut i = 0;
    while i < DEFAULT.len() {
        mask |= 1 << DEFAULT[i].number;
        i += 1;
    }
    mask
}

/// Whether capability `number` is in [`DEFAULT`].
pub fn is_default(number: u32) -> bool {
    number < 64 && default_mask() & (1 << number) != 0
}

/// The highest capability number this kernel knows (`/proc/sys/kernel/cap_last_cap`).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(ALL.len() as u32 - 1)
}

/// The capabilities this process holds (permitted set): what `--security=insecure` grants,
/// as BuildKit does (a host may withhold some, so "all" would fail).
pub fn current_permitted() -> u64 {
    rustix::thread::capabilities(None)
        .map(|s| s.permitted.bits())
        .unwrap_or(default_mask())
}

/// Names of the capabilities in `mask` that this crate knows.
pub fn names_of(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|n| mask & (1 << n) != 0)
        .filter_map(|n| ALL.get(n as usize).map(|s| (*s).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_mask() {
        assert_eq!(super::default_mask(), 0xa80425fb);
        assert!(super::is_default(31));
        assert!(!super::is_default(21));
    }
}
