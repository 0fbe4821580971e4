//! Memory on every node: the stream `<cluster>_memory` carries every
//! memory write (checked and embedded by the node that took it, see
//! `crate::memory::replication`), and every node applies it in stream
//! order to its own database and vector index. The position applied is
//! stored in the same transaction as the write, so a node that crashes
//! and restarts resumes exactly after its last apply; a new node starts
//! from the stream's beginning. A write is acknowledged to its caller once
//! the stream stored it and the caller's node applied it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt as _;

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
pub async fn apply(stream: Arc<MemoryStream>, memory: Arc<MemoryService>) {
    let mut problem: Option<String> = None;
    loop {
        let outcome = follow(&stream, &memory).await;
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
) -> std::result::Result<(), String> {
    let js_stream = stream.open().await?;
    let from = {
        let memory = memory.clone();
        tokio::task::spawn_blocking(move || memory.replicated_seq())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
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
        if seq <= stream.applied.load(Ordering::Relaxed) {
            continue;
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
