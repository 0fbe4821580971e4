//! `caxton:agent/keyvalue`: durable per-agent state in redb.

use std::sync::Arc;

use crate::runtime::bindings::caxton::agent::{keyvalue, types::Error};
use crate::runtime::{AgentContext, HostState};
use crate::storage::Storage;

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

impl keyvalue::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        check_key(&key)?;
        with_storage(&self.agent, move |s, id| s.kv_get(id, &key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::InvalidInput(format!(
                "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
        with_storage(&self.agent, move |s, id| s.kv_set(id, &key, &value)).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, Error> {
        check_key(&key)?;
        with_storage(&self.agent, move |s, id| s.kv_delete(id, &key)).await
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, Error> {
        with_storage(&self.agent, move |s, id| s.kv_keys(id, &prefix)).await
    }
}
