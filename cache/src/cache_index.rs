//! The cache index: cache key → the result of a build step.
//!
//! Main types: [`CacheKey`] (32 bytes: the solver's blake3 key), [`CacheValue`] (what a
//! caller stores: an optional snapshot, the blobs the result needs, opaque payload bytes for
//! the caller's own extras) and [`CacheRecord`] (a stored value with its timestamps), reached
//! through the [`CacheIndex`] view.
//!
//! A record is a garbage-collection root: it keeps its snapshot (with the chain) and its blobs
//! alive until pruned. `put` checks, in the same write transaction, that they exist.
//!
//! Key decision: lookups are read transactions (~10 µs) and never write. The last-used time
//! that LRU pruning needs is noted in memory and written for all lookups at once by
//! `Store::flush` (or when the store closes) — one durable commit for a whole build instead
//! of one per lookup. A lookup that passes a lease leases the record's snapshot and blobs
//! under the gc lock, so they cannot be pruned between the lookup and their use.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::SystemTime;

use redb::{ReadableTable, ReadableTableMetadata};

use crate::db::{hex_key, Db, DbError, DbResult, CACHE, CACHE_MOUNTS, SNAPSHOTS};
use crate::digest::Digest;
use crate::encoding::{from_millis, now_millis, to_millis, DecodeError, Decoder, Encoder};
use crate::lease::{GcLock, Lease, LeaseError, Resource};
use crate::snapshot::{SnapshotId, SnapshotRecord};
use crate::store::{Store, Touched};

/// A cache key: the solver's 32-byte (blake3) digest of a vertex and its inputs.
pub type CacheKey = [u8; 32];

/// A cache index failure.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The record's snapshot is not committed.
    #[error("cannot store cache record {key}: snapshot {snapshot} not found")]
    SnapshotNotFound {
        /// The key, hex.
        key: String,
        /// The snapshot.
        snapshot: SnapshotId,
    },
    /// A blob of the record is not in the content store.
    #[error("cannot store cache record {key}: blob {digest} not found")]
    BlobNotFound {
        /// The key, hex.
        key: String,
        /// The blob.
        digest: Digest,
    },
    /// The lease could not be taken.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a caller stores under a cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheValue {
    /// The snapshot holding the step's output filesystem, if it has one.
    pub snapshot: Option<SnapshotId>,
    /// Blobs the result refers to (layers, configs); kept alive with the record.
    pub blobs: Vec<Digest>,
    /// Opaque caller data (for example layer descriptors and diff ids, an image config).
    pub payload: Vec<u8>,
}

/// A stored cache record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// The stored value.
    pub value: CacheValue,
    /// When it was stored.
    pub created: SystemTime,
    /// When a lookup last found it (as of the last flush).
    pub last_used: SystemTime,
}

const RECORD_VERSION: u8 = 1;

impl CacheRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(RECORD_VERSION);
        e.opt_str(self.value.snapshot.as_ref().map(SnapshotId::as_str))
            .u64(self.value.blobs.len() as u64);
        for blob in &self.value.blobs {
            e.digest(blob);
        }
        e.bytes(&self.value.payload)
            .u64(to_millis(self.created))
            .u64(to_millis(self.last_used))
            .finish()
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<CacheRecord, DbError> {
        let corrupt = |source| DbError::Corrupt {
            table: "cache",
            key: hex_key(key),
            source,
        };
        let mut r = Decoder::new(bytes, RECORD_VERSION).map_err(corrupt)?;
        let snapshot = match r.opt_str().map_err(corrupt)? {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| corrupt(DecodeError::InvalidValue { field: "snapshot" }))?,
            ),
            None => None,
        };
        let count = r.u64().map_err(corrupt)?;
        // Each digest takes 32 bytes: a count larger than the record is corrupt, not a
        // reason to allocate.
        if count > (bytes.len() / 32) as u64 {
            return Err(corrupt(DecodeError::InvalidValue { field: "blobs" }));
        }
        let blobs = (0..count)
            .map(|_| r.digest())
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        let payload = r.bytes().map_err(corrupt)?.to_vec();
        let created = from_millis(r.u64().map_err(corrupt)?);
        let last_used = from_millis(r.u64().map_err(corrupt)?);
        r.finish().map_err(corrupt)?;
        Ok(CacheRecord {
            value: CacheValue {
                snapshot,
                blobs,
                payload,
            },
            created,
            last_used,
        })
    }
}

