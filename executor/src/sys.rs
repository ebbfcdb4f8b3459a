//! The crate's only `unsafe` code: raw syscalls that `rustix` does not wrap safely.
//!
//! Role: cloning into new namespaces (`clone3` with a pidfd), forking inside the sandbox,
//! `execve`, `_exit`, resetting signal state, `close_range`, bringing `lo` up, and the
//! `pre_exec` hook of the runc backend. Everything else uses `rustix`'s safe API.
//!
//! Key decision: a child cloned from a multi-threaded process may only make syscalls until it
//! execs (another thread may have held the allocator's lock at the moment of the clone). The
//! clone functions here therefore take a plain `fn` that must not allocate, lock or unwind;
//! the crate's child code (`sandbox::child`) is written to that rule, and the functions never
//! return in the child.

use std::ffi::{c_char, CStr};
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::process::Command;

use rustix::io::Errno;
use rustix::process::Pid;

/// `struct clone_args` of `clone3(2)`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Clones the calling process into new namespaces (`flags`: `CLONE_NEW*`), like `fork` (the
/// child runs on a copy of the caller's stack and memory). The child runs `child(ctx)`, which
/// must not allocate, take locks or unwind, and never returns. The parent gets the child's
/// pid and a pidfd for it.
pub(crate) fn clone_sandbox<T>(
    flags: u64,
    ctx: &mut T,
    child: fn(&mut T) -> !,
) -> io::Result<(Pid, OwnedFd)> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid `clone_args` of the size passed; stack 0 makes the child
    // continue on a copy of this stack, as fork does. The child only runs `child`, which by
    // this function's contract makes syscalls only and ends with `_exit`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => child(ctx),
        pid => {
            // SAFETY: the kernel stored a new, owned pidfd for the child (CLONE_PIDFD).
            let fd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok((
                Pid::from_raw(pid as i32).ok_or_else(io::Error::last_os_error)?,
                fd,
            ))
        }
    }
}

/// `fork` as a raw syscall (no `atfork` handlers), for a process that is already a cloned
/// child. Same contract as [`clone_sandbox`] for `child`.
pub(crate) fn fork_raw<T>(ctx: &mut T, child: fn(&mut T) -> !) -> Result<Pid, Errno> {
    // SAFETY: a plain `clone(SIGCHLD)` with no stack is fork; the child only runs `child`.
    let ret = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    match ret {
        -1 => Err(Errno::from_raw_os_error(last_errno())),
        0 => child(ctx),
        pid => Pid::from_raw(pid as i32).ok_or(Errno::INVAL),
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// `execve(path, argv, envp)`; returns only on failure. `argv` and `envp` must end with a
/// null pointer and point at C strings that live until the call.
pub(crate) fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::INVAL;
    }
    // SAFETY: both arrays are null-terminated (checked above) and their strings are owned
    // by the caller for the duration of the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::from_raw_os_error(last_errno())
}

/// Ends the process at once, without running destructors or `atexit` handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Puts every signal back to its default action and unblocks all, so the payload does not
/// inherit the host process's dispositions (Rust ignores `SIGPIPE`) or mask.
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; signals the kernel refuses just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set, a valid `how`, and no old set requested.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Closes every fd from 3 up except `keep` (the payload's stdio is 0–2).
pub(crate) fn close_all_except(keep: i32) -> Result<(), Errno> {
    let close = |first: u32, last: u32| {
        if first > last {
            return Ok(());
        }
        // SAFETY: close_range only closes fds of this process; the caller owns all of them
        // and never uses the closed ones again.
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
        if ret == -1 {
            Err(Errno::from_raw_os_error(last_errno()))
        } else {
            Ok(())
        }
    };
    let keep = keep.max(0) as u32;
    if keep < 3 {
        return close(3, u32::MAX);
    }
    close(3, keep - 1)?;
    close(keep + 1, u32::MAX)
}

/// Brings the loopback interface of the current network namespace up.
pub(crate) fn loopback_up() -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: `ifreq` is plain data, zero is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into `req`, a valid ifreq naming an interface.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: the flags member is the active one after SIOCGIFFLAGS.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the same valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// Moves the calling thread into a new network namespace with `lo` up and returns a handle
/// on that namespace (`/proc/thread-self/ns/net`). The caller must be a thread of its own
/// that does nothing else: it stays in that namespace (and the next one it makes).
pub(crate) fn new_network_namespace() -> Result<OwnedFd, Errno> {
    // SAFETY: NEWNET only changes this thread's network namespace, which nothing else in
    // the process observes (the caller is a dedicated thread); file tables stay shared.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET)? };
    loopback_up()?;
    rustix::fs::open(
        c"/proc/thread-self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// Moves the calling process (a sandbox's init, before anything else) into the network
/// namespace `ns`.
pub(crate) fn enter_network_namespace(ns: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::thread::move_into_link_name_space(ns, Some(rustix::thread::LinkNameSpaceType::Network))
}

/// Moves the calling (single-threaded) process into a new mount namespace.
pub(crate) fn unshare_mount_namespace() -> Result<(), Errno> {
    // SAFETY: only called from a `pre_exec` hook, in a single-threaded forked child, where
    // changing the process's mount namespace cannot surprise another thread.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
}

/// Runs `hook` in the child `command` forks, before it execs. `hook` must only make syscalls
/// (no allocation): the child of a multi-threaded process.
pub(crate) fn pre_exec<F>(command: &mut Command, hook: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: the hooks this crate passes only make syscalls on data prepared beforehand.
    unsafe {
        command.pre_exec(hook);
    }
}
