//! OCI layouts and docker archives: round trips, verification, and real consumers
//! (`skopeo`, `umoci`) when installed.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;

use common::*;
use strata_oci::archive::{
    read_archive, read_oci_layout, write_docker_archive, write_oci_archive, write_oci_layout,
    ArchiveError, ArchiveWriter, BlobSink, BlobSource, ExportImage, OciDir,
};
use strata_oci::config::{ContainerConfig, History, ImageConfig};
use strata_oci::layer::{write_layer, WriteOptions};
use strata_oci::manifest::{Descriptor, ImageIndex, ImageManifest, Platform};
use strata_oci::{media_type, Compression, Digest};

const NAME: &str = "strata.test/app:v1";

fn put(store: &mut OciDir, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    let mut w = store.begin_blob().unwrap();
    w.write_all(bytes).unwrap();
    store.commit_blob(w, &digest, bytes.len() as u64).unwrap();
    digest
}

/// An image of two layers (gzip by default) in `store`; returns its manifest descriptor.
fn build_image(store: &mut OciDir, compression: Compression) -> Descriptor {
    let first = TempDir::new("img-l1");
    write_file(
        &first.join("bin/hello"),
        b"#!/bin/sh\necho hello from strata\n",
        0o755,
    );
    write_file(&first.join("etc/os-release"), b"ID=strata\n", 0o644);
    let second = TempDir::new("img-l2");
    write_file(&second.join("app/data.txt"), b"payload\n", 0o644);
    write_file(&second.join("app/nested/deep.txt"), b"deep\n", 0o600);

    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for dir in [first.path(), second.path()] {
        let mut blob = Vec::new();
        let options = WriteOptions {
            compression,
            ..WriteOptions::default()
        };
        let info = write_layer(dir, &options, &mut blob).unwrap();
        put(store, &blob);
        layers.push(info.oci_descriptor());
        diff_ids.push(info.diff_id);
    }
    let mut labels = BTreeMap::new();
    labels.insert("org.example.kind".to_owned(), "test".to_owned());
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        created: Some("2024-01-02T03:04:05Z".into()),
        config: ContainerConfig {
            env: vec!["PATH=/usr/bin:/bin".into(), "GREETING=hi".into()],
            entrypoint: vec!["/bin/hello".into()],
            cmd: vec!["--loud".into()],
            working_dir: "/app".into(),
            labels,
            ..Default::default()
        },
        history: vec![
            History {
                created_by: "COPY . /".into(),
                ..Default::default()
            },
            History {
                created_by: "COPY app /app".into(),
                ..Default::default()
            },
        ],
        rootfs: strata_oci::config::RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        ..Default::default()
    };
    let config_bytes = config.to_json().unwrap();
    let config_digest = put(store, &config_bytes);
    let manifest = ImageManifest::oci(
        Descriptor::new(
            media_type::OCI_CONFIG,
            config_digest,
            config_bytes.len() as u64,
        ),
        layers,
    );
    let manifest_bytes = manifest.to_json().unwrap();
    let digest = put(store, &manifest_bytes);
    Descriptor::new(
        media_type::OCI_MANIFEST,
        digest,
        manifest_bytes.len() as u64,
    )
}

fn export(manifest: &Descriptor) -> Vec<ExportImage> {
    vec![ExportImage {
        manifest: manifest.clone(),
        names: vec![NAME.to_owned()],
    }]
}

