//! The RUN acceptance suite, through `strata build`, on every executor backend: the native
//! sandbox and the OCI runtimes (`--runtime runc`, `--runtime crun`). Each case builds a
//! Dockerfile on a busybox-static base image and checks what the step saw (its output, from
//! `--progress rawjson`), how it failed, or what landed in the image (an OCI archive read back
//! with `tar` and `umoci unpack`). Every build uses `--no-cache`, so each backend runs the
//! step itself.

mod common;

use common::{can_run_sandboxes, store_with_busybox, text, tool, write, TempDir};

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The backends under test: native, runc, and crun when installed (it must then run a step;
/// outside CI a crun that cannot is only noted).
fn runtimes() -> Vec<&'static str> {
    let mut out = vec!["native"];
    for (name, required) in [("runc", true), ("crun", false)] {
        let installed = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(name).is_file());
        if !installed {
            assert!(
                !required || std::env::var_os("CI").is_none(),
                "CI must have {name} installed"
            );
            eprintln!("note: {name} not installed; not tested");
            continue;
        }
        if name == "crun" {
            if let Err(why) = crun_status() {
                // scripts/test installs crun: there it must work.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "crun is installed but cannot run a step:\n{why}"
                );
                eprintln!("note: crun cannot run containers here; not tested:\n{why}");
                continue;
            }
        }
        out.push(name);
    }
    out
}

/// Whether crun can run a trivial step on this host (once per test process).
fn crun_status() -> Result<(), String> {
    static STATUS: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    STATUS
        .get_or_init(|| {
            let s = Suite::new("crun-probe");
            let out = s.build("crun", "FROM busybox\nRUN true\n", &[], &[]);
            if out.status.success() {
                Ok(())
            } else {
                Err(text(&out.stderr))
            }
        })
        .clone()
}

/// A store with busybox loaded and a context directory.
struct Suite {
    tmp: TempDir,
    root: PathBuf,
    context: PathBuf,
}

impl Suite {
    fn new(label: &str) -> Suite {
        let tmp = TempDir::new(&format!("run-{label}"));
        let root = store_with_busybox(&tmp);
        let context = tmp.0.join("ctx");
        std::fs::create_dir_all(&context).unwrap();
        Suite { tmp, root, context }
    }

    /// `strata build --runtime RT --no-cache --progress rawjson [EXTRA] CONTEXT` of
    /// `dockerfile` with `files` in the context.
    fn build(&self, rt: &str, dockerfile: &str, files: &[(&str, &str)], extra: &[&str]) -> Output {
        let _ = std::fs::remove_dir_all(&self.context);
        std::fs::create_dir_all(&self.context).unwrap();
        write(&self.context, files);
        std::fs::write(self.context.join("Dockerfile"), dockerfile).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("--root")
            .arg(&self.root)
            .args([
                "build",
                "--runtime",
                rt,
                "--no-cache",
                "--progress",
                "rawjson",
            ])
            .args(extra)
            .arg(&self.context);
        cmd.output().expect("run strata")
    }

    /// As [`Suite::build`], failing the test unless it succeeds; returns the steps' stdout.
    fn run(&self, rt: &str, dockerfile: &str, files: &[(&str, &str)], extra: &[&str]) -> String {
        let out = self.build(rt, dockerfile, files, extra);
        assert!(
            out.status.success(),
            "[{rt}] build failed:\n{}",
            readable(&out)
        );
        logs(&out, 1)
    }

    /// As [`Suite::build`], expecting a failure; returns stderr.
    fn fail(&self, rt: &str, dockerfile: &str, files: &[(&str, &str)], extra: &[&str]) -> String {
        let out = self.build(rt, dockerfile, files, extra);
        assert!(
            !out.status.success(),
            "[{rt}] build succeeded:\n{}",
            readable(&out)
        );
        text(&out.stderr)
    }

    /// Builds `dockerfile` into an OCI archive, unpacked with `umoci`; returns the layout
    /// directory and the unpacked root filesystem.
    fn image(&self, rt: &str, dockerfile: &str, files: &[(&str, &str)]) -> (PathBuf, PathBuf) {
        let archive = self.tmp.0.join(format!("{rt}.oci.tar"));
        let dest = format!("type=oci,dest={}", archive.display());
        self.run(
            rt,
            dockerfile,
            files,
            &["-t", "app:latest", "--output", &dest],
        );
        let layout = self.tmp.0.join(format!("{rt}-layout"));
        let _ = std::fs::remove_dir_all(&layout);
        std::fs::create_dir_all(&layout).unwrap();
        tool(
            "tar",
            &[
                "-xf",
                archive.to_str().unwrap(),
                "-C",
                layout.to_str().unwrap(),
            ],
        );
        let bundle = self.tmp.0.join(format!("{rt}-bundle"));
        let _ = std::fs::remove_dir_all(&bundle);
        tag_layout(&layout, "app");
        tool(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:app", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        (layout, bundle.join("rootfs"))
    }
}

/// Names the only manifest of an OCI layout `tag`, as umoci finds images by tag.
fn tag_layout(layout: &Path, tag: &str) {
    let path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    manifests[0]["annotations"]["org.opencontainers.image.ref.name"] = tag.into();
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The entries of every layer of the image in `layout`, oldest layer first.
fn layer_entries(layout: &Path) -> Vec<Vec<String>> {
    let blob = |digest: &str| layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let path = blob(l["digest"].as_str().unwrap());
            tool("tar", &["-tf", path.to_str().unwrap()])
                .lines()
                .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
                .collect()
        })
        .collect()
}

