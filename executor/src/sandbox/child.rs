//! The code that runs inside the sandbox before the payload's `execve`: [`init`] and the
//! payload's set-up.
//!
//! Role: the cloned child is PID 1 of the new PID namespace. It builds the filesystem (scratch
//! tmpfs with the generated files, rootfs, captured bind sources, `pivot_root`, `/dev`, the
//! `/etc` files, the caller's mounts, `/sys`, `/proc`, masked and read-only paths), sets the
//! hostname and `lo`, reports to the supervisor and receives the resolved user, then forks
//! the payload and stays as a minimal init: it reaps every orphan and, when the payload exits,
//! sends its wait status and exits (the kernel then kills whatever is left in the namespace).
//! The payload drops to Docker's capabilities, sets groups/gid/uid, `no_new_privs`, the seccomp
//! filters, and execs.
//!
//! Key decisions:
//! - Nothing here allocates, locks or unwinds: the process was cloned from a multi-threaded
//!   one. All data comes prepared in the [`Plan`]; errors are reported as (step, errno, index).
//! - Host paths are only touched before `pivot_root`, and only to capture them as detached
//!   mounts (`open_tree`); every mount target is resolved after it, inside the new root, and
//!   `/proc` is mounted last, so no symlink in an image can point a mount at the host or
//!   through a `/proc` magic link.
//! - A tiny init as PID 1 rather than the payload itself: zombies are reaped, and the payload
//!   gets default signal behaviour (a PID 1 ignores signals it has no handler for).

use std::convert::Infallible;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::fs::{self, AtFlags, Mode, OFlags, StatVfsMountFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    mount, mount_bind, mount_change, mount_remount, move_mount, open_tree, unmount, MountFlags,
    MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use rustix::net::{recv, send, RecvFlags, SendFlags};
use rustix::process::{Gid, Signal, Uid, WaitOptions};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::plan::{LayersPlan, Plan, RootfsPlan, Target, UserMountPlan};
use super::protocol::{self, Step, READY_HEADER, STUB_RECORD, USER_HEADER};
use crate::{capability, mount as layout, sys};

/// What the cloned child owns.
pub(super) struct ChildCtx<'a> {
    pub plan: &'a mut Plan,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub ctrl: OwnedFd,
    /// A network namespace made ahead of time to enter (`--network none`; else the clone
    /// made a new one, or the sandbox shares the host's).
    pub netns: Option<OwnedFd>,
}

/// A failed step.
#[derive(Clone, Copy)]
struct Fail {
    step: Step,
    errno: Errno,
    index: u32,
}

type R<T = ()> = Result<T, Fail>;

trait At<T> {
    fn at(self, step: Step, index: usize) -> R<T>;
}

impl<T> At<T> for Result<T, Errno> {
    fn at(self, step: Step, index: usize) -> R<T> {
        self.map_err(|errno| Fail {
            step,
            errno,
            index: index as u32,
        })
    }
}

fn report(ctrl: &OwnedFd, f: Fail) {
    let msg = protocol::error(f.step, f.errno.raw_os_error(), f.index);
    let _ = send(ctrl, &msg, SendFlags::empty());
}

/// PID 1 of the sandbox. Never returns.
pub(super) fn init(ctx: &mut ChildCtx<'_>) -> ! {
    if let Err(f) = setup(ctx) {
        report(&ctx.ctrl, f);
        sys::exit_now(126);
    }
    let payload = match sys::fork_raw(ctx, payload) {
        Ok(pid) => pid,
        Err(e) => {
            report(
                &ctx.ctrl,
                Fail {
                    step: Step::Fork,
                    errno: e,
                    index: 0,
                },
            );
            sys::exit_now(126);
        }
    };
    // Keep the payload (same uid, fewer capabilities) out of init's memory and fds.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid == payload => {
                let _ = send(
                    &ctx.ctrl,
                    &protocol::exit(status.as_raw()),
                    SendFlags::empty(),
                );
                sys::exit_now(0);
            }
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => sys::exit_now(125),
        }
    }
}

