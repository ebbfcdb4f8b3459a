//! Build-context checksum benchmarks on a generated 10k-file / ~200 MB context:
//!
//! - `cold`: a fresh `Context` with no stat cache — every file is read and hashed;
//! - `warm_new_process`: a fresh `Context` over a populated persistent stat cache, as a
//!   no-op rebuild in a new process pays it (load the cache file, walk, fold);
//! - `warm_same_context`: the same `Context` again (stat cache already in memory);
//! - `select`: the filtered walk alone.
//!
//! Prints the process's peak RSS (`VmHWM`) at the end.
//!
//! Run: `cargo bench -p strata-worker --bench context`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use strata_worker::context::{Context, ContextOptions, Selection};

const FILES: usize = 10_000;
const DIRS: usize = 100;
const BIG_FILES: usize = 10;
const BIG_SIZE: usize = 10 << 20;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes (xorshift), so content differs between files.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// 10k files in 100 directories: 9,990 of 2–18 KB and 10 of 10 MiB (~205 MB in all).
fn generate(root: &Path) -> u64 {
    let mut total = 0u64;
    let mut buf = vec![0u8; BIG_SIZE];
    for i in 0..FILES {
        let dir = root.join(format!("dir{:03}", i % DIRS));
        if i < DIRS {
            fs::create_dir_all(&dir).unwrap();
        }
        let size = if i % (FILES / BIG_FILES) == 0 {
            BIG_SIZE
        } else {
            2_000 + (i * 7_919) % 16_000
        };
        fill(&mut buf[..size], i as u64);
        fs::write(dir.join(format!("file{i:05}.dat")), &buf[..size]).unwrap();
        total += size as u64;
    }
    fs::write(root.join(".dockerignore"), b"*.tmp\n").unwrap();
    total
}

fn bench_context(c: &mut Criterion) {
    let base = std::env::temp_dir().join(format!("strata-ctx-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let ctx_dir = Dir(base.join("context"));
    let store = Dir(base.join("store"));
    fs::create_dir_all(&ctx_dir.0).unwrap();
    let bytes = generate(&ctx_dir.0);
    eprintln!("generated {FILES} files, {:.1} MB", bytes as f64 / 1e6);
    // Let every file age past the racy window, so the stat cache may keep it.
    std::thread::sleep(Duration::from_millis(1_100));
    let excludes = vec!["*.tmp".to_owned()];
    let all = Selection::all();

    // Populate the persistent cache once.
    let options = ContextOptions::in_store_root(&store.0);
    let ctx = Context::open_with(&ctx_dir.0, &excludes, options.clone()).unwrap();
    let digest = ctx.checksum(&all).unwrap();
    assert_eq!(ctx.stats().files_hashed, FILES as u64 + 1); // + .dockerignore

    let mut group = c.benchmark_group("context_10k_200mb");
    group.sample_size(10);
    group.bench_function("cold", |b| {
        b.iter(|| {
            let ctx = Context::open(&ctx_dir.0, &excludes).unwrap();
            let d = ctx.checksum(&all).unwrap();
            assert_eq!(ctx.stats().files_hashed, FILES as u64 + 1); // + .dockerignore
            black_box(d)
        })
    });
    group.sample_size(30);
    group.bench_function("warm_new_process", |b| {
        b.iter(|| {
            let ctx = Context::open_with(&ctx_dir.0, &excludes, options.clone()).unwrap();
            let d = ctx.checksum(&all).unwrap();
            assert_eq!(ctx.stats().files_hashed, 0);
            assert_eq!(d, digest);
            black_box(d)
        })
    });
    let warm = Context::open_with(&ctx_dir.0, &excludes, options.clone()).unwrap();
    warm.checksum(&all).unwrap();
    group.bench_function("warm_same_context", |b| {
        b.iter(|| black_box(warm.checksum(&all).unwrap()))
    });
    group.bench_function("select", |b| {
        b.iter(|| black_box(warm.select(&all).unwrap().len()))
    });
    group.finish();
    drop(ctx_dir);
    drop(store);
    let _ = fs::remove_dir_all(&base);
}

criterion_group!(benches, bench_context);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM")) {
            eprintln!(
                "peak RSS of the bench process: {}",
                line.trim_start_matches("VmHWM:").trim()
            );
        }
    }
}
