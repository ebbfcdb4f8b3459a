//! Integration tests of the build context (`strata_worker::context`) over generated trees:
//! fsutil conformance (walk cases, filtered opens, BuildKit's `.dockerignore` build
//! cases), confinement (symlink and `..` escapes), what the checksum depends on, the stat
//! cache across instances and its invalidation, and the reading API.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use strata_frontend::ignore::{find_ignore_file, read_ignore};
use strata_solver::Digest;
use strata_worker::context::{
    Context, ContextError, ContextOptions, EntryKind, Selection, STAT_CACHE_DIR,
};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "strata-ctx-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `content` at `rel`, creating parent directories.
    fn write(&self, rel: &str, content: &[u8]) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.0.join(rel)).unwrap();
    }

    fn symlink(&self, rel: &str, target: impl AsRef<Path>) {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    fn chmod(&self, rel: &str, mode: u32) {
        fs::set_permissions(self.0.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn conformance() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/conformance/dockerignore/walk_cases.json");
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))).unwrap()
}

/// Creates a conformance tree (`"<path> <dir|file>"` lines; files empty).
fn make_tree(dir: &TempDir, tree: &[String]) {
    for line in tree {
        let (path, kind) = line.rsplit_once(' ').unwrap();
        match kind {
            "dir" => dir.mkdir(path),
            "file" => dir.write(path, b""),
            other => panic!("kind {other}"),
        }
    }
}

/// A selection's listing in the conformance format.
fn listing(ctx: &Context, selection: &Selection) -> Vec<String> {
    ctx.entries(selection)
        .unwrap()
        .map(|e| {
            let kind = if e.kind() == EntryKind::Dir {
                "dir"
            } else {
                "file"
            };
            format!("{kind} {}", e.path)
        })
        .collect()
}

#[test]
fn fsutil_walk_cases() {
    let data = conformance();
    let mut ran = 0;
    for case in data["walk"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case.get("stack").is_some() {
            // Stacked filters (fsutil composing two filter FSes) have no counterpart: a
            // context has one exclude list, and a step's selection one include list.
            continue;
        }
        let dir = TempDir::new("walk");
        make_tree(&dir, &strings(&case["tree"]));
        let ctx = Context::open(dir.path(), &strings(&case["exclude"])).unwrap();
        let include = strings(&case["include"]);
        let selection = Selection::new(&include, &[] as &[&str]).unwrap();
        assert_eq!(
            listing(&ctx, &selection),
            strings(&case["expected"]),
            "{name}: include {include:?} exclude {:?}",
            case["exclude"]
        );
        ran += 1;
    }
    assert!(ran >= 20, "only {ran} walk cases ran");
}

#[test]
fn fsutil_filtered_open_cases() {
    let data = conformance();
    for case in data["open"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dir = TempDir::new("open");
        make_tree(&dir, &strings(&case["tree"]));
        let ctx = Context::open(dir.path(), &strings(&case["exclude"])).unwrap();
        let selected = ctx
            .select(&Selection::new(&strings(&case["include"]), &[] as &[&str]).unwrap())
            .unwrap();
        for (path, expected) in case["open"].as_object().unwrap() {
            let found = selected.get(path);
            match expected.as_str().unwrap() {
                "ok" => {
                    let entry = found.unwrap_or_else(|| panic!("{name}: {path} missing"));
                    ctx.open_entry(entry).unwrap();
                }
                "not-exist" => {
                    assert!(found.is_none(), "{name}: {path} selected");
                    let err = selected.resolve(path, true).unwrap_err();
                    assert_eq!(err.to_string(), format!("\"/{path}\": not found"));
                }
                other => panic!("{other}"),
            }
        }
    }
    for case in data["errors"].as_array().unwrap() {
        let dir = TempDir::new("errors");
        make_tree(&dir, &strings(&case["tree"]));
        let err = Context::open(dir.path(), &strings(&case["exclude"])).unwrap_err();
        assert!(matches!(err, ContextError::Patterns(_)), "{err}");
    }
}