fn setup(ctx: &mut ChildCtx<'_>) -> R {
    // Die with the supervisor; if it is already gone, the handshake below sees EOF.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    // First: /sys and lo below belong to the namespace the process is in.
    if let Some(ns) = &ctx.netns {
        sys::enter_network_namespace(ns.as_fd()).at(Step::Netns, 0)?;
    }
    rustix::stdio::dup2_stdin(&ctx.stdin).at(Step::Stdio, 0)?;
    rustix::stdio::dup2_stdout(&ctx.stdout).at(Step::Stdio, 1)?;
    rustix::stdio::dup2_stderr(&ctx.stderr).at(Step::Stdio, 2)?;
    // Close every other inherited fd (other runs' pipes would otherwise stay open as long as
    // this init lives). The OwnedFds above now name closed fds: they are never used or
    // dropped again (the child ends with `_exit`).
    sys::close_all_except(ctx.ctrl.as_raw_fd()).at(Step::Stdio, 3)?;
    sys::reset_signals();

    let plan = &mut *ctx.plan;
    mount_change(
        c"/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .at(Step::Privatize, 0)?;
    mount(
        c"tmpfs",
        plan.scratch.as_c_str(),
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(c"mode=700,size=16m"),
    )
    .at(Step::Scratch, 0)?;
    fs::mkdirat(CWD, plan.root.as_c_str(), Mode::from_raw_mode(0o755)).at(Step::Scratch, 1)?;
    for (i, e) in plan.etc.iter().enumerate() {
        if e.host_source.is_none() {
            let fd = fs::openat(
                CWD,
                e.scratch.as_c_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .at(Step::EtcFile, i)?;
            write_all(&fd, &e.content).at(Step::EtcFile, i)?;
        }
    }

    match &plan.rootfs {
        RootfsPlan::Overlay(m) => m.mount_at(plan.root.as_c_str()).at(Step::Rootfs, 0)?,
        RootfsPlan::Dir(d) => mount_bind(d.as_c_str(), plan.root.as_c_str()).at(Step::Rootfs, 0)?,
    }

    // Capture everything that lives on the host while the host is still visible.
    let clone = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    let mut slot = 0;
    for (i, d) in plan.devices.iter().enumerate() {
        plan.captured[slot] = Some(open_tree(CWD, d.host.as_c_str(), clone).at(Step::Capture, i)?);
        slot += 1;
    }
    for (i, e) in plan.etc.iter().enumerate() {
        let src = e.host_source.as_ref().unwrap_or(&e.scratch);
        plan.captured[slot] =
            Some(open_tree(CWD, src.as_c_str(), clone).at(Step::Capture, 100 + i)?);
        slot += 1;
    }
    for (i, m) in plan.mounts.iter().enumerate() {
        if let UserMountPlan::Bind {
            source,
            recursive,
            layers,
            ..
        } = m
        {
            let flags = if *recursive {
                clone | OpenTreeFlags::AT_RECURSIVE
            } else {
                clone
            };
            plan.captured[slot] = Some(match layers {
                Some(l) => capture_layers(l, flags).at(Step::Capture, 200 + i)?,
                None => open_tree(CWD, source.as_c_str(), flags).at(Step::Capture, 200 + i)?,
            });
        }
        slot += 1;
    }

    rustix::process::chdir(plan.root.as_c_str()).at(Step::PivotRoot, 0)?;
    rustix::process::pivot_root(c".", c".").at(Step::PivotRoot, 1)?;
    unmount(c".", UnmountFlags::DETACH).at(Step::PivotRoot, 2)?;
    rustix::process::chdir(c"/").at(Step::PivotRoot, 3)?;

    setup_dev(plan)?;
    let etc_base = plan.etc_base();
    for i in 0..plan.etc.len() {
        ensure_target(plan, TargetRef::Etc(i))?;
        let target = &plan.etc[i].target.path;
        attach(plan.captured[etc_base + i].as_ref(), target).at(Step::EtcMount, i)?;
        remount_readonly(target).at(Step::Readonly, i)?;
    }
    let mounts_base = plan.mounts_base();
    for i in 0..plan.mounts.len() {
        ensure_target(plan, TargetRef::Mount(i))?;
        match &plan.mounts[i] {
            UserMountPlan::Bind {
                target, readonly, ..
            } => {
                attach(plan.captured[mounts_base + i].as_ref(), &target.path)
                    .at(Step::UserMount, i)?;
                if *readonly {
                    remount_readonly(&target.path).at(Step::Readonly, 100 + i)?;
                }
            }
            UserMountPlan::Tmpfs { target, data } => {
                mount(
                    c"tmpfs",
                    target.path.as_c_str(),
                    c"tmpfs",
                    MountFlags::NOSUID | MountFlags::NODEV,
                    Some(data.as_c_str()),
                )
                .at(Step::UserMount, i)?;
            }
        }
    }

    ensure_target(plan, TargetRef::Sys)?;
    let mut sys_flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if plan.sandboxed {
        sys_flags |= MountFlags::RDONLY;
    }
    mount(
        c"sysfs",
        plan.sys.path.as_c_str(),
        c"sysfs",
        sys_flags,
        None,
    )
    .at(Step::Sysfs, 0)?;
    ensure_target(plan, TargetRef::Proc)?;
    mount(
        c"proc",
        plan.proc_.path.as_c_str(),
        c"proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .at(Step::Proc, 0)?;

    for (i, p) in plan.masked.iter().enumerate() {
        let st = match fs::statat(CWD, p.as_c_str(), AtFlags::empty()) {
            Ok(st) => st,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => continue,
            Err(e) => {
                return Err(Fail {
                    step: Step::Mask,
                    errno: e,
                    index: i as u32,
                })
            }
        };
        if fs::FileType::from_raw_mode(st.st_mode) == fs::FileType::Directory {
            mount(c"tmpfs", p.as_c_str(), c"tmpfs", MountFlags::RDONLY, None).at(Step::Mask, i)?;
        } else {
            mount_bind(c"/dev/null", p.as_c_str()).at(Step::Mask, i)?;
        }
    }
    for (i, p) in plan.readonly.iter().enumerate() {
        match mount_bind(p.as_c_str(), p.as_c_str()) {
            Ok(()) => remount_readonly(p).at(Step::ReadonlyPath, i)?,
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(Fail {
                    step: Step::ReadonlyPath,
                    errno: e,
                    index: i as u32,
                })
            }
        }
    }

    rustix::system::sethostname(&plan.hostname).at(Step::Hostname, 0)?;
    // A namespace made ahead of time has lo up already.
    if plan.network_none && ctx.netns.is_none() {
        sys::loopback_up().at(Step::Loopback, 0)?;
    }
    for (i, p) in plan.cwd_prefixes.iter().enumerate() {
        match fs::mkdirat(CWD, p.as_c_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(Fail {
                    step: Step::Cwd,
                    errno: e,
                    index: i as u32,
                })
            }
        }
    }

    handshake(ctx)
}

/// Mounts a layered bind source in the scratch tmpfs and captures the resolved path in it.
/// The path is resolved again inside the overlay only (`RESOLVE_IN_ROOT`), in case a layer
/// changed since the supervisor resolved it.
fn capture_layers(l: &LayersPlan, flags: OpenTreeFlags) -> Result<OwnedFd, Errno> {
    fs::mkdirat(CWD, l.mountpoint.as_c_str(), Mode::from_raw_mode(0o700))?;
    l.overlay.mount_at(l.mountpoint.as_c_str())?;
    let root = fs::openat(
        CWD,
        l.mountpoint.as_c_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let source = fs::openat2(
        &root,
        l.path.as_c_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        fs::ResolveFlags::IN_ROOT | fs::ResolveFlags::NO_MAGICLINKS,
    )?;
    open_tree(&source, c"", flags | OpenTreeFlags::AT_EMPTY_PATH)
}

/// Sends `Ready`, receives `User`.
fn handshake(ctx: &mut ChildCtx<'_>) -> R {
    let plan = &mut *ctx.plan;
    protocol::put_u32(&mut plan.report, 0, protocol::READY);
    protocol::put_u32(&mut plan.report, 4, plan.stubs.len() as u32);
    send(&ctx.ctrl, &plan.report, SendFlags::empty()).at(Step::Handshake, 0)?;
    let (_, n) =
        recv(&ctx.ctrl, &mut plan.user_msg[..], RecvFlags::empty()).at(Step::Handshake, 1)?;
    if n < USER_HEADER {
        // The supervisor went away or gave up (it reports why itself).
        sys::exit_now(1);
    }
    let msg = &plan.user_msg[..n];
    plan.uid = protocol::u32_at(msg, 0);
    plan.gid = protocol::u32_at(msg, 4);
    let ngroups = (protocol::u32_at(msg, 8) as usize).min(plan.groups.len());
    let home_len = (protocol::u32_at(msg, 12) as usize).min(super::plan::MAX_HOME);
    for i in 0..ngroups {
        plan.groups[i] = Gid::from_raw(protocol::u32_at(msg, USER_HEADER + 4 * i));
    }
    plan.ngroups = ngroups;
    if let Some(slot) = plan.home_slot {
        let start = USER_HEADER + 4 * ngroups;
        if let Some(home) = msg.get(start..start + home_len) {
            if !home.is_empty() && !home.contains(&0) {
                plan.home_env[5..5 + home_len].copy_from_slice(home);
                plan.home_env[5 + home_len] = 0;
            }
        }
        plan.envp[slot] = plan.home_env.as_ptr().cast();
    }
    Ok(())
}

fn setup_dev(plan: &mut Plan) -> R {
    ensure_target(plan, TargetRef::Dev)?;
    mount(
        c"tmpfs",
        plan.dev.path.as_c_str(),
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        Some(layout::DEV_TMPFS),
    )
    .at(Step::Dev, 0)?;
    for (i, d) in plan.devices.iter().enumerate() {
        drop(
            fs::openat(
                CWD,
                d.target.as_c_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )
            .at(Step::Device, i)?,
        );
        attach(plan.captured[i].as_ref(), &d.target).at(Step::Device, i)?;
    }
    for (i, (path, link)) in plan.dev_symlinks.iter().enumerate() {
        fs::symlinkat(link.as_c_str(), CWD, path.as_c_str()).at(Step::DevSymlink, i)?;
    }
    fs::mkdirat(CWD, c"/dev/pts", Mode::from_raw_mode(0o755)).at(Step::Devpts, 0)?;
    mount(
        c"devpts",
        c"/dev/pts",
        c"devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        Some(layout::DEVPTS),
    )
    .at(Step::Devpts, 1)?;
    fs::mkdirat(CWD, c"/dev/shm", Mode::from_raw_mode(0o1777)).at(Step::Shm, 0)?;
    mount(
        c"shm",
        c"/dev/shm",
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(layout::SHM),
    )
    .at(Step::Shm, 1)?;
    fs::mkdirat(CWD, c"/dev/mqueue", Mode::from_raw_mode(0o755)).at(Step::Mqueue, 0)?;
    mount(
        c"mqueue",
        c"/dev/mqueue",
        c"mqueue",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .at(Step::Mqueue, 1)?;
    Ok(())
}

#[derive(Clone, Copy)]
enum TargetRef {
    Dev,
    Sys,
    Proc,
    Etc(usize),
    Mount(usize),
}

fn target_of(plan: &Plan, t: TargetRef) -> &Target {
    match t {
        TargetRef::Dev => &plan.dev,
        TargetRef::Sys => &plan.sys,
        TargetRef::Proc => &plan.proc_,
        TargetRef::Etc(i) => &plan.etc[i].target,
        TargetRef::Mount(i) => match &plan.mounts[i] {
            UserMountPlan::Bind { target, .. } | UserMountPlan::Tmpfs { target, .. } => target,
        },
    }
}

/// Creates the missing components of a mount target (inside the new root), recording each
/// creation in the `Ready` report so the supervisor can remove the stubs afterwards.
fn ensure_target(plan: &mut Plan, t: TargetRef) -> R {
    let range = target_of(plan, t).stubs.clone();
    for k in range {
        let idx = plan.stub_order[k];
        let slot = &plan.stubs[idx];
        match fs::statat(CWD, slot.path.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(Fail {
                    step: Step::Target,
                    errno: e,
                    index: idx as u32,
                })
            }
        }
        let mtime = fs::statat(CWD, slot.parent.as_c_str(), AtFlags::empty())
            .map(|st| (st.st_mtime, st.st_mtime_nsec as i64))
            .ok();
        if slot.dir {
            fs::mkdirat(CWD, slot.path.as_c_str(), Mode::from_raw_mode(0o755))
                .at(Step::Target, idx)?;
        } else {
            drop(
                fs::openat(
                    CWD,
                    slot.path.as_c_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::CLOEXEC
                        | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(0o644),
                )
                .at(Step::Target, idx)?,
            );
        }
        let at = READY_HEADER + STUB_RECORD * idx;
        protocol::put_u32(&mut plan.report, at, 1);
        if let Some((sec, nsec)) = mtime {
            protocol::put_u32(&mut plan.report, at + 4, 1);
            protocol::put_i64(&mut plan.report, at + 8, sec);
            protocol::put_i64(&mut plan.report, at + 16, nsec);
        }
    }
    Ok(())
}

/// Attaches a captured detached mount on `target`.
fn attach(fd: Option<&OwnedFd>, target: &CStr) -> Result<(), Errno> {
    let fd = fd.ok_or(Errno::BADF)?;
    move_mount(
        fd.as_fd(),
        c"",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// Makes the mount at `target` read-only, keeping its nosuid/nodev/noexec flags.
fn remount_readonly(target: &CStr) -> Result<(), Errno> {
    let vfs = fs::statvfs(target)?;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (st, ms) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
    ] {
        if vfs.f_flag.contains(st) {
            flags |= ms;
        }
    }
    mount_remount(target, flags, c"")
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The payload: forked by init, ends in `execve`. Never returns.
fn payload(ctx: &mut ChildCtx<'_>) -> ! {
    let Err(f) = payload_setup(ctx);
    report(&ctx.ctrl, f);
    sys::exit_now(127);
}

fn payload_setup(ctx: &mut ChildCtx<'_>) -> Result<Infallible, Fail> {
    let plan = &*ctx.plan;
    rustix::process::setsid().at(Step::Setsid, 0)?;
    if plan.sandboxed {
        for cap in 0..=plan.last_cap.min(63) {
            if !capability::is_default(cap) {
                rustix::thread::remove_capability_from_bounding_set(
                    CapabilitySet::from_bits_retain(1 << cap),
                )
                .at(Step::Bounding, cap as usize)?;
            }
        }
    }
    // Keep permitted capabilities across the uid change; they are set explicitly below.
    rustix::thread::set_keep_capabilities(true).at(Step::Caps, 0)?;
    rustix::thread::set_thread_groups(&plan.groups[..plan.ngroups]).at(Step::Groups, 0)?;
    let gid = Gid::from_raw(plan.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).at(Step::Gid, 0)?;
    let uid = Uid::from_raw(plan.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).at(Step::Uid, 0)?;
    rustix::process::chdir(plan.cwd.as_c_str()).at(Step::Chdir, 0)?;
    rustix::thread::set_keep_capabilities(false).at(Step::Caps, 1)?;

    let sets = if plan.sandboxed {
        let d = CapabilitySet::from_bits_retain(capability::default_mask());
        CapabilitySets {
            effective: d,
            permitted: d,
            inheritable: CapabilitySet::empty(),
        }
    } else {
        let a = CapabilitySet::from_bits_retain(plan.insecure_caps);
        CapabilitySets {
            effective: a,
            permitted: a,
            inheritable: a,
        }
    };
    rustix::thread::set_capabilities(None, sets).at(Step::Caps, 2)?;
    if plan.sandboxed {
        rustix::thread::clear_ambient_capability_set().at(Step::Caps, 3)?;
        rustix::thread::set_no_new_privs(true).at(Step::NoNewPrivs, 0)?;
        for (i, f) in plan.seccomp.iter().enumerate() {
            seccompiler::apply_filter(f).map_err(|e| Fail {
                step: Step::Seccomp,
                errno: seccomp_errno(&e),
                index: i as u32,
            })?;
        }
    } else {
        // As BuildKit's insecure mode: a non-root user keeps every capability too.
        for cap in (0..64).filter(|c| plan.insecure_caps & (1 << c) != 0) {
            let _ = rustix::thread::configure_capability_in_ambient_set(
                CapabilitySet::from_bits_retain(1 << cap),
                true,
            );
        }
    }

    let mut saw_eacces = false;
    let mut last = Errno::NOENT;
    for path in &plan.candidates {
        match sys::execve(path, &plan.argv_ptrs, &plan.envp) {
            Errno::ACCESS => saw_eacces = true,
            Errno::NOENT | Errno::NOTDIR => {}
            e => last = e,
        }
    }
    let errno = if saw_eacces { Errno::ACCESS } else { last };
    Err(Fail {
        step: Step::Exec,
        errno,
        index: 0,
    })
}

fn seccomp_errno(e: &seccompiler::Error) -> Errno {
    let raw = match e {
        seccompiler::Error::Seccomp(io) | seccompiler::Error::Prctl(io) => io.raw_os_error(),
        _ => None,
    };
    Errno::from_raw_os_error(raw.unwrap_or(libc::EINVAL))
}
