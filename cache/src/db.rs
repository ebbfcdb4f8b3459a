//! The metadata database (`v1/db.redb`): its tables, schema version and open.
//!
//! Main type: [`Db`], a redb database opened in `ConcurrencyMode::MultiWriter`. The tables
//! ([`META`], [`CACHE`], [`SNAPSHOTS`], [`LAYERS`], [`IMAGES`], [`CACHE_MOUNTS`],
//! [`UNSYNCED`]) hold
//! records encoded by [`crate::encoding`]; each concept module owns the records of its table.
//!
//! Key decision: every process keeps the database open for as long as its `Store` lives, and
//! redb's multi-writer mode (4.5+) coordinates them with byte-range (OFD) locks: any number of
//! read transactions run at once in any process, write transactions are serialized across
//! processes, and a crashed process's locks vanish with it. The alternative — one process at a
//! time, reopening the file per transaction — measured 0.8–12 ms per open (an fsync-ed header
//! write on open and close), against ~10 µs for a read transaction here; see the crate docs.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use redb::{
    ConcurrencyMode, Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, WriteTransaction,
};

use crate::encoding::DecodeError;
use crate::layout::Layout;

/// The schema version of the tables in `v1/db.redb`. 2 added `UNSYNCED`; an older
/// database is upgraded in place by creating the tables it lacks.
pub const SCHEMA_VERSION: u64 = 2;

/// `name → value`: `schema` holds [`SCHEMA_VERSION`].
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Cache key (32 bytes) → cache record.
pub const CACHE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cache");
/// Snapshot id → snapshot record.
pub const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// Layer blob digest (32 raw bytes) → the snapshot it was made from or unpacked to.
pub const LAYERS: TableDefinition<&[u8], &str> = TableDefinition::new("layer_blobs");
/// Image name → image record.
pub const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Cache mount directory id → cache mount record.
pub const CACHE_MOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("cache_mounts");
/// Snapshot id → boot id of the kernel it was committed under, for snapshots whose files
/// may still be only in the page cache (see `snapshot.rs`, "Durability").
pub const UNSYNCED: TableDefinition<&str, &str> = TableDefinition::new("unsynced_snapshots");

/// redb's page cache for this small database; its default (1 GiB) is sized for big ones.
const CACHE_SIZE: usize = 16 * 1024 * 1024;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be opened (or created, or repaired).
    #[error("cannot open metadata database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// The database was written by a newer Strata.
    #[error(
        "metadata database {path} has schema version {found}, newer than the supported version \
         {supported}: upgrade strata"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version stored.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u64,
    },
    /// A transaction or table operation failed.
    #[error("metadata database operation failed: {operation}")]
    Redb {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored record cannot be decoded.
    #[error("corrupt {table} record {key}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key, printable.
        key: String,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
}

/// Attaches the operation to a redb error.
pub trait DbResult<T> {
    /// Converts the error into [`DbError::Redb`] naming `operation`.
    fn op(self, operation: &'static str) -> Result<T, DbError>;
}

impl<T, E: Into<redb::Error>> DbResult<T> for Result<T, E> {
    fn op(self, operation: &'static str) -> Result<T, DbError> {
        self.map_err(|e| DbError::Redb {
            operation,
            source: Box::new(e.into()),
        })
    }
}

/// The open metadata database.
pub struct Db {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database of `layout` and checks its schema version.
    pub fn open(layout: &Layout) -> Result<Db, DbError> {
        let path = layout.db_path();
        let open_err = |e: redb::Error| DbError::Open {
            path: path.clone(),
            source: Box::new(e),
        };
        // Creating the file and the first open of a file left by a crash (which repairs it)
        // are done by one process at a time.
        let lock = open_lock(layout).map_err(|e| open_err(redb::Error::Io(e)))?;
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_SIZE)
            .create(&path)
            .map_err(|e| open_err(e.into()))?;
        drop(lock);
        let db = Db { db, path };
        db.check_schema()?;
        Ok(db)
    }