#[test]
fn buildkit_dockerignore_build_cases() {
    let data = conformance();
    for case in data["build_context"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let dir = TempDir::new("build");
        for (path, content) in case["context_files"].as_object().unwrap() {
            dir.write(path, content.as_str().unwrap().as_bytes());
        }
        // Which ignore file: `<Dockerfile>.dockerignore` beside it, else `.dockerignore`
        // (the Dockerfile is at the context root here, so both are context paths).
        let dockerfile = case["dockerfile_name"].as_str().unwrap();
        let ignore = find_ignore_file(dockerfile, |c| dir.path().join(&c.path).is_file());
        let patterns = ignore
            .map(|c| read_ignore(&fs::read(dir.path().join(&c.path)).unwrap()))
            .unwrap_or_default();
        let opened = Context::open(dir.path(), &patterns);
        if case["build_error"].as_bool() == Some(true) {
            let err = opened.unwrap_err();
            assert!(
                err.to_string().contains("illegal exclusion pattern"),
                "{name}: {err}"
            );
            continue;
        }
        let ctx = opened.unwrap();
        // `COPY . .`
        let selected = ctx.select(&Selection::all()).unwrap();
        for (path, content) in case["present_in_result"].as_object().unwrap() {
            let entry = selected
                .get(path)
                .unwrap_or_else(|| panic!("{name}: {path} not selected"));
            let mut got = String::new();
            ctx.open_entry(entry)
                .unwrap()
                .read_to_string(&mut got)
                .unwrap();
            assert_eq!(got, content.as_str().unwrap(), "{name}: {path}");
        }
        for path in strings(&case["absent_in_result"]) {
            assert!(selected.get(&path).is_none(), "{name}: {path} selected");
        }
    }
}

/// A context next to a `secret` directory it must never read.
fn escape_fixture() -> (TempDir, PathBuf) {
    let outer = TempDir::new("escape");
    fs::write(outer.path().join("secret.txt"), b"host secret").unwrap();
    fs::create_dir(outer.path().join("secretdir")).unwrap();
    fs::write(outer.path().join("secretdir/key"), b"host key").unwrap();
    let ctx = outer.path().join("ctx");
    fs::create_dir(&ctx).unwrap();
    (outer, ctx)
}

#[test]
fn symlinks_leading_out_are_errors_naming_the_path() {
    let (outer, root) = escape_fixture();
    let abs_secret = outer.path().join("secretdir");
    let put = |rel: &str, target: &Path| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    };
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/ok.txt"), b"inside").unwrap();
    put("abs", &abs_secret); // absolute, at the root
    put("rel", Path::new("../secretdir")); // relative, at the root
    put("up", Path::new("..")); // the parent itself
    put("a/b/abs", &outer.path().join("secret.txt")); // absolute, nested
    put("a/b/rel", Path::new("../../../secret.txt")); // relative, nested
    put("a/b/sneaky", Path::new("ok.txt/../../../../secretdir")); // climbs after a file
    put("a/inside", Path::new("b/ok.txt")); // stays inside: fine
    let ctx = Context::open(&root, &[]).unwrap();

    let cases: &[(&str, &str)] = &[
        ("abs/key", "abs"),
        ("rel/key", "rel"),
        ("up/secret.txt", "up"),
        ("abs", "abs"),
        ("a/b/abs", "a/b/abs"),
        ("a/b/rel", "a/b/rel"),
    ];
    for &(path, link) in cases {
        // Opening for COPY (final symlink followed).
        match ctx.open_file(path) {
            Err(ContextError::SymlinkEscape { path: p, link: l }) => {
                assert_eq!((p.as_str(), l.as_str()), (path, link), "{path}");
            }
            other => panic!("{path}: {other:?}"),
        }
        // Selecting it as a COPY source (include + follow path).
        let err = ctx.select(&Selection::paths(&[path]).unwrap()).unwrap_err();
        assert!(
            matches!(err, ContextError::SymlinkEscape { .. }),
            "{path}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("\"/{path}\": symlink")),
            "{err}"
        );
    }
    // A symlink through a regular file is no directory, whatever follows.
    assert!(matches!(
        ctx.open_file("a/b/sneaky"),
        Err(ContextError::NotADirectory { .. })
    ));
    // In-context links work.
    let mut s = String::new();
    ctx.open_file("a/inside")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "inside");
    // Not following the final link reads only the link.
    assert_eq!(ctx.read_link("abs").unwrap(), abs_secret);
    assert!(ctx.metadata("a/b/rel").unwrap().is_symlink());
    // The whole context selects the links as links, and its checksum reads no target.
    let selected = ctx.select(&Selection::all()).unwrap();
    assert_eq!(selected.get("abs").unwrap().kind(), EntryKind::Symlink);
    assert!(selected.get("abs/key").is_none());
    ctx.checksum(&Selection::all()).unwrap();
    assert_eq!(ctx.stats().bytes_hashed, b"inside".len() as u64);
}

