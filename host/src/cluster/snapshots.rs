//! Memory snapshots, so the memory stream need not keep every write ever
//! made: the first live node (by name) copies its memory into the object
//! store `<cluster>_snapshots` every `memory_snapshot_every` writes, as
//! `memory-<position>` (the stream position the copy holds, see
//! `crate::memory::MemoryService::write_snapshot`), keeps the newest
//! [`KEEP`], and trims the stream below what both the newest snapshot
//! and every live node already hold. A new node, or one that was away
//! while the stream was trimmed past its position, loads the newest
//! snapshot and follows the stream from there.
//!
//! Two nodes that both believe they are first (for a heartbeat, while
//! one joins) take two consistent snapshots of the same history: names
//! carry positions, so neither overwrites a newer one, and the stream is
//! trimmed only below a snapshot that exists.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::AsyncReadExt as _;

use super::membership::NodeView;
use crate::memory::MemoryService;

/// Snapshots kept: the newest, and the one before it for a node that is
/// still downloading it when the newest arrives.
const KEEP: usize = 2;
/// Largest snapshot a node downloads: a hostile or broken object store
/// must not fill the disk. Far beyond the memory one node is sized for.
const MAX_SNAPSHOT_BYTES: u64 = 64 * 1024 * 1024 * 1024;
const PREFIX: &str = "memory-";

fn object_name(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

fn position(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.parse().ok()
}

/// What this node did with snapshots, for `cluster status`.
#[derive(Debug, Default, Clone, Copy, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SnapshotMarks {
    /// Position of the last snapshot this node took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken: Option<u64>,
    /// Position of the snapshot this node loaded to catch up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded: Option<u64>,
}

/// The cluster's memory snapshots.
pub struct Snapshots {
    js: jetstream::Context,
    bucket: String,
    stream: String,
    store: tokio::sync::OnceCell<object_store::ObjectStore>,
    /// Writes between snapshots; 0: no snapshots, the stream keeps all.
    every: u64,
    pub marks: Mutex<SnapshotMarks>,
}

impl Snapshots {
    pub fn new(client: async_nats::Client, cluster: &str, stream: &str, every: u64) -> Self {
        Snapshots {
            js: jetstream::new(client),
            bucket: format!("{cluster}_snapshots"),
            stream: stream.to_string(),
            store: tokio::sync::OnceCell::new(),
            every,
            marks: Mutex::new(SnapshotMarks::default()),
        }
    }

    async fn store(&self) -> Result<&object_store::ObjectStore, String> {
        self.store
            .get_or_try_init(|| async {
                match self.js.get_object_store(&self.bucket).await {
                    Ok(store) => Ok(store),
                    Err(_) => self
                        .js
                        .create_object_store(object_store::Config {
                            bucket: self.bucket.clone(),
                            description: Some("Caxton memory snapshots".into()),
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| {
                            format!("cannot create the object store {}: {e}", self.bucket)
                        }),
                }
            })
            .await
    }

    /// Positions of the snapshots in the store, newest first.
    async fn positions(&self) -> Result<Vec<u64>, String> {
        let store = self.store().await?;
        let mut list = store
            .list()
            .await
            .map_err(|e| format!("cannot list the memory snapshots: {e}"))?;
        let mut out = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| format!("cannot list the memory snapshots: {e}"))?;
            if let (false, Some(seq)) = (info.deleted, position(&info.name)) {
                out.push(seq);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// The newest snapshot's position, if there is one.
    pub async fn latest(&self) -> Result<Option<u64>, String> {
        Ok(self.positions().await?.first().copied())
    }

    /// Replaces `memory` with snapshot `seq`; answers its position.
    pub async fn load(&self, seq: u64, memory: &Arc<MemoryService>) -> Result<u64, String> {
        let store = self.store().await?;
        let name = object_name(seq);
        let mut object = store
            .get(&name)
            .await
            .map_err(|e| format!("cannot fetch the memory snapshot {name}: {e}"))?;
        let size = object.info().size as u64;
        if size > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "the memory snapshot {name} is {size} bytes, more than the {MAX_SNAPSHOT_BYTES} a node loads"
            ));
        }
        let file = scratch_file(memory)?;
        let mut out = tokio::fs::File::from_std(
            file.reopen()
                .map_err(|e| format!("cannot write the memory snapshot: {e}"))?,
        );
        let copied = tokio::io::copy(&mut (&mut object).take(MAX_SNAPSHOT_BYTES), &mut out)
            .await
            .map_err(|e| format!("cannot download the memory snapshot {name}: {e}"))?;
        if copied != size {
            return Err(format!(
                "the memory snapshot {name} ended after {copied} of {size} bytes"
            ));
        }
        out.sync_all()
            .await
            .map_err(|e| format!("cannot write the memory snapshot: {e}"))?;
        let memory = memory.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = memory.load_snapshot(file.path());
            drop(file);
            loaded
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot load the memory snapshot {name}: {e}"))?;
        self.marks.lock().unwrap_or_else(|p| p.into_inner()).loaded = Some(loaded);
        Ok(loaded)
    }

    /// Copies `memory` into a new snapshot, keeps the newest [`KEEP`];
    /// answers the position it holds.
    pub async fn take(&self, memory: &Arc<MemoryService>) -> Result<u64, String> {
        let store = self.store().await?;
        let file = scratch_file(memory)?;
        let (file, seq) = {
            let memory = memory.clone();
            tokio::task::spawn_blocking(move || {
                // redb makes a new database in an empty file.
                let seq = memory
                    .write_snapshot(file.path())
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>((file, seq))
            })
            .await
            .map_err(|e| e.to_string())??
        };
        let mut reader = tokio::fs::File::open(file.path())
            .await
            .map_err(|e| format!("cannot read the memory snapshot: {e}"))?;
        let name = object_name(seq);
        store
            .put(
                object_store::ObjectMetadata {
                    name: name.clone(),
                    description: Some(format!("memory up to stream position {seq}")),
                    ..Default::default()
                },
                &mut reader,
            )
            .await
            .map_err(|e| format!("cannot store the memory snapshot {name}: {e}"))?;
        drop(file);
        for old in self.positions().await?.into_iter().skip(KEEP) {
            if let Err(e) = store.delete(object_name(old)).await {
                tracing::debug!(snapshot = old, error = %e, "could not delete an old memory snapshot");
            }
        }
        self.marks.lock().unwrap_or_else(|p| p.into_inner()).taken = Some(seq);
        Ok(seq)
    }

    /// Drops the memory stream's messages below `keep_from`.
    async fn trim(&self, keep_from: u64) -> Result<(), String> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| format!("cannot open the memory stream: {e}"))?;
        stream
            .purge()
            .sequence(keep_from)
            .await
            .map_err(|e| format!("cannot trim the memory stream: {e}"))?;
        Ok(())
    }
}

