//! Docker's default seccomp profile, compiled to BPF here (no libseccomp).
//!
//! Role: [`PROFILE`] is moby's `profiles/seccomp/default.json` written as Rust data (same
//! rules, same conditions on architecture and capabilities); [`resolve`] evaluates those
//! conditions for one architecture and capability set; [`filters`] turns the result into the
//! BPF programs the native sandbox installs (compiled by `bpf`: a binary search over syscall
//! numbers; `seccompiler` installs them and, in the tests, is the reference they must match), and the runc backend hands the resolved rules to
//! runc as an OCI `linux.seccomp` section, so both backends enforce the same profile.
//!
//! Key decisions:
//! - The default action returns `EPERM`, as Docker's. A filter here has one match action, so the profile's one rule with another action (`clone3` → `ENOSYS`,
//!   so glibc falls back to `clone`, whose namespace flags are then refused) is a second,
//!   later filter: among equal action classes the kernel keeps the most recently installed
//!   filter's errno.
//! - Only x86_64 is compiled for now; other architectures fail with
//!   [`SeccompError::UnsupportedArch`]. 32-bit (`int 0x80`) syscalls are killed by the filter's
//!   architecture check, where Docker would allow the x86 sub-architecture.

mod bpf;
mod x86_64;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction};

/// Why a seccomp filter could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SeccompError {
    /// No syscall table for this architecture.
    #[error("seccomp: no syscall table for architecture {arch}")]
    UnsupportedArch {
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// seccompiler rejected the filter.
    #[error("seccomp: building the {which} filter: {reason}")]
    Compile {
        /// Which of the two filters.
        which: &'static str,
        /// seccompiler's message.
        reason: String,
    },
}

/// What a rule does to a matching syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Let it through.
    Allow,
    /// Fail it with this errno.
    Errno(u32),
}

/// A comparison on one syscall argument (64-bit, as libseccomp does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Lt,
    Gt,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

/// A condition on argument `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arg {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

/// When a rule applies, by the capabilities granted.
#[derive(Debug, Clone, Copy)]
enum CapCond {
    Always,
    /// Only if this capability is granted.
    With(u32),
    /// Only if it is not.
    Without(u32),
}

/// One rule of the profile.
#[derive(Debug, Clone, Copy)]
struct Rule {
    names: &'static [&'static str],
    action: Action,
    args: &'static [Arg],
    /// Only on these architectures (Go's names: amd64, arm64…); empty: all.
    arches: &'static [&'static str],
    /// Never on these.
    not_arches: &'static [&'static str],
    caps: CapCond,
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        arches: &[],
        not_arches: &[],
        caps: CapCond::Always,
    }
}

const fn allow_if(names: &'static [&'static str], args: &'static [Arg]) -> Rule {
    Rule {
        args,
        ..allow(names)
    }
}

const fn allow_on(names: &'static [&'static str], arches: &'static [&'static str]) -> Rule {
    Rule {
        arches,
        ..allow(names)
    }
}

const fn allow_with(names: &'static [&'static str], cap: u32) -> Rule {
    Rule {
        caps: CapCond::With(cap),
        ..allow(names)
    }
}

const fn arg(index: u8, op: Op, value: u64) -> Arg {
    Arg { index, op, value }
}

