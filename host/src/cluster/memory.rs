//! Memory on every node: the stream `<cluster>_memory` carries every
//! memory write (checked and embedded by the node that took it, see
//! `crate::memory::replication`), and every node applies it in stream
//! order to its own database and vector index. The position applied is
//! stored in the same transaction as the write, so a node that crashes
//! and restarts resumes exactly after its last apply; a new node, or one
//! away while the stream was trimmed past it, starts from the newest
//! snapshot (`super::snapshots`). A write is acknowledged to its caller once
//! the stream stored it and the caller's node applied it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt as _;

use super::snapshots::Snapshots;
use crate::memory::MemoryService;
use crate::memory::model::{MemoryError, Result};
use crate::memory::replication::{self, ReplicatedWrite, Replicator, WriteResult};

/// Largest write carried with its vectors; past it the vectors are left
/// out (each node embeds the texts itself), and a write still larger is
/// refused: NATS's default `max_payload` is 1 MB.
const MAX_WRITE_BYTES: usize = 900 * 1024;
/// How long a write waits for the stream to store it.
const PUBLISH_WITHIN: Duration = Duration::from_secs(5);
/// How long a writer waits for its own node to apply its write.
const APPLY_WITHIN: Duration = Duration::from_secs(30);

type Waiter = std::sync::mpsc::Sender<Result<WriteResult>>;

/// Where this node's memory writes go, and how far it has applied.
pub struct MemoryStream {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: String,
    subject: String,
    /// Writers waiting for their write's apply, by write id.
    waiting: Mutex<HashMap<String, Waiter>>,
    runtime: tokio::runtime::Handle,
    /// The last stream position applied here, and how many were still to
    /// apply when the last one arrived.
    pub applied: AtomicU64,
    pub behind: AtomicU64,
}

impl MemoryStream {
    pub fn new(client: async_nats::Client, cluster: &str) -> Self {
        MemoryStream {
            js: jetstream::new(client.clone()),
            client,
            stream: format!("{cluster}_memory"),
            subject: format!("{cluster}.memory"),
            waiting: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            applied: AtomicU64::new(0),
            behind: AtomicU64::new(0),
        }
    }

    async fn open(&self) -> std::result::Result<stream::Stream, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject.clone()],
                description: Some("Caxton memory writes, applied by every node in order".into()),
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot open the memory stream {}: {e}", self.stream))
    }

    /// The stream's name (`<cluster>_memory`).
    pub fn stream_name(&self) -> String {
        self.stream.clone()
    }

    fn waiter(&self, id: &str) -> Option<Waiter> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }
}

impl Replicator for MemoryStream {
    fn submit(&self, mut write: ReplicatedWrite) -> Result<WriteResult> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(replication::unavailable(
                "this node is not connected to NATS, so the cluster cannot take memory writes",
            ));
        }
        let encode = |w: &ReplicatedWrite| {
            serde_json::to_vec(w).map_err(|e| MemoryError::Storage(e.to_string()))
        };
        let mut bytes = encode(&write)?;
        if bytes.len() > MAX_WRITE_BYTES {
            write.embeddings.clear();
            bytes = encode(&write)?;
        }
        if bytes.len() > MAX_WRITE_BYTES {
            return Err(MemoryError::Invalid(format!(
                "this write is {} bytes, more than the {MAX_WRITE_BYTES} a cluster carries in one message; split it into smaller batches",
                bytes.len()
            )));
        }
        let (done, wait) = std::sync::mpsc::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(write.id.clone(), done.clone());
        let (js, subject, id) = (self.js.clone(), self.subject.clone(), write.id.clone());
        self.runtime.spawn(async move {
            let mut headers = async_nats::HeaderMap::new();
            // JetStream drops a second copy of the same write (a retry
            // after a lost acknowledgement) within its duplicate window.
            headers.insert("Nats-Msg-Id", id.as_str());
            let stored = async {
                js.publish_with_headers(subject, headers, bytes.into())
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())
            };
            let failed = match tokio::time::timeout(PUBLISH_WITHIN, stored).await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => format!("the cluster's memory stream did not take the write ({e})"),
                Err(_) => format!(
                    "the cluster's memory stream did not take the write within {} s",
                    PUBLISH_WITHIN.as_secs()
                ),
            };
            let _ = done.send(Err(replication::unavailable(failed)));
        });
        let answer = wait.recv_timeout(APPLY_WITHIN).unwrap_or_else(|_| {
            Err(replication::unavailable(format!(
                "the write is in the cluster's memory stream but this node did not apply it within {} s (it will)",
                APPLY_WITHIN.as_secs()
            )))
        });
        self.waiter(&write.id);
        answer
    }
}

