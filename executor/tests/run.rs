//! Sandbox behaviour, run against every backend available (native, and runc when installed),
//! as root, on a busybox-static rootfs.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_executor::{
    CancelToken, CollectOutput, ExecError, Executor, ExitStatus, HostEntry, MountSpec, Network,
    OutputSink, Rootfs, RunSpec, Security, DEFAULT_CAPABILITIES,
};

use common::{Layered, TempDir};

fn run(exec: &Executor, spec: &RunSpec) -> (ExitStatus, CollectOutput) {
    let mut out = CollectOutput::default();
    let st = exec
        .run(spec, &mut out, &CancelToken::new())
        .unwrap_or_else(|e| panic!("{e}"));
    (st, out)
}

/// Runs and expects success; returns stdout.
fn stdout(name: &str, exec: &Executor, spec: &RunSpec) -> String {
    let (st, out) = run(exec, spec);
    assert!(
        st.success(),
        "[{name}] {:?} failed with {st:?}; stderr: {}",
        spec.args,
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(str::trim))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn exit_codes_and_buildkit_error_text() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let spec = l.sh("exit 3");
        let (st, _) = run(exec, &spec);
        assert_eq!(st, ExitStatus::Code(3), "[{name}]");
        let err = st.check(&spec.args).unwrap_err();
        assert_eq!(
            err.to_string(),
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
        );
        assert!(run(exec, &l.spec(&["true"])).0.success(), "[{name}]");
        assert_eq!(
            run(exec, &l.spec(&["false"])).0,
            ExitStatus::Code(1),
            "[{name}]"
        );
        // Killed by a signal: BuildKit (through runc) reports 128 + signal.
        let (st, _) = run(exec, &l.sh("sh -c 'kill -9 $$'; exit $?"));
        assert_eq!(st.exit_code(), 137, "[{name}] {st:?}");
        if name == "native" {
            // The payload is not PID 1 (init is), so it can be killed like any process.
            let (st, _) = run(exec, &l.sh("kill -9 $$"));
            assert_eq!(st, ExitStatus::Signal(9), "[{name}]");
        }
    }
}

#[test]
fn env_path_and_home() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut spec = l.sh("echo \"$FOO|$PATH|$HOME\"");
        spec.env = vec!["FOO=bar baz".into()];
        assert_eq!(
            stdout(name, exec, &spec),
            "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n",
            "[{name}]"
        );
        // A spec's own PATH is used, also to find the command.
        let mut spec = l.spec(&["busybox", "sh", "-c", "echo $PATH; echo $HOME"]);
        spec.env = vec!["PATH=/nowhere:/bin".into(), "HOME=/elsewhere".into()];
        assert_eq!(
            stdout(name, exec, &spec),
            "/nowhere:/bin\n/elsewhere\n",
            "[{name}]"
        );
    }
}

#[test]
fn working_directory_is_created() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut spec = l.sh("pwd; ls -ld . | cut -c1-10");
        spec.cwd = "/work/dir".into();
        assert_eq!(
            stdout(name, exec, &spec),
            "/work/dir\ndrwxr-xr-x\n",
            "[{name}]"
        );
        assert!(
            l.upper().join("work/dir").is_dir(),
            "[{name}] cwd is part of the layer"
        );
        let mut spec = l.spec(&["pwd"]);
        spec.cwd = "/tmp".into();
        assert_eq!(stdout(name, exec, &spec), "/tmp\n", "[{name}]");
    }
}

#[test]
fn user_by_name_with_supplementary_groups() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut spec = l.sh("id -u; id -g; id -G; echo $HOME; grep CapEff /proc/self/status");
        spec.user = "app".into();
        let out = stdout(name, exec, &spec);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1000", "[{name}] {out}");
        assert_eq!(lines[1], "1000", "[{name}] {out}");
        let mut groups: Vec<&str> = lines[2].split(' ').collect();
        groups.sort();
        assert_eq!(groups, ["10", "1000", "29"], "[{name}] {out}");
        assert_eq!(lines[3], "/home/app", "[{name}]");
        // A non-root user keeps no capability after exec, as in Docker.
        assert!(lines[4].ends_with("0000000000000000"), "[{name}] {out}");
    }
}