// Capability numbers used by the profile's conditions.
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_MODULE: u32 = 16;
const CAP_SYS_RAWIO: u32 = 17;
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_PACCT: u32 = 20;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_BOOT: u32 = 22;
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_TIME: u32 = 25;
const CAP_SYS_TTY_CONFIG: u32 = 26;
const CAP_SYSLOG: u32 = 34;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// `CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
/// CLONE_NEWCGROUP`: `clone` without `CAP_SYS_ADMIN` may not set any of them.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// Syscalls every container may make.
const ALWAYS: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Docker's default profile (moby `profiles/seccomp/default.json`), rule for rule.
const PROFILE: &[Rule] = &[
    allow(ALWAYS),
    // ptrace is safe since Linux 4.8 (seccomp is re-checked after a tracer changes a syscall).
    allow(&["process_vm_readv", "process_vm_writev", "ptrace"]),
    // socket: anything but AF_ALG (38) and AF_VSOCK (40).
    allow_if(&["socket"], &[arg(0, Op::Lt, 38)]),
    allow_if(&["socket"], &[arg(0, Op::Eq, 39)]),
    allow_if(&["socket"], &[arg(0, Op::Gt, 40)]),
    // personality: only the harmless personas.
    allow_if(&["personality"], &[arg(0, Op::Eq, 0)]),
    allow_if(&["personality"], &[arg(0, Op::Eq, 0x8)]),
    allow_if(&["personality"], &[arg(0, Op::Eq, 0x20000)]),
    allow_if(&["personality"], &[arg(0, Op::Eq, 0x20008)]),
    allow_if(&["personality"], &[arg(0, Op::Eq, 0xffff_ffff)]),
    allow_on(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    allow_on(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        &["arm", "arm64"],
    ),
    allow_on(&["arch_prctl"], &["amd64", "x32"]),
    allow_on(&["modify_ldt"], &["amd64", "x32", "x86"]),
    allow_on(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        &["s390", "s390x"],
    ),
    allow_on(&["riscv_flush_icache"], &["riscv64"]),
    allow_with(&["open_by_handle_at"], CAP_DAC_READ_SEARCH),
    allow_with(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        CAP_SYS_ADMIN,
    ),
    Rule {
        args: &[arg(0, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)],
        not_arches: &["s390", "s390x"],
        caps: CapCond::Without(CAP_SYS_ADMIN),
        ..allow(&["clone"])
    },
    Rule {
        args: &[arg(1, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)],
        arches: &["s390", "s390x"],
        caps: CapCond::Without(CAP_SYS_ADMIN),
        ..allow(&["clone"])
    },
    // clone3 hides its flags in memory seccomp cannot read: ENOSYS makes libc use clone.
    Rule {
        action: Action::Errno(libc::ENOSYS as u32),
        caps: CapCond::Without(CAP_SYS_ADMIN),
        ..allow(&["clone3"])
    },
    allow_with(&["reboot"], CAP_SYS_BOOT),
    allow_with(&["chroot"], CAP_SYS_CHROOT),
    allow_with(
        &["delete_module", "init_module", "finit_module"],
        CAP_SYS_MODULE,
    ),
    allow_with(&["acct"], CAP_SYS_PACCT),
    allow_with(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        CAP_SYS_PTRACE,
    ),
    allow_with(&["iopl", "ioperm"], CAP_SYS_RAWIO),
    allow_with(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        CAP_SYS_TIME,
    ),
    allow_with(&["vhangup"], CAP_SYS_TTY_CONFIG),
    allow_with(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        CAP_SYS_NICE,
    ),
    allow_with(&["syslog"], CAP_SYSLOG),
    allow_with(&["bpf"], CAP_BPF),
    allow_with(&["perf_event_open"], CAP_PERFMON),
];

/// The errno of syscalls no rule allows (`EPERM`, Docker's `defaultErrnoRet`).
pub(crate) const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// A rule of the profile that applies, with its conditions evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub names: Vec<&'static str>,
    pub action: Action,
    pub args: Vec<Arg>,
}

/// The profile's rules that apply on `arch` (Go's name: `amd64`, `arm64`…) to a process
/// holding the capabilities in `caps` (a bit mask).
pub(crate) fn resolve(arch: &str, caps: u64) -> Vec<Resolved> {
    let has = |c: u32| caps & (1 << c) != 0;
    PROFILE
        .iter()
        .filter(|r| r.arches.is_empty() || r.arches.contains(&arch))
        .filter(|r| !r.not_arches.contains(&arch))
        .filter(|r| match r.caps {
            CapCond::Always => true,
            CapCond::With(c) => has(c),
            CapCond::Without(c) => !has(c),
        })
        .map(|r| Resolved {
            names: r.names.to_vec(),
            action: r.action,
            args: r.args.to_vec(),
        })
        .collect()
}

/// Go's name for the architecture this crate is built for.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The BPF programs for Docker's default profile with Docker's default capabilities, in the
/// order to install them. Built once per process.
pub(crate) fn filters() -> Result<&'static [BpfProgram], SeccompError> {
    static FILTERS: OnceLock<Result<Vec<BpfProgram>, SeccompError>> = OnceLock::new();
    FILTERS
        .get_or_init(|| build(&resolve(go_arch(), crate::capability::default_mask())))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn number(name: &str) -> Option<i64> {
    x86_64::SYSCALLS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| x86_64::SYSCALLS[i].1)
}

/// `AUDIT_ARCH_X86_64`: what `seccomp_data.arch` holds for a 64-bit x86 syscall.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// The syscalls the rules with `action` name: number → alternatives of conditions (empty:
/// unconditional; an unconditional rule wins over conditional ones for the same syscall).
fn table(rules: &[Resolved], action: Action) -> BTreeMap<u32, bpf::Rules> {
    let mut map: BTreeMap<u32, Option<bpf::Rules>> = BTreeMap::new();
    for r in rules.iter().filter(|r| r.action == action) {
        for nr in r.names.iter().filter_map(|n| number(n)) {
            let Ok(nr) = u32::try_from(nr) else { continue };
            let entry = map.entry(nr).or_insert_with(|| Some(Vec::new()));
            if r.args.is_empty() {
                *entry = None;
            } else if let Some(list) = entry {
                list.push(r.args.iter().map(cond).collect());
            }
        }
    }
    map.into_iter()
        .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
        .collect()
}