/// The snapshot a stored record refers to (for table scans that need nothing else).
pub(crate) fn record_snapshot(key: &[u8], value: &[u8]) -> Option<String> {
    CacheRecord::decode(key, value)
        .ok()
        .and_then(|r| r.value.snapshot.map(|s| s.as_str().to_owned()))
}

/// Decodes every record of the cache table (for garbage collection).
pub(crate) fn decode_all(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<(CacheKey, CacheRecord)>, DbError> {
    let mut out = Vec::new();
    for entry in table.iter().op("list cache records")? {
        let (key, value) = entry.op("list cache records")?;
        let key_bytes = key.value();
        let Ok(cache_key) = CacheKey::try_from(key_bytes) else {
            return Err(DbError::Corrupt {
                table: "cache",
                key: hex_key(key_bytes),
                source: DecodeError::InvalidValue { field: "key" },
            });
        };
        out.push((cache_key, CacheRecord::decode(key_bytes, value.value())?));
    }
    Ok(out)
}

/// Writes the last-used times noted by lookups, in one transaction.
pub(crate) fn flush_touched(db: &Db, touched: &Mutex<Touched>) -> Result<(), DbError> {
    let Touched {
        cache,
        cache_mounts,
    } = std::mem::take(&mut *touched.lock().expect("touched set poisoned"));
    if cache.is_empty() && cache_mounts.is_empty() {
        return Ok(());
    }
    let tx = db.write()?;
    {
        let mut table = tx.open_table(CACHE).op("open cache table")?;
        let mut snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
        for (key, at) in &cache {
            let record = match table.get(key.as_slice()).op("read cache record")? {
                Some(bytes) => CacheRecord::decode(key, bytes.value())?,
                None => continue,
            };
            if to_millis(record.last_used) >= *at {
                continue;
            }
            let updated = CacheRecord {
                last_used: from_millis(*at),
                ..record
            };
            table
                .insert(key.as_slice(), updated.encode().as_slice())
                .op("update cache record")?;
            if let Some(id) = &updated.value.snapshot {
                let found = snapshots
                    .get(id.as_str())
                    .op("read snapshot")?
                    .map(|b| SnapshotRecord::decode(id.as_str(), b.value()));
                if let Some(snapshot) = found {
                    let snapshot = snapshot?;
                    if to_millis(snapshot.last_used) < *at {
                        let snapshot = SnapshotRecord {
                            last_used: from_millis(*at),
                            ..snapshot
                        };
                        snapshots
                            .insert(id.as_str(), snapshot.encode().as_slice())
                            .op("update snapshot")?;
                    }
                }
            }
        }
        let mut mounts = tx.open_table(CACHE_MOUNTS).op("open cache mounts table")?;
        crate::cache_mount::apply_touches(&mut mounts, &cache_mounts)?;
    }
    tx.commit().op("commit last-used times")
}

/// The cache index view of a [`Store`].
#[derive(Debug, Clone, Copy)]
pub struct CacheIndex<'a> {
    store: &'a Store,
}

