//! Images in the store, end to end with real tools (as root): archives written by skopeo and
//! by our own writer are loaded, unpacked into snapshots, and a snapshot chain is exported
//! and read back by `skopeo inspect` and `umoci unpack` straight from the store's OCI layout.

mod common;

use std::error::Error;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Barrier};

use common::busybox::{self, busybox_layout};
use common::{arg, run, TempDir};
use strata_cache::{SnapshotId, Store};
use strata_frontend::lower::config as lower;
use strata_oci::archive::{self, OciDir};
use strata_oci::manifest::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use strata_oci::{media_type, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform};
use strata_solver::op::{Op, Platform as OpPlatform, SourceOp, VertexMeta};
use strata_solver::Graph;
use strata_worker::image::{
    export_image, from_oci_config, host_platform, load_archive, load_layout, read_image,
    unpack_image, ExportOptions, LoadError, ReadError, UnpackError,
};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// An error with its causes, `a: b: c`.
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The busybox layout under `tmp/src`, and a store under `tmp/root`.
fn setup(tmp: &TempDir) -> (Store, std::path::PathBuf, Descriptor) {
    let (layout, manifest) = busybox_layout(&tmp.path().join("src"), BUSYBOX).unwrap();
    let store = Store::open(tmp.path().join("root")).unwrap();
    (store, layout, manifest)
}

fn load_busybox(store: &Store, layout: &Path, manifest: &Descriptor) {
    let bytes = busybox::docker_archive(layout, manifest, &["busybox:latest"]).unwrap();
    load_archive(store, bytes.as_slice()).unwrap();
}

/// Checks that `dir` holds the busybox root filesystem.
fn assert_busybox_rootfs(dir: &Path) {
    let binary = fs::read(dir.join("bin/busybox")).unwrap();
    assert_eq!(binary, fs::read(busybox::busybox_binary()).unwrap());
    assert_eq!(
        fs::read_link(dir.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let tmp_mode = fs::symlink_metadata(dir.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    assert!(fs::read_to_string(dir.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
}

#[test]
fn loads_a_skopeo_docker_archive_and_unpacks_it_once() {
    let tmp = TempDir::new("image-skopeo");
    let (store, layout, _) = setup(&tmp);
    let tar = tmp.path().join("busybox.tar");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:latest", arg(&layout)),
            &format!("docker-archive:{}:busybox:latest", arg(&tar)),
        ],
    );
    let loaded = load_archive(&store, File::open(&tar).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].names, [BUSYBOX]);
    let record = store.images().get(BUSYBOX).unwrap().expect("tagged");
    assert_eq!(record.target.manifest, loaded[0].manifest.digest);
    assert_eq!(record.target.config, loaded[0].config);

    let lease = store.lease();
    let first = unpack_image(&store, "busybox", &host_platform(), &lease).unwrap();
    assert_eq!((first.unpacked, first.reused), (1, 0));
    let top = first.top.clone().expect("one layer");
    let lowerdirs = store.snapshots().lowerdirs(&top).unwrap();
    assert_eq!(lowerdirs.len(), 1);
    assert_busybox_rootfs(&lowerdirs[0]);
    let record = store.snapshots().get(&top).unwrap().unwrap();
    assert_eq!(
        record.diff_id,
        Some(first.image.config.rootfs.diff_ids[0]),
        "the diff id is recorded"
    );

    // By id this time: the same snapshot comes back, nothing is unpacked again.
    let id = first.image.config_digest.hex()[..12].to_owned();
    let again = unpack_image(&store, &id, &host_platform(), &lease).unwrap();
    assert_eq!((again.unpacked, again.reused), (0, 1));
    assert_eq!(again.top, Some(top));
}

#[test]
fn loads_our_own_docker_and_oci_archives_and_layouts() {
    let tmp = TempDir::new("image-own");
    let (store, layout, manifest) = setup(&tmp);

    let docker = busybox::docker_archive(&layout, &manifest, &["busybox:latest", "bb:1"]).unwrap();
    let loaded = load_archive(&store, docker.as_slice()).unwrap();
    assert_eq!(loaded.len(), 1);
    let mut names = loaded[0].names.clone();
    names.sort();
    assert_eq!(names, ["docker.io/library/bb:1", BUSYBOX]);
    let config = loaded[0].config.expect("single image");

    let image = archive::ExportImage {
        manifest: manifest.clone(),
        names: vec!["localhost:5000/tools/busybox:oci".into()],
    };
    let oci =
        archive::write_oci_archive(Vec::new(), &OciDir::open(&layout).unwrap(), &[image]).unwrap();
    let loaded = load_archive(&store, oci.as_slice()).unwrap();
    assert_eq!(loaded[0].names, ["localhost:5000/tools/busybox:oci"]);
    assert_eq!(loaded[0].manifest.digest, manifest.digest);
    assert_eq!(loaded[0].config, Some(config));

    let loaded = load_layout(&store, &layout).unwrap();
    assert_eq!(loaded[0].names, [BUSYBOX]);
    assert_eq!(loaded[0].config, Some(config));

    // Every name reads back as the same image.
    for name in ["bb:1", "busybox", "localhost:5000/tools/busybox:oci"] {
        let image = strata_worker::image::find_image(&store, name).unwrap();
        let stored = read_image(
            &store,
            &strata_worker::image::details::target_descriptor(&image.target),
            &host_platform(),
        )
        .unwrap();
        assert_eq!(stored.config_digest, config, "{name}");
    }
}

#[test]
fn a_blob_that_does_not_match_its_digest_loads_nothing() {
    let tmp = TempDir::new("image-hostile");
    let (store, layout, manifest) = setup(&tmp);
    let bytes = fs::read(layout.join(archive::blob_path(&manifest.digest))).unwrap();
    let m = ImageManifest::from_json(&bytes).unwrap();
    let layer = layout.join(archive::blob_path(&m.layers[0].digest));
    let mut content = fs::read(&layer).unwrap();
    let last = content.len() - 1;
    content[last] ^= 0xff;
    fs::write(&layer, &content).unwrap();

    let err = load_layout(&store, &layout).unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, LoadError::Archive { .. }), "{text}");
    assert!(text.contains(&m.layers[0].digest.to_string()), "{text}");
    assert!(text.contains("has digest"), "{text}");

    let tar = tmp.path().join("hostile.tar");
    run("tar", &["-C", arg(&layout), "-cf", arg(&tar), "."]);
    let err = load_archive(&store, File::open(&tar).unwrap()).unwrap_err();
    assert!(chain(&err).contains("has digest"), "{}", chain(&err));
    assert!(store.images().list().unwrap().is_empty(), "nothing tagged");
}