#[test]
fn dotdot_in_paths_and_patterns_is_refused() {
    let (_outer, root) = escape_fixture();
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("b"), b"b").unwrap();
    let ctx = Context::open(&root, &[]).unwrap();
    for bad in [
        "../secret.txt",
        "/../secret.txt",
        "a/../../secret.txt",
        "..",
    ] {
        let err = Selection::paths(&[bad]).unwrap_err();
        assert!(
            matches!(err, ContextError::OutsideContext { ref path } if path == bad),
            "{err}"
        );
        assert!(matches!(
            ctx.open_file(bad),
            Err(ContextError::OutsideContext { .. })
        ));
    }
    // `..` that stays inside is just a path.
    let mut s = String::new();
    ctx.open_file("a/../b")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "b");
    assert_eq!(
        Selection::paths(&["a/../b"]).unwrap().include(),
        ["b".to_owned()]
    );
}

#[test]
fn missing_and_excluded_sources_are_not_found() {
    let dir = TempDir::new("missing");
    dir.write("foo", b"foo");
    dir.write("bar", b"bar");
    dir.write("keep/a", b"a");
    let ctx = Context::open(
        dir.path(),
        &["bar".to_owned(), "keep".to_owned(), "!keep/a".to_owned()],
    )
    .unwrap();
    let err = ctx
        .checksum(&Selection::paths(&["missing"]).unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "\"/missing\": not found");
    let err = ctx
        .checksum(&Selection::paths(&["/bar"]).unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "\"/bar\": not found");
    // A directory excluded itself but emitted for an exception is there.
    ctx.checksum(&Selection::paths(&["keep"]).unwrap()).unwrap();
    // A wildcard matching nothing selects nothing, without error.
    let empty = ctx
        .select(&Selection::paths(&["nomatch*"]).unwrap())
        .unwrap();
    assert!(empty.is_empty());
}

fn checksum(ctx: &Context, paths: &[&str]) -> Digest {
    let selection = if paths.is_empty() {
        Selection::all()
    } else {
        Selection::paths(paths).unwrap()
    };
    ctx.checksum(&selection).unwrap()
}