fn cond(a: &Arg) -> bpf::Cond {
    bpf::Cond {
        index: a.index,
        cmp: match a.op {
            Op::Eq => bpf::Cmp::Eq(a.value),
            Op::Lt => bpf::Cmp::Lt(a.value),
            Op::Gt => bpf::Cmp::Gt(a.value),
            Op::MaskedEq(mask) => bpf::Cmp::MaskedEq {
                mask,
                value: a.value,
            },
        },
    }
}

/// One filter per action: `Allow` rules (everything else → `EPERM`), then each errno.
fn build(rules: &[Resolved]) -> Result<Vec<BpfProgram>, SeccompError> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(SeccompError::UnsupportedArch {
            arch: std::env::consts::ARCH,
        });
    }
    let compile = |which: &'static str, action: Action, mismatch: SeccompAction, matched| {
        let program = bpf::compile(
            AUDIT_ARCH_X86_64,
            &table(rules, action),
            u32::from(matched),
            u32::from(mismatch),
        );
        // The kernel's limit (BPF_MAXINSNS).
        if program.len() > 4096 {
            return Err(SeccompError::Compile {
                which,
                reason: format!("{} instructions (at most 4096)", program.len()),
            });
        }
        Ok(program)
    };
    let mut out = vec![compile(
        "allow",
        Action::Allow,
        SeccompAction::Errno(DEFAULT_ERRNO),
        SeccompAction::Allow,
    )?];
    for e in errnos(rules) {
        out.push(compile(
            "errno",
            Action::Errno(e),
            SeccompAction::Allow,
            SeccompAction::Errno(e),
        )?);
    }
    Ok(out)
}

/// The errnos of the rules that return one, each once, in order.
fn errnos(rules: &[Resolved]) -> Vec<u32> {
    let mut errnos: Vec<u32> = rules
        .iter()
        .filter_map(|r| match r.action {
            Action::Errno(e) => Some(e),
            Action::Allow => None,
        })
        .collect();
    errnos.sort_unstable();
    errnos.dedup();
    errnos
}

#[cfg(test)]
mod tests {
    use super::bpf::tests::run;
    use super::*;

    #[test]
    fn table_sorted() {
        assert!(x86_64::SYSCALLS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number("read"), Some(0));
        assert_eq!(number("clone3"), Some(435));
    }

    #[test]
    fn resolved_for_docker_defaults() {
        let rules = resolve("amd64", crate::capability::default_mask());
        let allowed = |n: &str| {
            rules
                .iter()
                .any(|r| r.action == Action::Allow && r.names.contains(&n))
        };
        assert!(allowed("chroot"), "CAP_SYS_CHROOT is a default capability");
        assert!(allowed("arch_prctl"));
        assert!(!allowed("mount"));
        assert!(!allowed("unshare"));
        assert!(!allowed("cacheflush"));
        assert!(rules
            .iter()
            .any(|r| r.names == ["clone3"] && r.action == Action::Errno(38)));
        assert!(rules
            .iter()
            .any(|r| r.names == ["clone"] && !r.args.is_empty() && r.args[0].index == 0));
    }

    #[test]
    fn every_x86_64_name_resolves() {
        // The names without an x86_64 number are 32-bit or other architectures' syscalls.
        let unknown: Vec<_> = ALWAYS.iter().filter(|n| number(n).is_none()).collect();
        for n in &unknown {
            assert!(
                n.ends_with("32")
                    || n.ends_with("64")
                    || n.starts_with('_')
                    || [
                        "ipc",
                        "recv",
                        "send",
                        "sigprocmask",
                        "sigreturn",
                        "socketcall",
                        "stime",
                        "umount",
                        "waitpid",
                        "riscv_hwprobe",
                        "mmap2",
                        "ugetrlimit"
                    ]
                    .contains(n),
                "{n} has no x86_64 number"
            );
        }
    }

