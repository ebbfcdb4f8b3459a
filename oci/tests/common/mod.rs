//! Helpers shared by the integration tests: temp dirs, tree building and tree snapshots.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use strata_oci::Digest;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "strata-oci-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

pub fn list_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).unwrap_or(0);
    buf.truncate(n);
    let mut out = BTreeMap::new();
    for name in buf.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if let Some(v) = get_xattr(path, &name) {
            out.insert(name, v);
        }
    }
    out
}

pub fn mknod(path: &Path, kind: FileType, mode: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(
        CWD,
        path,
        kind,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What a test compares about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub content: Option<Digest>,
    pub link: Option<PathBuf>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// For the second and later names of a hardlinked inode: the first name.
    pub hardlink_of: Option<PathBuf>,
}

/// Every path under `root` (relative), with its metadata; `root` itself excluded.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut subdirs = Vec::new();
        for name in names {
            let rel_path = rel.join(&name);
            let path = root.join(&rel_path);
            let meta = fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_file() {
                "file"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_char_device() {
                "char"
            } else if ft.is_block_device() {
                "block"
            } else {
                "other"
            };
            let mut hardlink_of = None;
            if !ft.is_dir() && meta.nlink() > 1 {
                match inodes.get(&(meta.dev(), meta.ino())) {
                    Some(first) => hardlink_of = Some(first.clone()),
                    None => {
                        inodes.insert((meta.dev(), meta.ino()), rel_path.clone());
                    }
                }
            }
            let content = ft.is_file().then(|| {
                let mut data = Vec::new();
                fs::File::open(&path)
                    .unwrap()
                    .read_to_end(&mut data)
                    .unwrap();
                Digest::of(&data)
            });
            let node = Node {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                size: if ft.is_file() { meta.len() } else { 0 },
                content,
                link: ft.is_symlink().then(|| fs::read_link(&path).unwrap()),
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    meta.rdev()
                } else {
                    0
                },
                xattrs: list_xattrs(&path),
                hardlink_of,
            };
            if ft.is_dir() {
                subdirs.push(rel_path.clone());
            }
            out.insert(rel_path, node);
        }
        subdirs.reverse();
        stack.extend(subdirs);
    }
    out
}

/// Asserts two snapshots are equal, reporting the first differing path.
pub fn assert_same_tree(expected: &BTreeMap<PathBuf, Node>, actual: &BTreeMap<PathBuf, Node>) {
    for (path, node) in expected {
        match actual.get(path) {
            None => panic!("{} missing after round trip", path.display()),
            Some(other) => assert_eq!(node, other, "{} differs", path.display()),
        }
    }
    for path in actual.keys() {
        assert!(
            expected.contains_key(path),
            "{} appeared after round trip",
            path.display()
        );
    }
}

/// Lists the entry names of an uncompressed tar, in order.
pub fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// Whether `tool` is installed (on PATH).
pub fn has_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    // CI installs every tool these tests use (scripts/test): there, absence is a failure,
    // never a silent skip.
    assert!(
        found || std::env::var_os("CI").is_none(),
        "{tool} is not installed in CI"
    );
    found
}
