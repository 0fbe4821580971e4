//! Who is in the cluster: every node puts its record under its name in the
//! bucket `<cluster>_nodes` each heartbeat; entries expire after
//! `dead_after`, so a node that stops (killed, cut off) drops out without
//! anyone deciding it. Each node reads the bucket after its own heartbeat
//! and logs who joined and who left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

/// Most nodes a view holds: a bucket flooded by a misbehaving client must
/// not grow this node's memory without bound.
const MAX_NODES: usize = 1_000;
/// Largest node record read.
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most agent names a record lists (`agent_count` has them all).
const MAX_LISTED_AGENTS: usize = 256;

/// What this node runs, asked at every heartbeat.
pub type AgentLister = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// One node as it announces itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct NodeRecord {
    pub node: String,
    /// Where its REST API listens.
    pub api_url: String,
    /// Caxton's version on it.
    pub version: String,
    /// When it started and when it last said it was alive, Unix ms.
    pub started_unix_ms: u64,
    pub heartbeat_unix_ms: u64,
    /// The agents it runs (the first 256 names, sorted) and how many.
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub agent_count: usize,
}

impl NodeRecord {
    pub fn new(node: &str, api_url: &str) -> Self {
        let now = crate::clock::now_unix_ms();
        NodeRecord {
            node: node.into(),
            api_url: api_url.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_unix_ms: now,
            heartbeat_unix_ms: now,
            agents: Vec::new(),
            agent_count: 0,
        }
    }
}

/// The live nodes as last read, and why reading failed, if it did.
#[derive(Debug, Default)]
pub struct NodeView {
    pub nodes: BTreeMap<String, NodeRecord>,
    pub problem: Option<String>,
}

fn bucket_name(cluster: &str) -> String {
    format!("{cluster}_nodes")
}

pub async fn run(
    client: async_nats::Client,
    cluster: String,
    mut record: NodeRecord,
    heartbeat: Duration,
    dead_after: Duration,
    view: Arc<Mutex<NodeView>>,
    agents: AgentLister,
) {
    let js = jetstream::new(client);
    let mut bucket: Option<kv::Store> = None;
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut names = agents();
        names.sort_unstable();
        record.agent_count = names.len();
        names.truncate(MAX_LISTED_AGENTS);
        record.agents = names;
        let outcome = match &bucket {
            Some(store) => beat(store, &mut record).await,
            None => match super::kv::bucket(&js, &bucket_name(&cluster), 1, dead_after).await {
                Ok(store) => {
                    let outcome = beat(&store, &mut record).await;
                    bucket = Some(store);
                    outcome
                }
                Err(e) => Err(e),
            },
        };
        let mut view = view.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(nodes) => {
                for gone in view.nodes.keys().filter(|n| !nodes.contains_key(*n)) {
                    tracing::warn!(node = %gone, "a node left the cluster");
                }
                for (name, node) in nodes.iter().filter(|(n, _)| !view.nodes.contains_key(*n)) {
                    tracing::info!(node = %name, api = %node.api_url, "a node joined the cluster");
                }
                view.nodes = nodes;
                if view.problem.take().is_some() {
                    tracing::info!("the cluster's membership is readable again");
                }
            }
            Err(problem) => {
                if view.problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(%problem, "cannot update the cluster's membership");
                }
                view.problem = Some(problem);
            }
        }
    }
}

/// Announces this node, then reads every live node's record.
async fn beat(
    store: &kv::Store,
    record: &mut NodeRecord,
) -> Result<BTreeMap<String, NodeRecord>, String> {
    record.heartbeat_unix_ms = crate::clock::now_unix_ms();
    let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    store
        .put(&record.node, bytes.into())
        .await
        .map_err(|e| format!("cannot announce this node: {e}"))?;
    let mut keys = store
        .keys()
        .await
        .map_err(|e| format!("cannot list the nodes: {e}"))?;
    let mut nodes = BTreeMap::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| format!("cannot list the nodes: {e}"))?;
        if nodes.len() >= MAX_NODES {
            break;
        }
        let value = store
            .get(&key)
            .await
            .map_err(|e| format!("cannot read node {key}: {e}"))?;
        // An entry that expired between the listing and the read, or one
        // that is not a node record, is not a live node.
        let Some(value) = value.filter(|v| v.len() <= MAX_RECORD_BYTES) else {
            continue;
        };
        if let Ok(node) = serde_json::from_slice::<NodeRecord>(&value)
            && node.node == key
        {
            nodes.insert(key, node);
        }
    }
    Ok(nodes)
}

/// Removes this node's entry (a graceful stop).
pub async fn leave(client: &async_nats::Client, cluster: &str, node: &str) {
    let js = jetstream::new(client.clone());
    match js.get_key_value(bucket_name(cluster)).await {
        Ok(store) => {
            if let Err(e) = store.delete(node).await {
                tracing::warn!(error = %e, "could not remove this node from the cluster's membership");
            } else {
                tracing::info!(node, "left the cluster");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not reach the cluster's membership to leave it")
        }
    }
}
