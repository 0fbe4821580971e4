//! Several Caxton nodes as one system, through NATS JetStream
//! (`docs/CLUSTER.md`). Configured by `cluster.nats_url`; without it none
//! of this runs and a node is on its own, as always.
//!
//! So far: membership ([`membership`]: each node announces itself and the
//! agents it runs in a KV bucket whose entries expire, reads the bucket to
//! learn who else is alive and what they run, and logs joins and
//! departures; `GET /api/v1/cluster` and `caxton cluster status` show the
//! view) and messages across nodes ([`routing`]: what no local agent takes
//! goes over NATS to a node that runs one).

pub mod backup;
mod kv;
mod membership;
mod memory;
mod outbox;
mod placement;
mod routing;
mod snapshots;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use membership::{AgentLister, LocalAgent, NodeRecord, NodeView};
pub use placement::{AgentEntry, MAX_REPLICAS};

/// The `cluster:` section of the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server (`nats://host:4222`); unset: no cluster. Credentials
    /// come from the environment: `CAXTON_NATS_TOKEN`, or
    /// `CAXTON_NATS_USER` and `CAXTON_NATS_PASSWORD`.
    pub nats_url: Option<String>,
    /// The cluster's name: every subject and bucket carries it, so two
    /// clusters can share a NATS server.
    pub name: String,
    /// This node's name, unique in the cluster (default: the host name and
    /// the API port).
    pub node: Option<String>,
    /// How often this node says it is alive.
    pub heartbeat_ms: u64,
    /// A node not heard from for this long is gone.
    pub dead_after_ms: u64,
    /// Memory writes between two snapshots of memory in the object store
    /// (a new node loads the newest, and the memory stream is trimmed
    /// below it); 0: no snapshots, the stream keeps every write.
    pub memory_snapshot_every: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_url: None,
            name: "caxton".into(),
            node: None,
            heartbeat_ms: 1_000,
            dead_after_ms: 3_000,
            memory_snapshot_every: 10_000,
        }
    }
}