#[test]
fn checksum_follows_content_mode_names_and_the_selection() {
    let dir = TempDir::new("sum");
    dir.write("src/main.rs", b"fn main() {}");
    dir.write("src/lib.rs", b"pub fn f() {}");
    dir.write("README.md", b"readme");
    dir.write("target/junk", b"junk");
    dir.symlink("src/link", "main.rs");
    let excludes = vec!["target".to_owned()];
    let sum = |paths: &[&str]| checksum(&Context::open(dir.path(), &excludes).unwrap(), paths);
    let all = sum(&[]);
    let src = sum(&["src"]);
    assert_ne!(all, src);
    assert_eq!(all, sum(&[]), "deterministic");

    // touch: same key.
    let f = File::options()
        .write(true)
        .open(dir.path().join("src/main.rs"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(f);
    assert_eq!(sum(&[]), all);

    // Unselected and excluded files do not count.
    dir.write("README.md", b"readme v2");
    assert_eq!(sum(&["src"]), src);
    assert_ne!(sum(&[]), all);
    let all = sum(&[]);
    dir.write("target/junk", b"junk v2");
    assert_eq!(sum(&[]), all);

    // Content, mode, name, symlink target, new and removed entries do.
    dir.write("src/main.rs", b"fn main() { }");
    let edited = sum(&["src"]);
    assert_ne!(edited, src);
    dir.chmod("src/main.rs", 0o755);
    let chmodded = sum(&["src"]);
    assert_ne!(chmodded, edited);
    fs::rename(
        dir.path().join("src/lib.rs"),
        dir.path().join("src/lib2.rs"),
    )
    .unwrap();
    let renamed = sum(&["src"]);
    assert_ne!(renamed, chmodded);
    fs::remove_file(dir.path().join("src/link")).unwrap();
    dir.symlink("src/link", "lib2.rs");
    let relinked = sum(&["src"]);
    assert_ne!(relinked, renamed);
    dir.mkdir("src/empty");
    let with_dir = sum(&["src"]);
    assert_ne!(with_dir, relinked);
    fs::remove_dir(dir.path().join("src/empty")).unwrap();
    assert_eq!(sum(&["src"]), relinked);
}

#[test]
fn follow_paths_select_and_resolve_link_targets() {
    let dir = TempDir::new("follow");
    dir.write("real/dir/file", b"v1");
    dir.write("real/other", b"other");
    dir.symlink("link", "real/dir");
    let ctx = Context::open(dir.path(), &[]).unwrap();
    let selection = Selection::paths(&["link"]).unwrap();
    let selected = ctx.select(&selection).unwrap();
    let paths: Vec<&str> = selected.entries().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["link", "real", "real/dir", "real/dir/file"]);
    assert_eq!(selected.resolve("link", true).unwrap(), "real/dir");
    assert_eq!(selected.resolve("link", false).unwrap(), "link");
    assert_eq!(selected.under("real/dir").len(), 1);
    let before = ctx.checksum(&selection).unwrap();
    dir.write("real/other", b"other v2");
    assert_eq!(ctx.checksum(&selection).unwrap(), before);
    dir.write("real/dir/file", b"v2");
    assert_ne!(ctx.checksum(&selection).unwrap(), before);
}

fn cached_options(store: &TempDir, racy_window: Duration) -> ContextOptions {
    ContextOptions {
        racy_window,
        ..ContextOptions::in_store_root(store.path())
    }
}

/// A tree of `n` files, old enough (50 ms) for a 10 ms racy window.
fn settled_tree(n: usize) -> TempDir {
    let dir = TempDir::new("cache");
    for i in 0..n {
        dir.write(
            &format!("d{}/f{i}", i % 7),
            format!("content {i}").as_bytes(),
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    dir
}

#[test]
fn stat_cache_is_reused_across_instances() {
    let dir = settled_tree(100);
    let store = TempDir::new("store");
    let options = cached_options(&store, Duration::from_millis(10));

    let first = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    let digest = checksum(&first, &[]);
    let s = first.stats();
    assert_eq!(
        (s.files_hashed, s.cache_hits, s.stat_cache_writes),
        (100, 0, 1)
    );
    let file = first.stat_cache_path().unwrap().to_owned();
    assert!(file.starts_with(store.path().join(STAT_CACHE_DIR)));
    assert!(file.is_file());

    // A new instance (as a new process would) reads nothing and writes nothing.
    let second = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    assert_eq!(checksum(&second, &[]), digest);
    let s = second.stats();
    assert_eq!(
        (s.files_hashed, s.cache_hits, s.stat_cache_writes),
        (0, 100, 0)
    );
    // A narrower selection hits the same records.
    checksum(&second, &["d3"]);
    assert_eq!(second.stats().files_hashed, 0);

    // One edited file is the only one read again.
    std::thread::sleep(Duration::from_millis(20));
    dir.write("d1/f1", b"edited");
    std::thread::sleep(Duration::from_millis(20));
    let third = Context::open_with(dir.path(), &[], options).unwrap();
    assert_ne!(checksum(&third, &[]), digest);
    assert_eq!(third.stats().files_hashed, 1);
    assert_eq!(third.stats().bytes_hashed, 6);
}

#[test]
fn racy_files_are_not_cached() {
    let dir = TempDir::new("racy");
    dir.write("fresh", b"just written");
    let store = TempDir::new("store");
    let options = cached_options(&store, Duration::from_secs(3600));
    let first = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    checksum(&first, &[]);
    let second = Context::open_with(dir.path(), &[], options).unwrap();
    checksum(&second, &[]);
    assert_eq!(
        second.stats().files_hashed,
        1,
        "a racy file is hashed again"
    );
}

#[test]
fn ctime_and_inode_changes_invalidate() {
    let dir = settled_tree(3);
    let store = TempDir::new("store");
    let options = cached_options(&store, Duration::from_millis(10));
    let open = || Context::open_with(dir.path(), &[], options.clone()).unwrap();
    let target = dir.path().join("d0/f0");
    let original = fs::read(&target).unwrap();
    let mtime = fs::metadata(&target).unwrap().modified().unwrap();
    let digest = checksum(&open(), &[]);

    // Same size, mtime put back: only the ctime tells the content changed.
    std::thread::sleep(Duration::from_millis(20));
    let mut altered = original.clone();
    altered[0] ^= 1;
    let mut f = File::options().write(true).open(&target).unwrap();
    f.write_all(&altered).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&target).unwrap().modified().unwrap(), mtime);
    std::thread::sleep(Duration::from_millis(20));
    let ctx = open();
    let changed = checksum(&ctx, &[]);
    assert_ne!(changed, digest);
    assert_eq!(ctx.stats().files_hashed, 1);

    // Same content, size and mtime in a new inode (an editor's save-by-rename).
    let before = checksum(&open(), &[]);
    let mtime = fs::metadata(&target).unwrap().modified().unwrap();
    let temp = dir.path().join("d0/.f0.tmp");
    fs::write(&temp, &altered).unwrap();
    File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&temp, &target).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let ctx = open();
    assert_eq!(checksum(&ctx, &[]), before);
    assert_eq!(ctx.stats().files_hashed, 1, "new inode is read again");

    // A chmod changes the ctime (and the key); a chmod back restores the key but the
    // file is read again.
    std::thread::sleep(Duration::from_millis(20));
    dir.chmod("d0/f0", 0o600);
    std::thread::sleep(Duration::from_millis(20));
    let ctx = open();
    assert_ne!(checksum(&ctx, &[]), before);
    dir.chmod("d0/f0", 0o644);
    std::thread::sleep(Duration::from_millis(20));
    let ctx = open();
    assert_eq!(checksum(&ctx, &[]), before);
    assert_eq!(ctx.stats().files_hashed, 1);
}

