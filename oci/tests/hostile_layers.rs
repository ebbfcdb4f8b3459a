//! Hostile layer tars: every escape attempt is rejected or contained, and nothing outside
//! the destination is created, changed or removed.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use strata_oci::layer::{apply_layer, ApplyError, ApplyOptions, WhiteoutMode};

/// One raw tar entry, with the name and link written byte for byte (no validation).
fn entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    {
        let bytes = header.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_size(data.len() as u64);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, b'0', "", data)
}

fn dir(name: &str) -> Vec<u8> {
    entry(name, b'5', "", b"")
}

fn symlink(name: &str, target: &str) -> Vec<u8> {
    entry(name, b'2', target, b"")
}

fn hardlink(name: &str, target: &str) -> Vec<u8> {
    entry(name, b'1', target, b"")
}

fn tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.resize(out.len() + 1024, 0);
    out
}

/// A sandbox: `root/dest` is the destination; `root/outside/…` holds files an attack would
/// like to reach. Snapshots of everything but `dest` must not change.
struct Sandbox {
    root: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = TempDir::new("hostile");
        fs::create_dir(root.join("dest")).unwrap();
        write_file(&root.join("outside/victim"), b"precious", 0o644);
        write_file(&root.join("outside/dir/file"), b"precious too", 0o644);
        Sandbox { root }
    }

    fn dest(&self) -> PathBuf {
        self.root.join("dest")
    }

    fn outside(&self) -> PathBuf {
        self.root.join("outside")
    }

    fn outside_state(&self) -> BTreeMap<PathBuf, Node> {
        let mut state = snapshot(self.root.path());
        state.retain(|p, _| !p.starts_with("dest"));
        state
    }

    /// Applies `bytes`; asserts nothing outside dest changed; returns the result.
    fn apply(&self, bytes: &[u8], options: &ApplyOptions) -> Result<(), ApplyError> {
        let before = self.outside_state();
        let etc_passwd = fs::metadata("/etc/passwd")
            .ok()
            .map(|m| (m.len(), m.mtime(), m.nlink()));
        let result = apply_layer(bytes, &self.dest(), options).map(|_| ());
        let after = self.outside_state();
        assert_same_tree(&before, &after);
        let etc_after = fs::metadata("/etc/passwd")
            .ok()
            .map(|m| (m.len(), m.mtime(), m.nlink()));
        assert_eq!(etc_passwd, etc_after, "/etc/passwd was touched");
        assert!(!Path::new("/etc/strata-hostile-x").exists());
        assert!(!Path::new("/strata-hostile-escape").exists());
        result
    }
}

#[test]
fn dot_dot_names_are_rejected() {
    let sandbox = Sandbox::new();
    for name in [
        "../x",
        "a/../../x",
        "./../outside/victim",
        "/../outside/victim",
    ] {
        let err = sandbox
            .apply(&tar(&[file(name, b"evil")]), &ApplyOptions::default())
            .unwrap_err();
        assert!(matches!(err, ApplyError::Escape { .. }), "{name}: {err}");
        assert!(
            err.to_string().contains(name),
            "error names the entry: {err}"
        );
    }
    assert_eq!(
        fs::read(sandbox.outside().join("victim")).unwrap(),
        b"precious"
    );
}

