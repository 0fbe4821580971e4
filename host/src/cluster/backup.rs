//! What a backup of a cluster holds beyond one node's files, and putting
//! it back. Every node holds all of memory (the database in any node's
//! backup has it), but the registry of agents, their components and
//! their key-value state live in NATS: a backup taken on any node of a
//! cluster adds them as `cluster/registry.json` and
//! `cluster/components/<sha256>.wasm` (see [`export`]).
//!
//! `caxton restore` puts those files in `<data dir>/cluster-restore/`;
//! the restored node, once it is in a cluster, publishes what the
//! cluster does not have (an agent whose name it lacks, a state key not
//! set), never overwriting what the cluster holds, then renames the
//! directory `cluster-restore.applied-<time>` (see [`republish`]). So a
//! cluster whose NATS store was lost comes back from one node's backup,
//! and restoring a node into a living cluster changes nothing there.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::placement::{AgentEntry, Buckets};
use super::state::ClusterState;

pub use crate::backup::{CLUSTER_REGISTRY as REGISTRY_FILE, CLUSTER_RESTORE_DIR as RESTORE_DIR};
/// Largest registry file read back: 100,000 state keys of a few hundred
/// bytes, and the agents.
const MAX_REGISTRY_BYTES: u64 = 64 * 1024 * 1024;
/// Most state keys a backup carries.
const MAX_STATE_KEYS: usize = 100_000;
/// Largest state value carried (the keyvalue import's own cap is lower).
const MAX_STATE_VALUE: usize = 1024 * 1024;

/// `cluster/registry.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registry {
    pub cluster: String,
    /// The node the backup was taken on.
    pub node: String,
    pub agents: Vec<AgentEntry>,
    /// Agents' key-value state: the NATS key and the value in base64.
    pub state: Vec<(String, String)>,
}

/// Writes the cluster's registry, components and agent state into `dir`
/// (`registry.json`, `components/<sha256>.wasm`); answers how many
/// agents and state keys it holds.
pub async fn export(
    buckets: &Buckets,
    state: &ClusterState,
    cluster: &str,
    node: &str,
    dir: &Path,
) -> Result<(usize, usize), String> {
    let agents: Vec<AgentEntry> = buckets.entries().await?.into_values().collect();
    let components = dir.join("components");
    std::fs::create_dir_all(&components).map_err(|e| e.to_string())?;
    for entry in agents.iter().filter(|e| e.definition.is_none()) {
        let path = components.join(format!("{}.wasm", entry.component_sha256));
        if path.exists() {
            continue;
        }
        let bytes = buckets.component(&entry.component_sha256).await?;
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let state: Vec<(String, String)> = state
        .everything(MAX_STATE_KEYS, MAX_STATE_VALUE)
        .await?
        .into_iter()
        .map(|(key, value)| (key, engine.encode(value)))
        .collect();
    let registry = Registry {
        cluster: cluster.to_string(),
        node: node.to_string(),
        agents,
        state,
    };
    let counts = (registry.agents.len(), registry.state.len());
    let json = serde_json::to_vec_pretty(&registry).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(REGISTRY_FILE), json).map_err(|e| e.to_string())?;
    Ok(counts)
}

/// What a restored node published.
#[derive(Debug, Default)]
pub struct Republished {
    pub agents: usize,
    pub agents_present: usize,
    pub state_keys: usize,
    pub state_present: usize,
}

/// Publishes what a restored backup holds and the cluster lacks (see the
/// module's documentation), then marks the restore applied. Nothing when
/// `data_dir` holds no restore.
pub async fn republish(
    buckets: &Buckets,
    state: &ClusterState,
    data_dir: &Path,
) -> Result<Option<Republished>, String> {
    let dir = data_dir.join(RESTORE_DIR);
    let file = dir.join(REGISTRY_FILE);
    let Ok(meta) = std::fs::metadata(&file) else {
        return Ok(None);
    };
    if meta.len() > MAX_REGISTRY_BYTES {
        return Err(format!(
            "{} is {} bytes, more than the {MAX_REGISTRY_BYTES} a node reads",
            file.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let registry: Registry = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a cluster registry: {e}", file.display()))?;
    let mut done = Republished::default();
    // State first: placement starts a published agent at once, and an
    // agent that answered before its state was back would answer from
    // nothing (a restored counter saying 0).
    let engine = base64::engine::general_purpose::STANDARD;
    for (key, value) in registry.state {
        let Ok(value) = engine.decode(&value) else {
            continue;
        };
        if state.restore(&key, value).await? {
            done.state_keys += 1;
        } else {
            done.state_present += 1;
        }
    }
    let existing = buckets.entries().await?;
    for entry in registry.agents {
        if existing.contains_key(&entry.name) {
            done.agents_present += 1;
            continue;
        }
        let component = match &entry.definition {
            Some(_) => Vec::new(),
            None => {
                let path = dir
                    .join("components")
                    .join(format!("{}.wasm", entry.component_sha256));
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                let digest = hex::encode(sha2::Sha256::digest(&bytes));
                if digest != entry.component_sha256 {
                    return Err(format!(
                        "{} does not hash to its name (sha256 {digest}); the restore is damaged",
                        path.display()
                    ));
                }
                bytes
            }
        };
        buckets.restore(&entry, &component).await?;
        done.agents += 1;
    }
    let applied = data_dir.join(format!(
        "{RESTORE_DIR}.applied-{}",
        crate::clock::now_rfc3339().replace(':', "")
    ));
    std::fs::rename(&dir, &applied)
        .map_err(|e| format!("renaming {} after applying it: {e}", dir.display()))?;
    Ok(Some(done))
}
