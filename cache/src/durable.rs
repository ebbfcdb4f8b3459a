//! Durable, atomic file system steps: how anything becomes visible in the store.
//!
//! Main items: [`TempFile`] (a file in the owner's staging directory that is removed unless
//! persisted), [`write_atomic`] (temp + fsync + rename + fsync of the directory),
//! [`rename_noreplace`] (`renameat2(RENAME_NOREPLACE)`, so a directory never lands on top of
//! another), [`remove_tree`] (deletes trees whose modes a build made unwritable) and
//! [`disk_usage`] (allocated bytes of a tree, hard links counted once).
//!
//! Key decision: a reader can only ever see a complete file, because every name in the store
//! is created by `rename` from the staging area on the same file system, after the content
//! was fsynced. The directory is fsynced after the rename when a later step (a database
//! record) will refer to the new name.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A name that no other call in any process will produce while this one is alive: 64 bits from
/// a per-process random seed (std's hasher keys come from the OS) mixed with a counter, in hex.
pub fn random_hex() -> String {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = SEED
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    format!("{:016x}", hasher.finish())
}

/// Fsyncs a directory, making the names created or removed in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file being written in a staging directory; removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates a new, empty temp file in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<TempFile> {
        loop {
            let path = dir.join(format!("tmp-{}", random_hex()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("temp file used after persist")
    }

    /// Where the file is now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsyncs the content, renames the file to `dest` (replacing what is there) and, if
    /// `sync_dir`, fsyncs `dest`'s directory.
    pub fn persist(mut self, dest: &Path, sync_dir: bool) -> io::Result<()> {
        self.file().sync_all()?;
        self.persist_synced(dest, sync_dir)
    }

    /// [`TempFile::persist`] for a file whose content the caller already made durable (an
    /// `fsync` of it, or a `syncfs` of its file system).
    pub fn persist_synced(mut self, dest: &Path, sync_dir: bool) -> io::Result<()> {
        drop(self.file.take().expect("temp file persisted twice"));
        fs::rename(&self.path, dest)?;
        // The name is gone: nothing left to remove on drop.
        self.path = PathBuf::new();
        if sync_dir {
            if let Some(parent) = dest.parent() {
                fsync_dir(parent)?;
            }
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `dest` atomically: a temp file in `staging`, fsync, rename, and an fsync
/// of `dest`'s directory.
pub fn write_atomic(staging: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = TempFile::new_in(staging)?;
    temp.file().write_all(bytes)?;
    temp.persist(dest, true)
}

/// Renames `from` to `to` unless `to` exists. Returns `Ok(false)` if it does.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes a file or directory tree; a missing path is not an error.
///
/// A build may leave directories without write or search permission (and overlayfs leaves a
/// mode-000 `work/work`); when removal is refused, permissions are opened up and it is retried.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            open_up_permissions(path)?;
            match fs::remove_dir_all(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        }
        Err(e) => Err(e),
    }
}

fn open_up_permissions(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700))?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_up_permissions(&entry.path())?;
        }
    }
    Ok(())
}

/// Bytes allocated on disk by a tree (`st_blocks * 512`), each inode counted once, and the
/// number of entries. A missing path counts as empty.
pub fn disk_usage(path: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    match usage_of(path, &mut seen, &mut total) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
        Ok(()) => Ok(total),
    }
}

fn usage_of(path: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.nlink() <= 1 || seen.insert((meta.dev(), meta.ino())) {
        *total += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            match usage_of(&entry?.path(), seen, total) {
                // Entries that vanish while a tree is measured are simply not counted.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Flushes every dirty page of the file system holding `path` (`syncfs`): one call makes a
/// whole layer directory durable, far cheaper than an fsync per file.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    rustix::fs::syncfs(&dir)?;
    Ok(())
}

/// This kernel's boot id: a snapshot committed under another boot id went through a reboot
/// (or power loss) before its files were known to be on disk. Empty if unreadable (then
/// every unsynced snapshot is treated as from another boot: the safe side).
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "strata-durable-{name}-{}-{}",
            std::process::id(),
            random_hex()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn random_names_differ() {
        let names: HashSet<String> = (0..1000).map(|_| random_hex()).collect();
        assert_eq!(names.len(), 1000);
        assert!(names.iter().all(|n| n.len() == 16));
    }

    #[test]
    fn temp_file_is_removed_unless_persisted() {
        let dir = scratch("temp");
        let mut t = TempFile::new_in(&dir).unwrap();
        t.file().write_all(b"x").unwrap();
        let path = t.path().to_owned();
        drop(t);
        assert!(!path.exists());
        write_atomic(&dir, &dir.join("out"), b"hello").unwrap();
        assert_eq!(fs::read(dir.join("out")).unwrap(), b"hello");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rename_noreplace_refuses_existing() {
        let dir = scratch("rename");
        fs::create_dir(dir.join("a")).unwrap();
        fs::create_dir(dir.join("b")).unwrap();
        assert!(!rename_noreplace(&dir.join("a"), &dir.join("b")).unwrap());
        assert!(rename_noreplace(&dir.join("a"), &dir.join("c")).unwrap());
        assert!(dir.join("c").is_dir() && !dir.join("a").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_tree_handles_locked_directories() {
        let dir = scratch("remove");
        let locked = dir.join("t/locked");
        fs::create_dir_all(locked.join("inner")).unwrap();
        fs::write(locked.join("inner/f"), b"data").unwrap();
        fs::set_permissions(locked.join("inner"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).unwrap();
        remove_tree(&dir.join("t")).unwrap();
        assert!(!dir.join("t").exists());
        remove_tree(&dir.join("t")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let dir = scratch("du");
        fs::write(dir.join("f"), vec![1u8; 64 * 1024]).unwrap();
        let one = disk_usage(&dir).unwrap();
        fs::hard_link(dir.join("f"), dir.join("g")).unwrap();
        assert_eq!(disk_usage(&dir).unwrap(), one);
        assert!(one >= 64 * 1024);
        assert_eq!(disk_usage(&dir.join("missing")).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
