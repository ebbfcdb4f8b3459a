//! Pull and push against real registries (Debian's `docker-registry` on a loopback port:
//! open, htpasswd basic auth, and behind an in-test Bearer token server), checked with
//! `skopeo`. See `common/registry.rs` for the registries.

mod common;

#[path = "common/registry.rs"]
mod registry;

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use common::busybox::busybox_layout;
use common::{arg, run, TempDir};
use registry::{docker_config, Registry, TokenProxy};
use strata_cache::Store;
use strata_oci::registry::{Client, ClientOptions, Reference, UploadMode};
use strata_oci::{media_type, Compression, Descriptor, ImageIndex, Platform};
use strata_worker::image::save::LayerCompression;
use strata_worker::image::{
    find_image, host_platform, load_layout, pull_and_unpack, pull_image, push_image, read_image,
    target_descriptor, unpack_image, PushOptions,
};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

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

fn ready() -> bool {
    let ok = registry::available() && Path::new("/bin/busybox").exists();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must have busybox-static"
    );
    ok
}

/// A store with busybox loaded from the test layout; returns it and the layout.
fn store_with_busybox(tmp: &TempDir, name: &str) -> (Store, std::path::PathBuf, Descriptor) {
    let (layout, manifest) = busybox_layout(&tmp.path().join("src"), BUSYBOX).unwrap();
    let store = Store::open(tmp.path().join(name)).unwrap();
    load_layout(&store, &layout).unwrap();
    (store, layout, manifest)
}

fn client(options: ClientOptions) -> Arc<Client> {
    Arc::new(Client::new(options).unwrap())
}

/// A client that reads no credentials (an empty Docker config).
fn anonymous(tmp: &TempDir) -> ClientOptions {
    ClientOptions {
        docker_config: Some(tmp.path().join("no-docker-config.json")),
        ..ClientOptions::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn skopeo_digest(image: &str, extra: &[&str]) -> String {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(image);
    let out = run("skopeo", &args);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    value["Digest"].as_str().unwrap().to_owned()
}

#[test]
fn push_then_pull_through_an_open_registry() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-open");
    let (store, _, manifest) = store_with_busybox(&tmp, "root");
    let registry = Registry::open();
    let rt = runtime();
    let client = client(anonymous(&tmp));
    let destination = format!("{}/strata/busybox:1", registry.addr);

    let pushed = rt
        .block_on(push_image(
            &store,
            &client,
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap();
    // A gzip layer is pushed as stored: the manifest keeps its digest.
    assert_eq!(pushed.manifest.digest, manifest.digest);
    assert_eq!(
        (pushed.uploaded, pushed.present, pushed.compressed),
        (2, 0, 0)
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{destination}"), &[]),
        pushed.manifest.digest.to_string()
    );
    // skopeo reads every blob back (and verifies them) into an OCI layout.
    let copied = tmp.path().join("copied");
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{destination}"),
            &format!("oci:{}:x", arg(&copied)),
        ],
    );

    // A second push finds everything there.
    let again = rt
        .block_on(push_image(
            &store,
            &client,
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap();
    assert_eq!((again.uploaded, again.present), (0, 2));

    // Pull into a fresh store: tagged, readable, and it unpacks (diff ids verified).
    let other = Store::open(tmp.path().join("other")).unwrap();
    let pulled = rt
        .block_on(pull_image(&other, &client, &destination, &host_platform()))
        .unwrap();
    assert_eq!(pulled.manifest.digest, manifest.digest);
    assert_eq!((pulled.layers_fetched, pulled.layers_present), (1, 0));
    assert_eq!(pulled.top, None);
    let record = find_image(&other, &destination).unwrap();
    assert_eq!(record.target.manifest, manifest.digest);
    let lease = other.lease();
    let unpacked = unpack_image(&other, &destination, &host_platform(), &lease).unwrap();
    let top = unpacked.top.expect("a layer");
    let diff = other.snapshots().diff_dir(&top);
    assert!(diff.join("bin/busybox").is_file());

    // Pull and unpack while downloading, into a third store: the snapshot is there when
    // the pull returns, and unpacking the image afterwards reuses it.
    let third = Store::open(tmp.path().join("third")).unwrap();
    let pulled = rt
        .block_on(pull_and_unpack(
            &third,
            &client,
            &destination,
            &host_platform(),
        ))
        .unwrap();
    let top = pulled.top.expect("unpacked while pulled");
    assert!(third
        .snapshots()
        .diff_dir(&top)
        .join("bin/busybox")
        .is_file());
    let lease = third.lease();
    let again = unpack_image(&third, &destination, &host_platform(), &lease).unwrap();
    assert_eq!((again.unpacked, again.reused), (0, 1));
    assert_eq!(again.top, Some(top));

    // Pulling again downloads no layer.
    let twice = rt
        .block_on(pull_image(&other, &client, &destination, &host_platform()))
        .unwrap();
    assert_eq!((twice.layers_fetched, twice.layers_present), (0, 1));
    assert_eq!(twice.bytes_fetched, 0);
}

#[test]
fn compression_happens_once_and_chunked_uploads_work() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-zstd");
    let (store, _, manifest) = store_with_busybox(&tmp, "root");
    let registry = Registry::open();
    let rt = runtime();
    let chunked = client(ClientOptions {
        upload: UploadMode::Chunked(64 * 1024),
        ..anonymous(&tmp)
    });
    let zstd = PushOptions {
        compression: LayerCompression {
            compression: Compression::zstd(),
            force: true,
        },
        ..PushOptions::default()
    };
    let first = format!("{}/strata/zstd:1", registry.addr);
    let pushed = rt
        .block_on(push_image(&store, &chunked, "busybox", &first, &zstd))
        .unwrap();
    assert_eq!(pushed.compressed, 1);
    assert_ne!(pushed.manifest.digest, manifest.digest);
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{first}"),
        ],
    );
    assert!(out.contains(media_type::OCI_LAYER_ZSTD), "{out}");
    // skopeo fetches and verifies the chunk-uploaded zstd blob.
    run(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{first}"),
            &format!("oci:{}:x", arg(&tmp.path().join("zstd-copy"))),
        ],
    );
    // The compressed blob is remembered: another push (another repository) compresses
    // nothing, and mounts the blobs from the first repository instead of uploading them.
    let second = format!("{}/strata/other:2", registry.addr);
    let again = rt
        .block_on(push_image(&store, &chunked, "busybox", &second, &zstd))
        .unwrap();
    assert_eq!(again.compressed, 0);
    assert_eq!(again.manifest.digest, pushed.manifest.digest);
    assert_eq!((again.uploaded, again.mounted), (0, 2));
}

