//! Messages between the supervising process and the sandbox's init, over a `SOCK_SEQPACKET`
//! socket pair (one message per `send`, so no framing).
//!
//! Child → parent: `Ready` (mounts done, with the stubs it created; asks for the user),
//! `Error` (a setup step failed), `Exit` (the payload's wait status, sent by init just before
//! it exits). Parent → child: `User` (resolved ids and home). All fields are native-endian
//! 32/64-bit integers; the child encodes into fixed buffers, never allocating.

pub(super) const READY: u32 = 1;
pub(super) const ERROR: u32 = 2;
pub(super) const EXIT: u32 = 3;

/// Bytes per stub in a `Ready` message: created (u32), padding (u32), parent mtime (i64, i64).
pub(super) const STUB_RECORD: usize = 24;
/// Header of a `Ready` message: kind, count.
pub(super) const READY_HEADER: usize = 8;
/// Header of a `User` message: uid, gid, group count, home length.
pub(super) const USER_HEADER: usize = 16;

/// A setup step of the sandbox, for error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Step {
    Stdio = 1,
    Privatize,
    Scratch,
    EtcFile,
    Rootfs,
    Capture,
    PivotRoot,
    Target,
    Dev,
    Device,
    DevSymlink,
    Devpts,
    Shm,
    Mqueue,
    EtcMount,
    UserMount,
    Readonly,
    Sysfs,
    Proc,
    Mask,
    ReadonlyPath,
    Hostname,
    Loopback,
    Cwd,
    Handshake,
    Fork,
    Setsid,
    Bounding,
    Groups,
    Gid,
    Uid,
    Chdir,
    Caps,
    NoNewPrivs,
    Seccomp,
    Exec,
    Netns,
}

impl Step {
    const ALL: [Step; 37] = [
        Step::Stdio,
        Step::Privatize,
        Step::Scratch,
        Step::EtcFile,
        Step::Rootfs,
        Step::Capture,
        Step::PivotRoot,
        Step::Target,
        Step::Dev,
        Step::Device,
        Step::DevSymlink,
        Step::Devpts,
        Step::Shm,
        Step::Mqueue,
        Step::EtcMount,
        Step::UserMount,
        Step::Readonly,
        Step::Sysfs,
        Step::Proc,
        Step::Mask,
        Step::ReadonlyPath,
        Step::Hostname,
        Step::Loopback,
        Step::Cwd,
        Step::Handshake,
        Step::Fork,
        Step::Setsid,
        Step::Bounding,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Chdir,
        Step::Caps,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
        Step::Netns,
    ];

    pub(super) fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// What the step does, for messages.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Step::Stdio => "set up stdio",
            Step::Privatize => "make mounts private",
            Step::Scratch => "mount scratch tmpfs",
            Step::EtcFile => "write generated file",
            Step::Rootfs => "mount rootfs",
            Step::Capture => "open bind source",
            Step::PivotRoot => "pivot_root",
            Step::Target => "create mount target",
            Step::Dev => "mount /dev",
            Step::Device => "bind device",
            Step::DevSymlink => "create /dev symlink",
            Step::Devpts => "mount devpts",
            Step::Shm => "mount /dev/shm",
            Step::Mqueue => "mount /dev/mqueue",
            Step::EtcMount => "bind generated file",
            Step::UserMount => "mount",
            Step::Readonly => "remount read-only",
            Step::Sysfs => "mount sysfs",
            Step::Proc => "mount proc",
            Step::Mask => "mask path",
            Step::ReadonlyPath => "make path read-only",
            Step::Hostname => "set hostname",
            Step::Loopback => "bring up lo",
            Step::Netns => "enter network namespace",
            Step::Cwd => "create working directory",
            Step::Handshake => "talk to supervisor",
            Step::Fork => "fork process",
            Step::Setsid => "setsid",
            Step::Bounding => "drop bounding capabilities",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::Chdir => "chdir to cwd",
            Step::Caps => "set capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Seccomp => "install seccomp filter",
            Step::Exec => "exec",
        }
    }
}

/// Encodes an `Error` message.
pub(super) fn error(step: Step, errno: i32, index: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0..4].copy_from_slice(&ERROR.to_ne_bytes());
    m[4..8].copy_from_slice(&(step as u32).to_ne_bytes());
    m[8..12].copy_from_slice(&errno.to_ne_bytes());
    m[12..16].copy_from_slice(&index.to_ne_bytes());
    m
}

/// Encodes an `Exit` message.
pub(super) fn exit(status: i32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0..4].copy_from_slice(&EXIT.to_ne_bytes());
    m[4..8].copy_from_slice(&status.to_ne_bytes());
    m
}

/// Reads the native-endian u32 at `at`.
pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_ne_bytes(a)
}

/// Reads the native-endian i64 at `at`.
pub(super) fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_ne_bytes(a)
}

/// Writes `v` at `at` (the buffer is sized by the caller).
pub(super) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_ne_bytes());
    }
}

/// Writes `v` at `at`.
pub(super) fn put_i64(b: &mut [u8], at: usize, v: i64) {
    if let Some(s) = b.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_ne_bytes());
    }
}
