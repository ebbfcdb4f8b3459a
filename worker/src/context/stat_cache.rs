//! The stat cache: content hashes of context files, reused while a file is provably
//! unchanged, across builds and processes.
//!
//! Role: maps (context, relative path) → (size, mtime, ctime, inode, device, mode, blake3
//! content hash). A checksum reuses a stored hash only when *all* of size, mtime, ctime,
//! inode, device and mode match the file's `statx` now ([`Metadata::same_file_unchanged`]):
//! a replaced file has a new inode, and rewriting a file changes its ctime even when its
//! mtime is reset, so size + mtime alone are never trusted.
//!
//! Main type: [`StatCache`]. On disk: one file per context,
//! `<store root>/v1/context-stat/<blake3(context path)[..32]>.bin`:
//!
//! ```text
//! magic "STRATASC" | version u32 | context path (u32 len + bytes) | count u32
//! count × { path (u16 len + bytes) | size u64 | mtime i64 s + u32 ns | ctime i64 s + u32 ns
//!           | ino u64 | dev u64 | mode u32 | blake3 [32] }
//! blake3 of everything above [32]
//! ```
//!
//! (little endian; ~90 bytes + path per file: 10k files load in about a millisecond).
//!
//! Key decisions:
//! - Writes are atomic (temp file in the same directory, fsync, rename): a reader sees a
//!   whole old file or a whole new one, without any lock. Writers take an `flock` on
//!   `<name>.lock` and, under it, merge the records another process wrote since they
//!   loaded, so concurrent builds of one context lose no update. Even a lost update would
//!   only cost re-reading files, never a wrong hash: every record is validated against
//!   `statx` before use. A file that fails to parse is ignored (and replaced).
//! - Racy entries are not stored: a file whose mtime or ctime is within the racy window
//!   (default 1 s) before the walk started could be rewritten within the same timestamp
//!   tick after it was hashed (git's "racy clean" problem), so it is hashed again next time.
//! - Nothing is written when nothing changed: a no-op rebuild only reads the file.
//! - Records of files that are gone are dropped when a checksum walks the whole context;
//!   narrower selections cannot tell "gone" from "not selected" and keep them.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rustix::fs::FlockOperation;

use super::entry::{Metadata, Timestamp};
use super::error::ContextError;

const MAGIC: &[u8; 8] = b"STRATASC";
const VERSION: u32 = 1;
/// Where the cache files live, under the store root.
pub const STAT_CACHE_DIR: &str = "v1/context-stat";
/// Temp files older than this are leftovers of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What is known about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
    pub hash: [u8; 32],
}

impl Record {
    pub fn new(meta: &Metadata, hash: [u8; 32]) -> Record {
        Record {
            size: meta.size,
            mtime: meta.mtime,
            ctime: meta.ctime,
            ino: meta.ino,
            dev: meta.dev,
            mode: meta.mode,
            hash,
        }
    }

    /// The stored hash, if `meta` shows the very same, unchanged file.
    pub fn hash_for(&self, meta: &Metadata) -> Option<[u8; 32]> {
        let stored = Metadata {
            mode: self.mode,
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
            ino: self.ino,
            dev: self.dev,
            ..*meta
        };
        stored.same_file_unchanged(meta).then_some(self.hash)
    }
}

/// Identity of the cache file as last read or written, to notice another writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileSig {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

fn file_sig(path: &Path) -> Option<FileSig> {
    let meta = fs::metadata(path).ok()?;
    Some(FileSig {
        len: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        ino: meta.ino(),
    })
}

/// The in-memory state, loaded on first use.
#[derive(Debug, Default)]
pub(crate) struct Records {
    loaded: bool,
    map: HashMap<String, Record>,
    /// Paths set since the last write (they win over another writer's records).
    fresh: HashSet<String>,
    /// Paths dropped since the last write (not brought back by a merge).
    removed: HashSet<String>,
    dirty: bool,
    disk: Option<FileSig>,
}

impl Records {
    /// The stored hash for `path`, if `meta` shows the same unchanged file.
    pub fn hash_for(&self, path: &str, meta: &Metadata) -> Option<[u8; 32]> {
        self.map.get(path)?.hash_for(meta)
    }

    /// Stores a record.
    pub fn insert(&mut self, path: &str, record: Record) {
        if self.map.get(path) != Some(&record) {
            self.map.insert(path.to_owned(), record);
            self.removed.remove(path);
            self.fresh.insert(path.to_owned());
            self.dirty = true;
        }
    }

