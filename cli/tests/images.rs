//! `strata load | images | tag | inspect | history | save | rmi` end to end: the built
//! binary on a temp `--root`, with a busybox image made from the host's busybox-static, and
//! what `save` writes read by `skopeo` and `podman load`.

mod common;

use common::{busybox, strata, text, tool, TempDir};

use std::path::{Path, PathBuf};
use std::process::Command;

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs strata and returns stdout, failing the test unless it succeeds.
fn ok(root: &Path, args: &[&str]) -> String {
    let out = strata(root, args);
    assert!(
        out.status.success(),
        "strata {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A temp dir holding a busybox docker archive (`busybox.tar`) and a store root (`root`).
fn setup(label: &str) -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new(label);
    let (layout, manifest) = busybox::busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    let archive = tmp.0.join("busybox.tar");
    let bytes = busybox::docker_archive(&layout, &manifest, &["busybox:latest"]).unwrap();
    std::fs::write(&archive, bytes).unwrap();
    let root = tmp.0.join("root");
    (tmp, archive, root)
}

#[test]
fn load_list_tag_inspect_history_and_remove() {
    let (_tmp, archive, root) = setup("lifecycle");
    assert_eq!(
        ok(&root, &["load", "-i", arg(&archive)]),
        "Loaded image: busybox:latest\n"
    );
    // Loading again is harmless.
    ok(&root, &["load", "-i", arg(&archive)]);

    let listing = ok(&root, &["images"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{listing}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&cells[..2], ["busybox", "latest"], "{listing}");
    let id = cells[2].to_owned();
    assert_eq!(id.len(), 12);
    assert!(lines[1].ends_with("MB"), "{listing}");

    // STRATA_ROOT works like --root.
    let quiet = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["images", "-q"])
        .env("STRATA_ROOT", &root)
        .output()
        .unwrap();
    assert_eq!(text(&quiet.stdout), format!("{id}\n"));

    ok(&root, &["tag", "busybox", "localhost:5000/tools/bb:2"]);
    let inspect = ok(&root, &["inspect", "localhost:5000/tools/bb:2"]);
    assert!(
        inspect.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{inspect}"
    );
    let json: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let image = &json[0];
    assert!(image["Id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("sha256:{id}")));
    assert_eq!(
        image["RepoTags"],
        serde_json::json!(["busybox:latest", "localhost:5000/tools/bb:2"])
    );
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(image["Os"], "linux");
    assert_eq!(image["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(image["Created"], "2024-01-01T00:00:00Z");

    let history = ok(&root, &["history", &id]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("IMAGE          CREATED"), "{history}");
    assert!(lines[1].starts_with(&id), "{history}");
    assert!(
        lines[1].contains("busybox-static root filesystem"),
        "{history}"
    );

    // By id with two repositories: refused without -f.
    let out = strata(&root, &["rmi", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must be forced"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        ok(&root, &["rmi", "localhost:5000/tools/bb:2"]),
        "Untagged: localhost:5000/tools/bb:2\n"
    );
    let removed = ok(&root, &["rmi", "busybox"]);
    assert_eq!(
        removed.lines().collect::<Vec<_>>(),
        [
            "Untagged: busybox:latest".to_owned(),
            format!("Deleted: {}", image["Id"].as_str().unwrap())
        ]
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");

    let out = strata(&root, &["inspect", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "ERROR: no such image: busybox\n");
    let out = strata(&root, &["rmi", "nothing"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "ERROR: no such image: nothing\n");
}

#[test]
fn saved_archives_are_read_by_skopeo_podman_and_strata() {
    let (tmp, archive, root) = setup("save");
    ok(&root, &["load", "-i", arg(&archive)]);
    let id = ok(&root, &["images", "-q", "--no-trunc"]).trim().to_owned();

    let saved = tmp.0.join("saved.tar");
    ok(&root, &["save", "-o", arg(&saved), "busybox"]);
    let inspect = tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", arg(&saved)),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["sh"]));

    // podman, with its own storage under the temp dir.
    let podman = |args: &[&str]| {
        let mut full = vec![
            "--root".to_owned(),
            tmp.0.join("podman/root").display().to_string(),
            "--runroot".to_owned(),
            tmp.0.join("podman/run").display().to_string(),
            "--storage-driver".to_owned(),
            "vfs".to_owned(),
        ];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        tool("podman", &refs)
    };
    let loaded = podman(&["load", "-i", arg(&saved)]);
    assert!(loaded.contains("busybox:latest"), "{loaded}");
    let ids = podman(&["images", "--no-trunc", "--format", "{{.ID}}"]);
    assert_eq!(
        ids.trim().trim_start_matches("sha256:"),
        id.trim_start_matches("sha256:")
    );

    // An OCI archive with gzip layers: same image id, loads back into a fresh store.
    let oci = tmp.0.join("saved-oci.tar");
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "--compression",
            "gzip",
            "-o",
            arg(&oci),
            "busybox",
        ],
    );
    let raw = tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", arg(&oci))],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(manifest["config"]["digest"], id);
    let other = tmp.0.join("other-root");
    assert_eq!(
        ok(&other, &["load", "-i", arg(&oci)]),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(ok(&other, &["images", "-q", "--no-trunc"]).trim(), id);

    // Layers converted on the way out: streamed into a file's entries, or through a scratch
    // directory into a pipe — the same archive either way.
    let zstd = tmp.0.join("saved-zstd.tar");
    let args = [
        "save",
        "--format",
        "oci",
        "--compression",
        "zstd",
        "--force-compression",
    ];
    ok(&root, &[&args[..], &["-o", arg(&zstd), "busybox"]].concat());
    let piped = strata(&root, &[&args[..], &["busybox"]].concat());
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert!(
        piped.stdout == std::fs::read(&zstd).unwrap(),
        "file and pipe differ"
    );
    let raw = tool(
        "skopeo",
        &["inspect", "--raw", &format!("oci-archive:{}", arg(&zstd))],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(manifest["config"]["digest"], id);
    let zstd_root = tmp.0.join("zstd-root");
    ok(&zstd_root, &["load", "-i", arg(&zstd)]);
    assert_eq!(ok(&zstd_root, &["images", "-q", "--no-trunc"]).trim(), id);

    // A missing image saves nothing and leaves no file.
    let none = tmp.0.join("none.tar");
    let out = strata(&root, &["save", "-o", arg(&none), "busybox", "nothing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!none.exists());
}

#[test]
fn a_corrupt_archive_is_an_error_and_tags_nothing() {
    let (_tmp, archive, root) = setup("corrupt");
    let mut bytes = std::fs::read(&archive).unwrap();
    // Flip a byte in the middle: inside the (only large) layer blob.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&archive, bytes).unwrap();
    let out = strata(&root, &["load", "-i", arg(&archive)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("ERROR: cannot load"), "{stderr}");
    assert!(stderr.contains("digest"), "{stderr}");
    assert_eq!(ok(&root, &["images", "-q"]), "");
}
