//! Which node runs which agent. A WASM agent deployed on any node is
//! published in the bucket `<cluster>_agents` (its definition) and the
//! object store `<cluster>_components` (its component, by digest), so
//! every node can start it. Each of its `replicas` is a slot, claimed in
//! the bucket `<cluster>_placement` (`<agent>.<slot>` → node) with NATS's
//! own compare-and-set: `create` for a free slot, `update` on the revision
//! for the slot of a node that is gone. A claim is good while its node is
//! alive in the membership bucket, so nothing needs renewing; when a node
//! dies, the survivors see its slots as free within `dead_after_ms` and
//! the first node of a rendezvous ranking (a hash of agent, slot and node:
//! the same on every node, so claims spread without a coordinator) takes
//! each one and starts the agent from the object store.
//!
//! Every node runs [`run`]: it claims what it should, starts what it holds
//! and does not run yet, and stops what it runs but no longer holds (its
//! claim was taken while it was cut off, or the agent was removed
//! cluster-wide). It acts only on what it read completely: a failed read
//! changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, object_store};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt as _;

use super::membership::NodeView;
use crate::agents::AgentManager;
use crate::agents::deploy::DeployRequest;
use crate::runtime::limits::{RequestedLimits, ResourceLimits};

/// Most agents the cluster's registry is read for.
const MAX_ENTRIES: usize = 10_000;
/// Largest registry entry or claim read.
const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Largest component fetched from the object store.
const MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;
/// Most replicas one agent may ask for.
pub const MAX_REPLICAS: u32 = 16;

/// A WASM agent as the cluster knows it: enough for any node to start it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentEntry {
    pub name: String,
    pub id: String,
    pub component_sha256: String,
    pub limits: ResourceLimits,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub memory_grants: Vec<String>,
    #[serde(default)]
    pub llm: bool,
    #[serde(default)]
    pub tools: Vec<String>,
    pub replicas: u32,
    /// The node it was deployed on, and when (Unix ms).
    pub deployed_on: String,
    pub deployed_unix_ms: u64,
    /// A config agent's definition (its file is on `deployed_on`, which
    /// runs it while alive); `None` for a WASM agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<ConfigDefinition>,
}

/// A config agent as its home node runs it: what another node needs to
/// run the same definition when the home node is gone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigDefinition {
    pub capabilities: Vec<String>,
    pub description: String,
    pub subscriptions: Vec<String>,
    /// The parsed definition, as the interpreter's `init` takes it.
    pub config_json: String,
    pub tools: Vec<String>,
    pub llm_provider: Option<String>,
    pub memory_grants: Vec<String>,
    /// The file on the home node.
    pub source: String,
}

/// How a config agent started by placement (not from a file of this
/// node) records where its definition came from.
const FROM_CLUSTER: &str = "cluster:";

fn from_cluster(handle: &crate::agents::AgentHandle) -> bool {
    handle
        .record()
        .source
        .is_some_and(|s| s.starts_with(FROM_CLUSTER))
}

fn is_config(handle: &crate::agents::AgentHandle) -> bool {
    handle.record().kind == crate::agents::record::AgentKind::Config
}

/// Who holds a slot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Claim {
    node: String,
    claimed_unix_ms: u64,
}

/// The buckets placement works with.
#[derive(Clone)]
pub struct Buckets {
    agents: kv::Store,
    placement: kv::Store,
    components: object_store::ObjectStore,
    /// Node → anything: the nodes being drained.
    drain: kv::Store,
}

fn agents_bucket(cluster: &str) -> String {
    format!("{cluster}_agents")
}

fn placement_bucket(cluster: &str) -> String {
    format!("{cluster}_placement")
}

fn components_bucket(cluster: &str) -> String {
    format!("{cluster}_components")
}

/// A KV key for an agent name (names may hold `.`, which splits keys).
fn entry_key(name: &str) -> String {
    super::kv::key_token(name)
}

fn claim_key(name: &str, slot: u32) -> String {
    format!("{}.{slot}", super::kv::key_token(name))
}

