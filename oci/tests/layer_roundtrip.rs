//! Directory → layer → directory round trips (run as root: owners, devices, xattrs).

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use rustix::fs::FileType;
use strata_oci::compression::{decompress, CompressionKind};
use strata_oci::layer::{
    apply_layer, write_layer, ApplyError, ApplyOptions, SourceKind, WhiteoutMode, WriteError,
    WriteOptions, XattrPolicy,
};
use strata_oci::{Compression, Digest};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tree with every kind of entry a layer can hold.
fn build_tree(root: &Path) {
    write_file(&root.join("etc/hostname"), b"strata\n", 0o644);
    write_file(&root.join("bin/tool"), b"#!/bin/sh\necho hi\n", 0o4755);
    write_file(&root.join("empty"), b"", 0o600);
    let big: Vec<u8> = (0..3_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_file(&root.join("data/big.bin"), &big, 0o640);
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("var/empty-dir")).unwrap();

    // Hardlinks: three names for one inode.
    write_file(&root.join("data/original"), b"linked content", 0o644);
    fs::hard_link(root.join("data/original"), root.join("data/link1")).unwrap();
    fs::hard_link(root.join("data/original"), root.join("etc/link2")).unwrap();

    // Symlinks, relative and absolute (stored as-is), and a dangling one.
    symlink("../etc/hostname", root.join("bin/rel-link")).unwrap();
    symlink("/etc/hostname", root.join("bin/abs-link")).unwrap();
    symlink("/nowhere/at/all", root.join("dangling")).unwrap();

    // Special files.
    mknod(&root.join("fifo"), FileType::Fifo, 0o644, 0, 0);
    mknod(&root.join("null"), FileType::CharacterDevice, 0o666, 1, 3);
    mknod(&root.join("blk"), FileType::BlockDevice, 0o660, 7, 200);

    // Owners.
    write_file(&root.join("home/user/file"), b"mine", 0o600);
    chown(&root.join("home/user/file"), 1000, 1000);
    chown(&root.join("home/user"), 1000, 100);
    chown(&root.join("bin/rel-link"), 1234, 5678);
    write_file(&root.join("home/big-ids"), b"ids", 0o644);
    chown(&root.join("home/big-ids"), 3_000_000, 4_000_000);

    // Extended attributes, including a binary capability with a newline byte in it.
    set_xattr(&root.join("etc/hostname"), "user.comment", b"hello\nworld");
    let mut cap = vec![0u8; 20];
    cap[0] = 0x01; // VFS_CAP_REVISION_2 | effective
    cap[3] = 0x02;
    cap[4] = 0x0a; // permitted: a newline byte
    cap[5] = 0x04;
    set_xattr(&root.join("bin/tool"), "security.capability", &cap);

    // Long names: > 100 bytes in one component and > 255 bytes in total.
    let long_component = "n".repeat(150);
    let deep = format!("{}/{}/{}", "a".repeat(120), "b".repeat(120), long_component);
    write_file(&root.join(&deep), b"deep", 0o644);
    symlink(format!("../{}", "t".repeat(180)), root.join("long-target")).unwrap();

    // Names that need care: spaces, unicode, leading dots.
    write_file(&root.join("sp ace/ünïcødé.txt"), b"u", 0o644);
    write_file(&root.join(".hidden"), b"h", 0o644);

    // Fixed mtimes everywhere (set last, children before parents).
    let snapshot = snapshot(root);
    for (path, _) in snapshot.iter().rev() {
        set_mtime(
            &root.join(path),
            1_600_000_000 + path.as_os_str().len() as i64,
        );
    }
}

use std::os::unix::fs::PermissionsExt;

