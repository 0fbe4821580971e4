//! What the server keeps about itself in the database: how many times it
//! started on this data directory (`caxton_server_restarts_total`), and
//! whether it is in safe mode (kept across restarts: an operator who turned
//! it on while investigating damage does not want a restart to turn it off).

use redb::{ReadableTable, TableDefinition};

use crate::storage::{Result, Storage, db_err};

/// Name → value.
const SERVER_STATE: TableDefinition<&str, u64> = TableDefinition::new("server_state");
const STARTS: &str = "starts";
const SAFE_MODE: &str = "safe_mode";

fn read(storage: &Storage, key: &str) -> Result<u64> {
    storage.write(|txn| {
        let table = txn.open_table(SERVER_STATE).map_err(db_err)?;
        Ok(table.get(key).map_err(db_err)?.map_or(0, |v| v.value()))
    })
}

fn put(storage: &Storage, key: &str, value: u64) -> Result<()> {
    storage.write(|txn| {
        let mut table = txn.open_table(SERVER_STATE).map_err(db_err)?;
        table.insert(key, value).map_err(db_err)?;
        Ok(())
    })
}

/// Counts this start; answers the starts so far, this one included.
pub fn record_start(storage: &Storage) -> Result<u64> {
    let starts = read(storage, STARTS)? + 1;
    put(storage, STARTS, starts)?;
    Ok(starts)
}

pub fn safe_mode(storage: &Storage) -> Result<bool> {
    Ok(read(storage, SAFE_MODE)? != 0)
}

pub fn set_safe_mode(storage: &Storage, on: bool) -> Result<()> {
    put(storage, SAFE_MODE, u64::from(on))
}
