//! Parser throughput: a large generated Dockerfile, and every Dockerfile in the conformance
//! data and testdata, parsed on one core. Reports MB/s (criterion's throughput).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::{Path, PathBuf};
use strata_frontend::parser;

/// Every `Dockerfile` under testdata and the conformance data that parses.
fn corpus() -> Vec<Vec<u8>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = [
        manifest.join("../testdata"),
        manifest.join("../../shared/conformance"),
    ];
    let mut files = Vec::new();
    for root in roots {
        collect(&root, &mut files);
    }
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|b| parser::parse(b).is_ok())
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.file_name().is_some_and(|n| n == "Dockerfile") {
            out.push(p);
        }
    }
}

/// A ~4 MB Dockerfile of realistic instructions covering every form the grammar knows.
fn large() -> Vec<u8> {
    let block = r#"# build stage
FROM --platform=$BUILDPLATFORM golang:1.22 AS build-STAGE
ARG VERSION=1.0 COMMIT
ENV CGO_ENABLED=0 GOFLAGS="-mod=vendor -trimpath" PATH=/go/bin:$PATH
LABEL org.opencontainers.image.source="https://example.com/x" maintainer=me
WORKDIR /src
COPY --link --chown=1000:1000 --chmod=0755 go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build,sharing=locked \
    --mount=type=bind,source=.,target=/src,rw \
    go build -ldflags "-X main.version=${VERSION}" -o /out/app ./cmd/app && \
    strip /out/app
RUN ["sh", "-c", "echo exec form \u00e9"]
RUN <<EOF
set -eu
echo heredoc body line one
echo heredoc body line two
EOF
EXPOSE 8080/tcp 9090/udp
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["/out/app", "health"]
USER 1000:1000
VOLUME ["/data", "/cache"]
ENTRYPOINT ["/out/app"]
CMD ["serve", "--addr", ":8080"]
"#;
    block.repeat(4 * 1024 * 1024 / block.len()).into_bytes()
}

fn bench(c: &mut Criterion) {
    let big = large();
    let mut group = c.benchmark_group("parse");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("large-4MB", |b| b.iter(|| parser::parse(&big).unwrap()));

    let files = corpus();
    let total: usize = files.iter().map(Vec::len).sum();
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function(format!("corpus-{}-files", files.len()), |b| {
        b.iter(|| {
            for f in &files {
                parser::parse(f).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
