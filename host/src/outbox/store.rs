//! The outbox's tables and the one thread that writes them. Every change
//! (a send, a delivery, a retry, a dead letter, a replay) is an [`Op`] on
//! one channel; the writer commits every op waiting in one durable
//! transaction (group commit), so a burst of sends costs one fsync, not
//! one each, and each sender is answered only once its message is on disk.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::settings::OutboxConfig;
use crate::messaging::{AclMessage, Address};
use crate::storage::{Result, Storage, StorageError, db_err};

/// Sequence number → JSON [`Queued`]: messages waiting for delivery.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Sequence number → JSON [`DeadLetter`]: messages that failed every try.
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");

/// Most ops committed in one transaction.
const MAX_BATCH: usize = 4096;

/// Who a queued message is for (resolved again at every try).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Agent(String),
    Capability(String),
}

impl Target {
    pub fn of(address: &Address) -> Target {
        match address {
            Address::Agent(a) => Target::Agent(a.clone()),
            Address::Capability(c) => Target::Capability(c.clone()),
        }
    }

    pub fn address(&self) -> Address {
        match self {
            Target::Agent(a) => Address::Agent(a.clone()),
            Target::Capability(c) => Address::Capability(c.clone()),
        }
    }
}

/// A message waiting for delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub message: AclMessage,
    pub to: Target,
    /// The sending agent's id, when an agent sent it.
    pub from_agent: Option<String>,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// Not before this (ms since the epoch).
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    pub queued_at_ms: u64,
}

/// A message that failed every try.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub queued: Queued,
    pub failed_at_ms: u64,
}

/// A change to the outbox, for the writer thread.
pub enum Op {
    /// Queue these; answers their sequence numbers once on disk.
    Enqueue {
        items: Vec<Queued>,
        done: oneshot::Sender<std::result::Result<Vec<u64>, String>>,
    },
    /// Delivered (or no longer wanted): forget it.
    Delivered(u64),
    /// Failed; try again later, as `record` says.
    Retry(u64, Box<Queued>),
    /// Failed its last try.
    Dead(u64, Box<Queued>),
    /// Failed its last try somewhere else (a cluster's shared outbox): a
    /// dead letter here, under a new sequence number.
    Bury(Box<Queued>),
    /// A dead letter back in the outbox, with its tries reset; answers
    /// its new sequence number.
    Replay {
        dead: u64,
        done: oneshot::Sender<std::result::Result<u64, String>>,
    },
    /// A dead letter deleted; answers whether it existed.
    Discard {
        dead: u64,
        done: oneshot::Sender<std::result::Result<bool, String>>,
    },
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| StorageError::CorruptRecord {
        what: what.to_string(),
        source,
    })
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: String) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StorageError::CorruptRecord { what, source })
}

/// Creates the tables if missing.
pub fn create_tables(storage: &Storage) -> Result<()> {
    storage.write(|txn| {
        txn.open_table(OUTBOX).map_err(db_err)?;
        txn.open_table(DEAD_LETTERS).map_err(db_err)?;
        Ok(())
    })
}

/// Every message waiting, in sequence order (a record that does not
/// decode is logged and left for `storage verify`).
pub fn waiting(storage: &Storage) -> Result<Vec<(u64, Queued)>> {
    storage.read(|txn| {
        let table = txn.open_table(OUTBOX).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            match decode::<Queued>(value.value(), format!("outbox message {}", key.value())) {
                Ok(q) => out.push((key.value(), q)),
                Err(e) => tracing::error!("{e}"),
            }
        }
        Ok(out)
    })
}

/// The dead letters, oldest first, at most `limit` after `after`.
pub fn dead_letters(
    storage: &Storage,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, DeadLetter)>> {
    storage.read(|txn| {
        let table = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        for entry in table.range(start..).map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            let dead = decode::<DeadLetter>(value.value(), format!("dead letter {}", key.value()))?;
            out.push((key.value(), dead));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    })
}

/// Messages waiting and dead letters kept.
pub fn counts(storage: &Storage) -> Result<(u64, u64)> {
    storage.read(|txn| {
        let waiting = txn
            .open_table(OUTBOX)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        let dead = txn
            .open_table(DEAD_LETTERS)
            .map_err(db_err)?
            .len()
            .map_err(db_err)?;
        Ok((waiting, dead))
    })
}

