//! Shared helpers for the integration tests: temporary roots, fixtures and a consistency
//! checker that every test can run on a store after hammering it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use strata_cache::{CacheValue, Digest, ImageTarget, Lease, SnapshotId, SnapshotRecord, Store};

/// A unique directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempRoot(pub PathBuf);

impl TempRoot {
    pub fn new(name: &str) -> TempRoot {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "strata-cache-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).unwrap();
        TempRoot(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A cache key derived from a number.
pub fn key(n: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_le_bytes());
    key[31] = 0xca;
    key
}

/// Commits a snapshot holding one file, on `parent`.
pub fn make_snapshot(
    store: &Store,
    parent: Option<&SnapshotId>,
    lease: &Lease,
    file: &str,
    content: &[u8],
) -> SnapshotRecord {
    let prepared = store.snapshots().prepare(parent, lease).unwrap();
    fs::write(prepared.diff().join(file), content).unwrap();
    store.snapshots().commit(prepared, None).unwrap()
}

/// Stores a tiny OCI image (config, one layer, manifest) and returns its target.
pub fn make_image(store: &Store, lease: &Lease, seed: &str) -> (ImageTarget, Vec<Digest>) {
    let layer = store
        .content()
        .write(format!("layer-{seed}").as_bytes(), lease)
        .unwrap();
    let config = store
        .content()
        .write(format!("{{\"config-{seed}\":1}}").as_bytes(), lease)
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        config.digest, config.size, layer.digest, layer.size
    );
    let manifest = store.content().write(manifest.as_bytes(), lease).unwrap();
    (
        ImageTarget {
            manifest: manifest.digest,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: manifest.size,
            config: Some(config.digest),
        },
        vec![manifest.digest, config.digest, layer.digest],
    )
}

/// A cache value pointing at a snapshot and blobs.
pub fn value(snapshot: Option<&SnapshotId>, blobs: &[Digest], payload: &str) -> CacheValue {
    CacheValue {
        snapshot: snapshot.cloned(),
        blobs: blobs.to_vec(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// Checks every invariant a store must keep, whatever happened to it:
/// - every blob file hashes to its name;
/// - every snapshot record has its directory and a complete parent chain;
/// - every cache record's snapshot and blobs exist;
/// - every image's manifest exists and `index.json` lists exactly the images;
/// - with `strict`, no directory in `snapshots/` lacks a record (true after a prune).
pub fn check_consistent(store: &Store, strict: bool) {
    let layout = store.layout();
    for blob in store.content().list().unwrap() {
        let bytes = fs::read(store.content().path(&blob.digest)).unwrap();
        let actual = Digest::from_sha256(Sha256::digest(&bytes).into());
        assert_eq!(actual, blob.digest, "blob content does not match its name");
    }
    let snapshots = store.snapshots().list().unwrap();
    let ids: HashSet<SnapshotId> = snapshots.iter().map(|s| s.id.clone()).collect();
    for snapshot in &snapshots {
        let diff = store.snapshots().diff_dir(&snapshot.id);
        assert!(diff.is_dir(), "snapshot {} has no diff dir", snapshot.id);
        assert!(
            !diff.parent().unwrap().join("work").exists(),
            "committed snapshot {} kept its work dir",
            snapshot.id
        );
        let chain = store.snapshots().chain(&snapshot.id).unwrap();
        assert_eq!(chain[0].id, snapshot.id);
    }
    for (key, record) in store.cache().list().unwrap() {
        if let Some(id) = &record.value.snapshot {
            assert!(ids.contains(id), "cache record {key:?} lost snapshot {id}");
        }
        for blob in &record.value.blobs {
            assert!(
                store.content().contains(blob),
                "cache record lost blob {blob}"
            );
        }
    }
    let images = store.images().list().unwrap();
    for image in &images {
        assert!(
            store.content().contains(&image.target.manifest),
            "image {} lost its manifest",
            image.name
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.content_dir().join("index.json")).unwrap())
            .unwrap();
    let mut listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap(),
                m["digest"].as_str().unwrap()
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<String> = images
        .iter()
        .map(|i| format!("{}={}", i.name, i.target.manifest))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "index.json does not match the images");
    assert_eq!(
        fs::read_to_string(layout.content_dir().join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    if strict {
        for entry in fs::read_dir(layout.snapshots_dir()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let id: SnapshotId = name.parse().unwrap();
            assert!(ids.contains(&id), "orphan snapshot directory {name}");
        }
    }
}

/// A reader that fails the test if anything reads it.
pub struct UnreadReader;

impl std::io::Read for UnreadReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        panic!("the store read a stream it should have skipped")
    }
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// A small deterministic random generator (xorshift), seeded per process and thread.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        Rng((seed ^ nanos ^ ((std::process::id() as u64) << 32)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a hammering worker did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerStats {
    pub iterations: u64,
    pub hits: u64,
    pub misses: u64,
}

/// One build-like worker: ingest, prepare/commit on `base`, put, look up (with a lease)
/// records of any worker and check that what the lease holds stays on disk, tag images.
/// Panics on any error: no retries are part of the API.
pub fn hammer(
    root: &Path,
    worker: u64,
    base: &SnapshotId,
    until: std::time::Instant,
    max_iterations: u64,
) -> WorkerStats {
    let store = Store::open(root).unwrap();
    let mut rng = Rng::new(worker.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut stats = WorkerStats::default();
    let mut i = 0u64;
    while std::time::Instant::now() < until && i < max_iterations {
        let lease = store.lease();
        lease.add_snapshot(base).unwrap();
        let content = format!("blob-{}", i % 16).repeat(100);
        let expected = i.is_multiple_of(2).then(|| Digest::of(content.as_bytes()));
        let blob = store
            .content()
            .ingest(content.as_bytes(), expected, &lease)
            .unwrap();
        let snapshot = make_snapshot(
            &store,
            Some(base),
            &lease,
            &format!("w{worker}-{i}"),
            content.as_bytes(),
        );
        store
            .cache()
            .put(
                &key(worker * 1_000_000 + i),
                &value(Some(&snapshot.id), &[blob.digest], "r"),
            )
            .unwrap();
        let other = rng.below(4);
        let j = rng.below(i + 1);
        match store
            .cache()
            .get(&key(other * 1_000_000 + j), Some(&lease))
            .unwrap()
        {
            Some(record) => {
                stats.hits += 1;
                let check = |when: &str| {
                    let id = record.value.snapshot.as_ref().unwrap();
                    for dir in store.snapshots().lowerdirs(id).unwrap() {
                        assert!(
                            dir.is_dir(),
                            "{when}: leased lowerdir {} vanished",
                            dir.display()
                        );
                    }
                    for blob in &record.value.blobs {
                        assert!(
                            store.content().contains(blob),
                            "{when}: leased blob vanished"
                        );
                    }
                };
                check("at once");
                std::thread::sleep(std::time::Duration::from_micros(rng.below(2000)));
                check("later");
            }
            None => stats.misses += 1,
        }
        if i.is_multiple_of(8) {
            let (target, _) = make_image(&store, &lease, &format!("{worker}-{i}"));
            store
                .images()
                .tag(&format!("w{worker}:{}", i % 3), &target)
                .unwrap();
        }
        drop(lease);
        i += 1;
        stats.iterations = i;
    }
    store.flush().unwrap();
    stats
}

/// A pruner running beside workers: alternates the prune modes and checks disk usage.
pub fn prune_loop(root: &Path, until: std::time::Instant) -> u64 {
    let store = Store::open(root).unwrap();
    let mut rng = Rng::new(77);
    let mut rounds = 0;
    while std::time::Instant::now() < until {
        let options = match rounds % 3 {
            0 => strata_cache::PruneOptions {
                all: true,
                ..Default::default()
            },
            1 => strata_cache::PruneOptions {
                keep_storage: Some(rng.below(2_000_000)),
                ..Default::default()
            },
            _ => strata_cache::PruneOptions {
                older_than: Some(std::time::Duration::from_millis(rng.below(200))),
                ..Default::default()
            },
        };
        store.prune(&options).unwrap();
        store.du().unwrap();
        rounds += 1;
        std::thread::sleep(std::time::Duration::from_millis(rng.below(20)));
    }
    rounds
}

/// Environment variables of the helper processes.
pub const ROLE: &str = "STRATA_CACHE_TEST_ROLE";
pub const ROOT: &str = "STRATA_CACHE_TEST_ROOT";
pub const WORKER: &str = "STRATA_CACHE_TEST_WORKER";
pub const BASE: &str = "STRATA_CACHE_TEST_BASE";
pub const MILLIS: &str = "STRATA_CACHE_TEST_MILLIS";

/// Starts this test binary as a helper process running `role` (see `helper_main`).
pub fn spawn_helper(
    test_name: &str,
    role: &str,
    root: &Path,
    worker: u64,
    base: &SnapshotId,
    millis: u64,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ROOT, root)
        .env(WORKER, worker.to_string())
        .env(BASE, base.as_str())
        .env(MILLIS, millis.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The body of the helper "test": does nothing unless started by `spawn_helper`.
pub fn helper_main() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let worker: u64 = std::env::var(WORKER).unwrap().parse().unwrap();
    let base: SnapshotId = std::env::var(BASE).unwrap().parse().unwrap();
    let millis: u64 = std::env::var(MILLIS).unwrap().parse().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_millis(millis);
    match role.as_str() {
        "worker" => {
            let stats = hammer(&root, worker, &base, until, u64::MAX);
            println!("HELPER worker={worker} {stats:?}");
        }
        "pruner" => {
            let rounds = prune_loop(&root, until);
            println!("HELPER pruner rounds={rounds}");
        }
        "commit-and-die" => {
            // A step committed on `base` and cached, then the process dies before its store
            // handle drops (no flush): the snapshot stays marked unsynced.
            let store = Store::open(&root).unwrap();
            let lease = store.lease();
            let top = make_snapshot(&store, Some(&base), &lease, "top", b"unsynced");
            store
                .cache()
                .put(&key(worker), &value(Some(&top.id), &[], "top"))
                .unwrap();
            println!("HELPER committed {}", top.id);
            std::process::abort();
        }
        other => panic!("unknown helper role {other}"),
    }
}
