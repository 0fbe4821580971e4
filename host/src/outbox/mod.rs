//! Durable fire-and-forget: a message sent without waiting for a reply
//! (the WIT `send`, `POST /api/v1/send`) is written to the database before
//! the sender is told it was accepted, delivered by [`dispatch`] (after a
//! restart too), retried with backoff when the receiver fails, and moved
//! to the dead letters after `outbox.max_attempts` failures — visible and
//! replayable over REST and the CLI.
//!
//! Delivery is at least once: a crash after the receiver handled a
//! message and before its removal was committed delivers it again, with
//! the same message id, so a receiver that remembers the ids it handled
//! sees each message exactly once.

pub mod dispatch;
pub mod settings;
pub mod store;

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{mpsc, oneshot};

pub use settings::OutboxConfig;

/// Where fire-and-forget messages wait when they must outlive this node
/// (a cluster's JetStream stream, delivered by whichever node is alive).
#[async_trait::async_trait]
pub trait SharedOutbox: Send + Sync {
    /// Whether it can take messages now (else the node's own outbox does).
    fn available(&self) -> bool;
    /// Stores every message before answering; an error means none or only
    /// some were stored (retrying stores each once: the ids deduplicate).
    async fn enqueue(&self, items: Vec<Queued>) -> Result<(), String>;
}
pub use store::{DeadLetter, Queued, Target};

use crate::messaging::MessageBus;
use crate::storage::Storage;
use store::Op;

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Full, or the database refused the write; the text says which.
    #[error("{0}")]
    NotQueued(String),
    /// The writer thread is gone (the server is stopping).
    #[error("the server is stopping; the message was not queued")]
    Stopped,
}

/// The outbox: the writer thread's queue, and what the dispatcher takes.
pub struct Outbox {
    ops: std::sync::mpsc::Sender<Op>,
    storage: Arc<Storage>,
    settings: OutboxConfig,
    /// Committed messages for the dispatcher; taken when it starts.
    ready: Mutex<Option<mpsc::UnboundedReceiver<(u64, Queued)>>>,
}

impl Outbox {
    /// Opens the tables, hands the messages left from before a restart to
    /// the (not yet started) dispatcher, and starts the writer thread.
    pub fn open(
        storage: Arc<Storage>,
        settings: OutboxConfig,
    ) -> crate::storage::Result<Arc<Outbox>> {
        store::create_tables(&storage)?;
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let waiting = store::waiting(&storage)?;
        if !waiting.is_empty() {
            tracing::info!(
                messages = waiting.len(),
                "fire-and-forget messages from before the restart will be delivered"
            );
        }
        for item in waiting {
            let _ = ready_tx.send(item);
        }
        let writer = store::Writer::new(storage.clone(), settings.clone(), ready_tx)?;
        let (ops_tx, ops_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer.run(ops_rx))
            .map_err(|e| {
                crate::storage::StorageError::Missing(format!(
                    "cannot start the outbox writer: {e}"
                ))
            })?;
        Ok(Arc::new(Outbox {
            ops: ops_tx,
            storage,
            settings,
            ready: Mutex::new(Some(ready_rx)),
        }))
    }

    pub fn settings(&self) -> &OutboxConfig {
        &self.settings
    }

    fn op(&self, op: Op) -> Result<(), OutboxError> {
        self.ops.send(op).map_err(|_| OutboxError::Stopped)
    }

    /// Queues messages; answers their sequence numbers once they are on
    /// disk (all or none).
    pub async fn enqueue(&self, items: Vec<Queued>) -> Result<Vec<u64>, OutboxError> {
        let (done, answer) = oneshot::channel();
        self.op(Op::Enqueue { items, done })?;
        answer
            .await
            .map_err(|_| OutboxError::Stopped)?
            .map_err(OutboxError::NotQueued)
    }

    /// Keeps a message that failed its last try elsewhere as a dead
    /// letter of this node (`caxton dead-letters` lists and replays it).
    pub fn bury(&self, queued: Queued) -> Result<(), OutboxError> {
        self.op(Op::Bury(Box::new(queued)))
    }

    /// Puts a dead letter back in the outbox with its tries reset.
    pub async fn replay(&self, dead: u64) -> Result<u64, OutboxError> {
        let (done, answer) = oneshot::channel();
        self.op(Op::Replay { dead, done })?;
        answer
            .await
            .map_err(|_| OutboxError::Stopped)?
            .map_err(OutboxError::NotQueued)
    }

    /// Deletes a dead letter; answers whether it existed.
    pub async fn discard(&self, dead: u64) -> Result<bool, OutboxError> {
        let (done, answer) = oneshot::channel();
        self.op(Op::Discard { dead, done })?;
        answer
            .await
            .map_err(|_| OutboxError::Stopped)?
            .map_err(OutboxError::NotQueued)
    }

    /// The dead letters, oldest first, at most `limit` after `after`.
    pub fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> crate::storage::Result<Vec<(u64, DeadLetter)>> {
        store::dead_letters(&self.storage, after, limit)
    }

    /// Messages waiting and dead letters kept.
    pub fn counts(&self) -> crate::storage::Result<(u64, u64)> {
        store::counts(&self.storage)
    }

    /// Starts delivering, through `bus` (held weakly: the bus owns the
    /// outbox, not the other way round). Once only.
    pub fn start(self: &Arc<Self>, bus: Weak<dyn MessageBus>) {
        let Some(ready) = self.ready.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        tokio::spawn(dispatch::run(self.clone(), bus, ready));
    }
}