/// What the writer thread keeps between batches.
pub struct Writer {
    storage: Arc<Storage>,
    settings: OutboxConfig,
    next_seq: u64,
    waiting: usize,
    dead: usize,
    /// Where committed messages go to be delivered.
    ready: tokio::sync::mpsc::UnboundedSender<(u64, Queued)>,
}

/// An op's answer, sent once its transaction committed.
enum Answer {
    Enqueued(
        oneshot::Sender<std::result::Result<Vec<u64>, String>>,
        Vec<u64>,
    ),
    Replayed(oneshot::Sender<std::result::Result<u64, String>>, u64),
    Discarded(oneshot::Sender<std::result::Result<bool, String>>, bool),
    Refused(RefusedTo, String),
}

enum RefusedTo {
    Enqueue(oneshot::Sender<std::result::Result<Vec<u64>, String>>),
    Replay(oneshot::Sender<std::result::Result<u64, String>>),
}

impl Writer {
    /// Reads where the sequence numbers and counts stand.
    pub fn new(
        storage: Arc<Storage>,
        settings: OutboxConfig,
        ready: tokio::sync::mpsc::UnboundedSender<(u64, Queued)>,
    ) -> Result<Writer> {
        let (next_seq, waiting, dead) = storage.read(|txn| {
            let outbox = txn.open_table(OUTBOX).map_err(db_err)?;
            let dead = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
            let last = |t: &redb::ReadOnlyTable<u64, &[u8]>| -> Result<u64> {
                Ok(t.last().map_err(db_err)?.map_or(0, |(k, _)| k.value()))
            };
            let next = last(&outbox)?.max(last(&dead)?) + 1;
            Ok((
                next,
                usize::try_from(outbox.len().map_err(db_err)?).unwrap_or(usize::MAX),
                usize::try_from(dead.len().map_err(db_err)?).unwrap_or(usize::MAX),
            ))
        })?;
        Ok(Writer {
            storage,
            settings,
            next_seq,
            waiting,
            dead,
            ready,
        })
    }