#[test]
fn a_layer_that_is_not_its_diff_id_loads_nothing() {
    let tmp = TempDir::new("image-diffid");
    let (store, layout, manifest) = setup(&tmp);
    let mut dir = OciDir::open(&layout).unwrap();
    let bytes = fs::read(layout.join(archive::blob_path(&manifest.digest))).unwrap();
    let mut m = ImageManifest::from_json(&bytes).unwrap();
    let config_bytes = fs::read(layout.join(archive::blob_path(&m.config.digest))).unwrap();
    let mut config = ImageConfig::from_json(&config_bytes).unwrap();
    config.rootfs.diff_ids[0] = strata_oci::Digest::of(b"not this layer");
    m.config = put(&mut dir, media_type::OCI_CONFIG, &config.to_json().unwrap());
    let descriptor = put(&mut dir, media_type::OCI_MANIFEST, &m.to_json().unwrap());
    let mut entry = descriptor;
    entry.annotations.insert(
        ANNOTATION_IMAGE_NAME.into(),
        "docker.io/library/evil:1".into(),
    );
    dir.write_index(&ImageIndex::oci(vec![entry])).unwrap();

    let err = load_layout(&store, &layout).unwrap_err();
    assert!(
        chain(&err).contains("uncompressed digest"),
        "{}",
        chain(&err)
    );
    assert!(store.images().list().unwrap().is_empty(), "nothing tagged");
}

fn put(dir: &mut OciDir, media_type: &str, bytes: &[u8]) -> Descriptor {
    use std::io::Write;
    use strata_oci::archive::BlobSink;
    let descriptor = Descriptor::for_bytes(media_type, bytes);
    let mut pending = dir.begin_blob().unwrap();
    pending.write_all(bytes).unwrap();
    dir.commit_blob(pending, &descriptor.digest, descriptor.size)
        .unwrap();
    descriptor
}