/// The log output of the build's steps on `stream` (1 stdout, 2 stderr), in order.
fn logs(out: &Output, stream: u64) -> String {
    text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "log" && v["detail"]["stream"] == stream)
        .map(|v| v["detail"]["data"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The build's stderr with the step logs and errors pulled out of the JSON, for messages.
fn readable(out: &Output) -> String {
    text(&out.stderr)
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v["event"] == "log" => format!(
                "  | {}",
                v["detail"]["data"].as_str().unwrap_or_default().trim_end()
            ),
            Ok(v) if v["event"] == "error" => format!("  ! {}", v["detail"]["error"]),
            Ok(_) => String::new(),
            Err(_) => l.to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of `out` that start with `prefix`, without it.
fn tagged<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

macro_rules! require_sandbox {
    () => {
        if !can_run_sandboxes() {
            return;
        }
    };
}

/// Adds a user `app` (1000:1000, in `wheel` and `audio`) to the busybox image.
const WITH_APP_USER: &str = "FROM busybox
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd \
 && printf 'app:x:1000:\\nwheel:x:10:app\\naudio:x:29:app\\n' >> /etc/group
";

#[test]
fn user_by_name_and_id_with_supplementary_groups() {
    require_sandbox!();
    let s = Suite::new("user");
    for rt in runtimes() {
        let df = format!(
            "{WITH_APP_USER}USER app
RUN echo \"name: $(id -u) $(id -g) $(id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' ')$HOME\"
USER 1000
RUN echo \"uid: $(id -u) $(id -g)\"
USER 1000:29
RUN echo \"uid:gid: $(id -u) $(id -g) $(id -G)\"
USER app:audio
RUN echo \"name:group: $(id -un) $(id -gn)\"
USER root
RUN echo \"root: $(id -u) $HOME\"
"
        );
        let out = s.run(rt, &df, &[], &[]);
        assert_eq!(
            tagged(&out, "name: "),
            ["1000 1000 10 29 1000 /home/app"],
            "[{rt}]"
        );
        assert_eq!(tagged(&out, "uid: "), ["1000 1000"], "[{rt}]");
        assert_eq!(tagged(&out, "uid:gid: "), ["1000 29 29"], "[{rt}]");
        assert_eq!(tagged(&out, "name:group: "), ["app audio"], "[{rt}]");
        assert_eq!(tagged(&out, "root: "), ["0 /root"], "[{rt}]");

        let err = s.fail(rt, "FROM busybox\nUSER ghost\nRUN true\n", &[], &[]);
        assert!(
            err.contains("unable to find user ghost: no matching entries in passwd file"),
            "[{rt}] {err}"
        );
    }
}

#[test]
fn exit_code_error_text() {
    require_sandbox!();
    let s = Suite::new("exit");
    for rt in runtimes() {
        let err = s.fail(rt, "FROM busybox\nRUN echo before\nRUN exit 3\n", &[], &[]);
        assert!(
            err.contains(
                "process \\\"/bin/sh -c exit 3\\\" did not complete successfully: exit code: 3"
            ) || err.contains(
                "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"
            ),
            "[{rt}] {err}"
        );
        let err = s.fail(rt, "FROM busybox\nRUN [\"/no/such/binary\"]\n", &[], &[]);
        assert!(err.contains("/no/such/binary"), "[{rt}] {err}");
        // runc and the native sandbox say "no such file or directory", crun capitalises it.
        assert!(
            err.to_lowercase().contains("no such file or directory"),
            "[{rt}] {err}"
        );
    }
}

#[test]
fn env_path_workdir_and_shell() {
    require_sandbox!();
    let s = Suite::new("env");
    let df = "FROM busybox
ENV GREETING=\"hello world\"
ARG LEVEL=3
RUN echo \"env: $GREETING|$LEVEL|$PATH|$HOME\"
ENV PATH=/opt/bin:$PATH
RUN mkdir -p /opt/bin && printf '#!/bin/sh\\necho custom tool\\n' > /opt/bin/tool && chmod +x /opt/bin/tool
RUN echo \"path: $(tool)\"
WORKDIR /work/dir
RUN echo \"pwd: $(pwd)\"
WORKDIR sub
RUN echo \"pwd: $(pwd)\"
SHELL [\"/bin/sh\", \"-e\", \"-x\", \"-c\"]
RUN echo \"shell: $-\"
";
    for rt in runtimes() {
        let out = s.run(rt, df, &[], &[]);
        assert_eq!(
            tagged(&out, "env: "),
            ["hello world|3|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root"],
            "[{rt}]"
        );
        assert_eq!(tagged(&out, "path: "), ["custom tool"], "[{rt}]");
        assert_eq!(
            tagged(&out, "pwd: "),
            ["/work/dir", "/work/dir/sub"],
            "[{rt}]"
        );
        let flags = tagged(&out, "shell: ");
        assert!(
            flags.len() == 1 && flags[0].contains('e') && flags[0].contains('x'),
            "[{rt}] {out}"
        );
        // SHELL is what runs the step, and the error names it.
        let err = s.fail(
            rt,
            "FROM busybox\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN false; echo not reached\n",
            &[],
            &[],
        );
        assert!(
            err.contains("/bin/sh -e -c false; echo not reached") && err.contains("exit code: 1"),
            "[{rt}] {err}"
        );
    }
}

#[test]
fn heredoc_and_exec_form() {
    require_sandbox!();
    let s = Suite::new("heredoc");
    let df = "FROM busybox
RUN <<EOF
echo \"heredoc: one\"
echo \"heredoc: two\"
EOF
RUN <<EOF
#!/bin/sh
echo \"shebang: $0\"
EOF
RUN [\"/bin/echo\", \"exec: a  b\", \"$HOME\"]
RUN [\"/bin/sh\", \"-c\", \"echo exec-sh: $0\", \"zero\"]
";
    for rt in runtimes() {
        let out = s.run(rt, df, &[], &[]);
        assert_eq!(tagged(&out, "heredoc: "), ["one", "two"], "[{rt}]");
        assert_eq!(tagged(&out, "shebang: "), ["/dev/pipes/EOF"], "[{rt}]");
        // Exec form: no shell, no expansion.
        assert_eq!(tagged(&out, "exec: "), ["a  b $HOME"], "[{rt}]");
        assert_eq!(tagged(&out, "exec-sh: "), ["zero"], "[{rt}]");
    }
}

#[test]
fn deleting_a_base_file_is_a_whiteout() {
    require_sandbox!();
    let s = Suite::new("whiteout");
    let df = "FROM busybox\nRUN rm /bin/vi /etc/group && echo new > /etc/motd\n";
    for rt in runtimes() {
        let (layout, rootfs) = s.image(rt, df, &[]);
        let layers = layer_entries(&layout);
        let top = layers.last().unwrap();
        assert!(top.iter().any(|e| e == "bin/.wh.vi"), "[{rt}] {top:?}");
        assert!(top.iter().any(|e| e == "etc/.wh.group"), "[{rt}] {top:?}");
        assert!(top.iter().any(|e| e == "etc/motd"), "[{rt}] {top:?}");
        // Mount targets the sandbox made are gone from the layer.
        for stub in [
            "proc",
            "sys",
            "dev",
            "etc/hosts",
            "etc/resolv.conf",
            "etc/hostname",
        ] {
            assert!(
                !top.iter().any(|e| e == stub),
                "[{rt}] stub {stub} in {top:?}"
            );
        }
        assert!(!rootfs.join("bin/vi").exists(), "[{rt}]");
        assert!(!rootfs.join("etc/group").exists(), "[{rt}]");
        assert!(rootfs.join("bin/sh").exists(), "[{rt}]");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/motd")).unwrap(),
            "new\n"
        );
    }
}

#[test]
fn cache_and_tmpfs_mounts() {
    require_sandbox!();
    let s = Suite::new("cache");
    for rt in runtimes() {
        let id = format!("c-{rt}");
        let first = format!(
            "FROM busybox\nRUN --mount=type=cache,id={id},target=/cache \
             echo \"cache: $(cat /cache/n 2>/dev/null || echo none)\" && echo 1 > /cache/n\n"
        );
        assert_eq!(
            tagged(&s.run(rt, &first, &[], &[]), "cache: "),
            ["none"],
            "[{rt}]"
        );
        // A later build (and a different step) sees what the first left, by id.
        let second = format!(
            "FROM busybox\nRUN --mount=type=cache,id={id},target=/other,uid=1000,mode=0700 \
             echo \"cache: $(cat /other/n)\" > /seen && cat /seen\n"
        );
        assert_eq!(
            tagged(&s.run(rt, &second, &[], &[]), "cache: "),
            ["1"],
            "[{rt}]"
        );

        let df = format!(
            "FROM busybox
RUN --mount=type=cache,id={id},target=/var/cache/x \
    --mount=type=tmpfs,target=/scratch,size=1048576 \
    echo big > /scratch/f && echo \"tmpfs: $(grep ' /scratch ' /proc/mounts | cut -d' ' -f3)\" \
 && touch /var/cache/x/y
"
        );
        let (layout, rootfs) = s.image(rt, &df, &[]);
        let top = layer_entries(&layout).pop().unwrap();
        assert!(
            !top.iter()
                .any(|e| e.starts_with("scratch/") || e.starts_with("var/cache/x/")),
            "[{rt}] mount contents in the layer: {top:?}"
        );
        assert!(!rootfs.join("scratch/f").exists() && !rootfs.join("var/cache/x/y").exists());
    }
}

#[test]
fn cache_mount_options() {
    require_sandbox!();
    let s = Suite::new("cacheopts");
    for rt in runtimes() {
        // A new cache gets uid/gid/mode; `from=` seeds a new cache; `source=` is a path in it.
        let df = format!(
            "FROM busybox AS seed
RUN mkdir -p /pkg/sub && echo seeded > /pkg/sub/f
FROM busybox
RUN --mount=type=cache,id=own-{rt},target=/c,uid=1000,gid=29,mode=0750 echo \"owner: $(stat -c '%u %g %a' /c)\"
RUN --mount=type=cache,id=seeded-{rt},from=seed,source=/pkg,target=/p echo \"seed: $(cat /p/sub/f)\" && echo kept > /p/mine
RUN --mount=type=cache,id=seeded-{rt},from=seed,source=/pkg,target=/p echo \"again: $(cat /p/mine)\"
RUN --mount=type=cache,id=twice-{rt},sharing=locked,target=/a \
    --mount=type=cache,id=twice-{rt},sharing=locked,target=/b \
    touch /a/x && test -e /b/x && echo \"twice: one cache\"
"
        );
        let out = s.run(rt, &df, &[], &[]);
        assert_eq!(tagged(&out, "owner: "), ["1000 29 750"], "[{rt}]");
        assert_eq!(tagged(&out, "seed: "), ["seeded"], "[{rt}]");
        assert_eq!(tagged(&out, "again: "), ["kept"], "[{rt}]");
        // The same locked cache twice in one step: one lock, no wait on itself.
        assert_eq!(tagged(&out, "twice: "), ["one cache"], "[{rt}]");

        // sharing=locked: two stages running at once take turns.
        let step = |name: &str| {
            format!(
                "FROM busybox AS {name}
RUN --mount=type=cache,id=turns-{rt},sharing=locked,target=/c \
    echo {name}-start >> /c/log && sleep 1 && echo {name}-end >> /c/log && touch /{name}
"
            )
        };
        let df = format!(
            "{}{}FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n\
             RUN --mount=type=cache,id=turns-{rt},target=/c sed 's/^/turns: /' /c/log\n",
            step("a"),
            step("b")
        );
        let out = s.run(rt, &df, &[], &[]);
        let turns = tagged(&out, "turns: ");
        assert_eq!(turns.len(), 4, "[{rt}] {out}");
        for pair in turns.chunks(2) {
            let who = pair[0]
                .strip_suffix("-start")
                .unwrap_or_else(|| panic!("[{rt}] {turns:?}"));
            assert_eq!(
                pair[1],
                format!("{who}-end"),
                "[{rt}] interleaved: {turns:?}"
            );
        }
    }
}

#[test]
fn tmpfs_is_a_sized_tmpfs() {
    require_sandbox!();
    let s = Suite::new("tmpfs");
    let df = "FROM busybox
RUN --mount=type=tmpfs,target=/scratch,size=1048576 \
    echo \"fs: $(grep ' /scratch ' /proc/mounts | cut -d' ' -f3)\" \
 && (dd if=/dev/zero of=/scratch/fill bs=1024 count=2048 2>/dev/null && echo 'limit: none' || echo 'limit: enforced')
";
    for rt in runtimes() {
        let out = s.run(rt, df, &[], &[]);
        assert_eq!(tagged(&out, "fs: "), ["tmpfs"], "[{rt}]");
        assert_eq!(tagged(&out, "limit: "), ["enforced"], "[{rt}]");
    }
}

#[test]
fn bind_mounts_from_context_stage_and_image() {
    require_sandbox!();
    let s = Suite::new("bind");
    // An image only a mount uses.
    common::ok(&s.root, &["tag", "busybox:latest", "tools:1"]);
    let df = "FROM busybox AS tools
RUN mkdir -p /opt/data && echo from-stage > /opt/data/file && ln -s /opt/data /opt/link

FROM busybox
RUN --mount=type=bind,source=src,target=/src \
    echo \"context: $(cat /src/a.txt) $(ls /src | tr '\\n' ' ')\" \
 && (touch /src/new 2>/dev/null && echo 'ro: no' || echo 'ro: yes')
RUN --mount=target=/whole echo \"whole: $(cat /whole/src/a.txt) $(test -e /whole/ignored.txt && echo leaked || echo excluded)\"
RUN --mount=type=bind,from=tools,source=/opt/link,target=/data \
    echo \"stage: $(cat /data/file)\"
RUN --mount=type=bind,from=tools,source=/opt/data/file,target=/etc/one-file \
    echo \"file: $(cat /etc/one-file)\"
RUN --mount=type=bind,from=tools:1,target=/img echo \"image: $(test -x /img/bin/busybox && echo yes)\"
RUN --mount=type=bind,source=src,target=/src,rw \
    echo changed > /src/a.txt && touch /src/added && echo \"rw: $(cat /src/a.txt)\"
RUN echo \"after: $(ls /src 2>/dev/null | wc -l)\" && touch /marker
";
    let files = [
        ("src/a.txt", "context-a"),
        ("src/b.txt", "b"),
        ("ignored.txt", "secret-ish"),
        (".dockerignore", "ignored.txt\n"),
    ];
    for rt in runtimes() {
        let out = s.run(rt, df, &files, &[]);
        assert_eq!(
            tagged(&out, "context: "),
            ["context-a a.txt b.txt "],
            "[{rt}]"
        );
        assert_eq!(
            tagged(&out, "ro: "),
            ["yes"],
            "[{rt}] bind is read-only by default"
        );
        assert_eq!(tagged(&out, "whole: "), ["context-a excluded"], "[{rt}]");
        assert_eq!(tagged(&out, "stage: "), ["from-stage"], "[{rt}]");
        assert_eq!(tagged(&out, "file: "), ["from-stage"], "[{rt}]");
        assert_eq!(tagged(&out, "image: "), ["yes"], "[{rt}]");
        assert_eq!(tagged(&out, "rw: "), ["changed"], "[{rt}]");
        // The mount point was only a stub: no /src in the next step.
        assert_eq!(tagged(&out, "after: "), ["0"], "[{rt}]");
        // rw writes are discarded: the client's files are untouched.
        assert_eq!(
            std::fs::read_to_string(s.context.join("src/a.txt")).unwrap(),
            "context-a"
        );
        assert!(!s.context.join("src/added").exists());
    }
    // The scratch space of writable binds, and the staged context copies, are gone.
    let binds = s.root.join("v1/executor/binds");
    let left: Vec<_> = std::fs::read_dir(&binds)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // Nothing under a bind mount, nor its mount point, reaches a layer.
    let (layout, _) = s.image("native", df, &files);
    for layer in &layer_entries(&layout)[1..] {
        assert!(
            !layer.iter().any(|e| e.starts_with("src")
                || e.starts_with("whole")
                || e.starts_with("data")
                || e.starts_with("img")
                || e == "etc/one-file"),
            "{layer:?}"
        );
    }
    // A missing source is a clear error.
    let err = s.fail(
        "native",
        "FROM busybox AS tools\nFROM busybox\nRUN --mount=type=bind,from=tools,source=/nope,target=/x true\n",
        &[],
        &[],
    );
    assert!(
        err.contains("\\\"/nope\\\": not found") || err.contains("\"/nope\": not found"),
        "{err}"
    );
}

#[test]
fn a_scratch_step_runs_tools_from_a_bind_mount() {
    require_sandbox!();
    let s = Suite::new("scratch");
    // No rootfs input: the bind's source must not be taken for the base.
    let df = "FROM scratch
RUN --mount=type=bind,from=busybox,target=/bb [\"/bb/bin/busybox\", \"sh\", \"-c\", \"/bb/bin/busybox echo scratch: $(/bb/bin/busybox ls /bb/bin | /bb/bin/busybox wc -l) > /out; /bb/bin/busybox cat /out\"]
";
    for rt in runtimes() {
        let out = s.run(rt, df, &[], &[]);
        let n: Vec<&str> = tagged(&out, "scratch: ");
        assert!(
            n.len() == 1 && n[0].parse::<u32>().unwrap() > 10,
            "[{rt}] {out}"
        );
    }
    let (layout, rootfs) = s.image("native", df, &[]);
    let layers = layer_entries(&layout);
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert_eq!(layers[0], ["out"], "only the step's own file: {layers:?}");
    assert!(std::fs::read_to_string(rootfs.join("out"))
        .unwrap()
        .starts_with("scratch: "));
}

#[test]
fn bind_mount_source_is_a_cache_key_input() {
    require_sandbox!();
    let s = Suite::new("bindkey");
    let df =
        "FROM busybox\nRUN --mount=type=bind,source=in.txt,target=/in.txt cp /in.txt /out.txt\n";
    let build = |content: &str| {
        write(&s.context, &[("in.txt", content)]);
        std::fs::write(s.context.join("Dockerfile"), df).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&s.root)
            .args(["build", "--progress", "rawjson", "-t", "k:latest"])
            .arg(&s.context)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", readable(&out));
        common::ran(&out)
            .into_iter()
            .any(|n| n.contains("cp /in.txt"))
    };
    assert!(build("one"), "first build runs the step");
    assert!(!build("one"), "same content: cached");
    assert!(build("two"), "changed bind source: the step runs again");
}

#[test]
fn secret_mounts() {
    require_sandbox!();
    let s = Suite::new("secret");
    let secret = s.tmp.0.join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    let arg = format!("id=tok,src={}", secret.display());
    let df = "FROM busybox
RUN --mount=type=secret,id=tok echo \"file: $(cat /run/secrets/tok | wc -c) $(stat -c %a /run/secrets/tok)\"
RUN --mount=type=secret,id=tok,target=/etc/t,mode=0444,uid=65534 echo \"custom: $(stat -c '%a %u' /etc/t)\"
RUN --mount=type=secret,id=tok,env=TOKEN sh -c 'case \"$TOKEN\" in s3cr3t-*) echo \"env: ok\";; esac'
";
    for rt in runtimes() {
        let out = s.run(rt, df, &[], &["--secret", &arg]);
        assert_eq!(tagged(&out, "file: "), ["12 400"], "[{rt}]");
        assert_eq!(tagged(&out, "custom: "), ["444 65534"], "[{rt}]");
        assert_eq!(tagged(&out, "env: "), ["ok"], "[{rt}]");
        let err = s.fail(
            rt,
            "FROM busybox\nRUN --mount=type=secret,id=missing,required true\n",
            &[],
            &[],
        );
        assert!(err.contains("secret missing: not found"), "[{rt}] {err}");
    }
}

#[test]
fn a_killed_build_leaves_no_secret_behind() {
    require_sandbox!();
    let s = Suite::new("killed");
    let secret = s.tmp.0.join("token");
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    write(
        &s.context,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=tok sleep 60\n",
        )],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&s.root)
        .args(["build", "--progress", "quiet", "--secret"])
        .arg(format!("id=tok,src={}", secret.display()))
        .arg(&s.context)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staged = s.root.join("v1/executor/secrets");
    let files = || -> Vec<PathBuf> {
        std::fs::read_dir(&staged)
            .map(|d| {
                d.filter_map(Result::ok)
                    .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten())
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while files().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: nothing of strata runs after this
    child.wait().unwrap();
    assert_eq!(files().len(), 1, "the step had its secret staged");
    // The next build of this store removes what the dead one staged.
    s.run("native", "FROM busybox\nRUN true\n", &[], &[]);
    assert!(files().is_empty(), "{:?}", files());
}

/// A running `ssh-agent` holding one new key, and that key's fingerprint.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
    fingerprint: String,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = dir.join("id_ed25519");
        tool(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "strata-test",
                "-f",
                key.to_str().unwrap(),
            ],
        );
        let add = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(add.status.success(), "{}", text(&add.stderr));
        let fingerprint = tool("ssh-keygen", &["-l", "-f", key.to_str().unwrap()])
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        Agent {
            child,
            socket,
            fingerprint,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's `ssh-add` and the libraries it loads, laid out under `dir` as on the host, so
/// a step can run the real client from a bind mount (busybox has no ssh-agent client).
fn host_ssh_add(dir: &Path) -> String {
    let ssh_add = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v ssh-add"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ssh_add = ssh_add.trim().to_string();
    let mut files = vec![ssh_add.clone()];
    let mut loader = String::new();
    for line in tool("ldd", &[&ssh_add]).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(str::to_string);
        if let Some(p) = path {
            if line.trim_start().starts_with('/') {
                loader = p.clone();
            }
            files.push(p);
        }
    }
    for f in &files {
        let dest = dir.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(f, &dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let libdirs: Vec<String> = files[1..]
        .iter()
        .filter_map(|f| {
            Path::new(f)
                .parent()
                .map(|p| format!("/tools{}", p.display()))
        })
        .collect();
    format!(
        "/tools{loader} --library-path {} /tools{ssh_add}",
        libdirs.join(":")
    )
}

#[test]
fn ssh_mounts_forward_the_agent() {
    require_sandbox!();
    let s = Suite::new("ssh");
    let agent = Agent::start(&s.tmp.0);
    let tools = s.tmp.0.join("tools");
    let ssh_add = host_ssh_add(&tools);
    let df = format!(
        "FROM busybox
RUN --mount=type=ssh --mount=type=bind,source=tools,target=/tools \
    echo \"sock: $SSH_AUTH_SOCK $(stat -c '%a %u' $SSH_AUTH_SOCK)\" && {ssh_add} -l | sed 's/^/agent: /'
USER nobody
RUN --mount=type=ssh,id=work,target=/run/agent,uid=65534,mode=0660 --mount=type=bind,source=tools,target=/tools \
    echo \"custom: $SSH_AUTH_SOCK $(stat -c '%a %u' /run/agent)\" && {ssh_add} -l | sed 's/^/agent2: /'
RUN --mount=type=ssh --mount=type=bind,source=tools,target=/tools \
    {ssh_add} -l >/dev/null 2>&1 && echo 'nobody: connected' || echo 'nobody: refused'
USER root
RUN --mount=type=ssh,id=absent echo \"optional: $(test -e /run/buildkit/ssh_agent.0 && echo mounted || echo skipped)\"
"
    );
    let default = format!("default={}", agent.socket.display());
    let work = format!("work={}", agent.socket.display());
    for rt in runtimes() {
        // The context holds the copied tools; build() rewrites the context, so copy again.
        let out = {
            let _ = std::fs::remove_dir_all(&s.context);
            let out = s.build_with_dir(rt, &df, &tools, &["--ssh", &default, "--ssh", &work]);
            assert!(out.status.success(), "[{rt}] {}", readable(&out));
            logs(&out, 1)
        };
        assert_eq!(
            tagged(&out, "sock: "),
            ["/run/buildkit/ssh_agent.0 600 0"],
            "[{rt}] {out}"
        );
        let listed = tagged(&out, "agent: ");
        assert!(
            listed.len() == 1 && listed[0].contains(&agent.fingerprint),
            "[{rt}] {out}"
        );
        assert_eq!(
            tagged(&out, "custom: "),
            ["/run/agent 660 65534"],
            "[{rt}] SSH_AUTH_SOCK names the step's first agent; {out}"
        );
        assert!(
            tagged(&out, "agent2: ")
                .first()
                .is_some_and(|l| l.contains(&agent.fingerprint)),
            "[{rt}] {out}"
        );
        // The default socket is root's, mode 0600: another user cannot use it.
        assert_eq!(tagged(&out, "nobody: "), ["refused"], "[{rt}]");
        assert_eq!(tagged(&out, "optional: "), ["skipped"], "[{rt}]");
        let err = s.fail(
            rt,
            "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
            &[],
            &[],
        );
        assert!(
            err.contains("no SSH key \\\"default\\\" forwarded from the client")
                || err.contains("no SSH key \"default\" forwarded from the client"),
            "[{rt}] {err}"
        );
    }
}

impl Suite {
    /// A build whose context has `tools` copied in as `tools/`.
    fn build_with_dir(&self, rt: &str, dockerfile: &str, tools: &Path, extra: &[&str]) -> Output {
        std::fs::create_dir_all(&self.context).unwrap();
        tool(
            "cp",
            &[
                "-a",
                tools.to_str().unwrap(),
                self.context.join("tools").to_str().unwrap(),
            ],
        );
        std::fs::write(self.context.join("Dockerfile"), dockerfile).unwrap();
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&self.root)
            .args([
                "build",
                "--runtime",
                rt,
                "--no-cache",
                "--progress",
                "rawjson",
            ])
            .args(extra)
            .arg(&self.context)
            .output()
            .unwrap()
    }
}

/// Files of Docker's masked paths (directories are masked too, but not probed here).
const MASKED_FILES: [&str; 4] = [
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
];

#[test]
fn isolation_pids_proc_caps_and_writes() {
    require_sandbox!();
    let s = Suite::new("isolation");
    // Docker's masked files this kernel has (it may lack /proc/kcore): /dev/null inside.
    let masked: Vec<&str> = MASKED_FILES
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(!masked.is_empty());
    let outside = s.tmp.0.join("host-file");
    std::fs::write(&outside, "host\n").unwrap();
    let df = format!(
        "FROM busybox
RUN set -- /proc/[0-9]*; echo \"pids: $# $$ $*\"
RUN for f in {masked}; do test -c $f && test ! -s $f && echo \"masked: $f\"; done; true
RUN grep CapEff /proc/self/status | sed 's/^CapEff:[[:space:]]*/capeff: /'
RUN echo \"nnp: $(grep NoNewPrivs /proc/self/status | cut -f2) seccomp: $(grep '^Seccomp:' /proc/self/status | cut -f2)\"
RUN (echo x > /proc/sysrq-trigger) 2>/dev/null && echo 'sysrq: writable' || echo 'sysrq: denied'
RUN (touch /sys/kernel/x) 2>/dev/null && echo 'sys: writable' || echo 'sys: denied'
RUN (mount -t tmpfs none /mnt) 2>/dev/null && echo 'mount: allowed' || echo 'mount: denied'
RUN ls {outside} 2>/dev/null || echo 'outside: absent'; mkdir -p {dir} && echo sandbox > {outside}
",
        outside = outside.display(),
        dir = s.tmp.0.display(),
        masked = masked.join(" ")
    );
    for rt in runtimes() {
        let out = s.run(rt, &df, &[], &[]);
        // Only the step's own processes: its shell, and the sandbox's init (native) or none
        // (an OCI runtime makes the shell PID 1).
        let pids = tagged(&out, "pids: ");
        let expected = if rt == "native" {
            "2 2 /proc/1 /proc/2"
        } else {
            "1 1 /proc/1"
        };
        assert_eq!(pids, [expected], "[{rt}] {out}");
        assert_eq!(tagged(&out, "masked: "), masked, "[{rt}]");
        assert_eq!(tagged(&out, "capeff: "), ["00000000a80425fb"], "[{rt}]");
        assert_eq!(tagged(&out, "nnp: "), ["1 seccomp: 2"], "[{rt}]");
        assert_eq!(tagged(&out, "sysrq: "), ["denied"], "[{rt}]");
        assert_eq!(tagged(&out, "sys: "), ["denied"], "[{rt}]");
        assert_eq!(tagged(&out, "mount: "), ["denied"], "[{rt}]");
        assert_eq!(tagged(&out, "outside: "), ["absent"], "[{rt}]");
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            "host\n",
            "[{rt}]"
        );
    }
}

#[test]
fn insecure_needs_the_entitlement() {
    require_sandbox!();
    let s = Suite::new("insecure");
    // Docker's masked files this kernel has: visible under insecure.
    let masked: Vec<&str> = MASKED_FILES
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    let probe = format!(
        "grep CapEff /proc/self/status | sed 's/^CapEff:[[:space:]]*/capeff: /' \
 && for f in {masked}; do test -c $f && echo \"masked: $f\"; done; \
 echo \"sys: $(grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)\" \
 && echo \"proc-sys: $(grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)\" \
 && echo \"seccomp: $(grep '^Seccomp:' /proc/self/status | cut -f2)\"",
        masked = masked.join(" ")
    );
    let df = format!("FROM busybox\nRUN {probe}\nRUN --security=insecure {probe}\n");
    let df = df.as_str();
    let host_caps = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        .unwrap();
    for rt in runtimes() {
        let err = s.fail(rt, df, &[], &[]);
        assert!(
            err.contains("security.insecure is not allowed"),
            "[{rt}] {err}"
        );
        // The sandboxed step first, then the insecure one.
        let out = s.run(rt, df, &[], &["--allow", "security.insecure"]);
        assert_eq!(
            tagged(&out, "capeff: "),
            ["00000000a80425fb", host_caps.as_str()],
            "[{rt}]"
        );
        assert_eq!(
            tagged(&out, "masked: "),
            masked,
            "[{rt}] only the sandboxed step"
        );
        assert_eq!(tagged(&out, "sys: "), ["ro", "rw"], "[{rt}]");
        assert_eq!(tagged(&out, "proc-sys: "), ["ro", ""], "[{rt}]");
        assert_eq!(tagged(&out, "seccomp: "), ["2", "0"], "[{rt}]");
    }
}

/// A TCP server on 127.0.0.1 that answers every connection with `hello`.
fn tcp_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"hello\n");
            let mut sink = [0u8; 64];
            let _ = conn.read(&mut sink);
        }
    });
    port
}