fn round_trip(compression: Compression) {
    let source = TempDir::new("rt-src");
    build_tree(source.path());
    let expected = snapshot(source.path());

    let options = WriteOptions {
        compression,
        ..WriteOptions::default()
    };
    let mut blob = Vec::new();
    let info = write_layer(source.path(), &options, &mut blob).unwrap();
    assert_eq!(info.size, blob.len() as u64);
    assert_eq!(info.digest, Digest::of(&blob));

    let dest = TempDir::new("rt-dest");
    let applied = apply_layer(&blob[..], dest.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(applied.compression, compression.kind());
    assert_eq!(applied.digest, info.digest);
    assert_eq!(applied.size, info.size);
    assert_eq!(applied.diff_id, info.diff_id);
    assert_eq!(applied.uncompressed_size, info.uncompressed_size);
    assert_eq!(applied.entries, info.entries);
    assert_eq!(applied.skipped_xattrs, 0);

    let actual = snapshot(dest.path());
    assert_same_tree(&expected, &actual);
}

#[test]
fn round_trip_plain() {
    assert!(is_root(), "these tests run as root");
    round_trip(Compression::None);
}

#[test]
fn round_trip_gzip() {
    round_trip(Compression::gzip());
}

#[test]
fn round_trip_zstd() {
    round_trip(Compression::zstd());
}

#[test]
fn layer_tar_is_canonical() {
    let source = TempDir::new("canon");
    build_tree(source.path());
    let write = |threads, compression| {
        let mut out = Vec::new();
        let options = WriteOptions {
            compression,
            threads,
            ..WriteOptions::default()
        };
        let info = write_layer(source.path(), &options, &mut out).unwrap();
        (out, info)
    };
    let (plain, plain_info) = write(1, Compression::None);
    let (gz1, gz1_info) = write(1, Compression::gzip());
    let (gz2, _) = write(2, Compression::gzip());
    let (zs1, zs1_info) = write(1, Compression::zstd());
    let (zs2, _) = write(2, Compression::zstd());
    assert_eq!(gz1, gz2, "gzip output must not depend on threads");
    assert_eq!(zs1, zs2, "zstd output must not depend on threads");
    assert_eq!(write(2, Compression::None).0, plain);
    // One tar, three encodings.
    assert_eq!(gz1_info.diff_id, plain_info.diff_id);
    assert_eq!(zs1_info.diff_id, plain_info.diff_id);
    assert_eq!(plain_info.digest, plain_info.diff_id);

    // Order: depth-first, children sorted by name bytes, parents first, dirs with '/'.
    let names = tar_names(&plain);
    let position = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} not in {names:?}"))
    };
    assert!(position("bin/") < position("bin/abs-link"));
    assert!(position("bin/abs-link") < position("bin/rel-link"));
    assert!(position("bin/tool") < position("blk"));
    assert!(position(".hidden") < position("bin/"));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("./") || n.starts_with('/')));

    // Headers: uname/gname empty, hardlinks as links to the first name.
    let mut archive = tar::Archive::new(&plain[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if name == "data/original" || name == "etc/link2" {
            assert_eq!(header.entry_type(), tar::EntryType::Link, "{name}");
            assert_eq!(
                entry.link_name_bytes().unwrap().as_ref(),
                b"data/link1",
                "{name}"
            );
        }
    }

    // GNU tar agrees with the listing.
    if has_tool("tar") {
        let dir = TempDir::new("canon-gnu");
        fs::write(dir.join("layer.tar"), &plain).unwrap();
        let out = std::process::Command::new("tar")
            .args(["--quoting-style=literal", "-tf"])
            .arg(dir.join("layer.tar"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, names);
        let out = std::process::Command::new("gzip")
            .arg("-t")
            .arg({
                let p = dir.join("layer.tar.gz");
                fs::write(&p, &gz1).unwrap();
                p
            })
            .output()
            .unwrap();
        assert!(out.status.success(), "gzip -t rejects our gzip");
    }
}

#[test]
fn mtime_clamp_rewrites_newer_times_only() {
    let source = TempDir::new("clamp");
    write_file(&source.join("old"), b"o", 0o644);
    write_file(&source.join("new"), b"n", 0o644);
    set_mtime(&source.join("old"), 1_000);
    set_mtime(&source.join("new"), 2_000_000_000);
    let options = WriteOptions {
        compression: Compression::None,
        mtime_clamp: Some(1_500_000_000),
        ..WriteOptions::default()
    };
    let mut out = Vec::new();
    write_layer(source.path(), &options, &mut out).unwrap();
    let dest = TempDir::new("clamp-dest");
    apply_layer(&out[..], dest.path(), &ApplyOptions::default()).unwrap();
    let tree = snapshot(dest.path());
    assert_eq!(tree[Path::new("old")].mtime, 1_000);
    assert_eq!(tree[Path::new("new")].mtime, 1_500_000_000);
}

#[test]
fn xattr_policies() {
    let source = TempDir::new("xattr-policy");
    write_file(&source.join("f"), b"x", 0o755);
    set_xattr(&source.join("f"), "user.keep", b"1");
    let mut cap = vec![0u8; 24];
    cap[0] = 0x01;
    cap[3] = 0x03; // revision 3 with a root uid: written as revision 2
    cap[4] = 0x01;
    set_xattr(&source.join("f"), "security.capability", &cap);
    let apply = |policy| {
        let mut out = Vec::new();
        let options = WriteOptions {
            compression: Compression::None,
            xattrs: policy,
            ..WriteOptions::default()
        };
        write_layer(source.path(), &options, &mut out).unwrap();
        let dest = TempDir::new("xattr-policy-dest");
        apply_layer(&out[..], dest.path(), &ApplyOptions::default()).unwrap();
        list_xattrs(&dest.join("f"))
    };
    let all = apply(XattrPolicy::All);
    assert_eq!(all.get("user.keep").map(Vec::as_slice), Some(&b"1"[..]));
    let written_cap = &all["security.capability"];
    assert_eq!(written_cap.len(), 20);
    assert_eq!(written_cap[3], 2);
    let caps = apply(XattrPolicy::CapabilitiesOnly);
    assert!(caps.contains_key("security.capability"));
    assert!(!caps.contains_key("user.keep"));
    assert!(apply(XattrPolicy::None).is_empty());
}

/// Builds an overlay upper dir by hand: whiteout device, opaque dir, overlay xattrs.
#[test]
fn overlay_markers_become_oci_whiteouts() {
    let upper = TempDir::new("upper");
    mknod(&upper.join("gone"), FileType::CharacterDevice, 0o000, 0, 0);
    fs::create_dir(upper.join("opq")).unwrap();
    set_xattr(&upper.join("opq"), "trusted.overlay.opaque", b"y");
    write_file(&upper.join("opq/new"), b"new", 0o644);
    fs::create_dir(upper.join("merged")).unwrap();
    set_xattr(&upper.join("merged"), "trusted.overlay.origin", b"\x00\x01");
    mknod(
        &upper.join("merged/also-gone"),
        FileType::CharacterDevice,
        0o000,
        0,
        0,
    );
    fs::create_dir(upper.join("uopq")).unwrap();
    set_xattr(&upper.join("uopq"), "user.overlay.opaque", b"y");

    let mut out = Vec::new();
    let options = WriteOptions {
        compression: Compression::None,
        source: SourceKind::Overlay,
        ..WriteOptions::default()
    };
    write_layer(upper.path(), &options, &mut out).unwrap();
    let names = tar_names(&out);
    assert_eq!(
        names,
        [
            ".wh.gone",
            "merged/",
            "merged/.wh.also-gone",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new",
            "uopq/",
            "uopq/.wh..wh..opq",
        ]
    );
    // Overlay's private xattrs never reach the tar.
    let dest = TempDir::new("upper-check");
    apply_layer(&out[..], dest.path(), &ApplyOptions::default()).unwrap();
    assert!(list_xattrs(&dest.join("merged")).is_empty());

    // The same directory read as a plain directory keeps the device as a device.
    let mut plain = Vec::new();
    let options = WriteOptions {
        compression: Compression::None,
        source: SourceKind::Plain,
        ..WriteOptions::default()
    };
    write_layer(upper.path(), &options, &mut plain).unwrap();
    assert!(tar_names(&plain).contains(&"gone".to_owned()));

    // Applied onto a merged lower: whiteouts delete, opaque hides old content.
    let lower = TempDir::new("lower");
    write_file(&lower.join("gone"), b"old", 0o644);
    write_file(&lower.join("kept"), b"kept", 0o644);
    write_file(&lower.join("opq/old"), b"old", 0o644);
    write_file(&lower.join("opq/sub/deeper"), b"old", 0o644);
    write_file(&lower.join("merged/also-gone"), b"old", 0o644);
    write_file(&lower.join("merged/stays"), b"old", 0o644);
    apply_layer(&out[..], lower.path(), &ApplyOptions::default()).unwrap();
    let tree = snapshot(lower.path());
    let paths: Vec<String> = tree.keys().map(|p| p.display().to_string()).collect();
    assert_eq!(
        paths,
        ["kept", "merged", "merged/stays", "opq", "opq/new", "uopq"]
    );

    // Applied as an overlay lowerdir: whiteouts become overlay markers again.
    for (mode, attribute) in [
        (WhiteoutMode::Overlay, "trusted.overlay.opaque"),
        (WhiteoutMode::OverlayUserXattr, "user.overlay.opaque"),
    ] {
        let layer_dir = TempDir::new("as-lower");
        let options = ApplyOptions {
            whiteouts: mode,
            ..ApplyOptions::default()
        };
        apply_layer(&out[..], layer_dir.path(), &options).unwrap();
        let tree = snapshot(layer_dir.path());
        let gone = &tree[Path::new("gone")];
        assert_eq!((gone.kind, gone.rdev), ("char", 0));
        assert_eq!(tree[Path::new("merged/also-gone")].kind, "char");
        assert_eq!(
            get_xattr(&layer_dir.join("opq"), attribute).as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            get_xattr(&layer_dir.join("uopq"), attribute).as_deref(),
            Some(&b"y"[..])
        );
    }
}

#[test]
fn overlay_metacopy_and_redirect_are_refused() {
    let upper = TempDir::new("metacopy");
    write_file(&upper.join("stub"), b"", 0o644);
    set_xattr(&upper.join("stub"), "trusted.overlay.metacopy", b"");
    let options = WriteOptions {
        compression: Compression::None,
        source: SourceKind::Overlay,
        ..WriteOptions::default()
    };
    let err = write_layer(upper.path(), &options, Vec::new()).unwrap_err();
    assert!(matches!(err, WriteError::OverlayMetacopy { .. }), "{err}");
    assert!(err.to_string().contains("metacopy=off"));

    let upper = TempDir::new("redirect");
    fs::create_dir(upper.join("moved")).unwrap();
    set_xattr(&upper.join("moved"), "trusted.overlay.redirect", b"/orig");
    let err = write_layer(upper.path(), &options, Vec::new()).unwrap_err();
    assert!(matches!(err, WriteError::OverlayRedirect { .. }), "{err}");
}

/// A real overlayfs mount: the upper dir of a changed overlay, written as a layer and
/// applied onto a copy of the lower dir, reproduces the merged view.
#[test]
fn real_overlay_upper_dir_reproduces_merged_view() {
    let base = TempDir::new("overlay");
    let (lower, upper, work, merged) = (
        base.join("lower"),
        base.join("upper"),
        base.join("work"),
        base.join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir_all(d).unwrap();
    }
    write_file(&lower.join("keep"), b"keep", 0o644);
    write_file(&lower.join("delete-me"), b"x", 0o644);
    write_file(&lower.join("dir/old-a"), b"a", 0o644);
    write_file(&lower.join("dir/old-b"), b"b", 0o644);
    write_file(&lower.join("other/x"), b"x", 0o644);
    write_file(&lower.join("other/y"), b"y", 0o644);
    write_file(&lower.join("modify"), b"before", 0o644);

    let options = format!(
        "lowerdir={},upperdir={},workdir={},metacopy=off,redirect_dir=off",
        lower.display(),
        upper.display(),
        work.display()
    );
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()
        .expect("mount is available");
    assert!(status.success(), "overlay mount failed");
    let changes = || -> std::io::Result<()> {
        fs::remove_file(merged.join("delete-me"))?;
        fs::remove_dir_all(merged.join("dir"))?;
        fs::create_dir(merged.join("dir"))?;
        fs::write(merged.join("dir/new"), b"new")?;
        fs::remove_file(merged.join("other/x"))?;
        fs::write(merged.join("other/z"), b"z")?;
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(merged.join("modify"))?;
        f.write_all(b" after")?;
        fs::write(merged.join("added"), b"added")?;
        Ok(())
    };
    let result = changes();
    let expected = snapshot(&merged);
    let unmount = std::process::Command::new("umount").arg(&merged).status();
    result.unwrap();
    assert!(unmount.unwrap().success());

    let mut layer = Vec::new();
    let write_options = WriteOptions {
        source: SourceKind::Overlay,
        ..WriteOptions::default()
    };
    write_layer(&upper, &write_options, &mut layer).unwrap();
    let (_, mut plain) = decompress(&layer[..]).unwrap();
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(&mut plain, &mut tar_bytes).unwrap();
    let names = tar_names(&tar_bytes);
    assert!(names.contains(&".wh.delete-me".to_owned()), "{names:?}");
    assert!(names.contains(&"dir/.wh..wh..opq".to_owned()), "{names:?}");
    assert!(names.contains(&"other/.wh.x".to_owned()), "{names:?}");

    apply_layer(&layer[..], &lower, &ApplyOptions::default()).unwrap();
    let mut actual = snapshot(&lower);
    // Directory mtimes of the lower copy changed where entries were deleted; compare the
    // rest exactly.
    let mut expected = expected;
    for tree in [&mut actual, &mut expected] {
        for node in tree.values_mut() {
            if node.kind == "dir" {
                node.mtime = 0;
            }
        }
    }
    assert_same_tree(&expected, &actual);
    assert_eq!(
        decompress(&layer[..]).unwrap().0,
        CompressionKind::Gzip,
        "default compression is gzip"
    );
}

#[test]
fn apply_replaces_types_and_keeps_same_layer_entries() {
    // A later layer replaces a file by a directory and a directory by a file.
    let first = TempDir::new("replace-1");
    write_file(&first.join("a"), b"file", 0o644);
    write_file(&first.join("b/inner"), b"inner", 0o644);
    let second = TempDir::new("replace-2");
    write_file(&second.join("a/inside"), b"now a dir", 0o644);
    write_file(&second.join("b"), b"now a file", 0o644);
    let layer = |dir: &Path| {
        let mut out = Vec::new();
        write_layer(dir, &WriteOptions::default(), &mut out).unwrap();
        out
    };
    let dest = TempDir::new("replace-dest");
    apply_layer(
        &layer(first.path())[..],
        dest.path(),
        &ApplyOptions::default(),
    )
    .unwrap();
    apply_layer(
        &layer(second.path())[..],
        dest.path(),
        &ApplyOptions::default(),
    )
    .unwrap();
    assert_eq!(fs::read(dest.join("a/inside")).unwrap(), b"now a dir");
    assert_eq!(fs::read(dest.join("b")).unwrap(), b"now a file");
}

#[test]
fn apply_rejects_garbage_and_bad_destinations() {
    let dest = TempDir::new("garbage");
    let err = apply_layer(
        &b"this is not a tar archive at all, just text"[..],
        dest.path(),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Read { .. }), "{err}");
    let err = apply_layer(
        &[0x1f, 0x8b, 0, 1, 2][..],
        dest.path(),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Read { .. }), "{err}");
    let missing = dest.join("missing");
    let err = apply_layer(&[][..], &missing, &ApplyOptions::default()).unwrap_err();
    assert!(matches!(err, ApplyError::Destination { .. }), "{err}");
    // An empty stream is an empty layer.
    let applied = apply_layer(&[][..], dest.path(), &ApplyOptions::default()).unwrap();
    assert_eq!(applied.entries, 0);
}

