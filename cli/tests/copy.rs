//! COPY and ADD end to end: `testdata/build/copy-flags` (every flag `strata build` supports)
//! built on a busybox image, exported as an OCI archive, unpacked by umoci, and the file tree —
//! paths, types, modes, owners, link targets, hard links, file mtimes, contents — compared
//! with a reviewed snapshot.

mod common;

use common::{can_run_sandboxes, listing, now_secs, ok, store_with_busybox, tool, unpack, TempDir};
use std::path::Path;
use std::process::Command;

/// Source files get this mtime so the listing can show that COPY keeps it.
const SOURCE_MTIME: &str = "@1609459200";

/// The context, copied so the test can add what git cannot hold (a hard link) and set times.
fn context(tmp: &TempDir) -> std::path::PathBuf {
    let ctx = tmp.0.join("ctx");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/build/copy-flags");
    tool("cp", &["-a", src.to_str().unwrap(), ctx.to_str().unwrap()]);
    std::fs::hard_link(ctx.join("src/a/one.txt"), ctx.join("src/a/hard.txt")).unwrap();
    let status = Command::new("find")
        .args([
            ctx.to_str().unwrap(),
            "-exec",
            "touch",
            "-h",
            "-d",
            SOURCE_MTIME,
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    ctx
}

#[test]
fn every_copy_and_add_flag() {
    if !can_run_sandboxes() {
        return;
    }
    let started = now_secs();
    let tmp = TempDir::new("copy-flags");
    let root = store_with_busybox(&tmp);
    let ctx = context(&tmp);
    let ctx = ctx.to_str().unwrap();

    // The stage that does the copying, on top of busybox.
    let base = tmp.0.join("base.tar");
    let dest = format!("type=oci,dest={}", base.display());
    ok(
        &root,
        &[
            "build",
            "--progress",
            "plain",
            "--target",
            "base",
            "-t",
            "copy-base",
            "-o",
            &dest,
            ctx,
        ],
    );
    let layout = tmp.0.join("base");
    std::fs::create_dir_all(&layout).unwrap();
    tool(
        "tar",
        &["xf", base.to_str().unwrap(), "-C", layout.to_str().unwrap()],
    );
    let bundle = unpack(&format!("{}:latest", layout.display()), &tmp);
    let tops = [
        "w",
        "all",
        "cdir",
        "renamed.txt",
        "owned",
        "numeric",
        "symbolic",
        "parents",
        "excluded",
        "linked",
        "heredoc.txt",
        "gz",
        "bz",
        "xz",
        "zst",
        "added.txt",
    ];
    insta::assert_snapshot!(
        "copy_flags_base",
        listing(&bundle.join("rootfs"), &tops, started)
    );
    // The ignored directory never reached the build.
    assert!(!bundle.join("rootfs/all/logs").exists());
    std::fs::remove_dir_all(&bundle).unwrap();

    // The final stage: COPY --from a stage name, an index and an image, onto scratch.
    let last = tmp.0.join("last.tar");
    let dest = format!("type=docker,dest={}", last.display());
    ok(
        &root,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "copy-last",
            "-o",
            &dest,
            ctx,
        ],
    );
    let config = tool(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("docker-archive:{}", last.display()),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 4);
    let oci = tmp.0.join("last-oci");
    tool(
        "skopeo",
        &[
            "copy",
            &format!("docker-archive:{}", last.display()),
            &format!("oci:{}:latest", oci.display()),
        ],
    );
    let bundle = unpack(&format!("{}:latest", oci.display()), &tmp);
    let tops = ["from-stage", "from-index", "from-image", "hardlinks"];
    insta::assert_snapshot!(
        "copy_flags_final",
        listing(&bundle.join("rootfs"), &tops, started)
    );
    let busybox = std::fs::metadata(bundle.join("rootfs/from-image")).unwrap();
    assert_eq!(
        busybox.len(),
        std::fs::metadata("/bin/busybox").unwrap().len()
    );
}
