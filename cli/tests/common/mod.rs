//! What the CLI integration tests share: a temp dir, running the built binary and tools.

#![allow(dead_code)] // Each test binary uses a different subset.

#[path = "../../../worker/tests/common/busybox.rs"]
pub mod busybox;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test and the process.
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("strata-cli-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `strata --root ROOT ARGS`.
pub fn strata(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run strata")
}

/// Runs a tool and returns its stdout, failing the test unless it succeeds.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `strata --root ROOT ARGS`, failing the test unless it succeeds.
pub fn ok(root: &Path, args: &[&str]) -> Output {
    let out = strata(root, args);
    assert!(
        out.status.success(),
        "strata {args:?}:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Whether RUN steps can run here (root, busybox-static). In CI they must: a skip there
/// would hide a missing install behind a green run.
pub fn can_run_sandboxes() -> bool {
    let ok = rustix::process::geteuid().is_root() && Path::new("/bin/busybox").exists();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "CI must run this test as root with busybox-static"
    );
    if !ok {
        eprintln!("skipped: needs root and busybox-static");
    }
    ok
}

/// A store with `busybox:latest` loaded.
pub fn store_with_busybox(tmp: &TempDir) -> PathBuf {
    let (layout, manifest) = busybox::busybox_layout(&tmp.0.join("src"), "busybox:latest").unwrap();
    let archive = tmp.0.join("busybox.tar");
    std::fs::write(
        &archive,
        busybox::docker_archive(&layout, &manifest, &["busybox:latest"]).unwrap(),
    )
    .unwrap();
    let root = tmp.0.join("root");
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    root
}

/// `umoci unpack` of `layout` (`DIR:TAG`) into the test's temp dir; returns the bundle dir.
pub fn unpack(layout: &str, tmp: &TempDir) -> PathBuf {
    let unpacked = tmp.0.join("unpacked");
    tool(
        "umoci",
        &["unpack", "--image", layout, unpacked.to_str().unwrap()],
    );
    unpacked
}

/// Events of a `--progress rawjson` build: (event, vertex name).
pub fn events(out: &Output) -> Vec<(String, String)> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn ran(out: &Output) -> Vec<String> {
    events(out)
        .into_iter()
        .filter(|(e, _)| e == "started")
        .map(|(_, n)| n)
        .collect()
}

pub fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

/// One line per entry under `rootfs/top` for each of `tops` (`""`: all of it): path,
/// type+mode, owner, and the link target, content (short text files) or size, link count and
/// mtime (not of directories: created ones carry the build's time). An mtime at or after
/// `started` (the test's start) prints as `<build time>`.
pub fn listing(rootfs: &Path, tops: &[&str], started: i64) -> String {
    let mut lines = BTreeMap::new();
    for top in tops {
        walk(rootfs, &rootfs.join(top), started, &mut lines);
    }
    lines.into_values().collect::<Vec<_>>().join("\n")
}

fn walk(rootfs: &Path, path: &Path, started: i64, out: &mut BTreeMap<String, String>) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rel = path.strip_prefix(rootfs).unwrap().display().to_string();
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    let mut line = format!(
        "/{rel} {kind}{:04o} {}:{}",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    );
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap();
        line.push_str(&format!(" -> {}", target.display()));
    } else if meta.is_file() {
        let data = std::fs::read(path).unwrap();
        match std::str::from_utf8(&data) {
            Ok(text) if data.len() < 64 => line.push_str(&format!(" {text:?}")),
            _ => line.push_str(&format!(" ({} bytes)", data.len())),
        }
        if meta.nlink() > 1 {
            line.push_str(&format!(" links={}", meta.nlink()));
        }
    }
    if !meta.is_dir() {
        // Files made by the build itself (heredocs) carry the build's time.
        match meta.mtime() {
            t if t >= started => line.push_str(" mtime=<build time>"),
            t => line.push_str(&format!(" mtime={t}")),
        }
    }
    out.insert(rel, line);
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            walk(rootfs, &entry.unwrap().path(), started, out);
        }
    }
}

/// Seconds since the epoch, for [`listing`]'s `started`.
pub fn now_secs() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_secs() as i64
}