/// GNU tar (a third-party reader) extracts our layer to the same tree.
#[test]
fn gnu_tar_extracts_our_layers() {
    if !has_tool("tar") {
        eprintln!("skipping: GNU tar is not installed");
        return;
    }
    let source = TempDir::new("gnu-src");
    build_tree(source.path());
    let expected = snapshot(source.path());
    let mut layer = Vec::new();
    let options = WriteOptions {
        compression: Compression::None,
        ..WriteOptions::default()
    };
    write_layer(source.path(), &options, &mut layer).unwrap();
    let work = TempDir::new("gnu-work");
    fs::write(work.join("layer.tar"), &layer).unwrap();
    let dest = work.join("out");
    fs::create_dir(&dest).unwrap();
    let output = std::process::Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--same-owner",
            "-xpf",
        ])
        .arg(work.join("layer.tar"))
        .arg("-C")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_same_tree(&expected, &snapshot(&dest));
}

/// Layers made by GNU tar itself (GNU long names, `./` prefixes; and POSIX/PAX format)
/// apply to the same tree.
#[test]
fn layers_from_gnu_tar_apply() {
    if !has_tool("tar") {
        eprintln!("skipping: GNU tar is not installed");
        return;
    }
    let source = TempDir::new("gnu-made");
    build_tree(source.path());
    let expected = snapshot(source.path());
    for format in ["gnu", "posix"] {
        let work = TempDir::new("gnu-made-work");
        let archive = work.join("layer.tar");
        let mut command = std::process::Command::new("tar");
        if format == "posix" {
            command.args(["--xattrs", "--xattrs-include=*"]);
        }
        let output = command
            .arg("--numeric-owner")
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(source.path())
            .arg(".")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dest = TempDir::new("gnu-made-dest");
        let file = fs::File::open(&archive).unwrap();
        apply_layer(file, dest.path(), &ApplyOptions::default()).unwrap();
        let mut actual = snapshot(dest.path());
        let mut expected = expected.clone();
        if format == "gnu" {
            // The GNU format has no place for xattrs; compare everything else.
            for tree in [&mut actual, &mut expected] {
                for node in tree.values_mut() {
                    node.xattrs.clear();
                }
            }
        }
        assert_same_tree(&expected, &actual);
    }
}