/// A fresh file in the data directory (a snapshot becomes part of the
/// database there), deleted when dropped.
fn scratch_file(memory: &MemoryService) -> Result<tempfile::NamedTempFile, String> {
    tempfile::Builder::new()
        .prefix(".caxton-memory-snapshot-")
        .tempfile_in(memory.data_dir())
        .map_err(|e| format!("cannot create a scratch file for the memory snapshot: {e}"))
}

/// Takes snapshots and trims the stream while this node is the first
/// live node by name, for as long as the node runs.
pub async fn run(
    snapshots: Arc<Snapshots>,
    memory: Arc<MemoryService>,
    view: Arc<Mutex<NodeView>>,
    node: String,
    every: Duration,
) {
    if snapshots.every == 0 {
        return;
    }
    let mut newest: Option<u64> = None;
    let mut problem: Option<String> = None;
    loop {
        tokio::time::sleep(every).await;
        let (first, lowest_applied) = {
            let view = view.lock().unwrap_or_else(|p| p.into_inner());
            let first = view.nodes.keys().next().cloned();
            let lowest = view.nodes.values().map(|n| n.memory_applied).min();
            (first, lowest)
        };
        if first.as_deref() != Some(node.as_str()) {
            newest = None;
            continue;
        }
        let outcome = async {
            let (applied, empty) = {
                let memory = memory.clone();
                tokio::task::spawn_blocking(move || {
                    Ok::<_, crate::memory::model::MemoryError>((
                        memory.replicated_seq()?,
                        memory.counts()?.entities == 0,
                    ))
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
            };
            if newest.is_none() {
                newest = snapshots.latest().await?;
            }
            // Without any snapshot, memory the stream does not hold (a
            // cluster restored from a backup onto a new NATS) is copied
            // at once, so the next node to join gets it.
            let due = match newest {
                Some(seq) => applied >= seq.saturating_add(snapshots.every),
                None => applied > 0 || !empty,
            };
            if !due {
                return Ok(());
            }
            let started = std::time::Instant::now();
            let seq = snapshots.take(&memory).await?;
            newest = Some(seq);
            let keep_from = seq.min(lowest_applied.unwrap_or(0)) + 1;
            snapshots.trim(keep_from).await?;
            tracing::info!(
                position = seq,
                trimmed_below = keep_from,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "memory snapshot stored"
            );
            Ok::<(), String>(())
        }
        .await;
        match outcome {
            Ok(()) => problem = None,
            Err(now) => {
                if problem.as_deref() != Some(now.as_str()) {
                    tracing::warn!(problem = %now, "cannot take a memory snapshot; retrying");
                }
                problem = Some(now);
                newest = None;
            }
        }
    }
}
