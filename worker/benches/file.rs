//! COPY throughput: a 10k-file / 200 MB tree copied by a file op into a fresh snapshot diff,
//! side by side with `cp -a` of the same tree on the same filesystem.
//!
//! Run: `cargo bench -p strata-worker --bench file`. The tree is built once (page cache
//! warm for both contenders) and removed at the end; see [`root`] for where.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use strata_solver::op::{FileAction, FileOp};
use strata_worker::file::{apply, LayeredView};

const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;
const FILE_SIZE: usize = 20 * 1024;

/// A directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Where the trees go: `$STRATA_FILE_BENCH_DIR` (e.g. a tmpfs, to see CPU cost rather
/// than the disk's), else the system temp directory.
fn root() -> PathBuf {
    let dir = std::env::var_os("STRATA_FILE_BENCH_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("strata-file-bench-{}", std::process::id()))
}

fn make_tree(dir: &Path) {
    let mut data = vec![0u8; FILE_SIZE];
    for d in 0..DIRS {
        let sub = dir.join(format!("d{d:03}"));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..FILES_PER_DIR {
            // Distinct contents, so nothing can be deduplicated below us.
            data[..8].copy_from_slice(&((d * FILES_PER_DIR + f) as u64).to_le_bytes());
            fs::write(sub.join(format!("f{f:03}.bin")), &data).unwrap();
        }
    }
}

fn fresh(base: &Path, n: &mut usize) -> Scratch {
    *n += 1;
    let dir = base.join(format!("dest-{n}"));
    fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn bench(c: &mut Criterion) {
    let base = root();
    let _cleanup = Scratch(base.clone());
    let src = base.join("src");
    make_tree(&src);
    let context = LayeredView::plain(&src);
    let op = FileOp {
        has_base: false,
        actions: vec![FileAction::Copy {
            source_input: 0,
            src: "/".into(),
            dest: "/app/".into(),
            owner: None,
            chmod: None,
            follow_symlinks: true,
            dir_contents_only: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            exclude: Vec::new(),
            parents: false,
            unpack: false,
            create_dest_path: true,
            mtime: None,
        }],
    };
    let mut group = c.benchmark_group("copy 10k files 200MB");
    group.sample_size(10);
    let mut n = 0;
    group.bench_function("strata file op", |b| {
        b.iter_batched(
            || fresh(&base, &mut n),
            |dest| {
                apply(&op, &dest.0, &[], &[&context]).unwrap();
                dest
            },
            BatchSize::PerIteration,
        )
    });
    let mut m = 0;
    group.bench_function("cp -a", |b| {
        b.iter_batched(
            || fresh(&base, &mut m),
            |dest| {
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(&src)
                    .arg(dest.0.join("app"))
                    .status()
                    .unwrap();
                assert!(status.success());
                dest
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
