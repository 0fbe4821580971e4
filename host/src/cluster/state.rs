//! Agents' key-value state in the bucket `<cluster>_state`, so an agent
//! that moves to another node (its node died, or was drained) carries on
//! from its last acknowledged write: a `set` returns once JetStream has
//! stored it. Keys are `<agent id>.<key>` (ids are the same on every
//! node); a key NATS would not take as a KV token is written as
//! `kv::key_token` says.

use std::collections::BTreeSet;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;

use crate::runtime::state::SharedState;

/// Most keys one listing reads.
const MAX_LISTED: usize = 100_000;

pub struct ClusterState {
    js: jetstream::Context,
    bucket: String,
    store: tokio::sync::OnceCell<kv::Store>,
}

impl ClusterState {
    pub fn new(client: async_nats::Client, cluster: &str) -> Self {
        ClusterState {
            js: jetstream::new(client),
            bucket: format!("{cluster}_state"),
            store: tokio::sync::OnceCell::new(),
        }
    }

    async fn store(&self) -> Result<&kv::Store, String> {
        self.store
            .get_or_try_init(|| {
                super::kv::bucket(&self.js, &self.bucket, 1, std::time::Duration::ZERO)
            })
            .await
    }

    fn key(agent_id: &str, key: &str) -> String {
        format!("{agent_id}.{}", super::kv::key_token(key))
    }

    /// Every agent's state (at most `max_keys` keys; values over
    /// `max_value` bytes left out), for a backup: NATS key and value.
    pub async fn everything(
        &self,
        max_keys: usize,
        max_value: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let store = self.store().await?;
        Ok(super::kv::read_all(store, max_keys, max_value)
            .await?
            .into_iter()
            .map(|(key, value, _)| (key, value))
            .collect())
    }

    /// Sets NATS key `key` from a restored backup unless it is set;
    /// answers whether it was written.
    pub async fn restore(&self, key: &str, value: Vec<u8>) -> Result<bool, String> {
        let store = self.store().await?;
        match store.create(key, value.into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("cannot restore state key {key}: {e}")),
        }
    }

    /// Every key the agent `agent_id` ever wrote and has not deleted.
    async fn all_keys(&self, agent_id: &str) -> Result<Vec<String>, String> {
        let store = self.store().await?;
        let stream = self
            .js
            .get_stream(format!("KV_{}", self.bucket))
            .await
            .map_err(|e| format!("cannot read the cluster's state: {e}"))?;
        let filter = format!("$KV.{}.{agent_id}.>", self.bucket);
        let mut subjects = stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| format!("cannot list the agent's keys: {e}"))?;
        let prefix = format!("$KV.{}.{agent_id}.", self.bucket);
        let mut tokens = BTreeSet::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(|e| format!("cannot list the agent's keys: {e}"))?;
            if let Some(token) = subject.strip_prefix(&prefix) {
                tokens.insert(token.to_string());
            }
            if tokens.len() >= MAX_LISTED {
                break;
            }
        }
        // A deleted key's subject keeps its delete marker: read each.
        let mut keys = Vec::new();
        for token in tokens {
            let present = store
                .get(format!("{agent_id}.{token}"))
                .await
                .map_err(|e| format!("cannot read the agent's state: {e}"))?
                .is_some();
            if present && let Some(key) = super::kv::from_key_token(&token) {
                keys.push(key);
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    /// Deletes everything the agent stored (it was removed from the
    /// cluster, not moved).
    pub async fn forget(&self, agent_id: &str) -> Result<(), String> {
        let store = self.store().await?;
        for key in self.all_keys(agent_id).await? {
            store
                .purge(Self::key(agent_id, &key))
                .await
                .map_err(|e| format!("cannot delete the agent's state: {e}"))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SharedState for ClusterState {
    async fn get(&self, agent_id: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let value = self
            .store()
            .await?
            .get(Self::key(agent_id, key))
            .await
            .map_err(|e| format!("cannot read the cluster's state: {e}"))?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn set(&self, agent_id: &str, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.store()
            .await?
            .put(Self::key(agent_id, key), value.into())
            .await
            .map_err(|e| {
                format!("cannot store the value in the cluster (values over the NATS server's max_payload, 1 MB by default, are refused): {e}")
            })?;
        Ok(())
    }

    async fn delete(&self, agent_id: &str, key: &str) -> Result<bool, String> {
        let store = self.store().await?;
        let key = Self::key(agent_id, key);
        let was = store
            .get(&key)
            .await
            .map_err(|e| format!("cannot read the cluster's state: {e}"))?
            .is_some();
        if was {
            store
                .delete(&key)
                .await
                .map_err(|e| format!("cannot delete from the cluster's state: {e}"))?;
        }
        Ok(was)
    }

    async fn keys(&self, agent_id: &str, prefix: &str) -> Result<Vec<String>, String> {
        let mut keys = self.all_keys(agent_id).await?;
        keys.retain(|k| k.starts_with(prefix));
        Ok(keys)
    }
}
