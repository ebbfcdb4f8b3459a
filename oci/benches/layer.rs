//! Layer writing throughput: a ~200 MB generated tree written as a layer with no
//! compression, gzip (parallel and single-threaded) and zstd. Throughput is reported in
//! MB/s of input file data.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-oci cargo bench -p strata-oci --bench layer`

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use strata_oci::layer::{apply_layer, write_layer, ApplyOptions, WriteOptions};
use strata_oci::Compression;

const TOTAL: usize = 200_000_000;

/// Deterministic data shaped like a real layer: text-like runs (compress well) mixed with
/// binary-looking runs (compress poorly), about 0.5 gzip ratio overall.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        const WORDS: [&[u8]; 16] = [
            b"the ",
            b"layer ",
            b"strata ",
            b"build ",
            b"cache ",
            b"image ",
            b"{\"key\": ",
            b"\"value\"}, ",
            b"\n",
            b"function ",
            b"return ",
            b"0x1f8b ",
            b"usr/lib/ ",
            b"static ",
            b"int ",
            b"; ",
        ];
        while out.len() < len {
            let r = self.next();
            if r % 10 < 2 {
                // A binary run.
                for _ in 0..(r >> 8) % 24 {
                    out.extend_from_slice(&self.next().to_le_bytes());
                }
            } else {
                for i in 0..8 {
                    out.extend_from_slice(WORDS[((r >> (i * 4)) & 15) as usize]);
                }
            }
        }
        out.truncate(len);
    }
}

/// Builds the tree once: a few large files, many medium and small ones.
fn build_tree(root: &Path) -> usize {
    let mut generator = Generator(0x9e37_79b9_7f4a_7c15);
    let mut total = 0;
    let mut data = Vec::new();
    let mut index = 0;
    while total < TOTAL {
        let size = match index % 10 {
            0 => 8 << 20,
            1..=3 => 512 << 10,
            _ => 16 << 10,
        };
        data.clear();
        generator.fill(&mut data, size);
        let dir = root.join(format!("d{:03}", index % 97));
        fs::create_dir_all(&dir).unwrap();
        let mut file = fs::File::create(dir.join(format!("f{index:05}"))).unwrap();
        file.write_all(&data).unwrap();
        total += size;
        index += 1;
    }
    total
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-oci-bench-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// CPU time (user + system) used by this process so far, all threads included.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the command name: utime, stime in ticks.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// Removes a directory when dropped (outside the timed part of an iteration).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bench_layers(c: &mut Criterion) {
    let root = temp_dir("tree");
    let total = build_tree(&root);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);

    let mut group = c.benchmark_group("write_layer");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::BytesDecimal(total as u64));
    let cases = [
        ("none", Compression::None, threads),
        ("gzip", Compression::gzip(), threads),
        ("gzip-1-thread", Compression::gzip(), 1),
        ("zstd", Compression::zstd(), threads),
    ];
    for (label, compression, threads) in cases {
        let options = WriteOptions {
            compression,
            threads,
            ..WriteOptions::default()
        };
        let (wall, cpu) = (std::time::Instant::now(), cpu_seconds());
        let info = write_layer(&root, &options, std::io::sink()).unwrap();
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        eprintln!(
            "{label}: {} MB in, {} MB out (ratio {:.3}); one run: {:.1} MB/s wall, \
             {:.2} CPU-s ({:.1} MB per CPU-second)",
            total / 1_000_000,
            info.size / 1_000_000,
            info.size as f64 / total as f64,
            total as f64 / 1e6 / wall,
            cpu,
            total as f64 / 1e6 / cpu
        );
        group.bench_with_input(
            BenchmarkId::from_parameter(label),
            &options,
            |b, options| {
                b.iter(|| write_layer(&root, options, std::io::sink()).unwrap());
            },
        );
    }
    group.finish();

    // Unpacking the gzip layer, for comparison.
    let blob_path = temp_dir("blob").join("layer.tar.gz");
    let options = WriteOptions {
        compression: Compression::gzip(),
        ..WriteOptions::default()
    };
    write_layer(&root, &options, fs::File::create(&blob_path).unwrap()).unwrap();
    let mut group = c.benchmark_group("apply_layer");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::BytesDecimal(total as u64));
    group.bench_function("gzip", |b| {
        b.iter_batched(
            || {
                (
                    Cleanup(temp_dir("apply")),
                    fs::File::open(&blob_path).unwrap(),
                )
            },
            |(dest, file)| {
                let reader = std::io::BufReader::new(file);
                apply_layer(reader, &dest.0, &ApplyOptions::default()).unwrap();
                dest // removed after timing
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(blob_path.parent().unwrap());
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