    fn check_schema(&self) -> Result<(), DbError> {
        let stored = {
            let tx = self.read()?;
            match tx.open_table(META) {
                Ok(meta) => meta
                    .get("schema")
                    .op("read schema version")?
                    .map(|v| v.value()),
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).op("open meta table"),
            }
        };
        match stored {
            Some(found) if found > SCHEMA_VERSION => Err(DbError::NewerSchema {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(SCHEMA_VERSION) => Ok(()),
            // Missing (new file) or older: create what is missing.
            _ => self.initialize(),
        }
    }

    /// Creates every table and records the schema version (idempotent; racing processes
    /// are serialized by the write transaction).
    fn initialize(&self) -> Result<(), DbError> {
        let tx = self.write()?;
        {
            let mut meta = tx.open_table(META).op("create meta table")?;
            let existing = meta
                .get("schema")
                .op("read schema version")?
                .map(|v| v.value());
            match existing {
                Some(found) if found > SCHEMA_VERSION => {
                    return Err(DbError::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                Some(SCHEMA_VERSION) => {}
                // New, or older: the tables below are what the upgrade adds.
                _ => {
                    meta.insert("schema", SCHEMA_VERSION)
                        .op("write schema version")?;
                }
            }
            tx.open_table(CACHE).op("create cache table")?;
            tx.open_table(SNAPSHOTS).op("create snapshots table")?;
            tx.open_table(LAYERS).op("create layer blobs table")?;
            tx.open_table(IMAGES).op("create images table")?;
            tx.open_table(CACHE_MOUNTS)
                .op("create cache mounts table")?;
            tx.open_table(UNSYNCED)
                .op("create unsynced snapshots table")?;
        }
        tx.commit().op("commit schema")
    }

    /// Begins a read transaction: a consistent snapshot of the latest commit of any process.
    pub fn read(&self) -> Result<ReadTransaction, DbError> {
        self.db.begin_read().op("begin read transaction")
    }

    /// Begins a write transaction, waiting while another one (of any process) is open.
    pub fn write(&self) -> Result<WriteTransaction, DbError> {
        self.db.begin_write().op("begin write transaction")
    }
}

fn open_lock(layout: &Layout) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(layout.open_lock_path())?;
    file.lock()?;
    Ok(file)
}

/// A printable form of a binary key, for error messages.
pub fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let root = std::env::temp_dir().join(format!(
            "strata-db-{}-{}",
            std::process::id(),
            crate::durable::random_hex()
        ));
        let layout = Layout::new(root);
        layout.create().unwrap();
        layout
    }

    #[test]
    fn handles_share_commits_and_newer_schemas_are_refused() {
        let layout = layout();
        let a = Db::open(&layout).unwrap();
        let b = Db::open(&layout).unwrap();
        let tx = a.write().unwrap();
        tx.open_table(IMAGES)
            .unwrap()
            .insert("x", [1u8].as_slice())
            .unwrap();
        tx.commit().unwrap();
        let seen = b.read().unwrap();
        assert!(seen.open_table(IMAGES).unwrap().get("x").unwrap().is_some());
        drop(seen);

        let tx = b.write().unwrap();
        tx.open_table(META).unwrap().insert("schema", 99).unwrap();
        tx.commit().unwrap();
        drop((a, b));
        let err = Db::open(&layout).unwrap_err();
        assert!(
            matches!(
                err,
                DbError::NewerSchema {
                    found: 99,
                    supported: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade strata"));
        std::fs::remove_dir_all(layout.root()).unwrap();
    }

    #[test]
    fn a_version_1_database_is_upgraded_in_place() {
        let layout = layout();
        {
            let db = Db::open(&layout).unwrap();
            let tx = db.write().unwrap();
            tx.delete_table(UNSYNCED).unwrap();
            tx.open_table(META).unwrap().insert("schema", 1).unwrap();
            tx.commit().unwrap();
        }
        let db = Db::open(&layout).unwrap();
        let tx = db.read().unwrap();
        let meta = tx.open_table(META).unwrap();
        assert_eq!(meta.get("schema").unwrap().unwrap().value(), SCHEMA_VERSION);
        assert!(tx.open_table(UNSYNCED).is_ok());
        drop((meta, tx, db));
        std::fs::remove_dir_all(layout.root()).unwrap();
    }
}