impl Buckets {
    /// Opens (creating when missing) the registry, placement and
    /// component buckets of `cluster`.
    pub async fn open(client: &async_nats::Client, cluster: &str) -> Result<Buckets, String> {
        let js = jetstream::new(client.clone());
        let agents = super::kv::bucket(&js, &agents_bucket(cluster), 1, Duration::ZERO).await?;
        let placement =
            super::kv::bucket(&js, &placement_bucket(cluster), 1, Duration::ZERO).await?;
        let drain = super::kv::bucket(&js, &format!("{cluster}_drain"), 1, Duration::ZERO).await?;
        let name = components_bucket(cluster);
        let components = match js.get_object_store(&name).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: name.clone(),
                    description: Some("Caxton agent components, by SHA-256".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot create the object store {name}: {e}"))?,
        };
        Ok(Buckets {
            agents,
            placement,
            components,
            drain,
        })
    }

    /// Marks `node` as draining (its agents move to the other nodes and
    /// none is placed on it), or ends that.
    pub async fn set_draining(&self, node: &str, draining: bool) -> Result<(), String> {
        let done: Result<(), String> = if draining {
            let since = crate::clock::now_unix_ms().to_string();
            self.drain
                .put(node, since.into_bytes().into())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            self.drain.delete(node).await.map_err(|e| e.to_string())
        };
        done.map_err(|e| format!("cannot record the drain: {e}"))
    }

    async fn draining(&self) -> Result<BTreeSet<String>, String> {
        Ok(
            super::kv::read_all(&self.drain, MAX_ENTRIES, MAX_ENTRY_BYTES)
                .await?
                .into_iter()
                .map(|(node, _, _)| node)
                .collect(),
        )
    }