#[test]
fn user_by_uid_gid_and_group_name() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut spec = l.sh("id -u; id -g; id -G");
        spec.user = "1234:5678".into();
        assert_eq!(stdout(name, exec, &spec), "1234\n5678\n5678\n", "[{name}]");
        spec.user = "1000".into();
        assert_eq!(
            stdout(name, exec, &spec)
                .lines()
                .take(2)
                .collect::<Vec<_>>(),
            ["1000", "1000"],
            "[{name}]"
        );
        spec.user = "app:audio".into();
        assert_eq!(stdout(name, exec, &spec), "1000\n29\n29\n", "[{name}]");
        spec.user = "ghost".into();
        let err = exec
            .run(&spec, &mut CollectOutput::default(), &CancelToken::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to find user ghost: no matching entries in passwd file",
            "[{name}]"
        );
    }
}

#[test]
fn exec_form_and_missing_command() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        assert_eq!(
            stdout(name, exec, &l.spec(&["echo", "a  b", "$HOME"])),
            "a  b $HOME\n",
            "[{name}]"
        );
        assert_eq!(
            stdout(name, exec, &l.spec(&["/bin/echo", "x"])),
            "x\n",
            "[{name}]"
        );
        let err = exec
            .run(
                &l.spec(&["no-such-command"]),
                &mut CollectOutput::default(),
                &CancelToken::new(),
            )
            .unwrap_err();
        // runc's text (BuildKit shows it); crun words it its own way.
        let expected = if name == "crun" {
            "executable file `no-such-command` not found in $PATH"
        } else {
            "exec: \"no-such-command\": executable file not found in $PATH"
        };
        assert!(err.to_string().contains(expected), "[{name}] {err}");
    }
}

/// Records when each chunk arrived.
#[derive(Default)]
struct Timed {
    out: Vec<(Instant, String)>,
    err: Vec<(Instant, String)>,
}

impl OutputSink for Timed {
    fn stdout(&mut self, data: &[u8]) {
        self.out.push((Instant::now(), text(data)));
    }
    fn stderr(&mut self, data: &[u8]) {
        self.err.push((Instant::now(), text(data)));
    }
}

#[test]
fn stdout_and_stderr_are_separate_and_streamed() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut sink = Timed::default();
        let spec = l.sh("echo out1; echo err1 >&2; sleep 0.5; echo out2; echo err2 >&2");
        let st = exec.run(&spec, &mut sink, &CancelToken::new()).unwrap();
        let end = Instant::now();
        assert!(st.success());
        let all = |v: &[(Instant, String)]| v.iter().map(|(_, s)| s.as_str()).collect::<String>();
        assert_eq!(all(&sink.out), "out1\nout2\n", "[{name}]");
        assert_eq!(all(&sink.err), "err1\nerr2\n", "[{name}]");
        // The first chunk arrived while the process was still sleeping.
        let first = sink.out[0].0;
        assert!(
            end - first >= Duration::from_millis(400),
            "[{name}] not streamed"
        );
    }
}

#[test]
fn sees_only_its_own_processes() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let out = stdout(
            name,
            exec,
            &l.sh("ls /proc | grep -E '^[0-9]+$' | wc -l; ps -o pid | wc -l"),
        );
        let mut n = out.lines().map(|s| s.trim().parse::<u32>().unwrap());
        let pids = n.next().unwrap();
        assert!(pids <= 5, "[{name}] {pids} processes visible");
        let ps = n.next().unwrap();
        assert!(ps <= 6, "[{name}] ps lists {ps} lines");
        let host = stdout(name, exec, &l.sh("hostname; cat /etc/hostname"));
        assert_eq!(host, "buildkitsandbox\nbuildkitsandbox\n", "[{name}]");
    }
}

