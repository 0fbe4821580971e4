//! The tool tables: each deployed tool component's record and its bytes.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runtime::limits::ResourceLimits;
use crate::storage::{Result, Storage, StorageError, db_err};

/// Tool name → JSON-encoded [`ToolRecord`].
const TOOLS: TableDefinition<&str, &[u8]> = TableDefinition::new("tools");
/// Tool name → the tool component's bytes.
const TOOL_COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tool_components");

/// What is stored about a deployed tool component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolRecord {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object, as the tool describes it.
    pub parameters: Value,
    pub component_sha256: String,
    pub size_bytes: u64,
    pub limits: ResourceLimits,
    pub deployed_at: String,
}

/// A stored tool component: its record and its bytes.
pub type StoredTool = (ToolRecord, Vec<u8>);

/// Creates the tool tables if missing, so readers never meet a missing table.
pub fn create_tables(storage: &Storage) -> Result<()> {
    storage.write(|txn| {
        txn.open_table(TOOLS).map_err(db_err)?;
        txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
        Ok(())
    })
}

/// Stores (or replaces) a tool component and its record in one transaction.
pub fn put(storage: &Storage, record: &ToolRecord, component: &[u8]) -> Result<()> {
    let json = serde_json::to_vec(record).map_err(|source| StorageError::CorruptRecord {
        what: format!("tool {}", record.name),
        source,
    })?;
    storage.write(|txn| {
        let mut components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
        components
            .insert(record.name.as_str(), component)
            .map_err(db_err)?;
        let mut tools = txn.open_table(TOOLS).map_err(db_err)?;
        tools
            .insert(record.name.as_str(), json.as_slice())
            .map_err(db_err)?;
        Ok(())
    })
}

/// Removes a tool component; answers whether it existed.
pub fn remove(storage: &Storage, name: &str) -> Result<bool> {
    storage.write(|txn| {
        let mut tools = txn.open_table(TOOLS).map_err(db_err)?;
        let existed = tools.remove(name).map_err(db_err)?.is_some();
        let mut components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
        components.remove(name).map_err(db_err)?;
        Ok(existed)
    })
}

/// Every stored tool component with its bytes, in name order. An entry
/// that cannot be read is its own error, so one damaged tool does not hide
/// the others.
pub fn all(storage: &Storage) -> Result<Vec<Result<StoredTool>>> {
    let txn = storage.database().begin_read().map_err(db_err)?;
    let tools = txn.open_table(TOOLS).map_err(db_err)?;
    let components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
    let mut out = Vec::new();
    for entry in tools.iter().map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let name = key.value().to_string();
        let one = serde_json::from_slice::<ToolRecord>(value.value())
            .map_err(|source| StorageError::CorruptRecord {
                what: format!("tool {name}"),
                source,
            })
            .and_then(|record| {
                let bytes = components
                    .get(name.as_str())
                    .map_err(db_err)?
                    .ok_or_else(|| {
                        StorageError::Missing(format!(
                            "the component of tool `{name}` is missing from the database; \
                             deploy the tool again"
                        ))
                    })?
                    .value()
                    .to_vec();
                Ok((record, bytes))
            });
        out.push(one);
    }
    Ok(out)
}