#[test]
fn an_index_is_unpacked_for_the_asked_platform_only() {
    let tmp = TempDir::new("image-index");
    let (store, layout, manifest) = setup(&tmp);
    let mut dir = OciDir::open(&layout).unwrap();
    let with_platform = |arch: &str| {
        let mut d = manifest.clone();
        d.platform = Some(Platform {
            os: "linux".into(),
            architecture: arch.into(),
            ..Platform::default()
        });
        d
    };
    let index = ImageIndex::oci(vec![
        with_platform("s390x"),
        with_platform(busybox::host_arch()),
    ]);
    let mut entry = put(&mut dir, media_type::OCI_INDEX, &index.to_json().unwrap());
    entry.annotations.insert(
        ANNOTATION_IMAGE_NAME.into(),
        "docker.io/library/multi:1".into(),
    );
    entry
        .annotations
        .insert(ANNOTATION_REF_NAME.into(), "1".into());
    dir.write_index(&ImageIndex::oci(vec![entry])).unwrap();

    let loaded = load_layout(&store, &layout).unwrap();
    assert_eq!(loaded[0].config, None, "an index has no single config");
    let lease = store.lease();
    let unpacked = unpack_image(&store, "multi:1", &host_platform(), &lease).unwrap();
    assert_eq!(unpacked.image.manifest_descriptor.digest, manifest.digest);
    let riscv = Platform {
        os: "linux".into(),
        architecture: "riscv64".into(),
        ..Platform::default()
    };
    let err = unpack_image(&store, "multi:1", &riscv, &lease).unwrap_err();
    assert!(
        matches!(err, UnpackError::Read(ReadError::NoPlatform { .. })),
        "{}",
        chain(&err)
    );
    assert!(err.to_string().contains("linux/s390x"), "{err}");
}

#[test]
fn concurrent_unpacks_of_one_image_both_get_a_whole_chain() {
    let tmp = TempDir::new("image-concurrent");
    let (store, layout, manifest) = setup(&tmp);
    load_busybox(&store, &layout, &manifest);
    let root = tmp.path().join("root");
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let root = root.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                // A separate store handle: what a second process has.
                let store = Store::open(&root).unwrap();
                let lease = store.lease();
                barrier.wait();
                let unpacked = unpack_image(&store, BUSYBOX, &host_platform(), &lease).unwrap();
                let top = unpacked.top.unwrap();
                let dirs = store.snapshots().lowerdirs(&top).unwrap();
                assert_busybox_rootfs(&dirs[0]);
                top
            })
        })
        .collect();
    let tops: Vec<SnapshotId> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let lease = store.lease();
    let after = unpack_image(&store, BUSYBOX, &host_platform(), &lease).unwrap();
    assert_eq!(after.unpacked, 0, "a later unpack reuses one of them");
    assert!(tops.contains(after.top.as_ref().unwrap()));
}