#[test]
fn hardening_matches_docker_defaults() {
    require_sandbox!();
    assert_eq!(DEFAULT_CAPABILITIES, 0xa80425fb);
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let status = stdout(name, exec, &l.spec(&["cat", "/proc/self/status"]));
        assert_eq!(field(&status, "CapEff:"), "00000000a80425fb", "[{name}]");
        assert_eq!(field(&status, "CapPrm:"), "00000000a80425fb", "[{name}]");
        assert_eq!(field(&status, "CapBnd:"), "00000000a80425fb", "[{name}]");
        assert_eq!(field(&status, "CapInh:"), "0000000000000000", "[{name}]");
        assert_eq!(field(&status, "CapAmb:"), "0000000000000000", "[{name}]");
        assert_eq!(field(&status, "NoNewPrivs:"), "1", "[{name}]");
        assert_eq!(field(&status, "Seccomp:"), "2", "[{name}]");

        // Masked and read-only paths, read-only /sys, seccomp refusing mount and unshare.
        let script = "for f in /proc/kcore /proc/keys /proc/timer_list /proc/interrupts; do \
                        [ -e $f ] && wc -c < $f || echo 0; done; \
                      ls /proc/acpi 2>/dev/null | wc -l; ls /sys/firmware | wc -l; \
                      echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo rw-procsys || echo ro-procsys; \
                      touch /sys/kernel/x 2>/dev/null && echo rw-sys || echo ro-sys; \
                      mount -t tmpfs t /tmp 2>/dev/null && echo mounted || echo no-mount; \
                      unshare -n true 2>/dev/null && echo unshared || echo no-unshare; \
                      chroot / true && echo chroot-ok";
        let out = stdout(name, exec, &l.sh(script));
        assert_eq!(
            out.lines().map(str::trim).collect::<Vec<_>>(),
            [
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "ro-procsys",
                "ro-sys",
                "no-mount",
                "no-unshare",
                "chroot-ok"
            ],
            "[{name}]"
        );
    }
}

#[test]
fn insecure_keeps_all_capabilities() {
    require_sandbox!();
    let mine = rustix::thread::capabilities(None).unwrap().permitted.bits();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let mut spec = l.spec(&["cat", "/proc/self/status"]);
        spec.security = Security::Insecure;
        let status = stdout(name, exec, &spec);
        assert_eq!(
            field(&status, "CapEff:"),
            format!("{mine:016x}"),
            "[{name}]"
        );
        assert_eq!(field(&status, "Seccomp:"), "0", "[{name}]");
        let mut spec = l.sh("mount -t tmpfs t /tmp && echo mounted; wc -c < /proc/timer_list | grep -qv '^0$' && echo unmasked");
        spec.security = Security::Insecure;
        assert_eq!(stdout(name, exec, &spec), "mounted\nunmasked\n", "[{name}]");
    }
}

#[test]
fn writes_land_in_upper_with_whiteouts_and_no_stubs() {
    require_sandbox!();
    let base = common::base_layer();
    let before = listing(base);
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let out = stdout(
            name,
            exec,
            &l.sh("rm /etc/motd && echo new > /newfile && echo x > /tmp/t && cat /etc/hosts"),
        );
        assert!(
            out.starts_with("127.0.0.1\tlocalhost buildkitsandbox\n"),
            "[{name}] {out}"
        );
        let upper = l.upper();
        let wh = std::fs::symlink_metadata(upper.join("etc/motd")).unwrap();
        assert!(
            wh.file_type().is_char_device() && wh.rdev() == 0,
            "[{name}] whiteout"
        );
        assert_eq!(
            std::fs::read_to_string(upper.join("newfile")).unwrap(),
            "new\n"
        );
        // Mount targets created for the run are gone from the layer.
        for stub in [
            "proc",
            "sys",
            "dev",
            "etc/hosts",
            "etc/resolv.conf",
            "etc/hostname",
        ] {
            assert!(
                std::fs::symlink_metadata(upper.join(stub)).is_err(),
                "[{name}] stub {stub} left in the layer"
            );
        }
        assert_eq!(listing(base), before, "[{name}] the lower layer changed");
        // An untouched rootfs gives an empty layer.
        let l = Layered::new();
        stdout(name, exec, &l.spec(&["true"]));
        let left: Vec<_> = std::fs::read_dir(l.upper()).unwrap().collect();
        assert!(left.is_empty(), "[{name}] empty run left {left:?}");
    }
}

/// Every path under `dir` with its size and mode.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.push((e.path(), m.len(), m.mode()));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn cannot_write_outside_rootfs_and_mounts() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let host_dir = TempDir::new("outside");
        std::fs::write(host_dir.path().join("f"), "host\n").unwrap();
        let marker = host_dir.path().display().to_string();
        // The host path does not exist inside; writing it creates it in the layer only.
        let script = format!("ls {marker} 2>/dev/null || echo absent; mkdir -p {marker} && echo sandbox > {marker}/f");
        stdout(name, exec, &l.sh(&script));
        assert_eq!(
            std::fs::read_to_string(host_dir.path().join("f")).unwrap(),
            "host\n"
        );
        assert!(l
            .upper()
            .join(marker.trim_start_matches('/'))
            .join("f")
            .exists());
    }
}

