//! Per-run overhead of a trivial RUN (`/bin/true`): the native sandbox, the runc backend, and a
//! plain fork/exec of the same binary on the host as the floor. Needs root and busybox-static
//! (skips otherwise); runc is measured when installed.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use strata_executor::{Backend, CancelToken, DiscardOutput, Executor, Network, RunSpec};

fn bench(c: &mut Criterion) {
    if let Some(why) = common::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let native = Executor::new(Backend::Native, common::state_dir()).unwrap();
    let runc = common::runc_binary()
        .map(|b| Executor::new(Backend::Runc(b), common::state_dir()).unwrap());
    let l = common::Layered::new();
    let spec = l.spec(&["/bin/true"]);
    let run = |exec: &Executor, spec: &RunSpec| {
        let st = exec
            .run(spec, &mut DiscardOutput, &CancelToken::new())
            .unwrap();
        assert!(st.success());
    };

    let mut g = c.benchmark_group("run_true");
    g.sample_size(50);
    g.bench_function("fork_exec_host", |b| {
        b.iter(|| {
            let st = std::process::Command::new("/bin/busybox")
                .arg("true")
                .status()
                .unwrap();
            assert!(st.success());
        })
    });
    g.bench_function("native", |b| b.iter(|| run(&native, &spec)));
    let mut none = spec.clone();
    none.network = Network::None;
    g.bench_function("native_network_none", |b| b.iter(|| run(&native, &none)));

    let deep = common::TempDir::new("bench-deep");
    let mut lowerdirs: Vec<_> = (0..300)
        .map(|i| {
            let d = deep.path().join(format!("snapshot-{i:04}")).join("diff");
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    lowerdirs.push(common::base_layer().to_path_buf());
    let deep_spec = RunSpec::new(l.rootfs_over(lowerdirs), vec!["/bin/true".into()]);
    g.bench_function("native_300_layers", |b| b.iter(|| run(&native, &deep_spec)));
    if let Some(runc) = &runc {
        g.sample_size(20);
        g.bench_function("runc", |b| b.iter(|| run(runc, &spec)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
