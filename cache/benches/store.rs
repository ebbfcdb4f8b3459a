//! Store benchmarks: cache lookups per second, blob ingest MB/s, and the costs that a no-op
//! rebuild pays (open, ~30 leased lookups, flush, close).
//!
//! Run: `cargo bench -p strata-cache --bench store`.

use std::fs;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strata_cache::{CacheValue, Digest, PruneOptions, Store};

struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "strata-cache-bench-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).unwrap();
        Root(path)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn key(n: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_le_bytes());
    key
}

/// A store with `records` cache records on a chain of snapshots, as after a few builds.
fn populated(name: &str, records: u64) -> (Root, Store) {
    let root = Root::new(name);
    let store = Store::open(&root.0).unwrap();
    let lease = store.lease();
    let mut parent = None;
    let mut snapshots = Vec::new();
    for i in 0..20 {
        let prepared = store.snapshots().prepare(parent.as_ref(), &lease).unwrap();
        fs::write(prepared.diff().join(format!("f{i}")), b"layer").unwrap();
        let record = store.snapshots().commit(prepared, None).unwrap();
        parent = Some(record.id.clone());
        snapshots.push(record.id);
    }
    let blob = store.content().write(b"config", &lease).unwrap().digest;
    for i in 0..records {
        let value = CacheValue {
            snapshot: Some(snapshots[(i % 20) as usize].clone()),
            blobs: vec![blob],
            payload: vec![7u8; 200],
        };
        store.cache().put(&key(i), &value).unwrap();
    }
    drop(lease);
    (root, store)
}

fn lookups(c: &mut Criterion) {
    let (_root, store) = populated("lookups", 1000);
    let mut group = c.benchmark_group("cache_lookup");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    let mut i = 0u64;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(store.cache().get(&key(i), None).unwrap().unwrap());
        })
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| black_box(store.cache().get(&key(1_000_000), None).unwrap()))
    });
    let lease = store.lease();
    group.bench_function("get_hit_leased", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            black_box(store.cache().get(&key(i), Some(&lease)).unwrap().unwrap());
        })
    });
    drop(lease);
    group.finish();
}

fn writes(c: &mut Criterion) {
    let (_root, store) = populated("writes", 100);
    let mut group = c.benchmark_group("write");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    let lease = store.lease();
    let snapshot = store.snapshots().list().unwrap()[0].id.clone();
    let mut n = 10_000u64;
    group.bench_function("cache_put", |b| {
        b.iter(|| {
            n += 1;
            let value = CacheValue {
                snapshot: Some(snapshot.clone()),
                blobs: Vec::new(),
                payload: vec![1u8; 200],
            };
            store.cache().put(&key(n), &value).unwrap();
        })
    });
    group.bench_function("snapshot_prepare_commit_one_file", |b| {
        b.iter(|| {
            let prepared = store.snapshots().prepare(Some(&snapshot), &lease).unwrap();
            fs::write(prepared.diff().join("f"), b"x").unwrap();
            black_box(store.snapshots().commit(prepared, None).unwrap());
        })
    });
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let root = Root::new("ingest");
    let store = Store::open(&root.0).unwrap();
    let lease = store.lease();
    let size = 16 * 1024 * 1024;
    let mut data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("blob_ingest");
    group.throughput(Throughput::Bytes(size as u64));
    group.sample_size(15);
    group.measurement_time(Duration::from_secs(6));
    let mut n = 0u64;
    group.bench_function("16MiB_new_unverified", |b| {
        b.iter_batched(
            || {
                n += 1;
                data[..8].copy_from_slice(&n.to_le_bytes());
                data.clone()
            },
            |bytes| black_box(store.content().ingest(&bytes[..], None, &lease).unwrap()),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("16MiB_new_verified", |b| {
        b.iter_batched(
            || {
                n += 1;
                data[..8].copy_from_slice(&n.to_le_bytes());
                let digest = Digest::of(&data);
                (data.clone(), digest)
            },
            |(bytes, digest)| {
                black_box(
                    store
                        .content()
                        .ingest(&bytes[..], Some(digest), &lease)
                        .unwrap(),
                )
            },
            BatchSize::LargeInput,
        )
    });
    let existing = Digest::of(&data);
    store.content().ingest(&data[..], None, &lease).unwrap();
    group.bench_function("16MiB_present_known_digest", |b| {
        b.iter(|| {
            black_box(
                store
                    .content()
                    .ingest(&data[..], Some(existing), &lease)
                    .unwrap(),
            )
        })
    });
    group.bench_function("16MiB_present_unknown_digest", |b| {
        b.iter(|| black_box(store.content().ingest(&data[..], None, &lease).unwrap()))
    });
    group.finish();
    drop(lease);
    drop(store);
}

/// What a fully cached build pays in the store: open, a lease, 30 leased lookups, flush of
/// the last-used times, close.
fn noop_rebuild(c: &mut Criterion) {
    let (root, store) = populated("noop", 1000);
    drop(store);
    let mut group = c.benchmark_group("noop_rebuild");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("open_close", |b| {
        b.iter(|| drop(black_box(Store::open(&root.0).unwrap())))
    });
    group.bench_function("open_30_leased_lookups_flush_close", |b| {
        b.iter(|| {
            let store = Store::open(&root.0).unwrap();
            let lease = store.lease();
            for i in 0..30 {
                black_box(
                    store
                        .cache()
                        .get(&key(i * 7), Some(&lease))
                        .unwrap()
                        .unwrap(),
                );
            }
            drop(lease);
            store.flush().unwrap();
        })
    });
    group.finish();
}

fn prune(c: &mut Criterion) {
    let (_root, store) = populated("prune", 1000);
    let mut group = c.benchmark_group("gc");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    // Nothing to remove: the cost of deciding over 1000 records and 20 snapshots.
    group.bench_function("prune_nothing_1000_records", |b| {
        b.iter(|| {
            black_box(
                store
                    .prune(&PruneOptions {
                        older_than: Some(Duration::from_secs(3600)),
                        ..PruneOptions::default()
                    })
                    .unwrap(),
            )
        })
    });
    group.bench_function("du", |b| b.iter(|| black_box(store.du().unwrap())));
    group.finish();
}

criterion_group!(benches, lookups, noop_rebuild, writes, ingest, prune);
criterion_main!(benches);
