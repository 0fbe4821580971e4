//! The redb database under `--data-dir`: the single source of truth for
//! deployed agents, their components and their key-value state.
//!
//! Every method that writes commits durably before it returns, so an API
//! answer that reports success is never lost, even to `kill -9`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;

use crate::agents::record::AgentRecord;
use crate::tools::component::ToolRecord;

/// Agent id → JSON-encoded [`AgentRecord`].
const AGENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agents");
/// sha256 of a component (hex) → the component's bytes.
const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// Tool name → JSON-encoded [`ToolRecord`] of a deployed tool component.
const TOOLS: TableDefinition<&str, &[u8]> = TableDefinition::new("tools");
/// Tool name → the tool component's bytes.
const TOOL_COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tool_components");
/// (agent id, key) → value, the agents' `keyvalue` state.
const KEYVALUE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("keyvalue");

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "caxton.redb";

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("stored record for agent {id} is unreadable: {source}")]
    CorruptRecord {
        id: String,
        source: serde_json::Error,
    },
    #[error("stored record for tool {name} is unreadable: {source}")]
    CorruptToolRecord {
        name: String,
        source: serde_json::Error,
    },
    #[error("the component of tool `{0}` is missing from the database; deploy the tool again")]
    MissingToolComponent(String),
    #[error("component {0} is referenced by an agent but missing from the database")]
    MissingComponent(String),
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn db_err(e: impl Into<redb::Error>) -> StorageError {
    StorageError::Database(e.into())
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// A stored tool component: its record and its bytes.
pub type StoredTool = (ToolRecord, Vec<u8>);

/// What [`Storage::remove_agent`] did.
#[derive(Debug)]
pub struct Removed {
    pub existed: bool,
    /// The agent's component, deleted because no other agent used it.
    pub orphaned_component: Option<String>,
}

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
        let txn = db.begin_write().map_err(db_err)?;
        {
            txn.open_table(AGENTS).map_err(db_err)?;
            txn.open_table(COMPONENTS).map_err(db_err)?;
            txn.open_table(KEYVALUE).map_err(db_err)?;
            txn.open_table(TOOLS).map_err(db_err)?;
            txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
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

    /// Size of the database file in bytes.
    pub fn file_bytes(&self) -> u64 {
        file_len(&self.dir.join(DATABASE_FILE))
    }

    /// The database itself, for subsystems that keep their own tables in
    /// it (memory), so every durable write goes to one file.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Stores an agent and its component in one transaction.
    pub fn insert_agent(&self, record: &AgentRecord, component: &[u8]) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(|source| StorageError::CorruptRecord {
            id: record.id.clone(),
            source,
        })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut components = txn.open_table(COMPONENTS).map_err(db_err)?;
            components
                .insert(record.component_sha256.as_str(), component)
                .map_err(db_err)?;
            let mut agents = txn.open_table(AGENTS).map_err(db_err)?;
            agents
                .insert(record.id.as_str(), json.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Replaces an agent's record (status, counters are not stored here;
    /// only what a restart needs).
    pub fn update_agent(&self, record: &AgentRecord) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(|source| StorageError::CorruptRecord {
            id: record.id.clone(),
            source,
        })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut agents = txn.open_table(AGENTS).map_err(db_err)?;
            agents
                .insert(record.id.as_str(), json.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Removes an agent, its key-value state, and its component unless
    /// another agent uses the same one.
    pub fn remove_agent(&self, id: &str) -> Result<Removed> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed;
        let mut orphaned_component = None;
        {
            let mut agents = txn.open_table(AGENTS).map_err(db_err)?;
            let removed_sha = {
                let removed = agents.remove(id).map_err(db_err)?;
                existed = removed.is_some();
                removed.and_then(|bytes| {
                    serde_json::from_slice::<AgentRecord>(bytes.value())
                        .ok()
                        .map(|r| r.component_sha256)
                })
            };
            if let Some(sha) = removed_sha {
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
            let mut kv = txn.open_table(KEYVALUE).map_err(db_err)?;
            kv.retain_in((id, "")..(id, "\u{10ffff}"), |_, _| false)
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(Removed {
            existed,
            orphaned_component,
        })
    }

    /// Every stored agent, in id order.
    pub fn agents(&self) -> Result<Vec<AgentRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(AGENTS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let record = serde_json::from_slice(value.value()).map_err(|source| {
                StorageError::CorruptRecord {
                    id: key.value().to_string(),
                    source,
                }
            })?;
            out.push(record);
        }
        Ok(out)
    }

    pub fn component(&self, sha256: &str) -> Result<Vec<u8>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(COMPONENTS).map_err(db_err)?;
        match table.get(sha256).map_err(db_err)? {
            Some(bytes) => Ok(bytes.value().to_vec()),
            None => Err(StorageError::MissingComponent(sha256.to_string())),
        }
    }

    /// Stores (or replaces) a tool component and its record in one
    /// transaction.
    pub fn put_tool(&self, record: &ToolRecord, component: &[u8]) -> Result<()> {
        let json =
            serde_json::to_vec(record).map_err(|source| StorageError::CorruptToolRecord {
                name: record.name.clone(),
                source,
            })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
            components
                .insert(record.name.as_str(), component)
                .map_err(db_err)?;
            let mut tools = txn.open_table(TOOLS).map_err(db_err)?;
            tools
                .insert(record.name.as_str(), json.as_slice())
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Removes a tool component; answers whether it existed.
    pub fn remove_tool(&self, name: &str) -> Result<bool> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed;
        {
            let mut tools = txn.open_table(TOOLS).map_err(db_err)?;
            existed = tools.remove(name).map_err(db_err)?.is_some();
            let mut components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
            components.remove(name).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        Ok(existed)
    }

    /// Every stored tool component with its bytes, in name order. An
    /// entry that cannot be read is its own error, so one damaged tool
    /// does not hide the others.
    pub fn tools(&self) -> Result<Vec<Result<StoredTool>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let tools = txn.open_table(TOOLS).map_err(db_err)?;
        let components = txn.open_table(TOOL_COMPONENTS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in tools.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let name = key.value().to_string();
            let one = serde_json::from_slice::<ToolRecord>(value.value())
                .map_err(|source| StorageError::CorruptToolRecord {
                    name: name.clone(),
                    source,
                })
                .and_then(|record| {
                    let bytes = components
                        .get(name.as_str())
                        .map_err(db_err)?
                        .ok_or_else(|| StorageError::MissingToolComponent(name.clone()))?
                        .value()
                        .to_vec();
                    Ok((record, bytes))
                });
            out.push(one);
        }
        Ok(out)
    }

    pub fn kv_get(&self, agent_id: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KEYVALUE).map_err(db_err)?;
        Ok(table
            .get((agent_id, key))
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    pub fn kv_set(&self, agent_id: &str, key: &str, value: &[u8]) -> Result<()> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(KEYVALUE).map_err(db_err)?;
            table.insert((agent_id, key), value).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    pub fn kv_delete(&self, agent_id: &str, key: &str) -> Result<bool> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed;
        {
            let mut table = txn.open_table(KEYVALUE).map_err(db_err)?;
            existed = table.remove((agent_id, key)).map_err(db_err)?.is_some();
        }
        txn.commit().map_err(db_err)?;
        Ok(existed)
    }

    pub fn kv_keys(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(KEYVALUE).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table
            .range((agent_id, prefix)..(agent_id, "\u{10ffff}"))
            .map_err(db_err)?
        {
            let (key, _) = entry.map_err(db_err)?;
            let (_, k) = key.value();
            if !k.starts_with(prefix) {
                break;
            }
            out.push(k.to_string());
        }
        Ok(out)
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
            source: None,
        }
    }

    #[test]
    fn kv_is_scoped_per_agent_and_removed_with_it() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = Storage::open(dir.path())?;
        s.insert_agent(&record("a", "alpha", "x"), b"wasm")?;
        s.insert_agent(&record("b", "beta", "x"), b"wasm")?;
        s.kv_set("a", "k1", b"1")?;
        s.kv_set("a", "k2", b"2")?;
        s.kv_set("b", "k1", b"other")?;
        assert_eq!(s.kv_keys("a", "k")?, vec!["k1", "k2"]);
        assert_eq!(s.kv_get("b", "k1")?.as_deref(), Some(&b"other"[..]));
        assert!(s.remove_agent("a")?.existed);
        assert_eq!(s.kv_get("a", "k1")?, None);
        assert_eq!(s.kv_get("b", "k1")?.as_deref(), Some(&b"other"[..]));
        // Shared component survives while "b" uses it, then goes with it.
        assert_eq!(s.component("x")?, b"wasm");
        let removed = s.remove_agent("b")?;
        assert_eq!(removed.orphaned_component.as_deref(), Some("x"));
        assert!(s.component("x").is_err());
        Ok(())
    }
}
