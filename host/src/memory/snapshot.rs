//! Memory as one file: every memory table copied, at one moment, into a
//! database of its own. A cluster stores these in its object store so a
//! new node (or one that was away longer than the memory stream keeps)
//! starts from a copy instead of replaying every write ever made.
//!
//! The copy is taken in one read transaction, so it holds exactly the
//! writes up to the memory-stream position it records (`mem_meta`
//! carries that position, written in the same transaction as each
//! apply), and it is put back in one write transaction: a crash during a
//! load leaves the node's memory as it was.

use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::model::{MemoryError, Result};

/// Copies every row of `table` from `from` into the same table of `to`.
pub(super) fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<()> {
    let mut target = to.open_table(table)?;
    let source = match from.open_table(table) {
        Ok(source) => source,
        // A table the other side never created holds nothing.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in source.iter()? {
        let (key, value) = row?;
        target.insert(key.value(), value.value())?;
    }
    Ok(())
}

/// Empties `table` in `txn` (it is created again, empty, by the copy).
pub(super) fn drop_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<()> {
    txn.delete_table(table)
        .map_err(|e| MemoryError::Storage(format!("cannot clear {}: {e}", table.name())))?;
    Ok(())
}

/// A new database file at `path` for a snapshot.
pub(super) fn create(path: &Path) -> Result<Database> {
    Database::create(path).map_err(|e| {
        MemoryError::Storage(format!(
            "cannot create the memory snapshot {}: {e}",
            path.display()
        ))
    })
}

/// The snapshot at `path`, opened to be read.
pub(super) fn open(path: &Path) -> Result<Database> {
    Database::open(path).map_err(|e| {
        MemoryError::Storage(format!(
            "the memory snapshot {} cannot be opened: {e}",
            path.display()
        ))
    })
}

/// A read transaction on a snapshot.
pub(super) fn read(db: &Database) -> Result<ReadTransaction> {
    Ok(db.begin_read()?)
}
