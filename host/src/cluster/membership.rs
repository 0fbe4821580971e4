//! Who is in the cluster and what each node runs: every node puts its
//! record (its agents, and which of them take which capability and topic)
//! under its name in the bucket `<cluster>_nodes` each heartbeat, and at
//! once when its agents change; entries expire after `dead_after`, so a
//! node that stops (killed, cut off) drops out without anyone deciding it.
//! Each node reads the bucket several times per heartbeat (so a newly
//! deployed agent is reachable from everywhere within a fraction of one)
//! and logs who joined and who left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};

/// Most nodes a view holds: a bucket flooded by a misbehaving client must
/// not grow this node's memory without bound.
const MAX_NODES: usize = 1_000;
/// Most agent names a record lists (`agent_count` has them all): past
/// it, another node tries NATS for a name it does not see listed.
const MAX_LISTED_AGENTS: usize = 1_024;
/// Largest node record read.
const MAX_RECORD_BYTES: usize = 512 * 1024;

/// One agent this node runs, as the others need to know it to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAgent {
    pub name: String,
    pub id: String,
    /// Empty while the agent is suspended: it takes no capability's or
    /// topic's messages then.
    pub capabilities: Vec<String>,
    pub topics: Vec<String>,
}

/// What this node runs, asked several times per heartbeat.
pub type AgentLister = Arc<dyn Fn() -> Vec<LocalAgent> + Send + Sync>;
/// How far this node applied the memory stream, asked at every heartbeat.
pub type Progress = Arc<dyn Fn() -> u64 + Send + Sync>;

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
    /// The agents it runs (the first 1,024 names, sorted) and how many.
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub agent_count: usize,
    /// Capability → the listed agents taking it, in name order.
    #[serde(default)]
    pub capabilities: BTreeMap<String, Vec<String>>,
    /// Topic → the listed agents subscribed to it, in name order.
    #[serde(default)]
    pub topics: BTreeMap<String, Vec<String>>,
    /// Id → name of the listed agents: a message may name an agent by id.
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    /// The last position of the cluster's memory stream this node applied.
    #[serde(default)]
    pub memory_applied: u64,
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
            capabilities: BTreeMap::new(),
            topics: BTreeMap::new(),
            ids: BTreeMap::new(),
            memory_applied: 0,
        }
    }

    /// Sets what the record says this node runs; whether that changed.
    fn offer(&mut self, mut agents: Vec<LocalAgent>) -> bool {
        agents.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let count = agents.len();
        agents.truncate(MAX_LISTED_AGENTS);
        let mut capabilities: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for agent in &agents {
            for capability in &agent.capabilities {
                capabilities
                    .entry(capability.clone())
                    .or_default()
                    .push(agent.name.clone());
            }
            for topic in &agent.topics {
                topics
                    .entry(topic.clone())
                    .or_default()
                    .push(agent.name.clone());
            }
        }
        let ids: BTreeMap<String, String> = agents
            .iter()
            .map(|a| (a.id.clone(), a.name.clone()))
            .collect();
        let names: Vec<String> = agents.into_iter().map(|a| a.name).collect();
        let changed = names != self.agents
            || count != self.agent_count
            || capabilities != self.capabilities
            || topics != self.topics
            || ids != self.ids;
        self.agents = names;
        self.agent_count = count;
        self.capabilities = capabilities;
        self.topics = topics;
        self.ids = ids;
        changed
    }

    /// Whether the record lists every agent of its node.
    pub fn complete(&self) -> bool {
        self.agents.len() >= self.agent_count
    }
}

/// The live nodes as last read, and why reading failed, if it did.
#[derive(Debug, Default)]
pub struct NodeView {
    pub nodes: BTreeMap<String, NodeRecord>,
    pub problem: Option<String>,
    /// Nodes being drained (`caxton cluster drain`), as placement last
    /// read them.
    pub draining: std::collections::BTreeSet<String>,
    /// The agents the cluster's registry holds (placement moves them when
    /// their node dies), as placement last read them.
    pub published: std::collections::BTreeSet<String>,
}

fn bucket_name(cluster: &str) -> String {
    format!("{cluster}_nodes")
}

/// What this node announces, asked at every look.
pub struct Announced {
    pub agents: AgentLister,
    pub progress: Progress,
}

/// Announces `record` every `heartbeat` (entries live `dead_after`) and
/// keeps `view` to the live nodes.
pub async fn run(
    client: async_nats::Client,
    cluster: String,
    mut record: NodeRecord,
    (heartbeat, dead_after): (Duration, Duration),
    view: Arc<Mutex<NodeView>>,
    announced: Announced,
) {
    let Announced { agents, progress } = announced;
    let js = jetstream::new(client);
    let mut bucket: Option<kv::Store> = None;
    // Read four times per heartbeat (at most every 500 ms), write once per
    // heartbeat or as soon as this node's agents change.
    let read_every = (heartbeat / 4).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut tick = tokio::time::interval(read_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_put: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let changed = record.offer(agents());
        record.memory_applied = progress();
        let due = changed || last_put.is_none_or(|at| at.elapsed() + read_every / 2 >= heartbeat);
        let store = match &bucket {
            Some(store) => Ok(store.clone()),
            None => super::kv::bucket(&js, &bucket_name(&cluster), 1, dead_after).await,
        };
        let outcome = match store {
            Ok(store) => {
                bucket = Some(store.clone());
                let put = if due {
                    announce(&store, &mut record).await
                } else {
                    Ok(())
                };
                match put {
                    Ok(()) => {
                        if due {
                            last_put = Some(tokio::time::Instant::now());
                        }
                        read_nodes(&store).await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
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

/// Says this node is alive and what it runs.
async fn announce(store: &kv::Store, record: &mut NodeRecord) -> Result<(), String> {
    record.heartbeat_unix_ms = crate::clock::now_unix_ms();
    let bytes = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    store
        .put(&record.node, bytes.into())
        .await
        .map_err(|e| format!("cannot announce this node: {e}"))?;
    Ok(())
}

/// Every live node's record.
async fn read_nodes(store: &kv::Store) -> Result<BTreeMap<String, NodeRecord>, String> {
    let mut nodes = BTreeMap::new();
    for (key, value, _) in super::kv::read_all(store, MAX_NODES, MAX_RECORD_BYTES).await? {
        // An entry that is not a node record is not a live node.
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