fn blob_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn oci_layout_round_trip() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());

    let layout = TempDir::new("layout");
    write_oci_layout(layout.path(), &store, &export(&manifest)).unwrap();
    assert_eq!(blob_names(layout.path()).len(), 4);
    let index = OciDir::open(layout.path()).unwrap().read_index().unwrap();
    assert_eq!(index.manifests.len(), 1);
    assert_eq!(
        index.manifests[0].annotations["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(
        index.manifests[0].annotations["io.containerd.image.name"],
        NAME
    );

    // Writing again replaces the entry with the same tag, keeps other tags.
    let mut images = export(&manifest);
    images[0].names.push("strata.test/app:v2".into());
    write_oci_layout(layout.path(), &store, &images).unwrap();
    let index = OciDir::open(layout.path()).unwrap().read_index().unwrap();
    assert_eq!(index.manifests.len(), 2);

    let sink_dir = TempDir::new("sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let loaded = read_oci_layout(layout.path(), &mut sink).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].names, [NAME]);
    assert_eq!(loaded[0].manifest.digest, manifest.digest);
    assert_eq!(blob_names(sink_dir.path()), blob_names(layout.path()));
}

#[test]
fn archives_round_trip_and_are_deterministic() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::zstd());
    for docker in [false, true] {
        let write = || {
            if docker {
                write_docker_archive(Vec::new(), &store, &export(&manifest)).unwrap()
            } else {
                write_oci_archive(Vec::new(), &store, &export(&manifest)).unwrap()
            }
        };
        let bytes = write();
        assert_eq!(write(), bytes, "archive bytes are deterministic");
        let names = tar_names(&bytes);
        assert_eq!(names[0], "oci-layout");
        assert_eq!(names.contains(&"manifest.json".to_owned()), docker);

        let sink_dir = TempDir::new("sink");
        let mut sink = OciDir::create(sink_dir.path()).unwrap();
        let loaded = read_archive(&bytes[..], &mut sink).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].names, [NAME]);
        assert_eq!(loaded[0].manifest.digest, manifest.digest);
        assert_eq!(blob_names(sink_dir.path()), blob_names(store_dir.path()));

        // A compressed archive stream (`docker save | gzip`) loads the same.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        let sink_dir = TempDir::new("sink-gz");
        let mut sink = OciDir::create(sink_dir.path()).unwrap();
        assert_eq!(
            read_archive(&gz[..], &mut sink).unwrap()[0].manifest.digest,
            manifest.digest
        );
    }
}

/// Blobs written early — copied (`add_blob`, any output) or streamed with the header written
/// afterwards (`begin_blob`, a seekable output) — give one archive, byte for byte, with each
/// blob once and valid tar headers.
#[test]
fn streamed_and_added_blobs_give_the_same_archive() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let mut bytes = Vec::new();
    store
        .open_blob(&manifest.digest)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let layers = ImageManifest::from_json(&bytes).unwrap().layers;
    for docker in [false, true] {
        let finish = |archive: ArchiveWriter<_>| {
            if docker {
                archive.finish_docker(&store, &export(&manifest)).unwrap()
            } else {
                archive.finish_oci(&store, &export(&manifest)).unwrap()
            }
        };
        let mut added = ArchiveWriter::new(io::Cursor::new(Vec::new())).unwrap();
        for layer in &layers {
            added.add_blob(&store, layer).unwrap();
        }
        let added = finish(added).into_inner();
        let mut streamed = ArchiveWriter::new(io::Cursor::new(Vec::new())).unwrap();
        for layer in &layers {
            let mut blob = streamed.begin_blob().unwrap();
            io::copy(&mut store.open_blob(&layer.digest).unwrap(), &mut blob).unwrap();
            assert_eq!(blob.finish().unwrap(), (layer.digest, layer.size));
        }
        let streamed = finish(streamed).into_inner();
        assert_eq!(streamed, added, "docker {docker}");

        // The layers come right after the layout header, each once, with their sizes.
        let names = tar_names(&streamed);
        let layer_names: Vec<String> = layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
            .collect();
        assert_eq!(names[..3], ["oci-layout", "blobs/", "blobs/sha256/"]);
        assert_eq!(names[3..5], layer_names[..]);
        for name in &layer_names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
        let mut archive = tar::Archive::new(&streamed[..]);
        for (entry, layer) in archive.entries().unwrap().skip(3).zip(&layers) {
            assert_eq!(entry.unwrap().header().size().unwrap(), layer.size);
        }
        let sink_dir = TempDir::new("sink-streamed");
        let mut sink = OciDir::create(sink_dir.path()).unwrap();
        let loaded = read_archive(&streamed[..], &mut sink).unwrap();
        assert_eq!(loaded[0].manifest.digest, manifest.digest);
        assert_eq!(blob_names(sink_dir.path()), blob_names(store_dir.path()));
    }
}

#[test]
fn docker_archive_rejects_an_index() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let mut entry = manifest.clone();
    entry.platform = Some(Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    });
    let index = ImageIndex::oci(vec![entry]).to_json().unwrap();
    let digest = put(&mut store, &index);
    let images = vec![ExportImage {
        manifest: Descriptor::new(media_type::OCI_INDEX, digest, index.len() as u64),
        names: vec![NAME.into()],
    }];
    let err = write_docker_archive(Vec::new(), &store, &images).unwrap_err();
    assert!(
        matches!(err, ArchiveError::IndexInDockerArchive { .. }),
        "{err}"
    );
    // An OCI layout takes it, and reading verifies the nested manifest too.
    let bytes = write_oci_archive(Vec::new(), &store, &images).unwrap();
    let sink_dir = TempDir::new("sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let loaded = read_archive(&bytes[..], &mut sink).unwrap();
    assert_eq!(loaded[0].manifest.digest, digest);
    assert_eq!(blob_names(sink_dir.path()).len(), 5);
}

