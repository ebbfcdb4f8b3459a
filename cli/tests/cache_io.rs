//! `--cache-to` / `--cache-from` (local OCI layout and registry): a build on root A exports
//! its cache, a build of the same Dockerfile on a fresh root B (busybox loaded, nothing
//! built) imports it. Checked from outside Strata: the progress stream (no step started),
//! skopeo's view of the images (same digests), and B's content store (which cache blobs it
//! holds: only layers of the final image were fetched).

mod common;

#[path = "../../worker/tests/common/registry.rs"]
mod registry;

use common::busybox::{busybox_layout, docker_archive};
use common::{can_run_sandboxes, ok, ran, text, tool, TempDir};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Two roots with the same busybox image loaded, and the test's context.
struct Roots {
    tmp: TempDir,
    a: PathBuf,
    b: PathBuf,
    context: PathBuf,
}

fn roots(label: &str) -> Roots {
    let tmp = TempDir::new(label);
    let (layout, manifest) = busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    let archive = tmp.0.join("busybox.tar");
    std::fs::write(
        &archive,
        docker_archive(&layout, &manifest, &["busybox:latest"]).unwrap(),
    )
    .unwrap();
    let (a, b) = (tmp.0.join("root-a"), tmp.0.join("root-b"));
    for root in [&a, &b] {
        ok(root, &["load", "-i", archive.to_str().unwrap()]);
    }
    let context = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/build/cache-io");
    Roots { tmp, a, b, context }
}

impl Roots {
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.0.join(name)
    }

    /// `strata build --progress rawjson -f DOCKERFILE EXTRA… CONTEXT` on `root`.
    fn build(&self, root: &Path, dockerfile: &str, extra: &[&str]) -> Output {
        let file = self.context.join(dockerfile);
        let mut args = vec![
            "build",
            "--progress",
            "rawjson",
            "-f",
            file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(self.context.to_str().unwrap());
        ok(root, &args)
    }
}

/// The image id a build printed.
fn image_id(out: &Output) -> String {
    text(&out.stdout).trim().lines().last().unwrap().to_string()
}

/// Digests (`sha256:…`) of the blobs in `dir/blobs/sha256`.
fn blobs_in(dir: &Path) -> HashSet<String> {
    match std::fs::read_dir(dir.join("blobs/sha256")) {
        Ok(entries) => entries
            .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
            .collect(),
        Err(_) => HashSet::new(),
    }
}

/// Blobs in a root's content store.
fn store_blobs(root: &Path) -> HashSet<String> {
    blobs_in(&root.join("v1/content"))
}

/// skopeo's view of an image: its manifest digest and layer digests.
/// The cache's layers that `root` has now and did not have `before` (what an import fetched).
fn fetched_from(
    root: &Path,
    before: &HashSet<String>,
    cache_layers: &HashSet<String>,
) -> HashSet<String> {
    store_blobs(root)
        .difference(before)
        .filter(|d| cache_layers.contains(*d))
        .cloned()
        .collect()
}

fn assert_stderr_has(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
}

fn skopeo_image(image: &str) -> (String, Vec<String>) {
    let v: serde_json::Value =
        serde_json::from_str(&tool("skopeo", &["inspect", "--tls-verify=false", image])).unwrap();
    let layers = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    (v["Digest"].as_str().unwrap().to_string(), layers)
}

/// The cache config of a local cache, read as documented: `index.json` → manifest →
/// config.
fn local_cache_config(dir: &Path) -> serde_json::Value {
    let read = |digest: &str| {
        let path = dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap());
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.strata.cache.config.v1+json"
    );
    read(manifest["config"]["digest"].as_str().unwrap())
}