#[test]
fn concurrent_writers_keep_a_valid_cache() {
    let dir = settled_tree(60);
    let store = TempDir::new("store");
    let options = cached_options(&store, Duration::from_millis(10));
    std::thread::scope(|scope| {
        for part in 0..6 {
            let options = options.clone();
            let dir = dir.path();
            scope.spawn(move || {
                let ctx = Context::open_with(dir, &[], options).unwrap();
                checksum(&ctx, &[&format!("d{part}")]);
                ctx.flush().unwrap();
            });
        }
    });
    // Every writer merged what it found, so the last file has every part.
    let ctx = Context::open_with(dir.path(), &[], options).unwrap();
    for part in 0..6 {
        checksum(&ctx, &[&format!("d{part}")]);
    }
    assert_eq!(ctx.stats().files_hashed, 0);
}

#[test]
fn large_files_stream_and_match_blake3() {
    let dir = TempDir::new("large");
    let mut data = vec![0u8; 20 * 1024 * 1024 + 123];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    dir.write("big.bin", &data);
    dir.write("small", b"s");
    let ctx = Context::open(dir.path(), &[]).unwrap();
    let mut selected = ctx.select(&Selection::all()).unwrap();
    ctx.checksum_selected(&mut selected).unwrap();
    let big = selected.get("big.bin").unwrap();
    assert_eq!(big.content_hash, Some(*blake3::hash(&data).as_bytes()));
    assert_eq!(ctx.stats().bytes_hashed, data.len() as u64 + 1);
}

#[test]
fn entries_read_confined_and_detect_replacement() {
    let dir = TempDir::new("entries");
    dir.write("a/b.txt", b"hello");
    dir.symlink("a/l", "b.txt");
    dir.write("a.txt", b"x");
    let ctx = Context::open(dir.path(), &[]).unwrap();
    let entries: Vec<_> = ctx.entries(&Selection::all()).unwrap().collect();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    // fsutil's order: a directory's contents right after it, before `a.txt`.
    assert_eq!(paths, ["a", "a/b.txt", "a/l", "a.txt"]);
    assert_eq!(entries[2].link_target.as_deref(), Some(Path::new("b.txt")));
    assert!(matches!(
        ctx.open_entry(&entries[2]),
        Err(ContextError::NotAFile { .. })
    ));
    let mut s = String::new();
    ctx.open_entry(&entries[1])
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
    assert_eq!(entries[1].meta.size, 5);

    // Replaced by another file since the walk: refused. (The pause keeps the new file's
    // ctime out of the old one's timestamp tick: the inode number may well be reused.)
    std::thread::sleep(Duration::from_millis(20));
    fs::remove_file(dir.path().join("a/b.txt")).unwrap();
    dir.write("a/b.txt", b"other");
    assert!(matches!(
        ctx.open_entry(&entries[1]),
        Err(ContextError::Changed { .. })
    ));
    // Turned into a symlink to the host: refused, nothing read.
    fs::remove_file(dir.path().join("a/b.txt")).unwrap();
    dir.symlink("a/b.txt", "/etc/hostname");
    assert!(matches!(
        ctx.open_entry(&entries[1]),
        Err(ContextError::Changed { .. })
    ));
    // A directory swapped for a symlink to the host: refused.
    fs::rename(dir.path().join("a"), dir.path().join("moved")).unwrap();
    dir.symlink("a", dir.path().join("moved"));
    assert!(matches!(
        ctx.open_entry(&entries[1]),
        Err(ContextError::Changed { .. })
    ));
}