    /// The registry entry of `name`, if the cluster has one.
    pub async fn entry(&self, name: &str) -> Result<Option<AgentEntry>, String> {
        let value = self
            .agents
            .get(entry_key(name))
            .await
            .map_err(|e| format!("cannot read the cluster's registry: {e}"))?;
        Ok(value
            .filter(|v| v.len() <= MAX_ENTRY_BYTES)
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Publishes an agent just deployed on `node`: its component first,
    /// then slot 0 claimed for `node` (it runs the agent already), then
    /// its entry, so no other node sees the entry with slot 0 free.
    pub async fn publish(&self, entry: &AgentEntry, component: &[u8]) -> Result<(), String> {
        self.store_component(entry, component).await?;
        let claim = Claim {
            node: entry.deployed_on.clone(),
            claimed_unix_ms: crate::clock::now_unix_ms(),
        };
        let key = claim_key(&entry.name, 0);
        let claim = serde_json::to_vec(&claim).map_err(|e| e.to_string())?;
        // A stale claim (from an earlier deployment of the name) is
        // overwritten: the entry below is new.
        self.placement
            .put(&key, claim.into())
            .await
            .map_err(|e| format!("cannot claim the agent's first slot: {e}"))?;
        let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        self.agents
            .put(entry_key(&entry.name), bytes.into())
            .await
            .map_err(|e| format!("cannot publish the agent in the cluster: {e}"))?;
        Ok(())
    }

    /// Removes an agent from the cluster: its entry, then its claims
    /// (every node running it stops it at its next look).
    pub async fn unpublish(&self, entry: &AgentEntry) -> Result<(), String> {
        self.agents
            .delete(entry_key(&entry.name))
            .await
            .map_err(|e| format!("cannot remove the agent from the cluster: {e}"))?;
        for slot in 0..entry.replicas {
            let _ = self.placement.delete(claim_key(&entry.name, slot)).await;
        }
        Ok(())
    }

    /// Every entry, or why they could not all be read.
    pub(super) async fn entries(&self) -> Result<BTreeMap<String, AgentEntry>, String> {
        let mut out = BTreeMap::new();
        for (_, value, _) in super::kv::read_all(&self.agents, MAX_ENTRIES, MAX_ENTRY_BYTES).await?
        {
            if let Ok(entry) = serde_json::from_slice::<AgentEntry>(&value) {
                out.insert(entry.name.clone(), entry);
            }
        }
        Ok(out)
    }

    /// Stores a WASM agent's component in the object store unless it is
    /// there already (by digest); config agents have none.
    async fn store_component(&self, entry: &AgentEntry, component: &[u8]) -> Result<(), String> {
        let object = entry.component_sha256.as_str();
        if entry.definition.is_none() && self.components.info(object).await.is_err() {
            let mut reader = component;
            self.components
                .put(object, &mut reader)
                .await
                .map_err(|e| format!("cannot store the component in the cluster: {e}"))?;
        }
        Ok(())
    }

    /// Publishes an agent from a restored backup: its component, then its
    /// entry, only if the cluster has no agent of that name; its slots
    /// are free, so placement starts it on the live nodes.
    pub(super) async fn restore(&self, entry: &AgentEntry, component: &[u8]) -> Result<(), String> {
        self.store_component(entry, component).await?;
        let bytes = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        match self
            .agents
            .create(entry_key(&entry.name), bytes.into())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot publish {}: {e}", entry.name)),
        }
    }

    /// Every claim with its revision.
    async fn claims(&self) -> Result<BTreeMap<String, (Claim, u64)>, String> {
        let mut out = BTreeMap::new();
        for (key, value, revision) in
            super::kv::read_all(&self.placement, MAX_ENTRIES, MAX_ENTRY_BYTES).await?
        {
            if let Ok(claim) = serde_json::from_slice::<Claim>(&value) {
                out.insert(key, (claim, revision));
            }
        }
        Ok(out)
    }

    /// Claims `key` for `node`: created when free, or taken from a node
    /// that is gone by compare-and-set on the revision read. Whether this
    /// node got it.
    async fn claim(&self, key: &str, node: &str, taken_from: Option<u64>) -> bool {
        let claim = Claim {
            node: node.to_string(),
            claimed_unix_ms: crate::clock::now_unix_ms(),
        };
        let Ok(bytes) = serde_json::to_vec(&claim) else {
            return false;
        };
        match taken_from {
            None => self.placement.create(key, bytes.into()).await.is_ok(),
            Some(revision) => self
                .placement
                .update(key, bytes.into(), revision)
                .await
                .is_ok(),
        }
    }

    /// The component `sha256` from the object store.
    pub(super) async fn component(&self, sha256: &str) -> Result<Vec<u8>, String> {
        let mut object = self
            .components
            .get(sha256)
            .await
            .map_err(|e| format!("cannot fetch component {sha256}: {e}"))?;
        let size = object.info().size as u64;
        if size > MAX_COMPONENT_BYTES {
            return Err(format!(
                "component {sha256} is {size} bytes, more than the {MAX_COMPONENT_BYTES} this node fetches"
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        (&mut object)
            .take(MAX_COMPONENT_BYTES)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| format!("cannot fetch component {sha256}: {e}"))?;
        Ok(bytes)
    }
}

/// Rendezvous (highest random weight) order of `nodes` for one slot: the
/// same on every node, different per slot, so slots spread.
fn ranked<'a>(agent: &str, slot: u32, nodes: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    use sha2::{Digest, Sha256};
    // SHA-256: the same weights on every node and in every version.
    let weight = |node: &str| {
        let digest = Sha256::new()
            .chain_update(agent.as_bytes())
            .chain_update([0])
            .chain_update(slot.to_le_bytes())
            .chain_update([0])
            .chain_update(node.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    };
    let mut nodes: Vec<&String> = nodes.collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(weight(n)));
    nodes
}

/// What the placement loop works with.
pub struct Placer {
    pub buckets: Arc<tokio::sync::OnceCell<Buckets>>,
    pub client: async_nats::Client,
    pub cluster: String,
    pub node: String,
    pub manager: Arc<AgentManager>,
    /// Membership's view: who is alive.
    pub view: Arc<Mutex<NodeView>>,
    /// How often to look.
    pub every: Duration,
    /// How long a free slot waits for its first-ranked node before any
    /// node may claim it.
    pub patience: Duration,
}

/// Follows the registry and the claims every `every`, for as long as the
/// node runs.
pub async fn run(placer: Placer) {
    let Placer {
        buckets,
        client,
        cluster,
        node,
        manager,
        view,
        every,
        patience,
    } = placer;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut free_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut problem: Option<String> = None;
    loop {
        tick.tick().await;
        let buckets = match buckets
            .get_or_try_init(|| Buckets::open(&client, &cluster))
            .await
        {
            Ok(b) => b.clone(),
            Err(e) => {
                report(&mut problem, e);
                continue;
            }
        };
        let live: BTreeSet<String> = {
            let view = view.lock().unwrap_or_else(|p| p.into_inner());
            // Blind (membership unreadable): take nothing from anyone.
            if view.problem.is_some() || !view.nodes.contains_key(&node) {
                continue;
            }
            view.nodes.keys().cloned().collect()
        };
        let read = tokio::try_join!(buckets.entries(), buckets.claims(), buckets.draining());
        let (entries, claims, draining) = match read {
            Ok(read) => read,
            Err(e) => {
                report(&mut problem, e);
                continue;
            }
        };
        view.lock().unwrap_or_else(|p| p.into_inner()).draining = draining.clone();
        let (entries, claims) =
            match publish_config_agents(&buckets, &node, &manager, &live, entries, claims).await {
                Some(read) => read,
                None => continue,
            };
        // Where agents may go: live nodes not being drained. A draining
        // node claims nothing, and its claims are taken like a dead
        // node's (it stops its copy once another node holds the slot).
        let open: BTreeSet<String> = live.difference(&draining).cloned().collect();
        let keeps = |holder: &String| {
            open.contains(holder) || (live.contains(holder) && !open.contains(&node))
        };
        if problem.take().is_some() {
            tracing::info!("the cluster's registry is readable again");
        }
        let mut mine = BTreeSet::new();
        for entry in entries.values() {
            let replicas = entry.replicas.clamp(1, MAX_REPLICAS);
            let holders: BTreeSet<String> = (0..replicas)
                .filter_map(|s| claims.get(&claim_key(&entry.name, s)))
                .map(|(c, _)| c.node.clone())
                .filter(|n| keeps(n))
                .collect();
            for slot in 0..replicas {
                let key = claim_key(&entry.name, slot);
                let taken_from = match claims.get(&key) {
                    Some((claim, _)) if claim.node == node => {
                        mine.insert(entry.name.clone());
                        free_since.remove(&key);
                        continue;
                    }
                    Some((claim, _)) if keeps(&claim.node) => {
                        free_since.remove(&key);
                        continue;
                    }
                    Some((_, revision)) => Some(*revision),
                    None => None,
                };
                if holders.contains(&node) || mine.contains(&entry.name) || !open.contains(&node) {
                    continue;
                }
                let candidates = ranked(
                    &entry.name,
                    slot,
                    open.iter().filter(|n| !holders.contains(*n)),
                );
                let first = candidates.first().is_some_and(|n| **n == node);
                let waited = free_since.entry(key.clone()).or_insert_with(Instant::now);
                // The first-ranked node claims; if it has not within
                // `patience` (it cannot start the agent, say), anyone may.
                if (first || waited.elapsed() >= patience)
                    && buckets.claim(&key, &node, taken_from).await
                {
                    tracing::info!(agent = %entry.name, slot, "claimed the agent's slot on this node");
                    free_since.remove(&key);
                    mine.insert(entry.name.clone());
                }
            }
        }
        // Claims of agents no longer in the registry are let go.
        for (key, (claim, _)) in &claims {
            let name = key.rsplit_once('.').map_or(key.as_str(), |(n, _)| n);
            if claim.node == node && !entries.values().any(|e| entry_key(&e.name) == name) {
                let _ = buckets.placement.delete(key).await;
            }
        }
        view.lock().unwrap_or_else(|p| p.into_inner()).published =
            entries.keys().cloned().collect();
        follow(&manager, &buckets, &entries, &mine, &known).await;
        known = entries.keys().cloned().collect();
    }
}

/// Publishes the config agents this node runs from its own files, so
/// another node runs them when this one dies, and takes each back (its
/// first slot) while this node is alive; unpublishes those whose file is
/// gone. Answers the registry and claims as they are after that, or
/// `None` when they could not be read again.
async fn publish_config_agents(
    buckets: &Buckets,
    node: &str,
    manager: &AgentManager,
    live: &BTreeSet<String>,
    entries: BTreeMap<String, AgentEntry>,
    claims: BTreeMap<String, (Claim, u64)>,
) -> Option<(BTreeMap<String, AgentEntry>, BTreeMap<String, (Claim, u64)>)> {
    let registry = manager.registry();
    let mine: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|h| is_config(h) && !from_cluster(h))
        .collect();
    let mut changed = false;
    for handle in &mine {
        let record = handle.record();
        let definition = ConfigDefinition {
            capabilities: record.capabilities.clone(),
            description: record.description.clone(),
            subscriptions: registry.topics().of_agent(&record.name),
            config_json: record.config_json.clone(),
            tools: record.tools.clone(),
            llm_provider: record.llm_provider.clone(),
            memory_grants: record.memory_grants.clone(),
            source: record.source.clone().unwrap_or_default(),
        };
        let home = node.to_string();
        let slot_held = claims
            .get(&claim_key(&record.name, 0))
            .is_some_and(|(c, _)| c.node == home);
        let publish = match entries.get(&record.name) {
            None => true,
            // Another node's WASM agent, or another node's file of the
            // same name while that node lives: theirs.
            Some(e) if e.definition.is_none() => false,
            Some(e) if e.deployed_on != home && live.contains(&e.deployed_on) => false,
            Some(e) => {
                e.id != record.id
                    || e.definition.as_ref() != Some(&definition)
                    || e.deployed_on != home
                    || !slot_held
            }
        };
        if publish {
            let entry = AgentEntry {
                name: record.name.clone(),
                id: record.id.clone(),
                component_sha256: String::new(),
                limits: record.limits,
                config: None,
                memory_grants: record.memory_grants.clone(),
                llm: true,
                tools: record.tools.clone(),
                replicas: 1,
                deployed_on: home,
                deployed_unix_ms: crate::clock::now_unix_ms(),
                definition: Some(definition),
            };
            match buckets.publish(&entry, &[]).await {
                Ok(()) => changed = true,
                Err(e) => {
                    tracing::warn!(agent = %record.name, error = %e, "cannot publish the config agent in the cluster")
                }
            }
        }
    }
    // This node's files that are gone: their agents leave the cluster.
    for entry in entries.values() {
        let gone = entry.definition.is_some()
            && entry.deployed_on == node
            && !mine.iter().any(|h| h.name == entry.name);
        if gone && buckets.unpublish(entry).await.is_ok() {
            changed = true;
        }
    }
    if !changed {
        return Some((entries, claims));
    }
    tokio::try_join!(buckets.entries(), buckets.claims()).ok()
}

fn report(problem: &mut Option<String>, now: String) {
    if problem.as_deref() != Some(now.as_str()) {
        tracing::warn!(problem = %now, "cannot follow the cluster's registry; agents stay where they are");
    }
    *problem = Some(now);
}

/// Starts the agents this node holds a slot of and does not run; stops
/// those it runs that the registry places elsewhere or that were removed
/// cluster-wide (`known` is what the registry held at the last look).
async fn follow(
    manager: &AgentManager,
    buckets: &Buckets,
    entries: &BTreeMap<String, AgentEntry>,
    mine: &BTreeSet<String>,
    known: &BTreeSet<String>,
) {
    let registry = manager.registry();
    for name in mine {
        let Some(entry) = entries.get(name) else {
            continue;
        };
        if registry.get(name).is_some_and(|h| h.id == entry.id) {
            continue;
        }
        if let Some(other) = registry.get(name) {
            // An older deployment under the same name: the registry's is
            // the one that runs.
            let _ = manager.remove_here(&other.id).await;
        }
        match start(manager, buckets, entry).await {
            Ok(()) => tracing::info!(agent = %name, "started here by the cluster's placement"),
            Err(e) => {
                tracing::warn!(agent = %name, error = %e, "cannot start the agent placed on this node")
            }
        }
    }
    for handle in registry.all() {
        // A config agent from this node's own files runs here whatever
        // the placement says (it is published from here, see above).
        if is_config(&handle) && !from_cluster(&handle) {
            continue;
        }
        let placed_elsewhere = entries
            .get(&handle.name)
            .is_some_and(|e| e.id == handle.id && !mine.contains(&handle.name));
        let removed = !entries.contains_key(&handle.name) && known.contains(&handle.name);
        if (placed_elsewhere || removed) && is_config(&handle) {
            manager.unload_config(&handle.id).await;
            tracing::info!(agent = %handle.name, "stopped here: its home node runs it again, or it was removed");
            continue;
        }
        if placed_elsewhere || removed {
            match manager.remove_here(&handle.id).await {
                Ok(_) if removed => {
                    tracing::info!(agent = %handle.name, "stopped: removed from the cluster")
                }
                Ok(_) => {
                    tracing::info!(agent = %handle.name, "stopped: the cluster placed it on another node")
                }
                Err(e) => tracing::warn!(agent = %handle.name, error = %e, "cannot stop the agent"),
            }
        }
    }
}

async fn start(
    manager: &AgentManager,
    buckets: &Buckets,
    entry: &AgentEntry,
) -> Result<(), String> {
    if let Some(definition) = &entry.definition {
        let spec = crate::agents::manager::ConfigAgentSpec {
            id: entry.id.clone(),
            name: entry.name.clone(),
            capabilities: definition.capabilities.clone(),
            description: definition.description.clone(),
            subscriptions: definition.subscriptions.clone(),
            config_json: definition.config_json.clone(),
            tools: definition.tools.clone(),
            llm_provider: definition.llm_provider.clone(),
            memory_grants: definition.memory_grants.clone(),
            source: format!("{FROM_CLUSTER}{}:{}", entry.deployed_on, definition.source),
        };
        return manager
            .deploy_config(spec)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let component = buckets.component(&entry.component_sha256).await?;
    manager
        .deploy(DeployRequest {
            name: entry.name.clone(),
            id: Some(entry.id.clone()),
            component,
            limits: RequestedLimits {
                max_memory_bytes: Some(entry.limits.max_memory_bytes),
                max_fuel: Some(entry.limits.max_fuel),
                max_execution_time_ms: Some(entry.limits.max_execution_time_ms),
            },
            config: entry.config.clone(),
            memory_grants: entry.memory_grants.clone(),
            llm: entry.llm,
            tools: entry.tools.clone(),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_is_stable_and_spreads_slots() {
        let nodes: Vec<String> = ["node-a", "node-b", "node-c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let first = |agent: &str, slot| ranked(agent, slot, nodes.iter())[0].clone();
        assert_eq!(first("echo", 0), first("echo", 0));
        // Removing a node that was not first changes nobody's first.
        let top = first("echo", 0);
        let fewer: Vec<String> = nodes
            .iter()
            .filter(|n| **n == top || n.as_str() == "node-a")
            .cloned()
            .collect();
        assert_eq!(ranked("echo", 0, fewer.iter())[0], &top);
        // Over many agents every node is first for some.
        let firsts: BTreeSet<String> = (0..60).map(|i| first(&format!("agent-{i}"), 0)).collect();
        assert_eq!(firsts.len(), 3, "{firsts:?}");
    }
}
