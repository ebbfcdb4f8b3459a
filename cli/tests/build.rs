//! `strata build` end to end, as root, on a busybox image made from the host's
//! busybox-static: the result is read back with skopeo and umoci, and rebuilds are checked
//! from the progress stream (`--progress rawjson`): what ran, what was cached.

mod common;

use common::{
    can_run_sandboxes, ok, ran, store_with_busybox, strata, text, tool, unpack, write, TempDir,
};

use std::path::{Path, PathBuf};

const MULTISTAGE: &str = "FROM busybox AS builder
WORKDIR /src
COPY hello.txt .
RUN cat hello.txt > /out.txt && echo built >> /out.txt && rm /bin/vi
FROM busybox
COPY --from=builder /out.txt /app/out.txt
COPY unrelated.txt /app/
RUN cat /app/out.txt
CMD [\"cat\", \"/app/out.txt\"]
";

#[test]
fn multistage_build_rebuilds_only_what_changed() {
    if !can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("multistage");
    let root = store_with_busybox(&tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", MULTISTAGE),
            ("hello.txt", "hello\n"),
            ("unrelated.txt", "u1\n"),
            ("notes.md", "n\n"),
        ],
    );
    let c = ctx.to_str().unwrap();
    let build = |tag: &str| ok(&root, &["build", "--progress", "rawjson", "-t", tag, c]);

    let first = build("demo:1");
    let id1 = text(&first.stdout).trim().to_string();
    assert!(id1.starts_with("sha256:"), "{id1}");
    let first_ran = ran(&first);
    assert!(
        first_ran.iter().any(|n| n.contains("RUN cat hello.txt")),
        "{first_ran:?}"
    );

    // Nothing changed: nothing runs, same image.
    let second = build("demo:2");
    assert!(
        ran(&second).is_empty(),
        "no-op rebuild ran {:?}",
        ran(&second)
    );
    assert_eq!(text(&second.stdout).trim(), id1);

    // A file no step reads: still nothing runs.
    write(&ctx, &[("notes.md", "changed\n")]);
    let third = build("demo:3");
    assert!(
        ran(&third).is_empty(),
        "untouched-file rebuild ran {:?}",
        ran(&third)
    );
    assert_eq!(text(&third.stdout).trim(), id1);

    // A file only the final stage copies: that COPY and what follows re-run, the builder
    // stage stays cached.
    write(&ctx, &[("unrelated.txt", "u2\n")]);
    let fourth = build("demo:4");
    let fourth_ran = ran(&fourth);
    assert!(
        fourth_ran.iter().any(|n| n.contains("COPY unrelated.txt")),
        "{fourth_ran:?}"
    );
    assert!(
        fourth_ran
            .iter()
            .any(|n| n.contains("RUN cat /app/out.txt")),
        "{fourth_ran:?}"
    );
    assert!(
        !fourth_ran.iter().any(|n| n.contains("builder")),
        "{fourth_ran:?}"
    );
    assert_ne!(text(&fourth.stdout).trim(), id1);

    // The image, read by real consumers.
    let layout = format!("{}:4", root.join("v1/content").display());
    let config: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--config", &format!("oci:{layout}")],
    ))
    .unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/app/out.txt"])
    );
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(
        history.contains(&"RUN /bin/sh -c cat /app/out.txt # buildkit"),
        "{history:?}"
    );
    let unpacked = unpack(&layout, &tmp);
    let rootfs = unpacked.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/out.txt")).unwrap(),
        "hello\nbuilt\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/unrelated.txt")).unwrap(),
        "u2\n"
    );
    // The builder deleted /bin/vi in its own stage only.
    assert!(rootfs.join("bin/vi").symlink_metadata().is_ok());
}

