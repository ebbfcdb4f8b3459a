//! `SOURCE_DATE_EPOCH`: two cold builds of the same inputs on fresh roots, at different
//! times, give the same manifest digest; times in the config, history and new layers are
//! clamped, the base image's layer is untouched. Without it, a rebuild keeps its image id.

mod common;

use common::{can_run_sandboxes, ok, store_with_busybox, text, tool, write, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";
/// `tar --full-time` prints local time; the test runs it with TZ=UTC.
const EPOCH_TAR: &str = "2023-11-14 22:13:20";

const DOCKERFILE: &str = "FROM busybox\n\
ARG SOURCE_DATE_EPOCH\n\
RUN mkdir -p /out/sub && echo made > /out/run.txt && echo \"$SOURCE_DATE_EPOCH\" > /out/sub/epoch\n\
COPY a.txt /app/\n\
ENV X=1\n";

struct Built {
    manifest: serde_json::Value,
    manifest_digest: String,
    config: serde_json::Value,
    root: PathBuf,
}

/// A cold build in a fresh root with a fresh copy of the context; `epoch_env` passes the
/// epoch as an environment variable instead of a build arg.
fn build(tmp: &TempDir, epoch: Option<&str>, epoch_env: bool) -> Built {
    let root = store_with_busybox(tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", DOCKERFILE),
            ("a.txt", "copied from the context\n"),
        ],
    );
    build_in(&root, &ctx, epoch, epoch_env)
}

fn build_in(root: &Path, ctx: &Path, epoch: Option<&str>, epoch_env: bool) -> Built {
    let metadata = root.with_file_name("metadata.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.arg("--root").arg(root).args([
        "build",
        "--progress",
        "quiet",
        "-t",
        "repro:1",
        "--metadata-file",
        metadata.to_str().unwrap(),
    ]);
    command.env_remove("SOURCE_DATE_EPOCH");
    match (epoch, epoch_env) {
        (Some(epoch), true) => {
            command.env("SOURCE_DATE_EPOCH", epoch);
        }
        (Some(epoch), false) => {
            command
                .arg("--build-arg")
                .arg(format!("SOURCE_DATE_EPOCH={epoch}"));
        }
        (None, _) => {}
    }
    let out = command.arg(ctx).output().unwrap();
    assert!(
        out.status.success(),
        "build: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let manifest_digest = meta["containerimage.digest"].as_str().unwrap().to_owned();
    let blob = |digest: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(blob_path(root, digest)).unwrap()).unwrap()
    };
    let manifest = blob(&manifest_digest);
    let config = blob(manifest["config"]["digest"].as_str().unwrap());
    Built {
        manifest,
        manifest_digest,
        config,
        root: root.to_path_buf(),
    }
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("v1/content/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// `tar -tv --full-time` of a stored (uncompressed) layer: (time, path) per entry.
fn entries(built: &Built, layer: usize) -> Vec<(String, String)> {
    let digest = built.manifest["layers"][layer]["digest"].as_str().unwrap();
    let path = blob_path(&built.root, digest);
    let out = Command::new("tar")
        .env("TZ", "UTC")
        .args(["-tv", "--full-time", "-f"])
        .arg(&path)
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|line| {
            // perms owner size date time name...
            let fields: Vec<&str> = line.split_whitespace().collect();
            (
                format!("{} {}", fields[3], fields[4]),
                fields[5..].join(" "),
            )
        })
        .collect()
}

#[test]
fn two_cold_builds_with_source_date_epoch_are_identical() {
    if !can_run_sandboxes() {
        return;
    }
    let first_dir = TempDir::new("repro-a");
    let first = build(&first_dir, Some(EPOCH), false);
    // A second of difference puts every fresh file time on another second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second_dir = TempDir::new("repro-b");
    let second = build(&second_dir, Some(EPOCH), true);
    assert_eq!(
        first.manifest_digest, second.manifest_digest,
        "first:\n{}\nsecond:\n{}",
        first.manifest, second.manifest
    );

    // Config and history times are the epoch (the base's older entries may stay older).
    assert_eq!(first.config["created"], EPOCH_RFC3339);
    let history = first.config["history"].as_array().unwrap();
    assert!(history.len() >= 4, "{history:?}");
    for entry in &history[history.len() - 3..] {
        assert_eq!(entry["created"], EPOCH_RFC3339, "{entry}");
    }
    for entry in history {
        let created = entry["created"].as_str().unwrap();
        assert!(created <= EPOCH_RFC3339, "{entry}");
    }

    // The base layer is busybox's blob as loaded; the two new layers are clamped.
    let layers = first.manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{layers:?}");
    let base = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci:{}:latest", first.root.join("v1/content").display()),
        ],
    );
    let base: serde_json::Value = serde_json::from_str(&base).unwrap();
    assert_eq!(layers[0]["digest"], base["layers"][0]["digest"]);
    for layer in [1, 2] {
        let listed = entries(&first, layer);
        assert!(!listed.is_empty());
        for (time, path) in &listed {
            assert_eq!(time, EPOCH_TAR, "layer {layer}: {path}");
        }
    }
    let run_layer: Vec<String> = entries(&first, 1).into_iter().map(|(_, p)| p).collect();
    assert!(
        run_layer.contains(&"out/run.txt".to_owned()),
        "{run_layer:?}"
    );
    // A stage that declares `ARG SOURCE_DATE_EPOCH` sees the epoch in RUN, as in BuildKit.
    let epoch_file = Command::new("tar")
        .args(["-xOf"])
        .arg(blob_path(
            &first.root,
            layers[1]["digest"].as_str().unwrap(),
        ))
        .arg("out/sub/epoch")
        .output()
        .unwrap();
    assert_eq!(text(&epoch_file.stdout), format!("{EPOCH}\n"));

    // Rebuilding with the epoch in the same root: cached, same manifest.
    let again = build_in(&first.root, &first_dir.0.join("ctx"), Some(EPOCH), false);
    assert_eq!(again.manifest_digest, first.manifest_digest);
}

#[test]
fn without_source_date_epoch_a_rebuild_keeps_the_image_id() {
    if !can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("repro-none");
    let first = build(&tmp, None, false);
    assert!(first.config.get("created").is_none(), "{}", first.config);
    let again = build_in(&first.root, &tmp.0.join("ctx"), None, false);
    assert_eq!(again.manifest_digest, first.manifest_digest);
    assert_eq!(again.manifest["config"], first.manifest["config"]);
    // The real file times are kept: the RUN layer's files are newer than the epoch.
    let listed = entries(&first, 1);
    assert!(
        listed.iter().any(|(time, _)| time.as_str() > EPOCH_TAR),
        "{listed:?}"
    );
    // And an epoch build of the same root gives another manifest, from the same snapshots.
    let clamped = build_in(&first.root, &tmp.0.join("ctx"), Some(EPOCH), false);
    assert_ne!(clamped.manifest_digest, first.manifest_digest);
    let unused = ok(&first.root, &["images", "-q"]);
    assert!(!text(&unused.stdout).is_empty());
}