/// The pre-OCI `docker save` format: `<id>.json`, `<id>/layer.tar`, symlinked duplicates,
/// `manifest.json` last, no index.json.
#[test]
fn legacy_docker_archive_is_read_and_verified() {
    let layer_dir = TempDir::new("legacy-l");
    write_file(&layer_dir.join("hello.txt"), b"hello\n", 0o644);
    let mut layer = Vec::new();
    let options = WriteOptions {
        compression: Compression::None,
        ..WriteOptions::default()
    };
    let info = write_layer(layer_dir.path(), &options, &mut layer).unwrap();
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: strata_oci::config::RootFs {
            kind: "layers".into(),
            diff_ids: vec![info.diff_id, info.diff_id],
        },
        ..Default::default()
    };
    let config_bytes = config.to_json().unwrap();
    let config_name = format!("{}.json", Digest::of(&config_bytes).hex());
    let manifest_json = format!(
        r#"[{{"Config":"{config_name}","RepoTags":["legacy:latest"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}}]"#
    );

    let build = |layer_bytes: &[u8], config_bytes: &[u8]| {
        fn add(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        }
        let mut builder = tar::Builder::new(Vec::new());
        add(&mut builder, "aaa/layer.tar", layer_bytes);
        add(&mut builder, "aaa/VERSION", b"1.0");
        add(&mut builder, &config_name, config_bytes);
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        add(&mut builder, "manifest.json", manifest_json.as_bytes());
        add(
            &mut builder,
            "repositories",
            br#"{"legacy":{"latest":"bbb"}}"#,
        );
        builder.into_inner().unwrap()
    };

    let bytes = build(&layer, &config_bytes);
    let sink_dir = TempDir::new("legacy-sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let loaded = read_archive(&bytes[..], &mut sink).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, ["legacy:latest"]);
    assert_eq!(loaded[0].manifest.media_type, media_type::DOCKER_MANIFEST);
    let manifest_bytes = fs::read(sink.blob_file(&loaded[0].manifest.digest)).unwrap();
    let manifest = ImageManifest::from_json(&manifest_bytes).unwrap();
    assert_eq!(manifest.layers.len(), 2);
    assert_eq!(manifest.layers[0].media_type, media_type::DOCKER_LAYER_TAR);
    assert_eq!(manifest.layers[0].digest, info.diff_id);

    // A layer that does not match the config's diff ID is refused.
    let mut other = Vec::new();
    write_file(&layer_dir.join("hello.txt"), b"changed\n", 0o644);
    write_layer(layer_dir.path(), &options, &mut other).unwrap();
    let bytes = build(&other, &config_bytes);
    let sink_dir = TempDir::new("legacy-sink-2");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let err = read_archive(&bytes[..], &mut sink).unwrap_err();
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains("aaa/layer.tar") || err.to_string().contains("bbb/layer.tar"));
}