#[test]
fn bind_tmpfs_and_etc_mounts() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let rw = TempDir::new("rw");
        let ro = TempDir::new("ro");
        std::fs::write(ro.path().join("secret"), "s3cret\n").unwrap();
        let resolv = TempDir::new("resolv");
        std::fs::write(resolv.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        let mut spec = l.sh("echo cached > /cache/x; cat /run/secrets/secret; \
             echo no > /run/secrets/secret 2>/dev/null || echo ro; \
             df -k /scratch | tail -1 | awk '{print $2}'; \
             echo t > /scratch/t && echo tmpfs-rw; \
             grep db /etc/hosts; cat /etc/resolv.conf; hostname; \
             echo x >> /etc/hosts 2>/dev/null || echo hosts-ro");
        spec.mounts = vec![
            MountSpec::Bind {
                source: rw.path().into(),
                target: "/cache".into(),
                readonly: false,
            },
            MountSpec::Bind {
                source: ro.path().into(),
                target: "/run/secrets".into(),
                readonly: true,
            },
            MountSpec::Tmpfs {
                target: "/scratch".into(),
                size: Some(8 << 20),
            },
        ];
        spec.hosts = vec![HostEntry {
            name: "db".into(),
            ip: "10.0.0.7".into(),
        }];
        spec.resolv_conf = Some(resolv.path().join("resolv.conf"));
        spec.hostname = "builder".into();
        assert_eq!(
            stdout(name, exec, &spec),
            "s3cret\nro\n8192\ntmpfs-rw\n10.0.0.7\tdb\nnameserver 192.0.2.53\nbuilder\nhosts-ro\n",
            "[{name}]"
        );
        assert_eq!(
            std::fs::read_to_string(rw.path().join("x")).unwrap(),
            "cached\n"
        );
        // None of the mount targets reach the layer.
        for p in ["cache", "run", "scratch"] {
            assert!(
                !l.upper().join(p).exists(),
                "[{name}] {p} left in the layer"
            );
        }
    }
}