/// Layer blob digests a cache config lists.
fn config_layers(config: &serde_json::Value) -> HashSet<String> {
    config["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["blob"]["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn local_cache_gives_every_step_cached_on_a_fresh_root() {
    if !can_run_sandboxes() || !registry::available() {
        return;
    }
    let r = roots("cache-io-local");
    let cache = r.path("cache");
    let (a_tar, b_tar) = (r.path("a.tar"), r.path("b.tar"));
    let cache_to = format!("type=local,dest={}", cache.display());
    let a = r.build(
        &r.a,
        "Dockerfile",
        &[
            "--cache-to",
            &cache_to,
            "--output",
            &format!("type=oci,dest={}", a_tar.display()),
            "--metadata-file",
            r.path("a.json").to_str().unwrap(),
        ],
    );
    assert!(!ran(&a).is_empty(), "root A builds");
    assert_stderr_has(&a, "exporting cache to");
    // mode=min of a single stage: the image's four steps (FROM, RUN, COPY, RUN), each with
    // its chain; every layer the records use is in the layout.
    let config = local_cache_config(&cache);
    assert_eq!(config["records"].as_array().unwrap().len(), 4, "{config}");
    let cached_layers = config_layers(&config);
    assert!(cached_layers.is_subset(&blobs_in(&cache)));

    let before = store_blobs(&r.b);
    let b = r.build(
        &r.b,
        "Dockerfile",
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
            "--output",
            &format!("type=oci,dest={}", b_tar.display()),
            "--metadata-file",
            r.path("b.json").to_str().unwrap(),
        ],
    );
    assert_eq!(ran(&b), Vec::<String>::new(), "{}", text(&b.stderr));
    let cached: Vec<String> = common::events(&b)
        .into_iter()
        .filter(|(event, _)| event == "cached")
        .map(|(_, name)| name)
        .collect();
    for step in ["RUN echo built-by-strata", "COPY note.txt", "RUN cat"] {
        assert!(
            cached.iter().any(|n| n.contains(step)),
            "{step}: {cached:?}"
        );
    }
    assert_eq!(image_id(&a), image_id(&b));
    let (a_digest, a_layers) = skopeo_image(&format!("oci-archive:{}", a_tar.display()));
    let (b_digest, _) = skopeo_image(&format!("oci-archive:{}", b_tar.display()));
    assert_eq!(a_digest, b_digest, "the same image on both roots");
    // In the stores too, byte for byte: B records the imported layers uncompressed, as A
    // stored the layers it built.
    let stored_digest = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.path(name)).unwrap()).unwrap();
        v["containerimage.digest"].as_str().unwrap().to_string()
    };
    assert_eq!(stored_digest("a.json"), stored_digest("b.json"));
    // What B fetched from the cache: the three layers the build made (the base layer was
    // there already), nothing else.
    let fetched = fetched_from(&r.b, &before, &cached_layers);
    let built: HashSet<String> = a_layers.iter().skip(1).cloned().collect();
    assert_eq!(fetched, built);
    assert_stderr_has(&b, "importing cache: 3 layer(s) fetched");

    // A second export writes nothing new: every blob is already in the layout.
    let again = r.build(&r.a, "Dockerfile", &["--cache-to", &cache_to]);
    assert!(ran(&again).is_empty());
    assert_stderr_has(&again, "(0 blobs written");
}

