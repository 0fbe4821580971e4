//! The redb database under `--data-dir`: one file for everything durable.
//!
//! This module only opens the database, compacts it when asked, and hands
//! out transactions; each capability owns its tables next to its code
//! (`agents::store`, `tools::store`, `memory::store`,
//! `runtime::imports::keyvalue`), so nothing here knows what is stored.
//!
//! Every write commits durably before it returns, so an API answer that
//! reports success is never lost, even to `kill -9`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

mod analyze;
mod growth;
pub use analyze::{Analysis, TableInfo};
pub use growth::Growth;
use thiserror::Error;

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "caxton.redb";

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    /// `what` names the record: `agent <id>`, `tool <name>`.
    #[error("stored record for {what} is unreadable: {source}")]
    CorruptRecord {
        what: String,
        source: serde_json::Error,
    },
    /// Something a record refers to is not there; the text says what and
    /// how to recover.
    #[error("{0}")]
    Missing(String),
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Any redb failure as a [`StorageError`].
pub fn db_err(e: impl Into<redb::Error>) -> StorageError {
    StorageError::Database(e.into())
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// redb's page cache unless `memory.database_cache_mb` says otherwise.
/// redb's own default (1 GiB) would make the database the largest user of
/// memory at 100K entities; hot pages fit in far less (the vector index,
/// not redb, serves semantic search).
pub const DEFAULT_CACHE_MB: u64 = 64;

/// Present in the data directory when a compaction was asked for; redb
/// compacts only with exclusive access, so it happens at the next open.
pub const COMPACT_MARKER: &str = "compact-requested";

pub struct Storage {
    db: Database,
    dir: PathBuf,
}

impl Storage {
    /// Opens (or creates) the database in `data_dir` and makes sure every
    /// table exists, so readers never meet a missing table.
    pub fn open(data_dir: &Path) -> Result<Storage> {
        Self::open_with_cache(data_dir, DEFAULT_CACHE_MB)
    }

    /// [`Storage::open`] with a page cache of `cache_mb` MiB.
    pub fn open_with_cache(data_dir: &Path, cache_mb: u64) -> Result<Storage> {
        let cache_bytes =
            usize::try_from(cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let mut db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(data_dir.join(DATABASE_FILE))
            .map_err(db_err)?;
        let marker = data_dir.join(COMPACT_MARKER);
        if marker.exists() {
            let before = file_len(&data_dir.join(DATABASE_FILE));
            let started = std::time::Instant::now();
            match db.compact() {
                Ok(_) => tracing::info!(
                    before_bytes = before,
                    after_bytes = file_len(&data_dir.join(DATABASE_FILE)),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "database compacted"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "database compaction failed; continuing uncompacted")
                }
            }
            if let Err(e) = std::fs::remove_file(&marker) {
                tracing::warn!(error = %e, "could not remove {}", marker.display());
            }
        }
        Ok(Storage {
            db,
            dir: data_dir.to_path_buf(),
        })
    }

    /// Asks for a compaction (`memory optimize --vacuum`) at the next start.
    pub fn request_compaction(&self) -> std::io::Result<()> {
        std::fs::write(
            self.dir.join(COMPACT_MARKER),
            b"requested by memory optimize --vacuum\n",
        )
    }

    /// The data directory the database lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of the database file in bytes.
    pub fn file_bytes(&self) -> u64 {
        file_len(&self.dir.join(DATABASE_FILE))
    }

    /// The database itself, for subsystems that keep their own tables in
    /// it (memory), so every durable write goes to one file.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `f` in one write transaction and commits it durably.
    pub fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let out = f(&txn)?;
        txn.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(db_err)?;
        f(&txn)
    }
}

/// Opens `path` for writing as a file only its owner can read or write
/// (0600 from creation, never briefly readable by others): tokens, backups,
/// downloads. `create_new` refuses an existing file; otherwise it is
/// truncated.
pub fn open_private(path: &Path, create_new: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