/// Makes an overlayfs whiteout (a 0:0 character device) at `path`.
fn overlay_whiteout(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

#[test]
fn exports_a_chain_with_an_added_and_a_deleted_file() {
    let tmp = TempDir::new("image-export");
    let (store, layout, manifest) = setup(&tmp);
    load_busybox(&store, &layout, &manifest);
    let lease = store.lease();
    let base = unpack_image(&store, "busybox", &host_platform(), &lease).unwrap();
    let base_top = base.top.clone().unwrap();
    let snapshots = store.snapshots();

    // COPY hello /etc/hello, and a deletion of /bin/ls (as a RUN's upper dir shows it).
    let prepared = snapshots.prepare(Some(&base_top), &lease).unwrap();
    fs::create_dir(prepared.diff().join("etc")).unwrap();
    fs::write(prepared.diff().join("etc/hello"), "hello\n").unwrap();
    fs::create_dir(prepared.diff().join("bin")).unwrap();
    overlay_whiteout(&prepared.diff().join("bin/ls"));
    let changed = snapshots.commit(prepared, None).unwrap().id;
    // RUN true: no change.
    let prepared = snapshots.prepare(Some(&changed), &lease).unwrap();
    let unchanged = snapshots.commit(prepared, None).unwrap().id;

    let mut graph = Graph::new();
    let vertex = |graph: &mut Graph, name: &str| {
        let op = Op::Source(SourceOp::Image {
            reference: name.into(),
            platform: OpPlatform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: String::new(),
            },
        });
        graph.add(op, Vec::new(), VertexMeta::default()).unwrap()
    };
    let copy_vertex = vertex(&mut graph, "copy");
    let run_vertex = vertex(&mut graph, "run");
    let mut config = from_oci_config(&base.image.config);
    for (created_by, layer) in [
        ("COPY hello /etc/hello # buildkit", Some(copy_vertex)),
        ("RUN /bin/sh -c true # buildkit", Some(run_vertex)),
        ("CMD [\"cat\" \"/etc/hello\"]", None),
    ] {
        config.history.push(lower::History {
            created_by: created_by.into(),
            comment: lower::HISTORY_COMMENT.into(),
            empty_layer: layer.is_none(),
            layer,
            ..lower::History::default()
        });
    }
    config.config.cmd = vec!["cat".into(), "/etc/hello".into()];
    let layer_of = |v| {
        if v == copy_vertex {
            Some(changed.clone())
        } else if v == run_vertex {
            Some(unchanged.clone())
        } else {
            None
        }
    };
    let options = ExportOptions {
        created: Some("2024-02-02T00:00:00Z".into()),
        ..ExportOptions::default()
    };
    let names = ["strata-test/app:1".to_owned()];
    let exported = export_image(
        &store,
        Some(&unchanged),
        &config,
        layer_of,
        &names,
        &options,
    )
    .unwrap();
    assert_eq!(exported.names, ["docker.io/strata-test/app:1"]);
    assert_eq!(exported.layers.len(), 2);
    assert_eq!(exported.written, 1);
    let base_layer = base.image.layers().next().unwrap();
    assert_eq!(
        exported.layers[0].digest, base_layer.digest,
        "base layer reused"
    );
    assert_eq!(exported.layers[1].media_type, media_type::OCI_LAYER_TAR);

    let image = read_image(
        &store,
        &Descriptor::new(media_type::OCI_MANIFEST, exported.manifest, exported.size),
        &host_platform(),
    )
    .unwrap();
    assert_eq!(image.config_digest, exported.config);
    let history: Vec<(&str, bool)> = image
        .config
        .history
        .iter()
        .map(|h| (h.created_by.as_str(), h.empty_layer))
        .collect();
    assert_eq!(
        history,
        [
            ("busybox-static root filesystem", false),
            ("COPY hello /etc/hello # buildkit", false),
            ("RUN /bin/sh -c true # buildkit", true),
            ("CMD [\"cat\" \"/etc/hello\"]", true),
        ]
    );
    assert_eq!(image.config.rootfs.diff_ids[1], exported.layers[1].digest);
    assert_eq!(
        image.config.created.as_deref(),
        Some("2024-02-02T00:00:00Z")
    );
    assert_eq!(
        image.config.history[1].created.as_deref(),
        Some("2024-02-02T00:00:00Z")
    );

    // Deterministic, and nothing is written twice.
    let again = export_image(
        &store,
        Some(&unchanged),
        &config,
        layer_of,
        &names,
        &options,
    )
    .unwrap();
    assert_eq!(again.manifest, exported.manifest);
    assert_eq!(again.written, 0);

    // Real consumers read the store's OCI layout.
    let content = store.layout().content_dir();
    let inspect = run("skopeo", &["inspect", &format!("oci:{}:1", arg(&content))]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["Digest"], exported.manifest.to_string());
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    let bundle = tmp.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:1", arg(&content)),
            arg(&bundle),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/hello")).unwrap(),
        "hello\n"
    );
    assert!(
        fs::symlink_metadata(rootfs.join("bin/ls")).is_err(),
        "deleted"
    );
    assert_busybox_rootfs(&rootfs);
}

#[test]
fn an_empty_filesystem_exports_an_image_without_layers() {
    let tmp = TempDir::new("image-scratch");
    let store = Store::open(tmp.path().join("root")).unwrap();
    let config = lower::Image {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..lower::Image::default()
    };
    let exported = export_image(
        &store,
        None,
        &config,
        |_| None,
        &["scratch-test".to_owned()],
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(exported.layers.is_empty());
    let record = store
        .images()
        .get("docker.io/library/scratch-test:latest")
        .unwrap()
        .unwrap();
    assert_eq!(record.target.config, Some(exported.config));
    let lease = store.lease();
    let unpacked = unpack_image(&store, "scratch-test", &host_platform(), &lease).unwrap();
    assert_eq!(unpacked.top, None);
}