#[test]
fn reading_verifies_every_blob() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let layout = TempDir::new("layout-corrupt");
    write_oci_layout(layout.path(), &store, &export(&manifest)).unwrap();
    let read = |dir: &Path| {
        let sink_dir = TempDir::new("sink");
        let mut sink = OciDir::create(sink_dir.path()).unwrap();
        read_oci_layout(dir, &mut sink)
    };
    assert!(read(layout.path()).is_ok());

    let parsed = ImageManifest::from_json(
        &fs::read(layout.join(format!("blobs/sha256/{}", manifest.digest.hex()))).unwrap(),
    )
    .unwrap();
    let layer_file = layout.join(format!("blobs/sha256/{}", parsed.layers[1].digest.hex()));
    let original = fs::read(&layer_file).unwrap();

    // A flipped byte.
    let mut corrupt = original.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    fs::write(&layer_file, &corrupt).unwrap();
    let err = read(layout.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");

    // A missing blob.
    fs::remove_file(&layer_file).unwrap();
    let err = read(layout.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err}");
    fs::write(&layer_file, &original).unwrap();
    assert!(read(layout.path()).is_ok());

    // A wrong size in the index.
    let dir = OciDir::open(layout.path()).unwrap();
    let mut index = dir.read_index().unwrap();
    index.manifests[0].size += 1;
    dir.write_index(&index).unwrap();
    let err = read(layout.path()).unwrap_err();
    assert!(matches!(err, ArchiveError::SizeMismatch { .. }), "{err}");

    // A tar whose blob name does not match its content.
    let mut bytes = write_oci_archive(Vec::new(), &store, &export(&manifest)).unwrap();
    // The config is stored uncompressed: flip a byte of it.
    let config_hex = parsed.config.digest.hex();
    let position = bytes
        .windows(5)
        .position(|w| w == b"amd64")
        .expect("config is stored uncompressed");
    bytes[position] = b'A';
    let sink_dir = TempDir::new("sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let err = read_archive(&bytes[..], &mut sink).unwrap_err();
    match err {
        ArchiveError::DigestMismatch { path, .. } => assert!(path.contains(&config_hex), "{path}"),
        other => panic!("unexpected {other}"),
    }
    // Nothing half-written was left in the sink.
    assert!(!sink.blob_file(&parsed.config.digest).exists());
}

#[test]
fn wrong_diff_id_in_config_is_detected() {
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let mut parsed =
        ImageManifest::from_json(&fs::read(store.blob_file(&manifest.digest)).unwrap()).unwrap();
    let mut config =
        ImageConfig::from_json(&fs::read(store.blob_file(&parsed.config.digest)).unwrap()).unwrap();
    config.rootfs.diff_ids.swap(0, 1);
    let config_bytes = config.to_json().unwrap();
    parsed.config = Descriptor::new(
        media_type::OCI_CONFIG,
        put(&mut store, &config_bytes),
        config_bytes.len() as u64,
    );
    let manifest_bytes = parsed.to_json().unwrap();
    let bad = Descriptor::new(
        media_type::OCI_MANIFEST,
        put(&mut store, &manifest_bytes),
        manifest_bytes.len() as u64,
    );
    let bytes = write_oci_archive(Vec::new(), &store, &export(&bad)).unwrap();
    let sink_dir = TempDir::new("sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let err = read_archive(&bytes[..], &mut sink).unwrap_err();
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");
}

// ---- Real consumers -------------------------------------------------------------------

fn run(command: &mut Command) -> String {
    let output = command.output().expect("tool runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad json from tool: {e}: {text}"))
}

fn check_inspect(value: &serde_json::Value, layers: usize) {
    assert_eq!(value["Architecture"], "amd64", "{value}");
    assert_eq!(value["Os"], "linux", "{value}");
    assert_eq!(value["Layers"].as_array().unwrap().len(), layers, "{value}");
    assert_eq!(value["Labels"]["org.example.kind"], "test", "{value}");
    let env: Vec<&str> = value["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"GREETING=hi"), "{value}");
}

#[test]
fn skopeo_reads_what_we_write() {
    if !has_tool("skopeo") {
        eprintln!("skipping: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let work = TempDir::new("skopeo");

    // OCI layout directory.
    let layout = work.join("layout");
    write_oci_layout(&layout, &store, &export(&manifest)).unwrap();
    let reference = format!("oci:{}:v1", layout.display());
    let inspect = json(&run(Command::new("skopeo").args(["inspect", &reference])));
    check_inspect(&inspect, 2);
    assert_eq!(inspect["Digest"], manifest.digest.to_string());
    let config = json(&run(
        Command::new("skopeo").args(["inspect", "--config", &reference])
    ));
    assert_eq!(config["config"]["Entrypoint"][0], "/bin/hello");
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &reference]));
    assert_eq!(Digest::of(raw.as_bytes()), manifest.digest);

    // OCI archive and docker archive files.
    let oci_tar = work.join("image.oci.tar");
    write_oci_archive(
        fs::File::create(&oci_tar).unwrap(),
        &store,
        &export(&manifest),
    )
    .unwrap();
    let inspect =
        json(&run(Command::new("skopeo").args([
            "inspect",
            &format!("oci-archive:{}:v1", oci_tar.display()),
        ])));
    check_inspect(&inspect, 2);

    let docker_tar = work.join("image.docker.tar");
    write_docker_archive(
        fs::File::create(&docker_tar).unwrap(),
        &store,
        &export(&manifest),
    )
    .unwrap();
    let reference = format!("docker-archive:{}", docker_tar.display());
    let inspect = json(&run(Command::new("skopeo").args(["inspect", &reference])));
    check_inspect(&inspect, 2);

    // A full copy reads and verifies every layer.
    let copied = work.join("copied");
    run(Command::new("skopeo").args([
        "copy",
        "--insecure-policy",
        &reference,
        &format!("oci:{}:copied", copied.display()),
    ]));
    let sink_dir = TempDir::new("sink");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let loaded = read_oci_layout(&copied, &mut sink).unwrap();
    assert_eq!(loaded.len(), 1);

    // And we read what skopeo writes (its docker archive).
    let theirs = work.join("theirs.tar");
    run(Command::new("skopeo").args([
        "copy",
        "--insecure-policy",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker-archive:{}:skopeo/made:1", theirs.display()),
    ]));
    let sink_dir = TempDir::new("sink-theirs");
    let mut sink = OciDir::create(sink_dir.path()).unwrap();
    let loaded = read_archive(fs::File::open(&theirs).unwrap(), &mut sink).unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(
        loaded[0].names.iter().any(|n| n.contains("skopeo/made")),
        "{loaded:?}"
    );
}

#[test]
fn umoci_unpacks_what_we_write() {
    if !has_tool("umoci") {
        eprintln!("skipping: umoci is not installed (apt-get install umoci)");
        return;
    }
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let work = TempDir::new("umoci");
    let layout = work.join("layout");
    write_oci_layout(&layout, &store, &export(&manifest)).unwrap();
    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read(rootfs.join("bin/hello")).unwrap(),
        b"#!/bin/sh\necho hello from strata\n"
    );
    assert_eq!(
        fs::read(rootfs.join("app/nested/deep.txt")).unwrap(),
        b"deep\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(rootfs.join("bin/hello"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    let runtime = json(&fs::read_to_string(bundle.join("config.json")).unwrap());
    let args: Vec<&str> = runtime["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(args, ["/bin/hello", "--loud"]);
    assert_eq!(runtime["process"]["cwd"], "/app");
    assert!(runtime["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "GREETING=hi"));

    // zstd layers too, if this umoci knows them.
    let zstd_store_dir = TempDir::new("store-zstd");
    let mut zstd_store = OciDir::create(zstd_store_dir.path()).unwrap();
    let zstd_manifest = build_image(&mut zstd_store, Compression::zstd());
    let zstd_layout = work.join("layout-zstd");
    write_oci_layout(&zstd_layout, &zstd_store, &export(&zstd_manifest)).unwrap();
    let output = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", zstd_layout.display()))
        .arg(work.join("bundle-zstd"))
        .output()
        .unwrap();
    if output.status.success() {
        assert_eq!(
            fs::read(work.join("bundle-zstd/rootfs/app/data.txt")).unwrap(),
            b"payload\n"
        );
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("zstd")
                || stderr.contains("media type")
                || stderr.contains("mediatype"),
            "umoci failed on zstd for another reason: {stderr}"
        );
        eprintln!("note: this umoci does not support zstd layers: {stderr}");
    }
}

/// `podman load` (containers/image's docker-archive reader, as `docker load` reads the same
/// `manifest.json`) accepts our docker archive; storage goes to a temp root.
#[test]
fn podman_loads_our_docker_archive() {
    if !has_tool("podman") {
        eprintln!("skipping: podman is not installed (apt-get install podman)");
        return;
    }
    let store_dir = TempDir::new("store");
    let mut store = OciDir::create(store_dir.path()).unwrap();
    let manifest = build_image(&mut store, Compression::gzip());
    let work = TempDir::new("podman");
    let archive = work.join("image.tar");
    write_docker_archive(
        fs::File::create(&archive).unwrap(),
        &store,
        &export(&manifest),
    )
    .unwrap();
    let podman = || {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(work.join("root"))
            .arg("--runroot")
            .arg(work.join("runroot"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .env("TMPDIR", work.path());
        command
    };
    let loaded = run(podman().args(["load", "-i"]).arg(&archive));
    assert!(loaded.contains(NAME), "{loaded}");
    let inspect = json(&run(podman().args(["image", "inspect", NAME])));
    let image = &inspect[0];
    assert_eq!(image["Architecture"], "amd64", "{image}");
    assert_eq!(image["Config"]["WorkingDir"], "/app", "{image}");
    assert_eq!(image["Config"]["Entrypoint"][0], "/bin/hello", "{image}");
    assert_eq!(
        image["RootFS"]["Layers"].as_array().unwrap().len(),
        2,
        "{image}"
    );
    // The layers really unpacked: read a file back out of the image.
    let mounted = run(podman().args(["image", "mount", NAME]));
    let rootfs = std::path::PathBuf::from(mounted.trim());
    assert_eq!(fs::read(rootfs.join("app/data.txt")).unwrap(), b"payload\n");
    let _ = podman().args(["image", "unmount", NAME]).output();
    let _ = podman().args(["rmi", "-a", "-f"]).output();
}