#[test]
fn absolute_names_are_contained() {
    let sandbox = Sandbox::new();
    sandbox
        .apply(
            &tar(&[
                file("/etc/strata-hostile-x", b"evil"),
                file("/etc/passwd", b"evil"),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap();
    assert_eq!(
        fs::read(sandbox.dest().join("etc/strata-hostile-x")).unwrap(),
        b"evil"
    );
    assert_eq!(
        fs::read(sandbox.dest().join("etc/passwd")).unwrap(),
        b"evil"
    );
}

#[test]
fn symlink_to_root_then_write_through_it_is_contained() {
    let sandbox = Sandbox::new();
    sandbox
        .apply(
            &tar(&[symlink("a", "/"), file("a/etc/strata-hostile-x", b"evil")]),
            &ApplyOptions::default(),
        )
        .unwrap();
    // The symlink is stored verbatim; the write landed inside dest.
    assert_eq!(
        fs::read_link(sandbox.dest().join("a")).unwrap(),
        Path::new("/")
    );
    assert_eq!(
        fs::read(sandbox.dest().join("etc/strata-hostile-x")).unwrap(),
        b"evil"
    );
}

#[test]
fn relative_symlink_climbing_out_is_contained() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside();
    sandbox
        .apply(
            &tar(&[
                symlink("up", "../../../../../../.."),
                file("up/strata-hostile-escape", b"evil"),
                symlink("out", "../outside"),
                file("out/victim", b"evil"),
                symlink("abs", outside.to_str().unwrap()),
                file("abs/dir/file", b"evil"),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap();
    assert_eq!(
        fs::read(sandbox.dest().join("strata-hostile-escape")).unwrap(),
        b"evil"
    );
    // "../outside" from dest's root stays at dest's root: dest/outside/victim.
    assert_eq!(
        fs::read(sandbox.dest().join("outside/victim")).unwrap(),
        b"evil"
    );
    let rooted = sandbox.dest().join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(rooted.join("dir/file")).unwrap(), b"evil");
}

#[test]
fn existing_symlinks_in_dest_are_replaced_not_followed() {
    let sandbox = Sandbox::new();
    let dest = sandbox.dest();
    std::os::unix::fs::symlink(sandbox.outside().join("victim"), dest.join("f")).unwrap();
    std::os::unix::fs::symlink(sandbox.outside().join("dir"), dest.join("d")).unwrap();
    std::os::unix::fs::symlink(sandbox.outside().join("victim"), dest.join("fifo")).unwrap();
    sandbox
        .apply(
            &tar(&[
                file("f", b"replaced"),
                dir("d"),
                file("d/new", b"inside"),
                entry("fifo", b'6', "", b""),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap();
    assert!(fs::symlink_metadata(dest.join("f")).unwrap().is_file());
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
    assert_eq!(fs::read(dest.join("d/new")).unwrap(), b"inside");
}

#[test]
fn hardlinks_must_stay_inside() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .apply(
            &tar(&[hardlink("h", "../../outside/victim")]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::HardlinkEscape { .. }), "{err}");

    // An absolute target is rooted at dest: /etc/passwd of dest, which does not exist.
    let err = sandbox
        .apply(
            &tar(&[hardlink("p", "/etc/passwd")]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::HardlinkTarget { .. }), "{err}");

    // Through a symlink pointing outside: resolved inside dest, so missing.
    let outside = sandbox.outside();
    let err = sandbox
        .apply(
            &tar(&[
                symlink("s", outside.to_str().unwrap()),
                hardlink("h2", "s/victim"),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::HardlinkTarget { .. }), "{err}");

    // A link to a symlink links the symlink itself, never its target.
    sandbox
        .apply(
            &tar(&[
                symlink("v", outside.join("victim").to_str().unwrap()),
                hardlink("v2", "v"),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap();
    assert!(fs::symlink_metadata(sandbox.dest().join("v2"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::metadata(outside.join("victim")).unwrap().nlink(), 1);

    // A legitimate link inside works.
    sandbox
        .apply(
            &tar(&[file("x/a", b"data"), hardlink("x/b", "x/a")]),
            &ApplyOptions::default(),
        )
        .unwrap();
    let a = fs::metadata(sandbox.dest().join("x/a")).unwrap();
    let b = fs::metadata(sandbox.dest().join("x/b")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn whiteouts_cannot_delete_outside() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside();
    for mode in [WhiteoutMode::Delete, WhiteoutMode::Overlay] {
        let options = ApplyOptions {
            whiteouts: mode,
            ..ApplyOptions::default()
        };
        sandbox
            .apply(
                &tar(&[
                    symlink("l", outside.to_str().unwrap()),
                    file("l/.wh.victim", b""),
                    symlink("m", "../outside"),
                    file("m/.wh..wh..opq", b""),
                    symlink("r", "/"),
                    file("r/.wh.outside", b""),
                ]),
                &options,
            )
            .unwrap();
        let err = sandbox
            .apply(&tar(&[file("../.wh.victim", b"")]), &options)
            .unwrap_err();
        assert!(matches!(err, ApplyError::Escape { .. }), "{err}");
        let err = sandbox
            .apply(&tar(&[file("a/.wh...", b"")]), &options)
            .unwrap_err();
        assert!(matches!(err, ApplyError::InvalidName { .. }), "{err}");
    }
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"precious");
    assert_eq!(fs::read(outside.join("dir/file")).unwrap(), b"precious too");
}

#[test]
fn non_directory_parents_and_loops_fail_cleanly() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .apply(
            &tar(&[file("plain", b"x"), file("plain/child", b"y")]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::NotADirectory { .. }), "{err}");
    assert!(err.to_string().contains("plain/child"), "{err}");

    let err = sandbox
        .apply(
            &tar(&[
                symlink("loop1", "loop2"),
                symlink("loop2", "loop1"),
                file("loop1/x", b""),
            ]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ApplyError::SymlinkLoop { .. }), "{err}");
}

#[test]
fn device_and_unknown_types() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .apply(
            &tar(&[entry("weird", b'Z', "", b"")]),
            &ApplyOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, ApplyError::UnsupportedType { kind: 'Z', .. }),
        "{err}"
    );
}

#[test]
fn truncated_layer_is_an_error_naming_the_entry() {
    let sandbox = Sandbox::new();
    let mut bytes = tar(&[file("first", b"ok"), file("second", &[7u8; 4000])]);
    bytes.truncate(512 * 3 + 100);
    let err = sandbox.apply(&bytes, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, ApplyError::Read { .. }), "{err}");
    assert!(err.to_string().contains("second"), "{err}");
}