#[test]
fn mode_max_exports_intermediate_stages_that_an_import_never_fetches() {
    if !can_run_sandboxes() || !registry::available() {
        return;
    }
    let r = roots("cache-io-max");
    let (max, min) = (r.path("cache-max"), r.path("cache-min"));
    let a_tar = r.path("a.tar");
    let a = r.build(
        &r.a,
        "Dockerfile.multistage",
        &[
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--output",
            &format!("type=oci,dest={}", a_tar.display()),
        ],
    );
    let (_, image_layers) = skopeo_image(&format!("oci-archive:{}", a_tar.display()));
    let image_layers: HashSet<String> = image_layers.into_iter().collect();
    let max_layers = config_layers(&local_cache_config(&max));
    let min_layers = config_layers(&local_cache_config(&min));
    let intermediate: HashSet<String> = max_layers.difference(&image_layers).cloned().collect();
    assert!(
        !intermediate.is_empty(),
        "mode=max holds the build stage's layer"
    );
    assert!(
        min_layers.is_subset(&image_layers),
        "mode=min holds only the final image's layers"
    );

    let before = store_blobs(&r.b);
    let b = r.build(
        &r.b,
        "Dockerfile.multistage",
        &["--cache-from", &format!("type=local,src={}", max.display())],
    );
    assert_eq!(ran(&b), Vec::<String>::new(), "{}", text(&b.stderr));
    assert_eq!(image_id(&a), image_id(&b));
    let fetched = fetched_from(&r.b, &before, &max_layers);
    assert!(fetched.is_disjoint(&intermediate), "{fetched:?}");
    assert!(fetched.is_subset(&image_layers), "{fetched:?}");
    assert_eq!(
        fetched.len(),
        3,
        "COPY --from, COPY and RUN layers: {fetched:?}"
    );
}

#[test]
fn registry_cache_gives_the_same_pushed_image_and_fetches_only_its_layers() {
    if !can_run_sandboxes() || !registry::available() {
        return;
    }
    let r = roots("cache-io-registry");
    let registry = registry::Registry::open();
    let cache_ref = format!("{}/cache/app:buildcache", registry.addr);
    let (image_a, image_b) = (
        format!("{}/app/a:1", registry.addr),
        format!("{}/app/b:1", registry.addr),
    );
    let cache_to = format!("type=registry,ref={cache_ref},mode=max");
    let a = r.build(
        &r.a,
        "Dockerfile.multistage",
        &["--cache-to", &cache_to, "-t", &image_a, "--push"],
    );
    assert!(text(&a.stderr).contains("exporting cache to"));
    let raw: serde_json::Value = serde_json::from_str(&tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{cache_ref}"),
        ],
    ))
    .unwrap();
    assert_eq!(
        raw["config"]["mediaType"],
        "application/vnd.strata.cache.config.v1+json"
    );
    let cache_layers: HashSet<String> = raw["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let (a_digest, a_layers) = skopeo_image(&format!("docker://{image_a}"));
    let a_layers: HashSet<String> = a_layers.into_iter().collect();
    assert!(
        !cache_layers.is_subset(&a_layers),
        "mode=max pushed the build stage's layer too"
    );

    let before = store_blobs(&r.b);
    let b = r.build(
        &r.b,
        "Dockerfile.multistage",
        &[
            "--cache-from",
            &format!("type=registry,ref={cache_ref}"),
            "-t",
            &image_b,
        ],
    );
    assert_eq!(ran(&b), Vec::<String>::new(), "{}", text(&b.stderr));
    assert_eq!(image_id(&a), image_id(&b));
    let fetched = fetched_from(&r.b, &before, &cache_layers);
    assert!(fetched.is_subset(&a_layers), "{fetched:?}");
    assert_eq!(fetched.len(), 3, "{fetched:?}");
    // Pushed from B, the image is the one A pushed (its gzip layers are the cache's).
    ok(&r.b, &["push", &image_b]);
    let (b_digest, _) = skopeo_image(&format!("docker://{image_b}"));
    assert_eq!(a_digest, b_digest);

    // Exporting again uploads nothing: every blob answers HEAD.
    let again = r.build(&r.a, "Dockerfile.multistage", &["--cache-to", &cache_to]);
    assert_stderr_has(&again, "(0 blobs written");
}

