//! `strata pull`, `strata push` and `build --pull/--push/--output type=image,push=true`
//! against real registries (Debian's `docker-registry`), read back with skopeo and umoci.

mod common;

#[path = "../../worker/tests/common/registry.rs"]
mod registry;

use common::busybox::busybox_layout;
use common::{can_run_sandboxes, ok, strata, text, tool, TempDir};
use registry::Registry;
use std::path::Path;
use std::process::{Command, Output};

fn ready() -> bool {
    registry::available() && can_run_sandboxes()
}

/// skopeo copies the busybox test image into `registry` as `name`.
fn push_busybox_with_skopeo(tmp: &TempDir, name: &str) {
    let (layout, _) = busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}", layout.display()),
            &format!("docker://{name}"),
        ],
    );
}

fn inspect(image: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(image);
    serde_json::from_str(&tool("skopeo", &args)).unwrap()
}

/// `strata --root ROOT ARGS` with extra environment.
fn strata_env(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.arg("--root").arg(root).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run strata")
}

#[test]
fn build_from_a_registry_image_and_push_under_two_names() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-build");
    let registry = Registry::open();
    let base = format!("{}/base/busybox:1", registry.addr);
    push_busybox_with_skopeo(&tmp, &base);

    let context = tmp.0.join("context");
    common::write(
        &context,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {base}\nRUN echo built-by-strata > /hello\nCOPY note.txt /note.txt\nCMD [\"cat\", \"/hello\"]\n"
                ),
            ),
            ("note.txt", "from the context\n"),
        ],
    );
    let root = tmp.0.join("root");
    let one = format!("{}/app/one:1", registry.addr);
    let two = format!("{}/app/two:latest", registry.addr);
    let metadata = tmp.0.join("metadata.json");
    let out = ok(
        &root,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            &one,
            "-t",
            &two,
            "--push",
            "--metadata-file",
            metadata.to_str().unwrap(),
            context.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("pulling {base}")), "{stderr}");

    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let digest = metadata["containerimage.digest"].as_str().unwrap();
    let names = metadata["image.name"].as_str().unwrap();
    assert!(names.contains(&one) && names.contains(&two), "{names}");
    for name in [&one, &two] {
        assert_eq!(inspect(&format!("docker://{name}"), &[])["Digest"], digest);
    }
    let raw = inspect(&format!("docker://{one}"), &["--raw"]);
    assert_eq!(
        raw["config"]["digest"].as_str().unwrap(),
        metadata["containerimage.config.digest"].as_str().unwrap()
    );
    // Built layers were gzip-compressed for the registry; the base layer kept its blob.
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{raw}");
    for layer in layers {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{raw}"
        );
    }

    // What was pushed unpacks with umoci and holds what the Dockerfile wrote.
    let layout = tmp.0.join("pushed");
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{one}"),
            &format!("oci:{}:one", layout.display()),
        ],
    );
    let bundle = common::unpack(&format!("{}:one", layout.display()), &tmp);
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello")).unwrap(),
        "built-by-strata\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("note.txt")).unwrap(),
        "from the context\n"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["cat", "/hello"])
    );
    // And it runs: `cat /hello` prints what the RUN step wrote, under runc and under crun.
    // Debian's crun 1.8.1 refuses this host's hybrid cgroup layout, so it runs as the
    // executor's crun backend does: no cgroup manager, with the host's v2 hierarchy hidden in
    // a private mount namespace (the host is untouched).
    let mut config = config;
    config["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let id = format!("strata-registry-{}", std::process::id());
    let bundle_arg = bundle.to_str().unwrap();
    let crun = format!(
        "umount -l /sys/fs/cgroup/unified 2>/dev/null; \
         exec crun --cgroup-manager=disabled run -b {bundle_arg} {id}-crun"
    );
    let runtimes: [(&str, Vec<&str>); 2] = [
        ("runc", vec!["runc", "run", "-b", bundle_arg, &id]),
        (
            "crun",
            vec![
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &crun,
            ],
        ),
    ];
    for (name, argv) in runtimes {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("run {name}: {e}"));
        assert_eq!(
            text(&out.stdout),
            "built-by-strata\n",
            "{name}: {}",
            text(&out.stderr)
        );
    }

    // A rebuild with --pull fetches the base again (nothing new to download) and pushing
    // the same image again uploads nothing.
    let out = ok(
        &root,
        &[
            "build",
            "--pull",
            "-t",
            &one,
            "--output",
            "type=image,push=true",
            context.to_str().unwrap(),
        ],
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("pulling {base}")), "{stderr}");
    assert!(stderr.contains("0 uploaded"), "{stderr}");

    // `type=registry,name=…` pushes without -t; compression= applies to the built layers
    // (stored uncompressed), the pulled gzip base layer keeps its blob.
    let three = format!("{}/app/three:zstd", registry.addr);
    ok(
        &root,
        &[
            "build",
            "--output",
            &format!("type=registry,name={three},compression=zstd"),
            context.to_str().unwrap(),
        ],
    );
    let raw = inspect(&format!("docker://{three}"), &["--raw"]);
    let types: Vec<&str> = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ],
        "{raw}"
    );
    // skopeo reads (and verifies) every blob of it.
    tool(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{three}"),
            &format!("oci:{}:three", tmp.0.join("three").display()),
        ],
    );
}