    /// The programs `seccompiler` makes of the same tables (the previous compiler).
    fn reference(rules: &[Resolved]) -> Vec<BpfProgram> {
        use seccompiler::{
            SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
            TargetArch,
        };
        let compile = |action: Action, mismatch, matched| {
            let map = table(rules, action)
                .into_iter()
                .map(|(nr, alternatives)| {
                    let rules = alternatives
                        .iter()
                        .map(|conds| {
                            let conds = conds
                                .iter()
                                .map(|c| {
                                    let (op, v) = match c.cmp {
                                        bpf::Cmp::Eq(v) => (SeccompCmpOp::Eq, v),
                                        bpf::Cmp::Lt(v) => (SeccompCmpOp::Lt, v),
                                        bpf::Cmp::Gt(v) => (SeccompCmpOp::Gt, v),
                                        bpf::Cmp::MaskedEq { mask, value } => {
                                            (SeccompCmpOp::MaskedEq(mask), value)
                                        }
                                    };
                                    SeccompCondition::new(c.index, SeccompCmpArgLen::Qword, op, v)
                                        .unwrap()
                                })
                                .collect();
                            SeccompRule::new(conds).unwrap()
                        })
                        .collect();
                    (i64::from(nr), rules)
                })
                .collect();
            let filter = SeccompFilter::new(map, mismatch, matched, TargetArch::x86_64).unwrap();
            BpfProgram::try_from(filter).unwrap()
        };
        let mut out = vec![compile(
            Action::Allow,
            SeccompAction::Errno(DEFAULT_ERRNO),
            SeccompAction::Allow,
        )];
        for e in errnos(rules) {
            out.push(compile(
                Action::Errno(e),
                SeccompAction::Allow,
                SeccompAction::Errno(e),
            ));
        }
        out
    }

    #[test]
    fn programs_decide_as_seccompilers_on_every_syscall() {
        let rules = resolve("amd64", crate::capability::default_mask());
        let ours = build(&rules).unwrap();
        let theirs = reference(&rules);
        assert_eq!(ours.len(), theirs.len());
        // Argument values around every constant the rules compare with, and a spread.
        let mut values: Vec<u64> = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 32, (1 << 32) - 1];
        for r in &rules {
            for a in &r.args {
                let mut v = vec![a.value, a.value.wrapping_add(1), a.value.wrapping_sub(1)];
                if let Op::MaskedEq(mask) = a.op {
                    v.extend([mask, !mask, a.value | !mask, a.value ^ (1 << 40)]);
                }
                for x in v {
                    values.extend([x, x ^ (1 << 63), x | (1 << 35)]);
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            values.push(state);
        }
        values.sort_unstable();
        values.dedup();
        let numbers = (0..=600u32).chain([0x4000_0000, 0x4000_0001, 0x4000_0200, u32::MAX]);
        let mut checked = 0;
        assert!(
            ours[0].len() * 4 < theirs[0].len(),
            "{} instructions against seccompiler's {}",
            ours[0].len(),
            theirs[0].len()
        );
        for (program, reference) in ours.iter().zip(&theirs) {
            assert!(program.len() <= reference.len());
            for nr in numbers.clone() {
                for arch in [AUDIT_ARCH_X86_64, 0x4000_0003 /* i386 */] {
                    let conditional = rules.iter().any(|r| {
                        !r.args.is_empty()
                            && r.names.iter().any(|n| number(n) == Some(i64::from(nr)))
                    });
                    let sets: Vec<[u64; 6]> = if conditional {
                        values
                            .iter()
                            .flat_map(|&v| {
                                (0..6).map(move |i| {
                                    let mut args = [0u64; 6];
                                    args[i] = v;
                                    args
                                })
                            })
                            .collect()
                    } else {
                        vec![[0; 6], [u64::MAX; 6]]
                    };
                    for args in sets {
                        assert_eq!(
                            run(program, nr, arch, args),
                            run(reference, nr, arch, args),
                            "syscall {nr}, arch {arch:#x}, args {args:x?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 2400, "{checked}");
        // Spot checks of what the profile says, through the program.
        let allow = u32::from(SeccompAction::Allow);
        let eperm = u32::from(SeccompAction::Errno(DEFAULT_ERRNO));
        let nr = |n| u32::try_from(number(n).unwrap()).unwrap();
        assert_eq!(run(&ours[0], nr("read"), AUDIT_ARCH_X86_64, [0; 6]), allow);
        assert_eq!(run(&ours[0], nr("mount"), AUDIT_ARCH_X86_64, [0; 6]), eperm);
        let clone_newns = [0x0002_0000u64, 0, 0, 0, 0, 0];
        assert_eq!(
            run(&ours[0], nr("clone"), AUDIT_ARCH_X86_64, clone_newns),
            eperm
        );
        assert_eq!(
            run(&ours[0], nr("clone"), AUDIT_ARCH_X86_64, [0x11; 6]),
            allow
        );
        assert_eq!(
            run(&ours[0], nr("read"), 0x4000_0003, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn compiles() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(
            f[0].len() < 4096,
            "BPF programs are limited to 4096 instructions"
        );
    }
}