#[test]
fn a_corrupt_cache_blob_is_refused_and_the_step_runs() {
    if !can_run_sandboxes() || !registry::available() {
        return;
    }
    let (r, cache, config, top) = local_cache("cache-io-corrupt");
    let digest = config["layers"][top]["blob"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = cache
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let missing = r.path("no-such-cache");
    let b = r.build(
        &r.b,
        "Dockerfile",
        &[
            "--cache-from",
            &format!("type=local,src={}", missing.display()),
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    );
    let stderr = text(&b.stderr);
    // A cache that is not there is skipped with a warning, as buildx does.
    assert!(
        stderr.contains(&format!(
            "WARNING: cache import ignored: cache {}",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("WARNING") && stderr.contains(&digest) && stderr.contains("corrupt"),
        "{stderr}"
    );
    // BuildKit's behaviour: the bad record is ignored and its step runs; the steps below it
    // still come from the cache.
    let ran = ran(&b);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("RUN cat"), "{ran:?}");
    assert!(
        !store_blobs(&r.b).contains(&digest),
        "the bad blob is not stored"
    );
}

/// Writes `bytes` as a blob of the layout `dir`; returns its digest and size.
/// Roots whose root A exported a local cache of `Dockerfile`; the cache directory, its
/// config, and the layer on top of its longest chain (the last RUN's layer).
fn local_cache(label: &str) -> (Roots, PathBuf, serde_json::Value, usize) {
    let r = roots(label);
    let cache = r.path("cache");
    r.build(
        &r.a,
        "Dockerfile",
        &[
            "--cache-to",
            &format!("type=local,dest={}", cache.display()),
        ],
    );
    let config = local_cache_config(&cache);
    let longest = config["records"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| r["chain"].as_array().unwrap().len())
        .unwrap();
    let top = longest["chain"].as_array().unwrap().last().unwrap();
    let top = top.as_u64().unwrap() as usize;
    (r, cache, config, top)
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let tmp = dir.join("blob.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    let sum = tool("sha256sum", &[tmp.to_str().unwrap()]);
    let hex = sum.split_whitespace().next().unwrap().to_string();
    std::fs::rename(&tmp, dir.join("blobs/sha256").join(&hex)).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

#[test]
fn a_cache_config_that_lies_about_a_diff_id_is_refused_and_bad_options_are_errors() {
    if !can_run_sandboxes() || !registry::available() {
        return;
    }
    let (r, cache, mut config, top) = local_cache("cache-io-lies");
    // Rewrite the config (and the manifest and index.json above it, so every digest
    // matches): the top layer of the longest chain claims another diff id.
    let lie = format!("sha256:{}", "0".repeat(64));
    config["layers"][top]["diffID"] = serde_json::Value::String(lie.clone());
    let (config_digest, config_size) = put_blob(&cache, &serde_json::to_vec(&config).unwrap());
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("blobs/sha256").join(&old[7..])).unwrap())
            .unwrap();
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    let (manifest_digest, manifest_size) =
        put_blob(&cache, &serde_json::to_vec(&manifest).unwrap());
    index["manifests"][0]["digest"] = manifest_digest.into();
    index["manifests"][0]["size"] = manifest_size.into();
    std::fs::write(
        cache.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let b = r.build(
        &r.b,
        "Dockerfile",
        &[
            "--cache-from",
            &format!("type=local,src={}", cache.display()),
        ],
    );
    let stderr = text(&b.stderr);
    assert!(
        stderr.contains(&format!("the cache config says {lie}")),
        "{stderr}"
    );
    assert!(!ran(&b).is_empty(), "the lied-about step runs");

    // Options are checked before anything is built.
    let context = r.context.to_str().unwrap();
    for (option, value, want) in [
        ("--cache-to", "type=local", "type=local needs dest=DIR"),
        ("--cache-to", "type=s3,bucket=x", "cache type \"s3\" is not supported"),
        ("--cache-from", "type=registry,ref=localhost:5000/c@sha256:0000000000000000000000000000000000000000000000000000000000000000", "must name a tag"),
        ("--cache-to", "type=local,dest=/x,mode=all", "expected min or max"),
    ] {
        let out = common::strata(&r.b, &["build", option, value, context]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(want), "{value}: {}", text(&out.stderr));
    }
}