#[test]
fn a_damaged_stat_cache_is_ignored_and_replaced() {
    let dir = settled_tree(10);
    let store = TempDir::new("store");
    let options = cached_options(&store, Duration::from_millis(10));
    let ctx = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    let digest = checksum(&ctx, &[]);
    let file = ctx.stat_cache_path().unwrap().to_owned();
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&file, &bytes).unwrap();
    let ctx = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    assert_eq!(checksum(&ctx, &[]), digest);
    assert_eq!(ctx.stats().files_hashed, 10);
    let ctx = Context::open_with(dir.path(), &[], options).unwrap();
    checksum(&ctx, &[]);
    assert_eq!(ctx.stats().files_hashed, 0);
}

/// Peak RSS (`VmHWM`) in kB, after resetting it if `reset`.
fn peak_rss_kb(reset: bool) -> Option<u64> {
    if reset {
        // `5` resets the peak RSS counter (Linux 4.0+).
        let _ = fs::write("/proc/self/clear_refs", "5");
    }
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Figures for the 10k-file / ~200 MB context (not a test: run it with
/// `cargo test --release -p strata-worker --test context -- --ignored --nocapture`).
#[test]
#[ignore = "measurement: generates 200 MB"]
fn measure_10k_files_200mb() {
    use std::time::Instant;
    let dir = TempDir::new("measure");
    let store = TempDir::new("measure-store");
    let mut chunk = vec![0u8; 1 << 20];
    let mut total = 0usize;
    for i in 0..10_000usize {
        let size = if i % 1000 == 0 {
            10 << 20
        } else {
            2_000 + (i * 7_919) % 16_000
        };
        let path = dir.path().join(format!("dir{:03}/file{i:05}.dat", i % 100));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = File::create(path).unwrap();
        let mut left = size;
        let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        while left > 0 {
            let n = left.min(chunk.len());
            for b in &mut chunk[..n] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        total += size;
    }
    drop(chunk);
    std::thread::sleep(Duration::from_millis(1_100));
    println!("context: 10000 files, {:.1} MB", total as f64 / 1e6);
    let options = ContextOptions::in_store_root(store.path());
    let base_rss = peak_rss_kb(true);

    let t = Instant::now();
    let cold = Context::open_with(dir.path(), &[], options.clone()).unwrap();
    let digest = cold.checksum(&Selection::all()).unwrap();
    println!(
        "cold checksum (stat cache empty, page cache warm): {:.1} ms, {} files / {:.1} MB read; peak RSS {:?} kB (before: {:?} kB)",
        t.elapsed().as_secs_f64() * 1e3,
        cold.stats().files_hashed,
        cold.stats().bytes_hashed as f64 / 1e6,
        peak_rss_kb(false),
        base_rss,
    );
    let runs: usize = std::env::var("MEASURE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let t = Instant::now();
        let warm = Context::open_with(dir.path(), &[], options.clone()).unwrap();
        let selected = warm.select(&Selection::all()).unwrap();
        let walk = t.elapsed();
        let mut selected = selected;
        assert_eq!(warm.checksum_selected(&mut selected).unwrap(), digest);
        println!(
            "warm checksum #{run} (new Context, stat cache on disk): {:.1} ms (walk {:.1} ms), {} files read, {} writes",
            t.elapsed().as_secs_f64() * 1e3,
            walk.as_secs_f64() * 1e3,
            warm.stats().files_hashed,
            warm.stats().stat_cache_writes,
        );
    }
    println!("peak RSS: {:?} kB", peak_rss_kb(false));
}