/// What NATS allows in a KV key and a subject token, kept short.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        self.nats_url.is_some()
    }

    pub fn validate(&self) -> Result<(), String> {
        let fix = "letters, digits, `-` and `_`, at most 64";
        if !valid_name(&self.name) {
            return Err(format!("cluster.name `{}` must be {fix}", self.name));
        }
        if let Some(node) = &self.node
            && !valid_name(node)
        {
            return Err(format!("cluster.node `{node}` must be {fix}"));
        }
        if let Some(url) = &self.nats_url
            && !(url.starts_with("nats://") || url.starts_with("tls://"))
        {
            return Err(format!(
                "cluster.nats_url `{url}` must start with nats:// or tls:// (e.g. nats://127.0.0.1:4222)"
            ));
        }
        if self.heartbeat_ms < 100 {
            return Err("cluster.heartbeat_ms must be at least 100".into());
        }
        if self.dead_after_ms < 2 * self.heartbeat_ms {
            return Err(format!(
                "cluster.dead_after_ms ({}) must be at least twice cluster.heartbeat_ms ({}): one late heartbeat must not look like a death",
                self.dead_after_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }

    /// This node's name: the configured one, or the host name and port.
    pub fn node_name(&self, port: u16) -> String {
        if let Some(node) = &self.node {
            return node.clone();
        }
        let host: String = std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(48)
            .collect();
        let host = if host.is_empty() { "node".into() } else { host };
        format!("{host}-{port}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// This node's part in the cluster.
pub struct Cluster {
    name: String,
    node: String,
    url: String,
    client: async_nats::Client,
    view: Arc<Mutex<NodeView>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The registry, placement and component buckets, once opened.
    buckets: Arc<tokio::sync::OnceCell<placement::Buckets>>,
    /// Agents' key-value state.
    state: Arc<state::ClusterState>,
    /// Memory writes, and how far this node applied them.
    memory: Arc<memory::MemoryStream>,
    /// Memory snapshots this node took or loaded.
    snapshots: Arc<snapshots::Snapshots>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "agent `{name}` is already deployed in the cluster (on {node}); remove it first (`caxton agents remove {name}` on any node) or choose another name"
    )]
    Taken { name: String, node: String },
    #[error("the cluster's registry cannot be reached: {0}")]
    Unavailable(String),
}

/// Publishes what a restored backup left in `data_dir` (see
/// [`backup::republish`]) once the cluster can be reached.
async fn republish_restored(
    client: async_nats::Client,
    cluster: String,
    state: Arc<state::ClusterState>,
    data_dir: std::path::PathBuf,
) {
    if !data_dir.join(backup::RESTORE_DIR).exists() {
        return;
    }
    let mut problem: Option<String> = None;
    loop {
        let outcome = async {
            let buckets = placement::Buckets::open(&client, &cluster).await?;
            backup::republish(&buckets, &state, &data_dir).await
        }
        .await;
        match outcome {
            Ok(Some(done)) => {
                tracing::info!(
                    agents = done.agents,
                    agents_already_there = done.agents_present,
                    state_keys = done.state_keys,
                    state_keys_already_there = done.state_present,
                    "published the cluster's registry and state from the restored backup"
                );
                return;
            }
            Ok(None) => return,
            Err(now) => {
                if problem.as_deref() != Some(now.as_str()) {
                    tracing::warn!(problem = %now, "cannot publish the restored backup's registry yet; retrying");
                }
                problem = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What `registry` runs, as the other nodes need to know it.
fn local_agents(registry: &crate::agents::Registry) -> Vec<LocalAgent> {
    registry
        .all()
        .iter()
        .map(|handle| {
            let live = handle.status() != crate::agents::registry::AgentStatus::Suspended;
            LocalAgent {
                name: handle.name.clone(),
                id: handle.id.clone(),
                capabilities: if live {
                    handle.capabilities()
                } else {
                    Vec::new()
                },
                topics: if live {
                    registry.topics().of_agent(&handle.name)
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// The cluster as this node sees it (`GET /api/v1/cluster`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    pub cluster: String,
    pub node: String,
    /// `connected`, `disconnected` or `pending` (never connected yet).
    pub nats: String,
    /// Live nodes, this one included once its first heartbeat is stored.
    pub nodes: Vec<NodeRecord>,
    /// Nodes being drained: no agent is placed on them.
    pub draining: Vec<String>,
    /// The agents in the cluster's registry, which move to a surviving
    /// node when theirs dies (an agent deployed while NATS was away runs
    /// on its node only and is not among them).
    pub published: Vec<String>,
    /// Memory snapshots this node took or loaded.
    #[serde(default)]
    pub memory_snapshot: snapshots::SnapshotMarks,
    /// Why the view may be stale, when it may.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Cluster {
    /// Connects (in the background when NATS is not up yet: the node
    /// serves its own work meanwhile), starts announcing this node and
    /// what `registry` runs, answers other nodes' messages to those
    /// agents, and sends `registry` what no local agent takes.
    pub async fn start(
        config: &ClusterConfig,
        node: String,
        api_url: String,
        manager: Arc<crate::agents::AgentManager>,
        memory: Arc<crate::memory::MemoryService>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let registry = manager.registry().clone();
        let Some(url) = config.nats_url.clone() else {
            return Err(ClusterError::Connect {
                url: String::new(),
                reason: "cluster.nats_url is not set".into(),
            });
        };
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("caxton {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None);
        if let Ok(token) = std::env::var("CAXTON_NATS_TOKEN") {
            options = options.token(token);
        } else if let (Ok(user), Ok(password)) = (
            std::env::var("CAXTON_NATS_USER"),
            std::env::var("CAXTON_NATS_PASSWORD"),
        ) {
            options = options.user_and_password(user, password);
        }
        let client = options
            .connect(url.as_str())
            .await
            .map_err(|e| ClusterError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let view = Arc::new(Mutex::new(NodeView::default()));
        let record = NodeRecord::new(&node, &api_url);
        let agents: AgentLister = {
            let registry = registry.clone();
            Arc::new(move || local_agents(&registry))
        };
        // Announced: the agents other nodes can already reach.
        let subscribed = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let reachable: AgentLister = {
            let (agents, subscribed) = (agents.clone(), subscribed.clone());
            Arc::new(move || {
                let subscribed = subscribed.lock().unwrap_or_else(|p| p.into_inner());
                agents()
                    .into_iter()
                    .filter(|a| subscribed.contains(&a.name))
                    .collect()
            })
        };
        let shared_state = Arc::new(state::ClusterState::new(client.clone(), &config.name));
        let shared_state_for_restore = shared_state.clone();
        let memory_stream = Arc::new(memory::MemoryStream::new(client.clone(), &config.name));
        memory.replicate_through(memory_stream.clone());
        let snapshots = Arc::new(snapshots::Snapshots::new(
            client.clone(),
            &config.name,
            &memory_stream.stream_name(),
            config.memory_snapshot_every,
        ));
        let applying = tokio::spawn(memory::apply(
            memory_stream.clone(),
            memory.clone(),
            snapshots.clone(),
        ));
        let republishing = tokio::spawn(republish_restored(
            client.clone(),
            config.name.clone(),
            shared_state_for_restore.clone(),
            memory.data_dir().to_path_buf(),
        ));
        let snapshotting = tokio::spawn(snapshots::run(
            snapshots.clone(),
            memory,
            view.clone(),
            node.clone(),
            Duration::from_millis(config.heartbeat_ms * 2)
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
        ));
        let progress: membership::Progress = {
            let stream = memory_stream.clone();
            Arc::new(move || stream.applied.load(std::sync::atomic::Ordering::Relaxed))
        };
        let membership = tokio::spawn(membership::run(
            client.clone(),
            config.name.clone(),
            record,
            (
                Duration::from_millis(config.heartbeat_ms),
                Duration::from_millis(config.dead_after_ms),
            ),
            view.clone(),
            membership::Announced {
                agents: reachable,
                progress,
            },
        ));
        manager.share_state(shared_state.clone());
        let shared_outbox = Arc::new(outbox::ClusterOutbox::new(client.clone(), &config.name));
        registry.share_outbox(shared_outbox.clone());
        let delivering = {
            let local = registry.outbox().cloned();
            let settings = local
                .as_ref()
                .map(|o| o.settings().clone())
                .unwrap_or_default();
            let bus: Arc<dyn crate::messaging::MessageBus> = registry.clone();
            tokio::spawn(outbox::deliver(
                shared_outbox,
                Arc::downgrade(&bus),
                local,
                settings,
            ))
        };
        let buckets = Arc::new(tokio::sync::OnceCell::new());
        // Ready to take over another node's config agents at once.
        let warming = {
            let manager = manager.clone();
            tokio::spawn(async move { manager.warm_interpreter().await })
        };
        let heartbeat = Duration::from_millis(config.heartbeat_ms);
        let placing = tokio::spawn(placement::run(placement::Placer {
            buckets: buckets.clone(),
            client: client.clone(),
            cluster: config.name.clone(),
            node: node.clone(),
            manager,
            view: view.clone(),
            every: (heartbeat / 2).max(Duration::from_millis(100)),
            patience: Duration::from_millis(config.dead_after_ms),
        }));
        let serving = tokio::spawn(routing::serve(
            client.clone(),
            config.name.clone(),
            node.clone(),
            registry.clone(),
            agents,
            subscribed,
        ));
        registry.reach_elsewhere(Arc::new(routing::Routes::new(
            client.clone(),
            config.name.clone(),
            node.clone(),
            view.clone(),
        )));
        tracing::info!(cluster = %config.name, node = %node, nats = %url, "joining the cluster");
        Ok(Arc::new(Cluster {
            name: config.name.clone(),
            node,
            url,
            client,
            view,
            tasks: vec![
                membership,
                placing,
                serving,
                applying,
                snapshotting,
                republishing,
                warming,
                delivering,
            ],
            snapshots,
            buckets,
            state: shared_state,
            memory: memory_stream,
        }))
    }

    async fn buckets(&self) -> Result<&placement::Buckets, PublishError> {
        if self.nats_state() != "connected" {
            return Err(PublishError::Unavailable(format!(
                "not connected to NATS at {}",
                self.url
            )));
        }
        let open = placement::Buckets::open(&self.client, &self.name);
        match tokio::time::timeout(
            Duration::from_secs(5),
            self.buckets.get_or_try_init(|| open),
        )
        .await
        {
            Ok(Ok(buckets)) => Ok(buckets),
            Ok(Err(e)) => Err(PublishError::Unavailable(e)),
            Err(_) => Err(PublishError::Unavailable(
                "no answer from NATS within 5 s".into(),
            )),
        }
    }

    /// The cluster's entry for agent `name`, if it has one.
    pub async fn entry(&self, name: &str) -> Result<Option<AgentEntry>, PublishError> {
        self.buckets()
            .await?
            .entry(name)
            .await
            .map_err(PublishError::Unavailable)
    }

    /// Refuses a name the cluster already runs (under another id).
    pub async fn check_free(&self, name: &str) -> Result<(), PublishError> {
        match self.entry(name).await? {
            Some(entry) => Err(PublishError::Taken {
                name: name.into(),
                node: entry.deployed_on,
            }),
            None => Ok(()),
        }
    }

    /// Publishes an agent deployed on this node, so every node knows it
    /// and the survivors take it over if this node dies.
    pub async fn publish(
        &self,
        mut entry: AgentEntry,
        component: &[u8],
    ) -> Result<(), PublishError> {
        entry.deployed_on = self.node.clone();
        entry.replicas = entry.replicas.clamp(1, MAX_REPLICAS);
        let buckets = self.buckets().await?;
        buckets
            .publish(&entry, component)
            .await
            .map_err(PublishError::Unavailable)
    }

    /// Removes an agent from the cluster (every node running it stops it)
    /// with its key-value state.
    pub async fn unpublish(&self, entry: &AgentEntry) -> Result<(), PublishError> {
        self.buckets()
            .await?
            .unpublish(entry)
            .await
            .map_err(PublishError::Unavailable)?;
        self.state
            .forget(&entry.id)
            .await
            .map_err(PublishError::Unavailable)
    }

    /// Writes what a backup of the cluster holds beyond this node's files
    /// (registry, components, agents' state) into `dir`; answers how many
    /// agents and state keys.
    pub async fn export_registry(
        &self,
        dir: &std::path::Path,
    ) -> Result<(usize, usize), PublishError> {
        let buckets = self.buckets().await?;
        backup::export(buckets, &self.state, &self.name, &self.node, dir)
            .await
            .map_err(PublishError::Unavailable)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The last position of the memory stream this node applied.
    pub fn memory_applied(&self) -> u64 {
        self.memory
            .applied
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drains `node` (its agents move to the other nodes; none is placed
    /// on it) or, with `draining` false, ends the drain.
    pub async fn drain(&self, node: &str, draining: bool) -> Result<(), PublishError> {
        self.buckets()
            .await?
            .set_draining(node, draining)
            .await
            .map_err(PublishError::Unavailable)
    }

    pub fn status(&self) -> ClusterStatus {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        ClusterStatus {
            cluster: self.name.clone(),
            node: self.node.clone(),
            nats: self.nats_state().into(),
            nodes: view.nodes.values().cloned().collect(),
            draining: view.draining.iter().cloned().collect(),
            published: view.published.iter().cloned().collect(),
            memory_snapshot: *self
                .snapshots
                .marks
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            problem: view.problem.clone(),
        }
    }

    /// Why the node is degraded, when NATS is out of reach.
    pub fn degraded_reason(&self) -> Option<String> {
        match self.nats_state() {
            "connected" => None,
            _ => Some(format!(
                "not connected to NATS at {}: this node serves its own agents and memory; the cluster's view is stale until it reconnects",
                self.url
            )),
        }
    }

    fn nats_state(&self) -> &'static str {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => "connected",
            async_nats::connection::State::Disconnected => "disconnected",
            async_nats::connection::State::Pending => "pending",
        }
    }

    /// Leaves: stops announcing and removes this node's entry, so the
    /// others see it go at once instead of after `dead_after_ms`.
    pub async fn leave(&self) {
        for task in &self.tasks {
            task.abort();
        }
        let leave = membership::leave(&self.client, &self.name, &self.node);
        if tokio::time::timeout(Duration::from_secs(2), leave)
            .await
            .is_err()
        {
            tracing::warn!("could not tell the cluster this node is leaving within 2 s");
        }
    }
}