#[test]
fn pull_and_push_commands_with_basic_auth_and_a_credential_helper() {
    if !registry::available() {
        return;
    }
    let tmp = TempDir::new("registry-cmds");
    let open = Registry::open();
    let source = format!("{}/src/busybox:1", open.addr);
    push_busybox_with_skopeo(&tmp, &source);
    let root = tmp.0.join("root");
    let out = ok(&root, &["pull", &source]);
    assert_eq!(text(&out.stdout).trim(), source);
    let images = text(&ok(&root, &["images"]).stdout);
    assert!(
        images.contains(&format!("{}/src/busybox", open.addr)),
        "{images}"
    );

    let private = Registry::basic("ci", "pa55");
    let target = format!("{}/team/busybox:v1", private.addr);
    ok(&root, &["tag", &source, &target]);
    let empty = tmp.0.join("no-config");
    std::fs::create_dir_all(&empty).unwrap();
    let out = strata_env(&root, &["push", &target], &[("DOCKER_CONFIG", &empty)]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unauthorized"), "{stderr}");

    let with_auth = tmp.0.join("docker");
    registry::docker_config(&with_auth, &private.addr, "ci", "pa55");
    let out = strata_env(&root, &["push", &target], &[("DOCKER_CONFIG", &with_auth)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pushed = text(&out.stdout).trim().to_owned();
    assert_eq!(
        inspect(&format!("docker://{target}"), &["--creds", "ci:pa55"])["Digest"],
        pushed.as_str()
    );

    // Credentials from a helper: `docker-credential-<name> get`, server on stdin.
    let helpers = tmp.0.join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    let helper = helpers.join("docker-credential-strata-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"Username\":\"ci\",\"Secret\":\"pa55\"}}'\n",
            private.addr
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let helper_config = tmp.0.join("helper-config");
    std::fs::create_dir_all(&helper_config).unwrap();
    std::fs::write(
        helper_config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"strata-test"}}}}"#, private.addr),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helpers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let other = tmp.0.join("other");
    let out = strata_env(
        &other,
        &["pull", &target],
        &[
            ("DOCKER_CONFIG", &helper_config),
            ("PATH", Path::new(&path)),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), target);

    // Bad names and missing images fail with the name in the message.
    let out = strata(&other, &["pull", "Not/A:valid:ref"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid reference format"),
        "{}",
        text(&out.stderr)
    );
    let out = strata(&other, &["pull", &format!("{}/src/missing:1", open.addr)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );
}