    /// Drops a record that can no longer be trusted or whose file is gone.
    pub fn remove(&mut self, path: &str) {
        if self.map.remove(path).is_some() {
            self.fresh.remove(path);
            self.removed.insert(path.to_owned());
            self.dirty = true;
        }
    }

    /// Drops every record whose path `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        let gone: Vec<String> = self.map.keys().filter(|p| !keep(p)).cloned().collect();
        for path in gone {
            self.remove(&path);
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// The stat cache of one context: in memory, and in a file when a directory is given.
#[derive(Debug)]
pub(crate) struct StatCache {
    /// The cache file; `None` keeps the cache in memory only.
    file: Option<PathBuf>,
    /// The context's canonical path, stored in the file and checked on load.
    identity: Vec<u8>,
    state: Mutex<Records>,
}

impl StatCache {
    /// The cache of the context at `context` (canonical path), kept in `dir` if given.
    pub fn new(dir: Option<&Path>, context: &Path) -> StatCache {
        let identity = context.as_os_str().as_encoded_bytes().to_vec();
        let file = dir.map(|dir| {
            let name = blake3::hash(&identity).to_hex();
            dir.join(format!("{}.bin", &name[..32]))
        });
        StatCache {
            file,
            identity,
            state: Mutex::new(Records::default()),
        }
    }

    /// The cache file, if persistent.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The records, loaded from disk on first use.
    pub fn lock(&self) -> MutexGuard<'_, Records> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.loaded {
            state.loaded = true;
            if let Some(path) = &self.file {
                state.disk = file_sig(path);
                if let Some(map) = read(path, &self.identity) {
                    state.map = map;
                }
            }
        }
        state
    }