#[test]
fn layered_bind_mounts() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        // Two layers: the top one hides a file of the lower one and adds links.
        let (low, top) = (TempDir::new("bind-low"), TempDir::new("bind-top"));
        std::fs::create_dir_all(low.path().join("opt/data")).unwrap();
        std::fs::write(low.path().join("opt/data/kept"), "kept\n").unwrap();
        std::fs::write(low.path().join("opt/data/gone"), "gone\n").unwrap();
        std::fs::create_dir_all(top.path().join("opt/data")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.path().join("opt/data/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        std::os::unix::fs::symlink("/opt/data", top.path().join("opt/link")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", top.path().join("opt/host")).unwrap();
        let lowerdirs = vec![top.path().to_path_buf(), low.path().to_path_buf()];
        let layers = |source: &str, target: &str, readonly: bool| MountSpec::Layers {
            lowerdirs: lowerdirs.clone(),
            source: source.into(),
            target: target.into(),
            readonly,
        };
        let mut spec = l.sh("ls /d; cat /f; (echo x > /d/new) 2>/dev/null || echo ro; \
             echo w > /w/opt/data/new && cat /w/opt/data/new");
        spec.mounts = vec![
            layers("/opt/link", "/d", true),
            layers("opt/data/kept", "/f", true),
            layers("/", "/w", false),
        ];
        assert_eq!(stdout(name, exec, &spec), "kept\nkept\nro\nw\n", "[{name}]");
        // Writes under a writable bind went to a scratch dir, now removed.
        assert!(!low.path().join("opt/data/new").exists());
        assert!(!top.path().join("opt/data/new").exists());
        let binds = exec.state_dir().join("binds");
        let left: Vec<_> = std::fs::read_dir(&binds)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .filter(|n| {
                        n.to_string_lossy()
                            .starts_with(&format!("{}-", std::process::id()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "[{name}] {left:?}");
        for p in ["d", "f", "w"] {
            assert!(
                !l.upper().join(p).exists(),
                "[{name}] stub {p} in the layer"
            );
        }
        // A link to a host path resolves inside the layers, where it does not exist.
        let mut spec = l.sh("true");
        spec.mounts = vec![layers("/opt/host", "/h", true)];
        let err = exec
            .run(&spec, &mut CollectOutput::default(), &CancelToken::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bind source \"/opt/host\": not found in the mounted filesystem",
            "[{name}]"
        );
    }
}

fn tcp_server() -> (std::net::TcpListener, u16) {
    let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

#[test]
fn network_none_has_only_loopback() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let (server, port) = tcp_server();
        let accepted = std::thread::spawn(move || {
            let (mut c, _) = server.accept().unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            s
        });
        let script =
            format!("echo hi | nc -w 2 127.0.0.1 {port} && echo connected || echo refused");
        let mut spec = l.sh(&script);
        spec.network = Network::Host;
        assert_eq!(
            stdout(name, exec, &spec),
            "connected\n",
            "[{name}] host network"
        );
        assert_eq!(accepted.join().unwrap(), "hi\n");

        let (server, port) = tcp_server();
        let script = format!(
            "ls /sys/class/net; ip -o link show lo | grep -q UP && echo lo-up; \
             echo hi | nc -w 2 127.0.0.1 {port} && echo connected || echo refused; \
             readlink /proc/self/ns/net"
        );
        let mut spec = l.sh(&script);
        spec.network = Network::None;
        // Several runs in a row, each in a namespace of its own, never the host's. The native
        // backend makes the next namespace while a run goes on, so two runs in a row have
        // live namespaces at once and distinct inodes (a namespace freed earlier may give
        // its inode number to a later one, so only neighbours are compared).
        let host = std::fs::read_link("/proc/self/ns/net").unwrap();
        let mut previous = None;
        for run in 0..3 {
            let out = stdout(name, exec, &spec);
            let (checks, ns) = out.rsplit_once("refused\n").unwrap_or((&out, ""));
            assert_eq!(
                checks, "lo\nlo-up\n",
                "[{name}] no network, run {run}: {out}"
            );
            let ns = std::path::PathBuf::from(ns.trim());
            assert_ne!(ns, host, "[{name}] run {run} in the host's namespace");
            if name == "native" {
                assert_ne!(Some(&ns), previous.as_ref(), "[{name}] run {run} reused it");
            }
            previous = Some(ns);
        }
        drop(server);
    }
}

#[test]
fn overlay_deeper_than_one_page_of_options() {
    require_sandbox!();
    let layers = TempDir::new("deep");
    let mut lowerdirs = Vec::new();
    for i in (0..300).rev() {
        // Long names: 300 of them are far more than 4096 bytes of mount options.
        let d = layers
            .path()
            .join(format!("snapshot-{i:04}-{}", "x".repeat(40)))
            .join("diff");
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(d.join("layers").join(i.to_string()), format!("{i}\n")).unwrap();
        std::fs::write(d.join("top"), format!("{i}\n")).unwrap();
        lowerdirs.push(d);
    }
    let bytes: usize = lowerdirs.iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(bytes > 4096);
    lowerdirs.push(common::base_layer().to_path_buf());
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let spec = RunSpec::new(
            l.rootfs_over(lowerdirs.clone()),
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "ls /layers | wc -l; cat /top".into(),
            ],
        );
        assert_eq!(stdout(name, exec, &spec), "300\n299\n", "[{name}]");
    }
}

#[test]
fn directory_rootfs() {
    require_sandbox!();
    for (name, exec) in common::backends() {
        let dir = TempDir::new("dirfs");
        common::build_busybox_rootfs(dir.path());
        let spec = RunSpec::new(
            Rootfs::Dir(dir.path().into()),
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo hi > /hello; cat /etc/motd".into(),
            ],
        );
        assert_eq!(stdout(name, exec, &spec), "welcome\n", "[{name}]");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("hello")).unwrap(),
            "hi\n"
        );
        assert!(!dir.path().join("proc").exists(), "[{name}] stub left");
    }
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn cancellation_kills_everything_and_unmounts() {
    require_sandbox!();
    for (i, (name, exec)) in common::backends().into_iter().enumerate() {
        let l = Layered::new();
        let marker = format!("98765{i}");
        // A background child too: the whole tree must die.
        let spec = l.sh(&format!("sleep {marker}1 & sleep {marker}"));
        let token = CancelToken::new();
        let t2 = token.clone();
        let started = Instant::now();
        let result = std::thread::scope(|s| {
            let h = s.spawn(|| exec.run(&spec, &mut CollectOutput::default(), &t2));
            assert!(
                wait_until(Duration::from_secs(5), || processes_with(&marker).len()
                    >= 2),
                "[{name}] sandbox never started"
            );
            let cancelled_at = Instant::now();
            token.cancel();
            let r = h.join().unwrap();
            (r, cancelled_at.elapsed())
        });
        assert!(
            matches!(result.0, Err(ExecError::Cancelled)),
            "[{name}] {:?}",
            result.0
        );
        assert!(
            result.1 < Duration::from_secs(2),
            "[{name}] cancel took {:?}",
            result.1
        );
        assert!(
            processes_with(&marker).is_empty(),
            "[{name}] processes left"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(l.dir.path().to_str().unwrap()),
            "[{name}] mount left"
        );
        // The same upper and work dirs serve the next run.
        stdout(name, exec, &l.spec(&["true"]));
        eprintln!(
            "[{name}] cancelled in {:?} after {:?}",
            result.1,
            started.elapsed()
        );
    }
}

