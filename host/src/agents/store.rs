//! The agent tables: each deployed agent's record and its component's
//! bytes (shared by every agent deployed from the same bytes). An agent's
//! key-value state lives in `runtime::imports::keyvalue` and is removed
//! with the agent, in the same transaction.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::record::AgentRecord;
use crate::runtime::imports::keyvalue;
use crate::storage::{Result, Storage, StorageError, db_err};

/// Agent id → JSON-encoded [`AgentRecord`].
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
/// sha256 of a component (hex) → the component's bytes.
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");

/// What [`remove`] did.
#[derive(Debug)]
pub struct Removed {
    pub existed: bool,
    /// The agent's component, deleted because no other agent used it.
    pub orphaned_component: Option<String>,
}

/// Creates the agent tables (and the key-value table) if missing, so
/// readers never meet a missing table.
pub fn create_tables(storage: &Storage) -> Result<()> {
    storage.write(|txn| {
        txn.open_table(AGENTS).map_err(db_err)?;
        txn.open_table(COMPONENTS).map_err(db_err)?;
        keyvalue::create_table(txn)
    })
}

fn encode(record: &AgentRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|source| StorageError::CorruptRecord {
        what: format!("agent {}", record.id),
        source,
    })
}

fn put_record(txn: &WriteTransaction, record: &AgentRecord) -> Result<()> {
    let json = encode(record)?;
    let mut agents = txn.open_table(AGENTS).map_err(db_err)?;
    agents
        .insert(record.id.as_str(), json.as_slice())
        .map_err(db_err)?;
    Ok(())
}

/// Stores an agent and its component in one transaction.
pub fn insert(storage: &Storage, record: &AgentRecord, component: &[u8]) -> Result<()> {
    storage.write(|txn| {
        {
            let mut components = txn.open_table(COMPONENTS).map_err(db_err)?;
            components
                .insert(record.component_sha256.as_str(), component)
                .map_err(db_err)?;
        }
        put_record(txn, record)
    })
}

/// Replaces an agent's record (status and counters are not stored; only
/// what a restart needs).
pub fn update(storage: &Storage, record: &AgentRecord) -> Result<()> {
    storage.write(|txn| put_record(txn, record))
}

/// Removes an agent, its key-value state, and its component unless
/// another agent uses the same one.
pub fn remove(storage: &Storage, id: &str) -> Result<Removed> {
    storage.write(|txn| {
        let mut agents = txn.open_table(AGENTS).map_err(db_err)?;
        let removed_sha = {
            let removed = agents.remove(id).map_err(db_err)?;
            removed.map(|bytes| {
                serde_json::from_slice::<AgentRecord>(bytes.value())
                    .ok()
                    .map(|r| r.component_sha256)
            })
        };
        let existed = removed_sha.is_some();
        let mut orphaned_component = None;
        if let Some(Some(sha)) = removed_sha {
            let mut still_used = false;
            for entry in agents.iter().map_err(db_err)? {
                let (_, value) = entry.map_err(db_err)?;
                if let Ok(other) = serde_json::from_slice::<AgentRecord>(value.value())
                    && other.component_sha256 == sha
                {
                    still_used = true;
                    break;
                }
            }
            if !still_used {
                let mut components = txn.open_table(COMPONENTS).map_err(db_err)?;
                components.remove(sha.as_str()).map_err(db_err)?;
                orphaned_component = Some(sha);
            }
        }
        keyvalue::remove_all(txn, id)?;
        Ok(Removed {
            existed,
            orphaned_component,
        })
    })
}

/// Every stored agent, in id order.
pub fn all(storage: &Storage) -> Result<Vec<AgentRecord>> {
    let txn = storage.database().begin_read().map_err(db_err)?;
    let table = txn.open_table(AGENTS).map_err(db_err)?;
    let mut out = Vec::new();
    for entry in table.iter().map_err(db_err)? {
        let (key, value) = entry.map_err(db_err)?;
        let record = serde_json::from_slice(value.value()).map_err(|source| {
            StorageError::CorruptRecord {
                what: format!("agent {}", key.value()),
                source,
            }
        })?;
        out.push(record);
    }
    Ok(out)
}

/// The component stored under `sha256`.
pub fn component(storage: &Storage, sha256: &str) -> Result<Vec<u8>> {
    let txn = storage.database().begin_read().map_err(db_err)?;
    let table = txn.open_table(COMPONENTS).map_err(db_err)?;
    match table.get(sha256).map_err(db_err)? {
        Some(bytes) => Ok(bytes.value().to_vec()),
        None => Err(StorageError::Missing(format!(
            "component {sha256} is referenced by an agent but missing from the database"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::limits::ResourceLimits;

    fn record(id: &str, name: &str, sha: &str) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            name: name.into(),
            component_sha256: sha.into(),
            limits: ResourceLimits {
                max_memory_bytes: 1,
                max_fuel: 1,
                max_execution_time_ms: 1,
            },
            capabilities: vec![],
            description: String::new(),
            config_json: "{}".into(),
            created_at: "now".into(),
            suspended: false,
            memory_grants: vec![],
            kind: Default::default(),
            tools: Vec::new(),
            llm_provider: None,
            llm_granted: false,
            source: None,
        }
    }

    #[test]
    fn kv_is_scoped_per_agent_and_removed_with_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = Storage::open(dir.path())?;
        create_tables(&s)?;
        insert(&s, &record("a", "alpha", "x"), b"wasm")?;
        insert(&s, &record("b", "beta", "x"), b"wasm")?;
        keyvalue::set(&s, "a", "k1", b"1")?;
        keyvalue::set(&s, "a", "k2", b"2")?;
        keyvalue::set(&s, "b", "k1", b"other")?;
        assert_eq!(keyvalue::keys(&s, "a", "k")?, vec!["k1", "k2"]);
        assert_eq!(
            keyvalue::get(&s, "b", "k1")?.as_deref(),
            Some(&b"other"[..])
        );
        assert!(remove(&s, "a")?.existed);
        assert_eq!(keyvalue::get(&s, "a", "k1")?, None);
        assert_eq!(
            keyvalue::get(&s, "b", "k1")?.as_deref(),
            Some(&b"other"[..])
        );
        // Shared component survives while "b" uses it, then goes with it.
        assert_eq!(component(&s, "x")?, b"wasm");
        let removed = remove(&s, "b")?;
        assert_eq!(removed.orphaned_component.as_deref(), Some("x"));
        assert!(component(&s, "x").is_err());
        Ok(())
    }
}
