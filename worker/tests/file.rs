//! File ops end to end, as root, in temporary directories: each BuildKit COPY/ADD/mkdir/
//! mkfile/rm rule with the expected tree (modes, owners, nanosecond mtimes, symlinks, hard
//! links), whiteouts and opaque directories read back through `LayeredView` *and* through a
//! real read-only overlay mount (the kernel must agree), hostile symlinks in the parent
//! chain and hostile archives.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, Timestamps, CWD};
use strata_solver::op::{Chmod, FileAction, FileOp, Owner};
use strata_worker::file::{apply, FileError, FileKind, LayeredView, SourceFs, Timespec};

// ---------------------------------------------------------------------------------------
// Helpers

/// A directory removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-file-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }

    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn at(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

fn put(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = at(root, rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(root: &Path, rel: &str, mode: u32) {
    let p = at(root, rel);
    fs::create_dir_all(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn link(root: &Path, rel: &str, target: &str) {
    let p = at(root, rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(target, &p).unwrap();
}

fn chown(root: &Path, rel: &str, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(at(root, rel), Some(uid), Some(gid)).unwrap();
}

fn set_mtime(root: &Path, rel: &str, sec: i64, nsec: i64) {
    let ts = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(CWD, at(root, rel), &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn whiteout(root: &Path, rel: &str) {
    let p = at(root, rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    rustix::fs::mknodat(CWD, &p, FileType::CharacterDevice, Mode::empty(), 0).unwrap();
}

fn opaque(root: &Path, rel: &str) {
    rustix::fs::lsetxattr(
        at(root, rel),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

fn is_opaque(root: &Path, rel: &str) -> bool {
    let mut buf = [0u8; 8];
    matches!(
        rustix::fs::lgetxattr(at(root, rel), "trusted.overlay.opaque", &mut buf[..]),
        Ok(1)
    ) && buf[0] == b'y'
}

fn is_whiteout(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(at(root, rel)).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_char_device() && m.rdev() == 0
    })
}

fn meta(root: &Path, rel: &str) -> fs::Metadata {
    fs::symlink_metadata(at(root, rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn exists(root: &Path, rel: &str) -> bool {
    fs::symlink_metadata(at(root, rel)).is_ok()
}

/// One entry of a tree, everything a layer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Not compared for directories (overlay and a user-space view agree, but directories
    /// touched by a write have "now").
    mtime: Option<Timespec>,
    content: Vec<u8>,
    /// First path (in walk order) of the hard-link group.
    link_group: Option<String>,
}

fn tree(fs: &dyn SourceFs) -> BTreeMap<String, Node> {
    fn walk(
        fs: &dyn SourceFs,
        dir: &Path,
        out: &mut BTreeMap<String, Node>,
        groups: &mut BTreeMap<(u64, u64), String>,
    ) {
        for name in fs.read_dir(dir).unwrap() {
            let path = dir.join(&name);
            let stat = fs.lstat(&path).unwrap().unwrap();
            let key = format!("/{}", path.display());
            let content = match stat.kind {
                FileKind::File => {
                    let mut data = Vec::new();
                    std::io::Read::read_to_end(&mut fs.open(&path).unwrap(), &mut data).unwrap();
                    data
                }
                FileKind::Symlink => fs.read_link(&path).unwrap().as_os_str().as_bytes().to_vec(),
                _ => Vec::new(),
            };
            let link_group = stat
                .hardlink
                .map(|id| groups.entry(id).or_insert_with(|| key.clone()).clone());
            out.insert(
                key,
                Node {
                    kind: stat.kind,
                    mode: stat.mode,
                    uid: stat.uid,
                    gid: stat.gid,
                    mtime: (stat.kind != FileKind::Dir).then_some(stat.mtime),
                    content,
                    link_group,
                },
            );
            if stat.kind == FileKind::Dir {
                walk(fs, &path, out, groups);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(fs, Path::new(""), &mut out, &mut BTreeMap::new());
    out
}

/// A read-only overlay mount of `layers` (nearest first), unmounted on drop.
struct Overlay {
    mnt: PathBuf,
    _empty: Tmp,
}

impl Overlay {
    fn mount(layers: &[PathBuf]) -> Overlay {
        let empty = Tmp::new();
        let mnt = empty.sub("mnt");
        let bottom = empty.sub("bottom");
        let mut lower: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
        lower.push(bottom.display().to_string());
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("ro,lowerdir={}", lower.join(":")))
            .arg(&mnt)
            .status()
            .unwrap();
        assert!(status.success(), "overlay mount failed");
        Overlay { mnt, _empty: empty }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// The result (diff over lowers) read through the chain view, checked against the
/// kernel's overlay view of the same directories.
fn result_tree(diff: &Path, lowers: &[PathBuf]) -> BTreeMap<String, Node> {
    let mut layers = vec![diff.to_path_buf()];
    layers.extend(lowers.iter().cloned());
    let ours = tree(&LayeredView::chain(layers.clone()));
    let overlay = Overlay::mount(&layers);
    let kernel = tree(&LayeredView::plain(&overlay.mnt));
    assert_eq!(
        ours, kernel,
        "the kernel's overlay disagrees with LayeredView"
    );
    ours
}

fn node<'a>(t: &'a BTreeMap<String, Node>, path: &str) -> &'a Node {
    t.get(path)
        .unwrap_or_else(|| panic!("{path} missing from {:#?}", t.keys().collect::<Vec<_>>()))
}

fn copy_action(input: usize, src: &str, dest: &str) -> FileAction {
    // The Dockerfile form: what `COPY src dest` lowers to.
    FileAction::Copy {
        source_input: input,
        src: src.into(),
        dest: dest.into(),
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
    }
}

fn with(mut action: FileAction, f: impl FnOnce(&mut CopyFields<'_>)) -> FileAction {
    if let FileAction::Copy {
        owner,
        chmod,
        follow_symlinks,
        dir_contents_only,
        allow_wildcard,
        allow_empty_wildcard,
        exclude,
        parents,
        unpack,
        create_dest_path,
        mtime,
        ..
    } = &mut action
    {
        f(&mut CopyFields {
            owner,
            chmod,
            follow_symlinks,
            dir_contents_only,
            allow_wildcard,
            allow_empty_wildcard,
            exclude,
            parents,
            unpack,
            create_dest_path,
            mtime,
        });
    }
    action
}

struct CopyFields<'a> {
    owner: &'a mut Option<Owner>,
    chmod: &'a mut Option<Chmod>,
    follow_symlinks: &'a mut bool,
    dir_contents_only: &'a mut bool,
    allow_wildcard: &'a mut bool,
    allow_empty_wildcard: &'a mut bool,
    exclude: &'a mut Vec<String>,
    parents: &'a mut bool,
    unpack: &'a mut bool,
    create_dest_path: &'a mut bool,
    mtime: &'a mut Option<i64>,
}

/// Runs `actions` with input 0 = the base chain `lowers` and input 1 = `source`.
fn run(
    diff: &Path,
    lowers: &[PathBuf],
    source: &dyn SourceFs,
    actions: Vec<FileAction>,
) -> Result<(), FileError> {
    let base = LayeredView::chain(lowers.to_vec());
    let op = FileOp {
        has_base: true,
        actions,
    };
    apply(&op, diff, lowers, &[&base, source])
}

fn owner(user: &str, group: &str) -> Option<Owner> {
    Some(Owner {
        user: user.into(),
        group: group.into(),
    })
}

/// A base layer with a small root filesystem.
fn base_layer(tmp: &Tmp) -> PathBuf {
    let base = tmp.sub("base");
    mkdir(&base, "etc", 0o755);
    put(
        &base,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\ndaemon:x:2:2::/:/bin/false\n",
        0o644,
    );
    put(
        &base,
        "etc/group",
        b"root:x:0:\nstaff:x:50:\napp:x:1001:\n",
        0o644,
    );
    mkdir(&base, "usr/bin", 0o755);
    put(&base, "usr/bin/tool", b"tool", 0o755);
    mkdir(&base, "usr/share", 0o750);
    chown(&base, "usr/share", 7, 8);
    set_mtime(&base, "usr/share", 1_000_000, 111);
    set_mtime(&base, "usr", 2_000_000, 222);
    set_mtime(&base, "usr/bin", 3_000_000, 333);
    base
}

// ---------------------------------------------------------------------------------------
// The read view

#[test]
fn layered_view_applies_whiteouts_and_opaque_dirs_like_the_kernel() {
    let tmp = Tmp::new();
    let l2 = tmp.sub("l2");
    put(&l2, "a/old", b"old", 0o644);
    put(&l2, "a/keep", b"keep", 0o600);
    put(&l2, "b/hidden", b"x", 0o644);
    put(&l2, "gone", b"gone", 0o644);
    put(&l2, "c", b"file below dir", 0o644);
    let l1 = tmp.sub("l1");
    whiteout(&l1, "a/old");
    put(&l1, "a/new", b"new", 0o640);
    mkdir(&l1, "b", 0o700);
    opaque(&l1, "b");
    put(&l1, "b/shown", b"y", 0o644);
    whiteout(&l1, "gone");
    mkdir(&l1, "c", 0o755);
    let view = LayeredView::chain([l1.clone(), l2.clone()]);
    let t = tree(&view);
    let names: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(names, ["/a", "/a/keep", "/a/new", "/b", "/b/shown", "/c"]);
    assert_eq!(node(&t, "/b").mode, 0o700);
    // The kernel agrees.
    let overlay = Overlay::mount(&[l1, l2]);
    assert_eq!(t, tree(&LayeredView::plain(&overlay.mnt)));
}

// ---------------------------------------------------------------------------------------
// COPY

#[test]
fn copy_file_into_dir_with_trailing_slash_keeps_metadata() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "testfile", b"hello", 0o640);
    chown(&ctx, "testfile", 1234, 5678);
    set_mtime(&ctx, "testfile", 1_600_000_000, 123_456_789);
    let diff = tmp.sub("diff");
    let lowers = vec![base];
    run(
        &diff,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![copy_action(1, "/testfile", "/sample/")],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    let dir = node(&t, "/sample");
    assert_eq!(
        (dir.kind, dir.mode, dir.uid, dir.gid),
        (FileKind::Dir, 0o755, 0, 0)
    );
    let f = node(&t, "/sample/testfile");
    assert_eq!((f.mode, f.uid, f.gid), (0o640, 1234, 5678));
    assert_eq!(f.content, b"hello");
    assert_eq!(
        f.mtime,
        Some(Timespec {
            sec: 1_600_000_000,
            nsec: 123_456_789
        })
    );
    // Only what changed is in the diff.
    let mut in_diff: Vec<String> = tree(&LayeredView::plain(&diff)).into_keys().collect();
    in_diff.sort();
    assert_eq!(in_diff, ["/sample", "/sample/testfile"]);

    // Without a trailing slash the file takes the destination's name.
    let diff2 = tmp.sub("diff2");
    run(
        &diff2,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![copy_action(1, "/testfile", "/renamed")],
    )
    .unwrap();
    assert_eq!(fs::read(diff2.join("renamed")).unwrap(), b"hello");
}

#[test]
fn copy_tree_keeps_modes_owners_times_links_xattrs() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    mkdir(&ctx, "dir", 0o750);
    put(&ctx, "dir/exe", b"#!/bin/sh\n", 0o4755);
    put(&ctx, "dir/sub/deep", b"deep", 0o600);
    chown(&ctx, "dir/sub/deep", 10, 20);
    mkdir(&ctx, "dir/sub", 0o711);
    chown(&ctx, "dir/sub", 30, 40);
    link(&ctx, "dir/abs", "/etc/passwd");
    link(&ctx, "dir/rel", "../escape");
    fs::hard_link(at(&ctx, "dir/exe"), at(&ctx, "dir/exe-hard")).unwrap();
    rustix::fs::mknodat(
        CWD,
        at(&ctx, "dir/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    rustix::fs::lsetxattr(
        at(&ctx, "dir/sub/deep"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    set_mtime(&ctx, "dir/sub", 1_500_000_000, 42);
    set_mtime(&ctx, "dir", 1_400_000_000, 7);
    set_mtime(&ctx, "dir/abs", 1_300_000_000, 5);
    let diff = tmp.sub("diff");
    let lowers = vec![base];
    // `COPY dir /app` (a directory's contents into a new destination).
    run(
        &diff,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![copy_action(1, "/dir", "/app")],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    // The destination made for the contents: 0755, root, but the source dir's times.
    let app = node(&t, "/app");
    assert_eq!((app.mode, app.uid, app.gid), (0o755, 0, 0));
    let app_mtime = meta(&diff, "app");
    assert_eq!(
        (app_mtime.mtime(), app_mtime.mtime_nsec()),
        (1_400_000_000, 7)
    );
    let sub = node(&t, "/app/sub");
    assert_eq!((sub.mode, sub.uid, sub.gid), (0o711, 30, 40));
    let sub_meta = meta(&diff, "app/sub");
    assert_eq!(
        (sub_meta.mtime(), sub_meta.mtime_nsec()),
        (1_500_000_000, 42)
    );
    assert_eq!(node(&t, "/app/exe").mode, 0o4755);
    let deep = node(&t, "/app/sub/deep");
    assert_eq!((deep.mode, deep.uid, deep.gid), (0o600, 10, 20));
    assert_eq!(node(&t, "/app/abs").content, b"/etc/passwd");
    assert_eq!(node(&t, "/app/abs").kind, FileKind::Symlink);
    assert_eq!(
        node(&t, "/app/abs").mtime,
        Some(Timespec {
            sec: 1_300_000_000,
            nsec: 5
        })
    );
    assert_eq!(node(&t, "/app/rel").content, b"../escape");
    assert_eq!(node(&t, "/app/fifo").kind, FileKind::Fifo);
    assert_eq!(
        node(&t, "/app/exe").link_group,
        node(&t, "/app/exe-hard").link_group
    );
    assert!(node(&t, "/app/exe").link_group.is_some());
    let mut buf = [0u8; 16];
    let n = rustix::fs::lgetxattr(at(&diff, "app/sub/deep"), "user.note", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"kept");
}

#[test]
fn copy_wildcards_and_missing_sources() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "a.txt", b"a", 0o644);
    put(&ctx, "b.txt", b"b", 0o644);
    put(&ctx, "c.md", b"c", 0o644);
    put(&ctx, "sub/x/dir2/foo", b"foo", 0o644);
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    run(
        &diff,
        &lowers,
        &ctxv,
        vec![
            copy_action(1, "/*.txt", "/out/"),
            copy_action(1, "/sub/*/dir2/foo", "/multi/"),
            copy_action(1, "/nomatch*", "/empty/"),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    assert!(t.contains_key("/out/a.txt") && t.contains_key("/out/b.txt"));
    assert!(!t.contains_key("/out/c.md"));
    assert_eq!(node(&t, "/multi/foo").content, b"foo");
    // An empty wildcard copies nothing (and creates nothing).
    assert!(!t.contains_key("/empty"));

    let strict = with(copy_action(1, "/nomatch*", "/x/"), |c| {
        *c.allow_empty_wildcard = false
    });
    let err = run(&tmp.sub("d2"), &lowers, &ctxv, vec![strict]).unwrap_err();
    assert_eq!(err.to_string(), r#""/nomatch*": not found"#);
    let err = run(
        &tmp.sub("d3"),
        &lowers,
        &ctxv,
        vec![copy_action(1, "/badfile", "/x/")],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), r#""/badfile": not found"#);
}

#[test]
fn copy_chown_resolves_names_in_the_destination() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "dir/f", b"f", 0o644);
    chown(&ctx, "dir/f", 99, 99);
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    let actions = vec![
        with(copy_action(1, "/dir", "/home/app/new/"), |c| {
            *c.owner = owner("app", "")
        }),
        with(copy_action(1, "/dir/f", "/g1"), |c| {
            *c.owner = owner("app", "staff")
        }),
        with(copy_action(1, "/dir/f", "/g2"), |c| {
            *c.owner = owner("1234", "")
        }),
        with(copy_action(1, "/dir/f", "/g3"), |c| {
            *c.owner = owner("daemon", "77")
        }),
        // BuildKit resolves an unknown name to 0, silently.
        with(copy_action(1, "/dir/f", "/g4"), |c| {
            *c.owner = owner("ghost", "nogroup")
        }),
    ];
    run(&diff, &lowers, &ctxv, actions).unwrap();
    let t = result_tree(&diff, &lowers);
    // Parents created by the copy belong to the --chown user, as BuildKit makes them.
    for p in ["/home", "/home/app", "/home/app/new", "/home/app/new/f"] {
        let n = node(&t, p);
        assert_eq!((n.uid, n.gid), (1000, 1001), "{p}");
    }
    let ids = |p: &str| (node(&t, p).uid, node(&t, p).gid);
    assert_eq!(ids("/g1"), (1000, 50));
    assert_eq!(ids("/g2"), (1234, 1234));
    assert_eq!(ids("/g3"), (2, 77));
    assert_eq!(ids("/g4"), (0, 0));

    // /etc/passwd reached through an absolute symlink stays inside the destination.
    let tmp2 = Tmp::new();
    let lower = tmp2.sub("lower");
    put(&lower, "real/passwd", b"web:x:33:33::/:/bin/sh\n", 0o644);
    mkdir(&lower, "etc", 0o755);
    link(&lower, "etc/passwd", "/real/passwd");
    let diff = tmp2.sub("diff");
    run(
        &diff,
        std::slice::from_ref(&lower),
        &ctxv,
        vec![with(copy_action(1, "/dir/f", "/w"), |c| {
            *c.owner = owner("web", "")
        })],
    )
    .unwrap();
    assert_eq!((meta(&diff, "w").uid(), meta(&diff, "w").gid()), (33, 33));
}

#[test]
fn copy_chmod_octal_and_symbolic() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "foo", b"foo", 0o666);
    put(&ctx, "tree/run.sh", b"x", 0o744);
    put(&ctx, "tree/data", b"d", 0o640);
    mkdir(&ctx, "tree/sub", 0o700);
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    let octal = |mode: u32, src: &str, dest: &str| {
        with(copy_action(1, src, dest), move |c| {
            *c.chmod = Some(Chmod::Octal(mode))
        })
    };
    let symbolic = |mode: &str, src: &str, dest: &str| {
        let mode = mode.to_string();
        with(copy_action(1, src, dest), move |c| {
            *c.chmod = Some(Chmod::Symbolic(mode))
        })
    };
    run(
        &diff,
        &lowers,
        &ctxv,
        vec![
            octal(0o777, "/foo", "/parent/foo"),
            octal(0o770, "/foo", "/p2/sub/foo"),
            octal(0o4755, "/foo", "/suid"),
            symbolic("go-w", "/foo", "/gw"),
            symbolic("a+X", "/tree", "/sym/"),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    let mode = |p: &str| node(&t, p).mode;
    // testCopyChmod: parents created by the copy get the mode too.
    assert_eq!((mode("/parent"), mode("/parent/foo")), (0o777, 0o777));
    assert_eq!(
        (mode("/p2"), mode("/p2/sub"), mode("/p2/sub/foo")),
        (0o770, 0o770, 0o770)
    );
    assert_eq!(mode("/suid"), 0o4755);
    assert_eq!(mode("/gw"), 0o644);
    // Symbolic modes apply to files and directories, relative to each source mode; the
    // created destination directory gets 0755.
    assert_eq!(mode("/sym"), 0o755);
    assert_eq!(mode("/sym/run.sh"), 0o755);
    assert_eq!(mode("/sym/data"), 0o640);
    assert_eq!(mode("/sym/sub"), 0o711);
}

#[test]
fn copy_exclude_parents_and_mtime() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "src/keep.go", b"k", 0o644);
    put(&ctx, "src/skip.png", b"s", 0o644);
    put(&ctx, "src/img/x.png", b"x", 0o644);
    put(&ctx, "src/img/y.go", b"y", 0o644);
    put(&ctx, "foo1/foo2/bar", b"bar", 0o644);
    put(&ctx, "foo1/foo2/baz", b"baz", 0o644);
    put(&ctx, "foo1/other", b"o", 0o644);
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    run(
        &diff,
        &lowers,
        &ctxv,
        vec![
            with(copy_action(1, "/src", "/ex/"), |c| {
                *c.exclude = vec!["*.png".into(), "*/*.png".into()]
            }),
            with(copy_action(1, "/foo1/foo2/bar", "/par/"), |c| {
                *c.parents = true
            }),
            with(copy_action(1, "/foo1/./foo2/ba*", "/piv/"), |c| {
                *c.parents = true
            }),
            with(copy_action(1, "/foo1/other", "/timed/"), |c| {
                *c.mtime = Some(1_234_567_890)
            }),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    assert!(keys.contains(&"/ex/keep.go") && keys.contains(&"/ex/img/y.go"));
    assert!(!keys.contains(&"/ex/skip.png") && !keys.contains(&"/ex/img/x.png"));
    assert_eq!(node(&t, "/par/foo1/foo2/bar").content, b"bar");
    assert!(!keys.contains(&"/par/foo1/other"));
    assert!(keys.contains(&"/piv/foo2/bar") && keys.contains(&"/piv/foo2/baz"));
    assert!(!keys.contains(&"/piv/foo1"));
    assert_eq!(
        node(&t, "/timed/other").mtime,
        Some(Timespec::from_secs(1_234_567_890))
    );
    assert_eq!(meta(&diff, "timed").mtime(), 1_234_567_890);
    // A missing path with --parents is BuildKit's checksum error.
    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &ctxv,
        vec![with(copy_action(1, "/nonexistent-file", "/out/"), |c| {
            *c.parents = true
        })],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), r#""/nonexistent-file": not found"#);
}

#[test]
fn copy_overwrites_as_buildkit_does() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    put(&base, "opt/conf", b"old", 0o600);
    mkdir(&base, "opt/d", 0o700);
    chown(&base, "opt/d", 5, 5);
    put(&base, "opt/d/x", b"lower", 0o644);
    put(&base, "plain", b"file", 0o644);
    let ctx = tmp.sub("ctx");
    put(&ctx, "opt/conf", b"new", 0o644);
    mkdir(&ctx, "opt/d", 0o755);
    put(&ctx, "opt/d/y", b"y", 0o644);
    put(&ctx, "plain/inner", b"i", 0o644);
    put(&ctx, "clash/opt", b"f", 0o644);
    mkdir(&ctx, "clash2/x", 0o755);
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    // `COPY opt /opt`: merges into the existing directory tree.
    run(&diff, &lowers, &ctxv, vec![copy_action(1, "/opt", "/opt")]).unwrap();
    let t = result_tree(&diff, &lowers);
    assert_eq!(node(&t, "/opt/conf").content, b"new");
    assert_eq!(node(&t, "/opt/conf").mode, 0o644);
    // A nested existing directory takes the source's metadata; the lower entry stays.
    let d = node(&t, "/opt/d");
    assert_eq!((d.mode, d.uid, d.gid), (0o755, 0, 0));
    assert_eq!(node(&t, "/opt/d/x").content, b"lower");
    assert_eq!(node(&t, "/opt/d/y").content, b"y");
    assert!(!exists(&diff, "opt/d/x"), "unchanged lower file copied up");

    // A directory onto a file, and a file onto a directory, fail with BuildKit's words.
    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &ctxv,
        vec![copy_action(1, "/plain", "/plain")],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "cannot copy to non-directory: /plain");
    let err = run(
        &tmp.sub("d3"),
        &lowers,
        &ctxv,
        vec![copy_action(1, "/clash", "/")],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot replace to directory /opt with file"
    );
    // Copying the same thing twice overwrites without error.
    let diff4 = tmp.sub("d4");
    run(
        &diff4,
        &lowers,
        &ctxv,
        vec![copy_action(1, "/opt", "/o2"), copy_action(1, "/opt", "/o2")],
    )
    .unwrap();
}

#[test]
fn copy_up_parents_keep_lower_metadata() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "newtool", b"new", 0o755);
    let lowers = vec![base];
    let diff = tmp.sub("diff");
    run(
        &diff,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![copy_action(1, "/newtool", "/usr/bin/")],
    )
    .unwrap();
    for (rel, mode, sec, nsec) in [
        ("usr", 0o755, 2_000_000, 222),
        ("usr/bin", 0o755, 3_000_000, 333),
    ] {
        let m = meta(&diff, rel);
        assert_eq!(m.mode() & 0o7777, mode, "{rel}");
        assert_eq!((m.mtime(), m.mtime_nsec()), (sec, nsec), "{rel}");
        assert!(!is_opaque(&diff, rel));
    }
    assert!(!exists(&diff, "usr/bin/tool"));
    let t = result_tree(&diff, &lowers);
    assert_eq!(node(&t, "/usr/bin/tool").content, b"tool");
    assert_eq!(node(&t, "/usr/bin/newtool").content, b"new");
}

#[test]
fn destination_symlinks_resolve_inside_the_rootfs() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    link(&base, "abs", "/etc");
    link(&base, "up", "../../../../../..");
    link(&base, "etc/dangling", "/nowhere/file");
    let ctx = tmp.sub("ctx");
    put(&ctx, "payload", b"p", 0o644);
    let lowers = vec![base];
    let diff = tmp.sub("diff");
    let host_marker = Path::new("/etc/strata-file-test-must-not-exist");
    run(
        &diff,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![
            copy_action(1, "/payload", "/abs/strata-file-test-must-not-exist"),
            copy_action(1, "/payload", "/up/escaped"),
            copy_action(1, "/payload", "/etc/dangling"),
        ],
    )
    .unwrap();
    assert!(!host_marker.exists());
    let t = result_tree(&diff, &lowers);
    assert_eq!(
        node(&t, "/etc/strata-file-test-must-not-exist").content,
        b"p"
    );
    assert_eq!(node(&t, "/escaped").content, b"p");
    // Writing through a dangling symlink creates its target, inside the rootfs.
    assert_eq!(node(&t, "/nowhere/file").content, b"p");
    assert_eq!(node(&t, "/abs").kind, FileKind::Symlink);
}

#[test]
fn copy_from_a_stage_follows_links_inside_it() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    // The stage: two layers, a symlinked directory, and a whiteout.
    let s2 = tmp.sub("s2");
    put(&s2, "build/out/app", b"bin", 0o755);
    put(&s2, "build/out/stale", b"stale", 0o644);
    let s1 = tmp.sub("s1");
    whiteout(&s1, "build/out/stale");
    link(&s1, "sub", "/build/out");
    link(&s1, "rel", "build/../build/out/app");
    link(&s1, "escape", "../../../etc/passwd");
    let stage = LayeredView::chain([s1, s2]);
    let lowers = vec![base];
    let diff = tmp.sub("diff");
    run(
        &diff,
        &lowers,
        &stage,
        vec![
            copy_action(1, "/sub", "/fromlink/"),
            copy_action(1, "/rel", "/viarel"),
            // The host's /etc/passwd is never reached: the stage has none.
            with(copy_action(1, "/escape", "/x"), |c| {
                *c.allow_wildcard = false
            }),
        ],
    )
    .unwrap_err();
    let diff = tmp.sub("diff2");
    run(
        &diff,
        &lowers,
        &stage,
        vec![
            copy_action(1, "/sub", "/fromlink/"),
            copy_action(1, "/rel", "/viarel"),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    assert_eq!(node(&t, "/fromlink/app").content, b"bin");
    assert!(!t.contains_key("/fromlink/stale"));
    assert_eq!(node(&t, "/viarel").content, b"bin");
    assert_eq!(node(&t, "/viarel").kind, FileKind::File);
}

#[test]
fn copy_llb_flags_without_dockerfile_defaults() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    put(&ctx, "dir/f", b"f", 0o644);
    mkdir(&ctx, "dir", 0o700);
    link(&ctx, "ln", "dir/f");
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    run(
        &diff,
        &lowers,
        &ctxv,
        vec![
            // Not following the source's last symlink copies the link itself.
            with(copy_action(1, "/ln", "/links/"), |c| {
                *c.follow_symlinks = false
            }),
            with(copy_action(1, "/ln", "/followed"), |c| {
                *c.allow_wildcard = false
            }),
            // A directory (not its contents) into an existing directory lands inside it.
            with(copy_action(1, "/dir", "/usr/"), |c| {
                *c.dir_contents_only = false
            }),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    assert_eq!(node(&t, "/links/ln").kind, FileKind::Symlink);
    assert_eq!(node(&t, "/followed").kind, FileKind::File);
    assert_eq!(node(&t, "/usr/dir").mode, 0o700);
    assert_eq!(node(&t, "/usr/dir/f").content, b"f");
    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &ctxv,
        vec![with(copy_action(1, "/dir/f", "/no/such/f"), |c| {
            *c.create_dest_path = false
        })],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to stat /no/such/f: no such file or directory"
    );
}

// ---------------------------------------------------------------------------------------
// mkdir, mkfile, rm

#[test]
fn mkdir_and_mkfile() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    put(&base, "etc/motd", b"old motd", 0o640);
    chown(&base, "etc/motd", 3, 4);
    let lowers = vec![base];
    let diff = tmp.sub("diff");
    let mkdir_action = |path: &str, parents: bool| FileAction::Mkdir {
        path: path.into(),
        mode: 0o755,
        make_parents: parents,
        owner: owner("app", ""),
        mtime: Some(1_700_000_000),
    };
    run(
        &diff,
        &lowers,
        &LayeredView::scratch(),
        vec![
            mkdir_action("/work/dir", true),
            mkdir_action("/usr/share", true),
            mkdir_action("/usr/bin", false),
            FileAction::Mkfile {
                path: "/work/dir/hello".into(),
                data: b"hi".to_vec(),
                mode: 0o4640,
                owner: None,
            },
            FileAction::Mkfile {
                path: "/etc/motd".into(),
                data: b"new motd".to_vec(),
                mode: 0o600,
                owner: None,
            },
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    let w = node(&t, "/work/dir");
    assert_eq!((w.mode, w.uid, w.gid), (0o755, 1000, 1001));
    assert_eq!(meta(&diff, "work").mtime(), 1_700_000_000);
    // Existing directories are left alone.
    let share = node(&t, "/usr/share");
    assert_eq!((share.mode, share.uid), (0o750, 7));
    let hello = node(&t, "/work/dir/hello");
    assert_eq!(
        (hello.mode, hello.uid, hello.content.as_slice()),
        (0o640, 0, &b"hi"[..])
    );
    // Rewriting a file keeps its mode and owner.
    let motd = node(&t, "/etc/motd");
    assert_eq!((motd.mode, motd.uid, motd.gid), (0o640, 3, 4));
    assert_eq!(motd.content, b"new motd");

    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &LayeredView::scratch(),
        vec![mkdir_action("/a/b", false)],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "mkdir /a/b: no such file or directory");
    let err = run(
        &tmp.sub("d3"),
        &lowers,
        &LayeredView::scratch(),
        vec![mkdir_action("/etc/passwd/x", true)],
    )
    .unwrap_err();
    // BuildKit resolves the path first, so the lstat fails, as here.
    assert_eq!(err.to_string(), "lstat /etc/passwd/x: not a directory");
}

#[test]
fn rm_writes_whiteouts_and_a_recreated_dir_is_opaque() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    put(&base, "var/cache/a", b"a", 0o644);
    put(&base, "var/cache/b", b"b", 0o644);
    put(&base, "tmp/x1", b"1", 0o644);
    put(&base, "tmp/x2", b"2", 0o644);
    put(&base, "tmp/y", b"y", 0o644);
    link(&base, "dangling", "/nowhere");
    let lowers = vec![base];
    let diff = tmp.sub("diff");
    let rm = |path: &str, not_found: bool, wildcard: bool| FileAction::Rm {
        path: path.into(),
        allow_not_found: not_found,
        allow_wildcard: wildcard,
    };
    run(
        &diff,
        &lowers,
        &LayeredView::scratch(),
        vec![
            rm("/usr/bin/tool", false, false),
            rm("/var/cache", false, false),
            FileAction::Mkdir {
                path: "/var/cache".into(),
                mode: 0o700,
                make_parents: false,
                owner: None,
                mtime: None,
            },
            FileAction::Mkfile {
                path: "/var/cache/fresh".into(),
                data: b"f".to_vec(),
                mode: 0o644,
                owner: None,
            },
            rm("/tmp/x*", false, true),
            rm("/nothing*", false, true),
            rm("/missing", true, false),
        ],
    )
    .unwrap();
    assert!(is_whiteout(&diff, "usr/bin/tool"));
    assert!(is_opaque(&diff, "var/cache"));
    assert!(is_whiteout(&diff, "tmp/x1") && is_whiteout(&diff, "tmp/x2"));
    let t = result_tree(&diff, &lowers);
    assert!(!t.contains_key("/usr/bin/tool"));
    assert!(t.contains_key("/usr/bin"));
    assert!(!t.contains_key("/var/cache/a"));
    assert_eq!(node(&t, "/var/cache/fresh").content, b"f");
    assert_eq!(node(&t, "/var/cache").mode, 0o700);
    assert!(!t.contains_key("/tmp/x1") && t.contains_key("/tmp/y"));

    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &LayeredView::scratch(),
        vec![rm("/nope", false, false)],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "stat /nope: no such file or directory");
    // A dangling symlink is "not found" unless allowed; allowed, the link goes.
    assert!(run(
        &tmp.sub("d3"),
        &lowers,
        &LayeredView::scratch(),
        vec![rm("/dangling", false, false)],
    )
    .is_err());
    let d4 = tmp.sub("d4");
    run(
        &d4,
        &lowers,
        &LayeredView::scratch(),
        vec![rm("/dangling", true, false)],
    )
    .unwrap();
    assert!(is_whiteout(&d4, "dangling"));
    // Removing something the op itself created leaves no trace.
    let d5 = tmp.sub("d5");
    run(
        &d5,
        &lowers,
        &LayeredView::scratch(),
        vec![
            FileAction::Mkfile {
                path: "/made".into(),
                data: Vec::new(),
                mode: 0o644,
                owner: None,
            },
            rm("/made", false, false),
        ],
    )
    .unwrap();
    assert!(!exists(&d5, "made"));
}

// ---------------------------------------------------------------------------------------
// ADD of local archives

fn tar_bytes(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(11);
    h.set_gid(22);
    h.set_mtime(1_111_111_111);
    h
}

/// Appends an entry under a raw name (the tar crate refuses `..` in `append_data`).
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    data: &[u8],
    link: Option<&str>,
) {
    let mut h = header(kind, mode, data.len() as u64);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn sample_tar() -> Vec<u8> {
    tar_bytes(|b| {
        raw(b, "top/", tar::EntryType::Directory, 0o750, b"", None);
        raw(
            b,
            "top/file",
            tar::EntryType::Regular,
            0o4755,
            b"content",
            None,
        );
        raw(
            b,
            "implied/deep/file",
            tar::EntryType::Regular,
            0o644,
            b"deep",
            None,
        );
        raw(
            b,
            "top/hard",
            tar::EntryType::Link,
            0o4755,
            b"",
            Some("top/file"),
        );
        raw(
            b,
            "top/sym",
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("file"),
        );
    })
}

#[test]
fn add_extracts_archives_in_every_compression() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let ctx = tmp.sub("ctx");
    let plain = sample_tar();
    fs::write(ctx.join("a.tar"), &plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    fs::write(ctx.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    fs::write(ctx.join("a.tbz"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&plain).unwrap();
    fs::write(ctx.join("a.txz"), xz.finish().unwrap()).unwrap();
    fs::write(ctx.join("a.tzst"), zstd::encode_all(&plain[..], 3).unwrap()).unwrap();
    fs::write(ctx.join("fake.tar"), b"not an archive at all").unwrap();
    let lowers = vec![base];
    let ctxv = LayeredView::plain(&ctx);
    let diff = tmp.sub("diff");
    let add = |src: &str, dest: &str| with(copy_action(1, src, dest), |c| *c.unpack = true);
    run(
        &diff,
        &lowers,
        &ctxv,
        vec![
            add("/a.tar", "/x/plain/"),
            add("/a.tar.gz", "/x/gz"),
            add("/a.tbz", "/x/bz2/"),
            add("/a.txz", "/x/xz/"),
            add("/a.tzst", "/x/zst/"),
            add("/fake.tar", "/x/fake/"),
            with(add("/a.tar", "/x/owned/"), |c| *c.owner = owner("app", "")),
            // COPY never extracts.
            copy_action(1, "/a.tar", "/x/copied/"),
        ],
    )
    .unwrap();
    let t = result_tree(&diff, &lowers);
    for kind in ["plain", "gz", "bz2", "xz", "zst"] {
        let file = node(&t, &format!("/x/{kind}/top/file"));
        assert_eq!((file.mode, file.uid, file.gid), (0o4755, 11, 22), "{kind}");
        assert_eq!(file.mtime, Some(Timespec::from_secs(1_111_111_111)));
        assert_eq!(file.content, b"content");
        let top = node(&t, &format!("/x/{kind}/top"));
        assert_eq!((top.mode, top.uid), (0o750, 11));
        let m = meta(&diff, &format!("x/{kind}/top"));
        assert_eq!(m.mtime(), 1_111_111_111, "directory times are set last");
        // Implied parents: 0755, root.
        let implied = node(&t, &format!("/x/{kind}/implied/deep"));
        assert_eq!((implied.mode, implied.uid), (0o755, 0));
        assert_eq!(
            node(&t, &format!("/x/{kind}/top/hard")).link_group,
            file.link_group
        );
        assert_eq!(node(&t, &format!("/x/{kind}/top/sym")).content, b"file");
    }
    assert_eq!(
        node(&t, "/x/fake/fake.tar").content,
        b"not an archive at all"
    );
    assert_eq!(node(&t, "/x/copied/a.tar").content, plain);
    let owned = node(&t, "/x/owned/top/file");
    assert_eq!((owned.uid, owned.gid), (1000, 1001));
    // Implied parents stay root's even with --chown, as in BuildKit.
    assert_eq!(node(&t, "/x/owned/implied").uid, 0);
    assert_eq!(node(&t, "/x/owned").uid, 1000);
}

#[test]
fn hostile_archives_stay_inside_the_destination() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    put(&base, "srv/lowerfile", b"lower", 0o600);
    let ctx = tmp.sub("ctx");
    let evil = tar_bytes(|b| {
        raw(
            b,
            "../../../../escape-dotdot",
            tar::EntryType::Regular,
            0o644,
            b"1",
            None,
        );
        raw(b, "/abs-name", tar::EntryType::Regular, 0o644, b"2", None);
        raw(b, "esc", tar::EntryType::Symlink, 0o777, b"", Some("/etc"));
        raw(
            b,
            "esc/passwd",
            tar::EntryType::Regular,
            0o644,
            b"owned",
            None,
        );
        raw(
            b,
            "up",
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("../../../.."),
        );
        raw(
            b,
            "up/through-up",
            tar::EntryType::Regular,
            0o644,
            b"3",
            None,
        );
        raw(
            b,
            "hard",
            tar::EntryType::Link,
            0o644,
            b"",
            Some("../../../etc/passwd"),
        );
        raw(
            b,
            "hard-lower",
            tar::EntryType::Link,
            0o600,
            b"",
            Some("/lowerfile"),
        );
        raw(b, "ovl", tar::EntryType::Directory, 0o755, b"", None);
    });
    fs::write(ctx.join("evil.tar"), evil).unwrap();
    let lowers = vec![base.clone()];
    let diff = tmp.sub("diff");
    let host_etc_before = fs::metadata("/etc/passwd").unwrap().mtime();
    run(
        &diff,
        &lowers,
        &LayeredView::plain(&ctx),
        vec![with(copy_action(1, "/evil.tar", "/srv/"), |c| {
            *c.unpack = true
        })],
    )
    .unwrap();
    assert_eq!(
        fs::metadata("/etc/passwd").unwrap().mtime(),
        host_etc_before
    );
    assert!(!Path::new("/escape-dotdot").exists() && !Path::new("/through-up").exists());
    let t = result_tree(&diff, &lowers);
    // `..` stops at the extraction directory; an absolute name lands under it.
    assert_eq!(node(&t, "/srv/escape-dotdot").content, b"1");
    assert_eq!(node(&t, "/srv/abs-name").content, b"2");
    // Symlinks resolve inside the extraction directory, as in BuildKit's chroot.
    assert_eq!(node(&t, "/srv/etc/passwd").content, b"owned");
    assert_eq!(node(&t, "/srv/through-up").content, b"3");
    assert_eq!(
        node(&t, "/etc/passwd").content,
        fs::read(base.join("etc/passwd")).unwrap()
    );
    // Hard links resolve inside it too; a lower target is copied up, never shared.
    assert_eq!(node(&t, "/srv/hard").content, b"owned");
    assert_eq!(
        node(&t, "/srv/hard").link_group,
        node(&t, "/srv/etc/passwd").link_group
    );
    assert_eq!(node(&t, "/srv/hard-lower").content, b"lower");
    assert_eq!(
        meta(&base, "srv/lowerfile").nlink(),
        1,
        "a lower layer's inode was linked"
    );
    // A broken archive is an error naming it.
    let mut broken = sample_tar();
    broken.truncate(700);
    fs::write(ctx.join("broken.tar"), &broken).unwrap();
    let err = run(
        &tmp.sub("d2"),
        &lowers,
        &LayeredView::plain(&ctx),
        vec![with(copy_action(1, "/broken.tar", "/b/"), |c| {
            *c.unpack = true
        })],
    )
    .unwrap_err();
    assert!(err.to_string().contains("/broken.tar"), "{err}");
}

#[test]
fn errors_never_show_host_paths() {
    let tmp = Tmp::new();
    let base = base_layer(&tmp);
    let lowers = vec![base];
    let err = run(
        &tmp.sub("diff"),
        &lowers,
        &LayeredView::scratch(),
        vec![FileAction::Mkfile {
            path: "/usr/bin".into(),
            data: Vec::new(),
            mode: 0o644,
            owner: None,
        }],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "open /usr/bin: is a directory");
    assert!(!err.to_string().contains(&*tmp.0.to_string_lossy()));
}

#[test]
fn scratch_op_without_base() {
    let tmp = Tmp::new();
    let ctx = tmp.sub("ctx");
    put(&ctx, "f", b"f", 0o644);
    let diff = tmp.sub("diff");
    let op = FileOp {
        has_base: false,
        actions: vec![copy_action(0, "/f", "/out/")],
    };
    apply(&op, &diff, &[], &[&LayeredView::plain(&ctx)]).unwrap();
    assert_eq!(fs::read(diff.join("out/f")).unwrap(), b"f");
    let err = apply(
        &FileOp {
            has_base: false,
            actions: vec![copy_action(3, "/f", "/")],
        },
        &diff,
        &[],
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, FileError::MissingInput { index: 3 }));
}