    /// Writes the records if they changed since the last write. Returns whether it wrote.
    pub fn persist(&self) -> Result<bool, ContextError> {
        let mut state = self.lock();
        if !state.dirty {
            return Ok(false);
        }
        let Some(path) = &self.file else {
            state.dirty = false;
            return Ok(false);
        };
        let fail = |source| ContextError::StatCache {
            path: path.clone(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(fail)?;
        // Writers of one context take turns, so none overwrites records another wrote
        // between its read and its rename (the lock ends when the file is closed).
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.with_extension("lock"))
            .map_err(fail)?;
        rustix::fs::flock(&lock, FlockOperation::LockExclusive).map_err(|e| fail(e.into()))?;
        // Merge what another process wrote since we read the file.
        let current = file_sig(path);
        if current.is_some() && current != state.disk {
            if let Some(disk) = read(path, &self.identity) {
                let Records {
                    map,
                    fresh,
                    removed,
                    ..
                } = &mut *state;
                for (p, record) in disk {
                    if !fresh.contains(&p) && !removed.contains(&p) {
                        map.insert(p, record);
                    }
                }
            }
        }
        let bytes = encode(&self.identity, &state.map);
        write_atomic(dir, path, &bytes).map_err(fail)?;
        state.disk = file_sig(path);
        state.fresh.clear();
        state.removed.clear();
        state.dirty = false;
        drop(lock);
        remove_stale_temps(dir);
        Ok(true)
    }
}

/// Temp file + fsync + rename, in `dir` (the target's directory, so the rename is atomic).
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = dir.join(format!(
        ".tmp-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        // No fsync of the directory: losing the rename in a crash only loses a cache
        // update; the fsync above guarantees the new name never shows a torn file.
        fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes temp files a crashed writer left behind.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        if !entry.file_name().as_encoded_bytes().starts_with(b".tmp-") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn read(path: &Path, identity: &[u8]) -> Option<HashMap<String, Record>> {
    let bytes = fs::read(path).ok()?;
    decode(&bytes, identity)
}

fn encode(identity: &[u8], map: &HashMap<String, Record>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + identity.len() + map.len() * 128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    out.extend_from_slice(identity);
    let records: Vec<(&String, &Record)> = map
        .iter()
        .filter(|(p, _)| p.len() <= usize::from(u16::MAX))
        .collect();
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (path, r) in records {
        out.extend_from_slice(&(path.len() as u16).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&r.size.to_le_bytes());
        out.extend_from_slice(&r.mtime.sec.to_le_bytes());
        out.extend_from_slice(&r.mtime.nsec.to_le_bytes());
        out.extend_from_slice(&r.ctime.sec.to_le_bytes());
        out.extend_from_slice(&r.ctime.nsec.to_le_bytes());
        out.extend_from_slice(&r.ino.to_le_bytes());
        out.extend_from_slice(&r.dev.to_le_bytes());
        out.extend_from_slice(&r.mode.to_le_bytes());
        out.extend_from_slice(&r.hash);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// A little-endian reader over a byte slice; every read checks bounds.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        Some(Timestamp {
            sec: self.i64()?,
            nsec: self.u32()?,
        })
    }
}

fn decode(bytes: &[u8], identity: &[u8]) -> Option<HashMap<String, Record>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut c = Cursor { bytes: body };
    if c.take(MAGIC.len())? != MAGIC || c.u32()? != VERSION {
        return None;
    }
    let len = c.u32()? as usize;
    if c.take(len)? != identity {
        return None;
    }
    let count = c.u32()? as usize;
    // Each record takes at least 90 bytes: a count the body cannot hold is corrupt.
    if count > c.bytes.len() / 90 + 1 {
        return None;
    }
    let mut map = HashMap::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(c.u16()?);
        let path = std::str::from_utf8(c.take(len)?).ok()?.to_owned();
        let record = Record {
            size: c.u64()?,
            mtime: c.timestamp()?,
            ctime: c.timestamp()?,
            ino: c.u64()?,
            dev: c.u64()?,
            mode: c.u32()?,
            hash: c.array()?,
        };
        map.insert(path, record);
    }
    c.bytes.is_empty().then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Record {
        Record {
            size: n,
            mtime: Timestamp { sec: 1, nsec: 2 },
            ctime: Timestamp { sec: 3, nsec: 4 },
            ino: 5,
            dev: 6,
            mode: 0o100644,
            hash: [n as u8; 32],
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let map: HashMap<String, Record> = (0..50)
            .map(|i| (format!("dir/file{i}"), record(i)))
            .collect();
        let bytes = encode(b"/ctx", &map);
        assert_eq!(decode(&bytes, b"/ctx"), Some(map.clone()));
        // Another context's file is not ours.
        assert_eq!(decode(&bytes, b"/other"), None);
        // Any flipped byte or truncation is caught.
        for at in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(decode(&bad, b"/ctx"), None);
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1], b"/ctx"), None);
        assert_eq!(decode(&[], b"/ctx"), None);
    }

    #[test]
    fn records_match_only_the_same_unchanged_inode() {
        let r = record(7);
        let meta = Metadata {
            mode: r.mode,
            size: r.size,
            uid: 1000,
            gid: 1000,
            mtime: r.mtime,
            ctime: r.ctime,
            ino: r.ino,
            dev: r.dev,
            nlink: 1,
            rdev: 0,
        };
        assert_eq!(r.hash_for(&meta), Some(r.hash));
        for change in [
            |m: &mut Metadata| m.ino += 1,
            |m: &mut Metadata| m.dev += 1,
            |m: &mut Metadata| m.ctime.nsec += 1,
            |m: &mut Metadata| m.mtime.sec += 1,
            |m: &mut Metadata| m.size += 1,
            |m: &mut Metadata| m.mode ^= 0o100,
        ] {
            let mut changed = meta;
            change(&mut changed);
            assert_eq!(r.hash_for(&changed), None);
        }
    }

    #[test]
    fn persists_merges_and_skips_clean_writes() {
        let dir = std::env::temp_dir().join(format!(
            "strata-statcache-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        let a = StatCache::new(Some(&dir), Path::new("/ctx"));
        let b = StatCache::new(Some(&dir), Path::new("/ctx"));
        assert_eq!(a.lock().len(), 0);
        assert_eq!(b.lock().len(), 0);
        a.lock().insert("x", record(1));
        assert!(a.persist().unwrap());
        assert!(!a.persist().unwrap(), "nothing changed, nothing written");
        // `b` loaded before `a` wrote; its write keeps `a`'s record.
        b.lock().insert("y", record(2));
        assert!(b.persist().unwrap());
        let c = StatCache::new(Some(&dir), Path::new("/ctx"));
        assert_eq!(c.lock().len(), 2);
        // A removal is not undone by merging.
        c.lock().remove("x");
        c.persist().unwrap();
        let d = StatCache::new(Some(&dir), Path::new("/ctx"));
        assert_eq!(d.lock().len(), 1);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().as_encoded_bytes().starts_with(b".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