#[test]
fn network_modes() {
    require_sandbox!();
    let s = Suite::new("network");
    let port = tcp_server();
    let probe = format!(
        "echo \"$(nc -w 3 127.0.0.1 {port} </dev/null 2>/dev/null || echo unreachable)\" | sed 's/^/net: /'"
    );
    let df = format!(
        "FROM busybox\nRUN {probe}\nRUN --network=none {probe}\nRUN --network=default {probe}\n"
    );
    let host = format!("FROM busybox\nRUN --network=host {probe}\n");
    for rt in runtimes() {
        let out = s.run(rt, &df, &[], &[]);
        assert_eq!(
            tagged(&out, "net: "),
            ["hello", "unreachable", "hello"],
            "[{rt}]"
        );
        // `--network none` makes it the default of every step.
        let out = s.run(
            rt,
            &format!("FROM busybox\nRUN {probe}\n"),
            &[],
            &["--network", "none"],
        );
        assert_eq!(tagged(&out, "net: "), ["unreachable"], "[{rt}]");
        // Host networking is an entitlement; `--network host` grants it, as buildx does.
        let err = s.fail(rt, &host, &[], &[]);
        assert!(err.contains("network.host is not allowed"), "[{rt}] {err}");
        let out = s.run(rt, &host, &[], &["--allow", "network.host"]);
        assert_eq!(tagged(&out, "net: "), ["hello"], "[{rt}]");
        let out = s.run(
            rt,
            &format!("FROM busybox\nRUN {probe}\n"),
            &[],
            &["--network", "host"],
        );
        assert_eq!(tagged(&out, "net: "), ["hello"], "[{rt}]");
    }
}

#[test]
fn runtime_flag_is_checked() {
    let s = TempDir::new("run-flags");
    let out = common::strata(&s.0, &["build", "--runtime", "kata", "."]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("kata"), "{}", text(&out.stderr));
    let out = common::strata(&s.0, &["build", "--network", "bridge", "."]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("invalid --network \"bridge\""), "{err}");
}