#[test]
fn basic_auth_registry_needs_the_docker_config() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-basic");
    let (store, _, manifest) = store_with_busybox(&tmp, "root");
    let registry = Registry::basic("strata", "s3cret");
    let rt = runtime();
    let destination = format!("{}/private/busybox:1", registry.addr);

    let err = rt
        .block_on(push_image(
            &store,
            &client(anonymous(&tmp)),
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("unauthorized"), "{text}");
    assert!(text.contains("no credentials"), "{text}");

    let wrong = docker_config(&tmp.path().join("wrong"), &registry.addr, "strata", "nope");
    let err = rt
        .block_on(push_image(
            &store,
            &client(ClientOptions {
                docker_config: Some(wrong),
                ..ClientOptions::default()
            }),
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap_err();
    assert!(chain(&err).contains("unauthorized"), "{}", chain(&err));

    let config = docker_config(
        &tmp.path().join("docker"),
        &registry.addr,
        "strata",
        "s3cret",
    );
    let authed = client(ClientOptions {
        docker_config: Some(config),
        ..ClientOptions::default()
    });
    let pushed = rt
        .block_on(push_image(
            &store,
            &authed,
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap();
    assert_eq!(pushed.manifest.digest, manifest.digest);
    assert_eq!(
        skopeo_digest(
            &format!("docker://{destination}"),
            &["--creds", "strata:s3cret"]
        ),
        manifest.digest.to_string()
    );
    let other = Store::open(tmp.path().join("other")).unwrap();
    let pulled = rt
        .block_on(pull_image(&other, &authed, &destination, &host_platform()))
        .unwrap();
    assert_eq!(pulled.manifest.digest, manifest.digest);
}

#[test]
fn bearer_token_flow_through_a_token_server() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-token");
    let (store, _, manifest) = store_with_busybox(&tmp, "root");
    let registry = Registry::open();
    let proxy = TokenProxy::start(&registry.addr, "robot", "t0ken-pass");
    let rt = runtime();
    let destination = format!("{}/team/busybox:1", proxy.addr);

    // Anonymous: the token server refuses, and the error says what to do.
    let err = rt
        .block_on(pull_image(
            &Store::open(tmp.path().join("anon")).unwrap(),
            &client(anonymous(&tmp)),
            &destination,
            &host_platform(),
        ))
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("refused anonymous access"), "{text}");

    let config = docker_config(
        &tmp.path().join("docker"),
        &proxy.addr,
        "robot",
        "t0ken-pass",
    );
    let authed = client(ClientOptions {
        docker_config: Some(config),
        ..ClientOptions::default()
    });
    let pushed = rt
        .block_on(push_image(
            &store,
            &authed,
            "busybox",
            &destination,
            &PushOptions::default(),
        ))
        .unwrap();
    assert_eq!(pushed.manifest.digest, manifest.digest);
    assert!(
        proxy
            .issued
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "repository:team/busybox:pull,push"),
        "{:?}",
        proxy.issued.lock().unwrap()
    );
    // What went through the proxy is in the registry behind it.
    assert_eq!(
        skopeo_digest(&format!("docker://{}/team/busybox:1", registry.addr), &[]),
        manifest.digest.to_string()
    );
    let other = Store::open(tmp.path().join("other")).unwrap();
    let pulled = rt
        .block_on(pull_image(&other, &authed, &destination, &host_platform()))
        .unwrap();
    assert_eq!(pulled.manifest.digest, manifest.digest);
    assert_eq!(pulled.layers_fetched, 1);
}

#[test]
fn skopeo_pushed_index_is_pulled_for_the_platform() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-index");
    let (layout, manifest) = busybox_layout(&tmp.path().join("src"), BUSYBOX).unwrap();
    let registry = Registry::open();
    let single = format!("{}/skopeo/busybox:single", registry.addr);
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}", arg(&layout)),
            &format!("docker://{single}"),
        ],
    );
    // An index with the busybox manifest for this platform and another entry for s390x
    // (pointing at the same manifest: only the platform field matters for selection).
    let rt = runtime();
    let client = client(anonymous(&tmp));
    let reference = Reference::parse(&format!("{}/skopeo/busybox:multi", registry.addr)).unwrap();
    let mut here = Descriptor::new(media_type::OCI_MANIFEST, manifest.digest, manifest.size);
    here.platform = Some(host_platform());
    let mut s390x = here.clone();
    s390x.platform = Some(Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        ..Platform::default()
    });
    let index = ImageIndex::oci(vec![s390x, here]);
    let bytes = index.to_json().unwrap();
    let index_digest = rt
        .block_on(client.put_manifest(&reference, media_type::OCI_INDEX, &bytes))
        .unwrap();

    let store = Store::open(tmp.path().join("root")).unwrap();
    let multi = reference.to_string();
    let pulled = rt
        .block_on(pull_image(&store, &client, &multi, &host_platform()))
        .unwrap();
    assert_eq!(pulled.index, Some(index_digest));
    assert_eq!(pulled.manifest.digest, manifest.digest);
    let stored = read_image(
        &store,
        &target_descriptor(&find_image(&store, &multi).unwrap().target),
        &host_platform(),
    )
    .unwrap();
    assert_eq!(stored.manifest_descriptor.digest, manifest.digest);

    let riscv = Platform {
        os: "linux".into(),
        architecture: "riscv64".into(),
        ..Platform::default()
    };
    let err = rt
        .block_on(pull_image(&store, &client, &multi, &riscv))
        .unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("no image for platform linux/riscv64"),
        "{text}"
    );
    assert!(text.contains("linux/s390x"), "{text}");

    // A single-platform image for another platform is refused too, and not tagged.
    let err = rt
        .block_on(pull_image(&store, &client, &single, &riscv))
        .unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains(&format!(
            "is for linux/{}, not linux/riscv64",
            host_platform().architecture
        )),
        "{text}"
    );
    assert!(find_image(&store, &single).is_err());
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_rejected_and_the_store_is_unchanged() {
    if !ready() {
        return;
    }
    let tmp = TempDir::new("registry-corrupt");
    let (layout, manifest) = busybox_layout(&tmp.path().join("src"), BUSYBOX).unwrap();
    let registry = Registry::open();
    let name = format!("{}/bad/busybox:1", registry.addr);
    run(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-compress=false",
            &format!("oci:{}", arg(&layout)),
            &format!("docker://{name}"),
        ],
    );
    // Flip bytes of the layer in the registry's storage: same size, other content.
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{name}"),
        ],
    );
    let served: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let layer = served["layers"][0]["digest"].as_str().unwrap().to_owned();
    let file = registry.blob_file(&layer);
    let mut data = std::fs::read(&file).unwrap();
    let middle = data.len() / 2;
    for b in &mut data[middle..middle + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&file, &data).unwrap();

    let store = Store::open(tmp.path().join("root")).unwrap();
    let blobs_before = store.content().list().unwrap();
    let images_before = store.images().list().unwrap();
    let rt = runtime();
    let err = rt
        .block_on(pull_image(
            &store,
            &client(anonymous(&tmp)),
            &name,
            &host_platform(),
        ))
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("digest mismatch"), "{text}");
    assert!(text.contains(&layer), "{text}");
    assert_eq!(store.content().list().unwrap(), blobs_before);
    assert_eq!(store.images().list().unwrap(), images_before);
    assert!(find_image(&store, &name).is_err());
    let _ = manifest;
}
