//! Differential check against buildah (Debian's package): each testdata Dockerfile without
//! RUN is built by `buildah bud --format docker` and by `strata build`, both exported as docker
//! archives, and their image configs and unpacked file trees must agree.
//!
//! buildah runs on its own storage under the test's temp dir. The differences that are
//! BuildKit's behaviour, which Strata follows, are the only ones allowed, each named below:
//! - `ArgsEscaped: true` after CMD/ENTRYPOINT (BuildKit sets it for Docker compatibility);
//! - the `io.buildah.version` label buildah adds;
//! - Env order: BuildKit replaces a variable in place, buildah moves it to the end;
//! - `WorkingDir: "/"` on a scratch image (BuildKit's empty image has it; buildah leaves it
//!   empty, which means `/`), and buildah's `Hostname` and empty/false defaults;
//! - directory mtimes (created directories carry each tool's build time).

mod common;

use common::{can_run_sandboxes, listing, now_secs, ok, store_with_busybox, tool, unpack, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The testdata Dockerfiles without RUN.
const CASES: &[&str] = &["scratch", "differential"];

/// Whether buildah is here; CI installs it and must not skip.
fn have_buildah() -> bool {
    let found = Command::new("buildah").arg("--version").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install buildah (scripts/test does)"
    );
    if !found {
        eprintln!("skipped: buildah is not installed (apt-get install buildah)");
    }
    found
}

/// buildah with its storage confined to `dir`.
fn buildah(dir: &Path, args: &[&str]) -> String {
    let root = dir.join("buildah-root");
    let run = dir.join("buildah-run");
    let mut all = vec![
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        run.to_str().unwrap(),
        "--storage-driver",
        "vfs",
    ];
    all.extend_from_slice(args);
    tool("buildah", &all)
}

/// The image config inside a docker archive, read from the archive itself (skopeo would
/// drop the Docker-only fields: Healthcheck, Shell, OnBuild).
fn archive_config(archive: &Path, scratch: &Path) -> serde_json::Value {
    std::fs::create_dir_all(scratch).unwrap();
    tool(
        "tar",
        &[
            "xf",
            archive.to_str().unwrap(),
            "-C",
            scratch.to_str().unwrap(),
        ],
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.join("manifest.json")).unwrap()).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch.join(config)).unwrap()).unwrap();
    config["config"].clone()
}

/// The allowed differences removed: see the module doc.
fn normalised(mut config: serde_json::Value) -> serde_json::Value {
    let object = config.as_object_mut().unwrap();
    object.remove("ArgsEscaped");
    if let Some(labels) = object.get_mut("Labels").and_then(|l| l.as_object_mut()) {
        labels.remove("io.buildah.version");
    }
    if let Some(env) = object.get_mut("Env").and_then(|e| e.as_array_mut()) {
        env.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
    }
    // buildah records its build container's hostname.
    object.remove("Hostname");
    if object.get("WorkingDir") == Some(&serde_json::json!("/")) {
        object.remove("WorkingDir");
    }
    // Absent, false and empty mean the same image.
    object.retain(|_, v| {
        !(v.is_null()
            || v == &serde_json::json!(false)
            || v == &serde_json::json!("")
            || v == &serde_json::json!({})
            || v == &serde_json::json!([]))
    });
    config
}

/// The unpacked file tree of a docker archive.
fn tree(archive: &Path, tmp: &TempDir, label: &str, started: i64) -> String {
    let layout = tmp.0.join(format!("{label}-oci"));
    tool(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:latest", layout.display()),
        ],
    );
    let bundle = unpack(&format!("{}:latest", layout.display()), tmp);
    let tree = listing(&bundle.join("rootfs"), &[""], started);
    std::fs::remove_dir_all(bundle).unwrap();
    tree
}

/// The case's context, with every mtime fixed so both tools copy the same times.
fn context(tmp: &TempDir, case: &str) -> PathBuf {
    let ctx = tmp.0.join(format!("ctx-{case}"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/build")
        .join(case);
    tool("cp", &["-a", src.to_str().unwrap(), ctx.to_str().unwrap()]);
    tool(
        "find",
        &[
            ctx.to_str().unwrap(),
            "-exec",
            "touch",
            "-h",
            "-d",
            "@1609459200",
            "{}",
            "+",
        ],
    );
    ctx
}

#[test]
fn buildah_and_strata_build_the_same_images() {
    if !can_run_sandboxes() || !have_buildah() {
        return;
    }
    let started = now_secs();
    let tmp = TempDir::new("differential");
    let root = store_with_busybox(&tmp);
    // The same busybox image for buildah.
    let busybox = tmp.0.join("busybox.tar");
    buildah(
        &tmp.0,
        &[
            "pull",
            "-q",
            &format!("docker-archive:{}", busybox.display()),
        ],
    );

    for case in CASES {
        let ctx = context(&tmp, case);
        let ctx = ctx.to_str().unwrap();
        let ours = tmp.0.join(format!("{case}-strata.tar"));
        let dest = format!("type=docker,dest={}", ours.display());
        ok(
            &root,
            &["build", "--progress", "quiet", "-t", case, "-o", &dest, ctx],
        );

        let theirs = tmp.0.join(format!("{case}-buildah.tar"));
        let tag = format!("localhost/{case}:latest");
        buildah(
            &tmp.0,
            &["bud", "--quiet", "--format", "docker", "-t", &tag, ctx],
        );
        buildah(
            &tmp.0,
            &[
                "push",
                "-q",
                &tag,
                &format!("docker-archive:{}:{tag}", theirs.display()),
            ],
        );

        let a = normalised(archive_config(&ours, &tmp.0.join(format!("{case}-a"))));
        let b = normalised(archive_config(&theirs, &tmp.0.join(format!("{case}-b"))));
        assert_eq!(
            a, b,
            "{case}: image configs differ (strata left, buildah right)"
        );

        let a = tree(&ours, &tmp, "strata", started);
        let b = tree(&theirs, &tmp, "buildah", started);
        if a != b {
            let diff: Vec<String> = diff_lines(&a, &b);
            panic!(
                "{case}: file trees differ (- strata, + buildah):\n{}",
                diff.join("\n")
            );
        }
        eprintln!("{case}: same config and {} entries", a.lines().count());
    }
}

/// Lines only in `a` (`-`) or only in `b` (`+`).
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let left: std::collections::BTreeSet<&str> = a.lines().collect();
    let right: std::collections::BTreeSet<&str> = b.lines().collect();
    left.difference(&right)
        .map(|l| format!("- {l}"))
        .chain(right.difference(&left).map(|l| format!("+ {l}")))
        .collect()
}
