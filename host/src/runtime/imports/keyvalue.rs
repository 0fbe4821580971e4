//! `caxton:agent/keyvalue`: durable per-agent state in redb, and the
//! table that holds it.

use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition, WriteTransaction};

use crate::runtime::bindings::caxton::agent0_1_0::{keyvalue, types::Error};
use crate::runtime::{AgentContext, HostState};
use crate::storage::{Storage, db_err};

/// (agent id, key) → value.
const KEYVALUE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("keyvalue");

/// Creates the table if missing (with the agent tables, by `agents::store`).
pub fn create_table(txn: &WriteTransaction) -> crate::storage::Result<()> {
    txn.open_table(KEYVALUE).map_err(db_err)?;
    Ok(())
}

/// Deletes every key of `agent_id`, inside the caller's transaction (the
/// agent's removal).
pub fn remove_all(txn: &WriteTransaction, agent_id: &str) -> crate::storage::Result<()> {
    let mut kv = txn.open_table(KEYVALUE).map_err(db_err)?;
    kv.retain_in((agent_id, "")..(agent_id, "\u{10ffff}"), |_, _| false)
        .map_err(db_err)?;
    Ok(())
}

pub fn get(
    storage: &Storage,
    agent_id: &str,
    key: &str,
) -> crate::storage::Result<Option<Vec<u8>>> {
    let txn = storage.database().begin_read().map_err(db_err)?;
    let table = txn.open_table(KEYVALUE).map_err(db_err)?;
    Ok(table
        .get((agent_id, key))
        .map_err(db_err)?
        .map(|v| v.value().to_vec()))
}

pub fn set(
    storage: &Storage,
    agent_id: &str,
    key: &str,
    value: &[u8],
) -> crate::storage::Result<()> {
    storage.write(|txn| {
        let mut table = txn.open_table(KEYVALUE).map_err(db_err)?;
        table.insert((agent_id, key), value).map_err(db_err)?;
        Ok(())
    })
}

pub fn delete(storage: &Storage, agent_id: &str, key: &str) -> crate::storage::Result<bool> {
    storage.write(|txn| {
        let mut table = txn.open_table(KEYVALUE).map_err(db_err)?;
        Ok(table.remove((agent_id, key)).map_err(db_err)?.is_some())
    })
}

pub fn keys(
    storage: &Storage,
    agent_id: &str,
    prefix: &str,
) -> crate::storage::Result<Vec<String>> {
    let txn = storage.database().begin_read().map_err(db_err)?;
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

/// Longest key accepted, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Largest value accepted, in bytes.
const MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::InvalidInput("key must not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidInput(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Runs a storage call for this agent on the blocking pool (redb commits fsync).
async fn with_storage<T: Send + 'static>(
    agent: &Arc<AgentContext>,
    f: impl FnOnce(&Storage, &str) -> crate::storage::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let agent = agent.clone();
    tokio::task::spawn_blocking(move || f(&agent.storage, &agent.id))
        .await
        .map_err(|e| Error::Internal(format!("storage task failed: {e}")))?
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The cluster's store, when this node is in one. Values written before
/// the node joined stay in its database and are read from there until
/// the agent writes or deletes them (then they move or go): a lazy
/// migration, so joining a cluster loses no state.
fn shared(agent: &AgentContext) -> Option<Arc<dyn crate::runtime::state::SharedState>> {
    agent.shared_state.get().cloned()
}

impl keyvalue::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        check_key(&key)?;
        if let Some(shared) = shared(&self.agent)
            && let Some(value) = shared
                .get(&self.agent.id, &key)
                .await
                .map_err(Error::Internal)?
        {
            return Ok(Some(value));
        }
        with_storage(&self.agent, move |s, id| get(s, id, &key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::InvalidInput(format!(
                "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        let Some(shared) = shared(&self.agent) else {
            return with_storage(&self.agent, move |s, id| set(s, id, &key, &value)).await;
        };
        shared
            .set(&self.agent.id, &key, value)
            .await
            .map_err(Error::Internal)?;
        with_storage(&self.agent, move |s, id| delete(s, id, &key).map(|_| ())).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, Error> {
        check_key(&key)?;
        let was_shared = match shared(&self.agent) {
            Some(shared) => shared
                .delete(&self.agent.id, &key)
                .await
                .map_err(Error::Internal)?,
            None => false,
        };
        let was_local = with_storage(&self.agent, move |s, id| delete(s, id, &key)).await?;
        Ok(was_shared || was_local)
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, Error> {
        let local = {
            let prefix = prefix.clone();
            with_storage(&self.agent, move |s, id| keys(s, id, &prefix)).await?
        };
        let Some(shared) = shared(&self.agent) else {
            return Ok(local);
        };
        let mut all: std::collections::BTreeSet<String> = shared
            .keys(&self.agent.id, &prefix)
            .await
            .map_err(Error::Internal)?
            .into_iter()
            .collect();
        all.extend(local);
        Ok(all.into_iter().collect())
    }
}