#[test]
fn init_reaps_orphans() {
    require_sandbox!();
    let (_, exec) = common::backends()[0];
    let l = Layered::new();
    // An orphaned grandchild exits while its parent is gone: init must reap it.
    let out = stdout(
        "native",
        exec,
        &l.sh("sh -c 'sleep 0.1 &'; sleep 0.5; cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z || true"),
    );
    assert_eq!(out, "0\n");
}

/// Entry point for `supervisor_crash_leaves_nothing`: runs a long sandbox until killed.
#[test]
#[ignore = "helper, run by supervisor_crash_leaves_nothing"]
fn crash_helper() {
    let Ok(marker) = std::env::var("STRATA_CRASH_MARKER") else {
        return;
    };
    let backend = std::env::var("STRATA_CRASH_BACKEND").unwrap();
    let exec = common::backends()
        .into_iter()
        .find(|(n, _)| *n == backend)
        .unwrap()
        .1;
    let l = Layered::new();
    let _ = exec.run(
        &l.sh(&format!("sleep {marker}")),
        &mut CollectOutput::default(),
        &CancelToken::new(),
    );
}

#[test]
fn supervisor_crash_leaves_nothing() {
    require_sandbox!();
    for (i, (name, _)) in common::backends().into_iter().enumerate() {
        let marker = format!("87654{i}");
        let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_helper", "--nocapture"])
            .env("STRATA_CRASH_MARKER", &marker)
            .env("STRATA_CRASH_BACKEND", name)
            .env("STRATA_TEST_STATE_DIR", common::state_dir())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || !processes_with(&marker)
                .is_empty()),
            "[{name}] sandbox never started"
        );
        helper.kill().unwrap(); // SIGKILL
        helper.wait().unwrap();
        // The helper's own temporary directories (it could not clean up).
        for e in std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("strata-exec-") && n.contains(&format!("-{}", helper.id())) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        // An OCI runtime's container outlives the runtime; a new backend cleans up after
        // dead supervisors.
        let backend = match name {
            "runc" => common::runc_binary().map(strata_executor::Backend::Runc),
            "crun" => common::crun_binary().map(strata_executor::Backend::Crun),
            _ => None,
        };
        if let Some(b) = backend {
            Executor::new(b, common::state_dir()).unwrap();
        }
        assert!(
            wait_until(Duration::from_secs(5), || processes_with(&marker)
                .is_empty()),
            "[{name}] sandbox survived its supervisor"
        );
    }
}

#[test]
fn no_host_fds_and_init_is_protected() {
    require_sandbox!();
    // An fd this process holds without close-on-exec must not reach the sandbox.
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    for (name, exec) in common::backends() {
        let l = Layered::new();
        let out = stdout(
            name,
            exec,
            &l.sh(&format!(
                "ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; \
                 [ -e /proc/self/fd/{raw} ] && echo leaked || echo clean; \
                 cat /proc/self/mountinfo | wc -l"
            )),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].trim(), "0 1 2 3", "[{name}] fds: {out}");
        assert_eq!(lines[1], "clean", "[{name}]");
        if name == "native" {
            let init = stdout(
                name,
                exec,
                &l.sh(
                    "readlink /proc/1/fd/0 >/dev/null 2>&1 && echo open || echo denied; \
                      cat /proc/1/environ >/dev/null 2>&1 && echo readable || echo denied",
                ),
            );
            assert_eq!(init, "denied\ndenied\n", "[{name}] init is reachable");
        }
    }
    drop(leaked);
}
