//! `--output type=oci|docker,compression=…,compression-level=…,force-compression=…`: the
//! layers of the archives, read back by skopeo, the zstd and gzip CLIs and tar.

mod common;

use common::{can_run_sandboxes, ok, store_with_busybox, strata, text, tool, write, TempDir};
use std::path::Path;
use std::process::Command;

/// The layer descriptors (media type, digest) of an OCI archive, as skopeo reads them.
fn layers(archive: &Path) -> Vec<(String, String)> {
    let raw = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_owned(),
                l["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kinds(layers: &[(String, String)]) -> Vec<&str> {
    layers
        .iter()
        .map(|(m, _)| m.rsplit('.').next().unwrap())
        .collect()
}

/// `skopeo copy` of the archive into a `dir:`, then `DECODER -dc | tar -xO PATH` of the last
/// layer.
fn file_in_top_layer(archive: &Path, decoder: &str, path: &str, tmp: &Path) -> String {
    let dir = tmp.join(format!("copied-{decoder}"));
    let _ = std::fs::remove_dir_all(&dir);
    tool(
        "skopeo",
        &[
            "copy",
            &format!("oci-archive:{}", archive.display()),
            &format!("dir:{}", dir.display()),
        ],
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let script = format!(
        "{decoder} -dc < {} | tar -xOf - {path}",
        dir.join(&top).display()
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn output_compression_options_choose_the_layer_codecs() {
    if !can_run_sandboxes() {
        return;
    }
    let tmp = TempDir::new("compression");
    let root = store_with_busybox(&tmp);
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN mkdir /app && echo made > /app/run.txt\nCOPY a.txt /app/\n",
            ),
            ("a.txt", "copied\n"),
        ],
    );
    let archive = |name: &str| tmp.0.join(format!("{name}.tar"));
    let build = |specs: &[String]| {
        let mut args = vec!["build", "--progress", "quiet", "-t", "c:1"];
        for spec in specs {
            args.extend(["--output", spec.as_str()]);
        }
        args.push(ctx.to_str().unwrap());
        ok(&root, &args)
    };
    let spec =
        |name: &str, options: &str| format!("type=oci,dest={}{options}", archive(name).display());
    build(&[
        spec("default", ""),
        spec("zstd", ",compression=zstd"),
        spec("zstd-forced", ",compression=zstd,force-compression=true"),
        spec(
            "plain-forced",
            ",compression=uncompressed,force-compression",
        ),
        spec("plain", ",compression=uncompressed"),
        spec("gzip-1", ",compression=gzip,compression-level=1"),
    ]);

    // The same archive on stdout (buildx's dest=-): the layers go through a scratch copy
    // there instead of straight into the file's entries, and the bytes are the same. Only
    // one output may own stdout.
    let piped = build(&["type=oci,dest=-,compression=zstd".to_owned()]);
    assert!(
        piped.stdout == std::fs::read(archive("zstd")).unwrap(),
        "dest=- and dest=FILE differ"
    );
    let two = strata(
        &root,
        &[
            "build",
            "--output",
            "type=oci,dest=-",
            "--output",
            "type=tar,dest=-",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(two.status.code(), Some(1));
    assert_eq!(
        text(&two.stderr),
        "ERROR: only one output can write to stdout (dest=-)\n"
    );

    // gzip by default; the base layer (stored gzip) keeps its blob everywhere unless forced.
    let default = layers(&archive("default"));
    assert_eq!(kinds(&default), ["tar+gzip", "tar+gzip", "tar+gzip"]);
    let zstd = layers(&archive("zstd"));
    assert_eq!(kinds(&zstd), ["tar+gzip", "tar+zstd", "tar+zstd"]);
    assert_eq!(zstd[0], default[0]);
    let forced = layers(&archive("zstd-forced"));
    assert_eq!(kinds(&forced), ["tar+zstd", "tar+zstd", "tar+zstd"]);
    assert_eq!(forced[1..], zstd[1..]);
    let plain = layers(&archive("plain-forced"));
    assert_eq!(kinds(&plain), ["tar", "tar", "tar"]);
    assert_eq!(
        kinds(&layers(&archive("plain"))),
        ["tar+gzip", "tar", "tar"]
    );
    let fast = layers(&archive("gzip-1"));
    assert_eq!(kinds(&fast), ["tar+gzip", "tar+gzip", "tar+gzip"]);
    assert_ne!(
        fast[1].1, default[1].1,
        "level 1 gave the default level's bytes"
    );

    // Real decoders read the layers back.
    assert_eq!(
        file_in_top_layer(&archive("zstd-forced"), "zstd", "app/a.txt", &tmp.0),
        "copied\n"
    );
    assert_eq!(
        file_in_top_layer(&archive("default"), "gzip", "app/a.txt", &tmp.0),
        "copied\n"
    );
    // Go's gzip and zstd readers (podman) unpack the multi-member gzip and the zstd layers.
    for (i, name) in ["default", "zstd-forced"].into_iter().enumerate() {
        // podman wants a runroot under 50 characters.
        let store = tmp.0.join(format!("p{i}"));
        let store = store.display();
        let podman = |args: &[&str]| {
            let mut full = vec![
                "--root".to_owned(),
                format!("{store}/root"),
                "--runroot".to_owned(),
                format!("{store}/run"),
                "--storage-driver".to_owned(),
                "vfs".to_owned(),
            ];
            full.extend(args.iter().map(|a| (*a).to_owned()));
            let refs: Vec<&str> = full.iter().map(String::as_str).collect();
            tool("podman", &refs)
        };
        let archive = format!("oci-archive:{}", archive(name).display());
        podman(&["pull", "-q", &archive]);
        let mounted = podman(&["image", "mount", "-a"]);
        let path = mounted.split_whitespace().last().unwrap().to_owned();
        let copied = std::fs::read_to_string(Path::new(&path).join("app/a.txt"));
        let made = std::fs::read_to_string(Path::new(&path).join("app/run.txt"));
        podman(&["image", "unmount", "-a"]);
        assert_eq!(copied.unwrap(), "copied\n", "{name}");
        assert_eq!(made.unwrap(), "made\n", "{name}");
    }
    // The image id is the same whatever the compression.
    let config = |name: &str| {
        let raw = tool(
            "skopeo",
            &[
                "inspect",
                "--raw",
                &format!("oci-archive:{}", archive(name).display()),
            ],
        );
        let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
        manifest["config"]["digest"].as_str().unwrap().to_owned()
    };
    assert_eq!(config("zstd-forced"), config("default"));
    assert_eq!(config("plain-forced"), config("default"));
}

#[test]
fn bad_compression_options_are_named_and_write_nothing() {
    let tmp = TempDir::new("compression-bad");
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "a\n"),
        ],
    );
    let dest = tmp.0.join("out.tar");
    for (options, message) in [
        (
            "compression=lz4",
            "unsupported compression type lz4 (supported: uncompressed, gzip, zstd)",
        ),
        (
            "compression=gzip,compression-level=99",
            "invalid gzip compression level 99 (valid: 0..=9)",
        ),
        (
            "compression=zstd,compression-level=fast",
            "non-integer value fast specified for compression-level",
        ),
        (
            "force-compression=maybe",
            "non-bool value maybe specified for force-compression",
        ),
    ] {
        let spec = format!("type=oci,dest={},{options}", dest.display());
        let out = strata(
            &tmp.0.join("root"),
            &["build", "--output", &spec, ctx.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{options}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{options}: {stderr}");
        assert!(!dest.exists(), "{options}: an archive was written");
    }
}

#[test]
fn a_layer_repeated_in_an_image_is_converted_and_written_once() {
    // The second COPY writes the same file again: the same layer tar, the same digest.
    let tmp = TempDir::new("compression-repeated");
    let root = tmp.0.join("root");
    let ctx = tmp.0.join("ctx");
    write(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\nCOPY a.txt /\n"),
            ("a.txt", "twice\n"),
        ],
    );
    ok(
        &root,
        &[
            "build",
            "--progress",
            "quiet",
            "-t",
            "dup",
            ctx.to_str().unwrap(),
        ],
    );
    let file = tmp.0.join("dup.tar");
    let args = ["save", "--format", "oci", "--compression", "zstd"];
    ok(
        &root,
        &[&args[..], &["-o", file.to_str().unwrap(), "dup"]].concat(),
    );
    let piped = strata(&root, &[&args[..], &["dup"]].concat());
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert!(
        piped.stdout == std::fs::read(&file).unwrap(),
        "file and pipe differ"
    );
    let converted = layers(&file);
    assert_eq!(kinds(&converted), ["tar+zstd", "tar+zstd"]);
    assert_eq!(converted[0], converted[1]);
    let name = format!(
        "blobs/sha256/{}",
        converted[0].1.trim_start_matches("sha256:")
    );
    let listing = tool("tar", &["-tf", file.to_str().unwrap()]);
    assert_eq!(
        listing.lines().filter(|l| *l == name).count(),
        1,
        "{listing}"
    );
}