impl<'a> CacheIndex<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        CacheIndex { store }
    }

    /// Looks up `key`. With a lease, the record's snapshot and blobs are leased atomically
    /// with the lookup. Notes the lookup time for LRU (written by `Store::flush`).
    pub fn get(
        &self,
        key: &CacheKey,
        lease: Option<&Lease>,
    ) -> Result<Option<CacheRecord>, CacheError> {
        let _gc = match lease {
            Some(_) => Some(GcLock::shared(&self.store.inner.layout)?),
            None => None,
        };
        let record = {
            let tx = self.store.inner.db.read()?;
            let table = tx.open_table(CACHE).op("open cache table")?;
            let Some(bytes) = table.get(key.as_slice()).op("read cache record")? else {
                return Ok(None);
            };
            CacheRecord::decode(key, bytes.value())?
        };
        if let Some(lease) = lease {
            let resources = record
                .value
                .snapshot
                .iter()
                .cloned()
                .map(Resource::Snapshot)
                .chain(record.value.blobs.iter().copied().map(Resource::Blob));
            lease.add_locked(resources)?;
        }
        // Last-used times only order pruning, so one within the hour is kept as is: a
        // rebuild that changes nothing then writes nothing at exit.
        let now = now_millis();
        let granularity = self
            .store
            .inner
            .last_used_granularity_ms
            .load(Ordering::Relaxed);
        if now.saturating_sub(to_millis(record.last_used)) >= granularity {
            self.store
                .inner
                .touched
                .lock()
                .expect("touched set poisoned")
                .cache
                .insert(*key, now);
        }
        Ok(Some(record))
    }

    /// Stores `value` under `key` (replacing any record). Its snapshot must be committed and
    /// its blobs present.
    pub fn put(&self, key: &CacheKey, value: &CacheValue) -> Result<CacheRecord, CacheError> {
        let now = from_millis(now_millis());
        let record = CacheRecord {
            value: value.clone(),
            created: now,
            last_used: now,
        };
        let key_hex = || hex_key(key);
        let _gc = GcLock::shared(&self.store.inner.layout)?;
        for digest in &value.blobs {
            if !self.store.inner.layout.blob_path(digest).exists() {
                return Err(CacheError::BlobNotFound {
                    key: key_hex(),
                    digest: *digest,
                });
            }
        }
        let tx = self.store.inner.db.write()?;
        {
            if let Some(snapshot) = &value.snapshot {
                let snapshots = tx.open_table(SNAPSHOTS).op("open snapshots table")?;
                if snapshots
                    .get(snapshot.as_str())
                    .op("read snapshot")?
                    .is_none()
                {
                    return Err(CacheError::SnapshotNotFound {
                        key: key_hex(),
                        snapshot: snapshot.clone(),
                    });
                }
            }
            let mut table = tx.open_table(CACHE).op("open cache table")?;
            table
                .insert(key.as_slice(), record.encode().as_slice())
                .op("insert cache record")?;
        }
        tx.commit().op("commit cache record")?;
        Ok(record)
    }

    /// Removes the record under `key`; whether there was one. What it referred to becomes
    /// garbage for the next prune unless something else refers to it.
    pub fn remove(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let tx = self.store.inner.db.write()?;
        let removed = {
            let mut table = tx.open_table(CACHE).op("open cache table")?;
            let removed = table
                .remove(key.as_slice())
                .op("remove cache record")?
                .is_some();
            removed
        };
        tx.commit().op("commit cache record removal")?;
        Ok(removed)
    }

    /// How many records the index holds.
    pub fn len(&self) -> Result<u64, CacheError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(CACHE).op("open cache table")?;
        Ok(table.len().op("count cache records")?)
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    /// Every record with its key.
    pub fn list(&self) -> Result<Vec<(CacheKey, CacheRecord)>, CacheError> {
        let tx = self.store.inner.db.read()?;
        let table = tx.open_table(CACHE).op("open cache table")?;
        Ok(decode_all(&table)?)
    }
}

/// A cache key as lowercase hex (for messages and tools).
pub fn key_hex(key: &CacheKey) -> String {
    let mut out = String::with_capacity(64);
    for b in key {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = CacheRecord {
            value: CacheValue {
                snapshot: Some("0123456789abcdef".parse().unwrap()),
                blobs: vec![Digest::of(b"a"), Digest::of(b"b")],
                payload: b"{\"x\":1}".to_vec(),
            },
            created: from_millis(1),
            last_used: from_millis(2),
        };
        let key = [7u8; 32];
        let bytes = record.encode();
        assert_eq!(CacheRecord::decode(&key, &bytes).unwrap(), record);
        assert_eq!(
            record_snapshot(&key, &bytes).as_deref(),
            Some("0123456789abcdef")
        );
        let mut huge_count = bytes.clone();
        // snapshot tag + len + 16 bytes, then the count
        huge_count[1 + 1 + 4 + 16..1 + 1 + 4 + 16 + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(CacheRecord::decode(&key, &huge_count).is_err());
        assert_eq!(key_hex(&[0xab; 32]).len(), 64);
    }
}