#[test]
fn a_failing_run_reports_the_exit_code_and_its_line() {
    if !can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("failing");
    let root = store_with_busybox(&tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[("Dockerfile", "FROM busybox\nRUN echo before\nRUN exit 3\n")],
    );
    let out = strata(
        &root,
        &["build", "--progress", "plain", ctx.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(err.contains(">>> RUN exit 3"), "{err}");
}

#[test]
fn a_missing_base_image_is_named() {
    let tmp = TempDir::new("missing");
    let ctx = tmp.0.join("ctx");
    write(&ctx, &[("Dockerfile", "FROM nosuchimage:1\n")]);
    let out = strata(&tmp.0.join("root"), &["build", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("nosuchimage:1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn scratch_image_with_dockerignore() {
    let tmp = TempDir::new("scratch");
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /src/\nENV A=b\n"),
            ("a.txt", "a\n"),
            ("secret.txt", "s\n"),
            (".dockerignore", "secret.txt\n"),
        ],
    );
    let root = tmp.0.join("root");
    let docker_tar = tmp.0.join("image-docker.tar");
    let oci_tar = tmp.0.join("image-oci.tar");
    let metadata = tmp.0.join("metadata.json");
    ok(
        &root,
        &[
            "build",
            "-t",
            "sc:1",
            "--output",
            &format!("type=docker,dest={}", docker_tar.display()),
            "--output",
            &format!("type=oci,dest={}", oci_tar.display()),
            "--metadata-file",
            metadata.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{meta}");
    assert_eq!(meta["image.name"], "docker.io/library/sc:1");
    for archive in [
        format!("docker-archive:{}", docker_tar.display()),
        format!("oci-archive:{}", oci_tar.display()),
    ] {
        let inspected: serde_json::Value =
            serde_json::from_str(&tool("skopeo", &["inspect", "--config", &archive])).unwrap();
        assert_eq!(
            inspected["config"]["Env"][1], "A=b",
            "{archive}: {inspected}"
        );
    }
    let layout = format!("{}:1", root.join("v1/content").display());
    let unpacked = unpack(&layout, &tmp);
    assert_eq!(
        std::fs::read_to_string(unpacked.join("rootfs/src/a.txt")).unwrap(),
        "a\n"
    );
    assert!(
        !unpacked.join("rootfs/src/secret.txt").exists(),
        ".dockerignore'd file was copied"
    );
}

#[test]
fn copy_link_lands_on_top_of_the_base() {
    if !can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("link");
    let root = store_with_busybox(&tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", "FROM busybox\nRUN mkdir /app && echo base > /app/base.txt\nCOPY --link a.txt /app/\n"),
            ("a.txt", "linked\n"),
        ],
    );
    ok(&root, &["build", "-t", "link:1", ctx.to_str().unwrap()]);
    let layout = format!("{}:1", root.join("v1/content").display());
    let unpacked = unpack(&layout, &tmp);
    assert_eq!(
        std::fs::read_to_string(unpacked.join("rootfs/app/base.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.join("rootfs/app/a.txt")).unwrap(),
        "linked\n"
    );
}

/// BuildKit's build-stage case from `instructions/errors.json`: COPY of a missing path.
#[test]
fn copy_of_a_missing_file_is_not_found_at_its_line() {
    let tmp = TempDir::new("badfile");
    let ctx = tmp.0.join("ctx");
    write(&ctx, &[("Dockerfile", "FROM scratch\nCOPY badfile /\n")]);
    let out = strata(
        &tmp.0.join("root"),
        &["build", "--progress", "plain", ctx.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("\"/badfile\": not found"), "{err}");
    assert!(err.contains(">>> COPY badfile /"), "{err}");
}

/// Every file a build leaves under the store root, as bytes.
fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            all_files(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

#[test]
fn secrets_reach_the_step_and_nothing_else() {
    if !can_run_sandboxes() {
        return;
    }
    const SECRET: &str = "s3cr3t-value-7f3a9c";
    let tmp = TempDir::new("secret");
    let root = store_with_busybox(&tmp);
    let secret_file = tmp.0.join("token.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=tok test \"$(wc -c < /run/secrets/tok)\" -eq 19 && touch /file-ok\n\
             RUN --mount=type=secret,id=tok,env=TOKEN case \"$TOKEN\" in s3cr3t-*) touch /env-ok;; esac\n\
             RUN --mount=type=secret,id=missing true\n",
        )],
    );
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    let out = ok(
        &root,
        &[
            "build",
            "--progress",
            "plain",
            "--secret",
            &secret_arg,
            "-t",
            "sec:1",
            ctx.to_str().unwrap(),
        ],
    );
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !log.contains(SECRET),
        "the secret is in the progress log:\n{log}"
    );

    // The steps saw it (their marker files exist), and no byte of it is anywhere in the store:
    // layers, configs, manifests, snapshots, cache records.
    let layout = format!("{}:1", root.join("v1/content").display());
    let unpacked = unpack(&layout, &tmp);
    assert!(unpacked.join("rootfs/file-ok").exists() && unpacked.join("rootfs/env-ok").exists());
    assert!(
        !unpacked.join("rootfs/run/secrets/tok").exists(),
        "mount stub left in the image"
    );
    let mut files = Vec::new();
    all_files(&root, &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in {}",
            file.display()
        );
    }

    // A required secret the client did not give: BuildKit's error.
    write(
        &ctx,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=mysecret,required true\n",
        )],
    );
    let out = strata(&root, &["build", ctx.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("secret mysecret: not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dockerfile_on_stdin_with_no_context() {
    use std::io::Write as _;
    let tmp = TempDir::new("stdin");
    let root = tmp.0.join("root");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&root)
        .args(["build", "--progress", "quiet", "-t", "stdin:1", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM scratch\nENV FROM_STDIN=yes\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let layout = format!("oci:{}:1", root.join("v1/content").display());
    let config: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", "--config", &layout])).unwrap();
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FROM_STDIN=yes"), "{env}");
}