/// Applies the memory stream to this node's memory, for as long as the
/// node runs; after a failure (NATS away) it resumes from the last
/// position applied.
pub async fn apply(
    stream: Arc<MemoryStream>,
    memory: Arc<MemoryService>,
    snapshots: Arc<Snapshots>,
) {
    let mut problem: Option<String> = None;
    loop {
        let outcome = follow(&stream, &memory, &snapshots).await;
        let now = outcome.err().unwrap_or_else(|| "the stream ended".into());
        if problem.as_deref() != Some(now.as_str()) {
            tracing::warn!(problem = %now, "cannot follow the cluster's memory stream; retrying");
        }
        problem = Some(now);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(
    stream: &MemoryStream,
    memory: &Arc<MemoryService>,
    snapshots: &Snapshots,
) -> std::result::Result<(), String> {
    let mut js_stream = stream.open().await?;
    let held = js_stream
        .info()
        .await
        .map_err(|e| format!("cannot read the memory stream's state: {e}"))?
        .state
        .clone();
    let from = catch_up(memory, snapshots, held.first_sequence, held.last_sequence).await?;
    stream.applied.store(from, Ordering::Relaxed);
    let consumer = js_stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: stream.subject.clone(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot read the memory stream: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read the memory stream: {e}"))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| format!("reading the memory stream: {e}"))?;
        let (seq, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, info.pending),
            Err(e) => return Err(format!("a memory stream message without its position: {e}")),
        };
        let applied = stream.applied.load(Ordering::Relaxed);
        if seq <= applied {
            continue;
        }
        if seq != applied + 1 {
            // Trimmed below a newer snapshot since this node looked: the
            // next try loads that snapshot.
            return Err(format!(
                "the memory stream went from position {applied} to {seq}; catching up from a snapshot"
            ));
        }
        let memory = memory.clone();
        let payload = message.payload.clone();
        let (id, result) = tokio::task::spawn_blocking(move || {
            match serde_json::from_slice::<ReplicatedWrite>(&payload) {
                Ok(write) => (Some(write.id.clone()), memory.apply_replicated(&write, seq)),
                // Not a write this version understands: skipped, and
                // marked applied so it is not tried forever.
                Err(e) => {
                    let _ = memory.store_replicated_position(seq);
                    (
                        None,
                        Err(MemoryError::Invalid(format!(
                            "unreadable memory write: {e}"
                        ))),
                    )
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Err(MemoryError::Storage(e)) = &result {
            // This node's database failed: stop here and retry from the
            // last position applied.
            if let Some(waiter) = id.as_deref().and_then(|id| stream.waiter(id)) {
                let _ = waiter.send(result.clone());
            }
            return Err(format!("applying memory write {seq}: {e}"));
        }
        stream.applied.store(seq, Ordering::Relaxed);
        stream.behind.store(pending, Ordering::Relaxed);
        match id.as_deref().and_then(|id| stream.waiter(id)) {
            Some(waiter) => {
                let _ = waiter.send(result);
            }
            None => {
                if let Err(e) = result {
                    tracing::debug!(seq, error = %e, "a replicated memory write failed here as on its node");
                }
            }
        }
    }
    Ok(())
}

/// Where this node starts following the stream, which holds positions
/// `first..=last`: after its own last apply, or after a snapshot when the
/// stream no longer holds what comes next (trimmed while the node was
/// away) or the node is new (a copy is faster than a replay).
async fn catch_up(
    memory: &Arc<MemoryService>,
    snapshots: &Snapshots,
    first: u64,
    last: u64,
) -> std::result::Result<u64, String> {
    let (from, empty) = {
        let memory = memory.clone();
        tokio::task::spawn_blocking(move || {
            let from = memory.replicated_seq()?;
            let empty = memory.counts()?.entities == 0;
            Ok::<_, MemoryError>((from, empty))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    if from > last {
        // The stream is younger than this node's memory: NATS lost its
        // store (or the stream was deleted). This node's memory stays as
        // it is; positions count from the new stream.
        tracing::warn!(
            applied = from,
            stream_last = last,
            "the memory stream is behind this node's memory (NATS lost it?); keeping this node's memory and following the new stream"
        );
        let ours = memory.clone();
        tokio::task::spawn_blocking(move || ours.store_replicated_position(last))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // The stream cannot give this memory to a node that joins: a
        // snapshot can, taken now rather than at the next round.
        if let Err(e) = snapshots.take(memory).await {
            tracing::warn!(error = %e, "cannot store this node's memory as the cluster's snapshot");
        }
        return Ok(last);
    }
    let gap = first > 0 && from + 1 < first;
    if !(gap || from == 0 && empty) {
        return Ok(from);
    }
    if from == 0 && !empty {
        // Memory written before this node joined would be lost with a
        // snapshot: it stays, and the cluster's follows on top of it.
        tracing::warn!(
            "this node holds memory written before it joined the cluster; it is kept but not shared (import it through the API to share it), and the cluster's memory is replayed from the stream's position {first}"
        );
        return Ok(0);
    }
    match snapshots.latest().await? {
        Some(seq) if (seq > from || from == 0 && empty) && seq + 1 >= first => {
            let started = std::time::Instant::now();
            let loaded = snapshots.load(seq, memory).await?;
            tracing::info!(
                position = loaded,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "memory loaded from the cluster's snapshot"
            );
            Ok(loaded)
        }
        _ if gap => Err(format!(
            "this node applied the memory stream up to {from}, the stream now starts at {first}, and no snapshot covers the positions between"
        )),
        _ => Ok(from),
    }
}