    /// Runs until every sender of `ops` is gone.
    pub fn run(mut self, ops: mpsc::Receiver<Op>) {
        while let Ok(first) = ops.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&mut self, batch: Vec<Op>) {
        let (next_seq, waiting, dead) = (self.next_seq, self.waiting, self.dead);
        let mut answers = Vec::new();
        let mut released: Vec<(u64, Queued)> = Vec::new();
        let result = self.storage.clone().write(|txn| {
            for op in batch {
                self.apply(txn, op, &mut answers, &mut released)?;
            }
            self.trim_dead(txn)
        });
        match result {
            Ok(()) => {
                for (seq, queued) in released {
                    // The dispatcher is gone only at shutdown; the
                    // message stays on disk for the next start.
                    let _ = self.ready.send((seq, queued));
                }
                for answer in answers {
                    match answer {
                        Answer::Enqueued(done, seqs) => drop(done.send(Ok(seqs))),
                        Answer::Replayed(done, seq) => drop(done.send(Ok(seq))),
                        Answer::Discarded(done, existed) => drop(done.send(Ok(existed))),
                        Answer::Refused(RefusedTo::Enqueue(done), why) => drop(done.send(Err(why))),
                        Answer::Refused(RefusedTo::Replay(done), why) => drop(done.send(Err(why))),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the outbox could not be written");
                (self.next_seq, self.waiting, self.dead) =
                    (next_seq.max(self.next_seq), waiting, dead);
                let why = format!("the outbox could not be written: {e}");
                for answer in answers {
                    match answer {
                        Answer::Enqueued(done, _)
                        | Answer::Refused(RefusedTo::Enqueue(done), _) => {
                            drop(done.send(Err(why.clone())))
                        }
                        Answer::Replayed(done, _) | Answer::Refused(RefusedTo::Replay(done), _) => {
                            drop(done.send(Err(why.clone())))
                        }
                        Answer::Discarded(done, _) => drop(done.send(Err(why.clone()))),
                    }
                }
            }
        }
    }

    fn apply(
        &mut self,
        txn: &WriteTransaction,
        op: Op,
        answers: &mut Vec<Answer>,
        released: &mut Vec<(u64, Queued)>,
    ) -> Result<()> {
        let mut outbox = txn.open_table(OUTBOX).map_err(db_err)?;
        match op {
            Op::Enqueue { items, done } => {
                if self.waiting.saturating_add(items.len()) > self.settings.max_queued {
                    answers.push(Answer::Refused(
                        RefusedTo::Enqueue(done),
                        format!(
                            "the outbox is full: {} messages wait for delivery (outbox.max_queued is {}); retry later",
                            self.waiting, self.settings.max_queued
                        ),
                    ));
                    return Ok(());
                }
                let mut seqs = Vec::with_capacity(items.len());
                for queued in items {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    let bytes = encode(&queued, "outbox message")?;
                    outbox.insert(seq, bytes.as_slice()).map_err(db_err)?;
                    self.waiting += 1;
                    seqs.push(seq);
                    released.push((seq, queued));
                }
                answers.push(Answer::Enqueued(done, seqs));
            }
            Op::Delivered(seq) => {
                if outbox.remove(seq).map_err(db_err)?.is_some() {
                    self.waiting = self.waiting.saturating_sub(1);
                }
            }
            Op::Retry(seq, queued) => {
                let bytes = encode(&*queued, "outbox message")?;
                outbox.insert(seq, bytes.as_slice()).map_err(db_err)?;
            }
            Op::Dead(seq, queued) => {
                if outbox.remove(seq).map_err(db_err)?.is_some() {
                    self.waiting = self.waiting.saturating_sub(1);
                }
                insert_dead_letter(txn, seq, *queued)?;
                self.dead += 1;
            }
            Op::Bury(queued) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                insert_dead_letter(txn, seq, *queued)?;
                self.dead += 1;
            }
            Op::Replay { dead, done } => {
                let mut dead_letters = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
                let letter = dead_letters.remove(dead).map_err(db_err)?.map(|bytes| {
                    decode::<DeadLetter>(bytes.value(), format!("dead letter {dead}"))
                });
                match letter {
                    None => answers.push(Answer::Refused(
                        RefusedTo::Replay(done),
                        format!("no dead letter {dead}; `caxton dead-letters list` shows them"),
                    )),
                    Some(letter) => {
                        let mut queued = letter?.queued;
                        queued.attempts = 0;
                        queued.next_attempt_ms = crate::conversations::now_ms();
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let bytes = encode(&queued, "outbox message")?;
                        outbox.insert(seq, bytes.as_slice()).map_err(db_err)?;
                        self.dead = self.dead.saturating_sub(1);
                        self.waiting += 1;
                        released.push((seq, queued));
                        answers.push(Answer::Replayed(done, seq));
                    }
                }
            }
            Op::Discard { dead, done } => {
                let mut dead_letters = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
                let existed = dead_letters.remove(dead).map_err(db_err)?.is_some();
                if existed {
                    self.dead = self.dead.saturating_sub(1);
                }
                answers.push(Answer::Discarded(done, existed));
            }
        }
        Ok(())
    }

    /// Drops the oldest dead letters past `max_dead_letters`.
    fn trim_dead(&mut self, txn: &WriteTransaction) -> Result<()> {
        if self.dead <= self.settings.max_dead_letters {
            return Ok(());
        }
        let mut table = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
        let mut oldest = VecDeque::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, _) = entry.map_err(db_err)?;
            oldest.push_back(key.value());
            if oldest.len() >= self.dead - self.settings.max_dead_letters {
                break;
            }
        }
        for key in oldest {
            table.remove(key).map_err(db_err)?;
            self.dead -= 1;
        }
        Ok(())
    }
}

/// Keeps `queued` as dead letter `seq`, failed now.
fn insert_dead_letter(txn: &WriteTransaction, seq: u64, queued: Queued) -> Result<()> {
    let dead = DeadLetter {
        queued,
        failed_at_ms: crate::conversations::now_ms(),
    };
    let bytes = encode(&dead, "dead letter")?;
    let mut dead_letters = txn.open_table(DEAD_LETTERS).map_err(db_err)?;
    dead_letters.insert(seq, bytes.as_slice()).map_err(db_err)?;
    Ok(())
}
