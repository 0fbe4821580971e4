//! Recorded conversations: what came in, every model call with its full
//! request and response, every tool call and its result, and what went
//! out, with timings, kept in the database per conversation so a run can
//! be read back (`caxton conversations export ID`) and, later, replayed
//! without calling the model again.
//!
//! Recorded where an agent meets the host (the message handler and the
//! `llm` and `tools` imports), so config agents (the interpreter's calls)
//! and WASM agents are recorded alike. What is recorded is passed through
//! `crate::redact` first (credentials in URLs), and nothing the host adds
//! on its way to a provider (API keys) ever reaches it. Bounded: a byte cap
//! per conversation and in all, and a retention in hours; the oldest
//! conversations go first.

mod migrate;
pub mod replay;
pub mod settings;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

pub use settings::{RecordWhich, RecordingSettings};

pub use store::{LogCheck, StoreError, check};

/// One thing that happened in a recorded conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A message an agent was given to handle.
    Inbound {
        agent: String,
        sender: String,
        performative: String,
        content: String,
    },
    /// A model call: the request as the agent made it, the answer.
    Llm {
        agent: String,
        provider: String,
        model: String,
        #[schema(value_type = Object)]
        request: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        response: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Refused by a budget before it reached the provider (`error`
        /// says which).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        refused: bool,
        elapsed_ms: f64,
    },
    /// A tool call and its result.
    Tool {
        agent: String,
        tool: String,
        arguments: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        elapsed_ms: f64,
    },
    /// A message the agent sent another agent and waited on, with the
    /// answer.
    Ask {
        agent: String,
        to: String,
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        elapsed_ms: f64,
    },
    /// A call of the `memory` import (reads and writes alike): the
    /// function, its arguments and what it answered, as JSON.
    Memory {
        agent: String,
        function: String,
        #[schema(value_type = Object)]
        arguments: serde_json::Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        result: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        error: Option<serde_json::Value>,
        elapsed_ms: f64,
    },
    /// What the agent answered (or why it did not).
    Reply {
        agent: String,
        performative: String,
        content: String,
        elapsed_ms: f64,
    },
}

/// An event as stored: when, in the conversation's order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recorded {
    pub seq: u64,
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
}

/// A recorded conversation, as `caxton conversations export` writes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recording {
    pub conversation_id: String,
    pub caxton_version: String,
    pub events: Vec<Recorded>,
    pub bytes: u64,
    /// Events left out because the conversation reached its byte cap.
    pub truncated: u64,
}

/// What [`Recorder::stats`] answers.
#[derive(Debug, Clone, Copy)]
pub struct RecorderStats {
    pub bytes: u64,
    pub conversations: u64,
    pub dropped: u64,
}

/// What the writer thread is handed.
enum Work {
    Event {
        conversation: String,
        event: Event,
        at_ms: u64,
    },
    /// An event the writer builds (see [`Recorder::record_later`]).
    Later {
        conversation: String,
        make: Box<dyn FnOnce() -> Event + Send>,
        at_ms: u64,
    },
    /// Answered once everything sent before it is written (and, if
    /// `durable`, synced to disk).
    Flush {
        done: std::sync::mpsc::Sender<()>,
        durable: bool,
    },
}

/// How long the writer gathers events before a write (an export asks
/// for everything at once).
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);
/// Most events written at once.
const MAX_BATCH: usize = 1024;
/// A write survives a crash of the process as it is (it is in the page
/// cache); against a crash of the machine the writer syncs once it has
/// had nothing to do for this long, so a sync does not meet the agents'
/// own (budgets sync after every model call) while they are busy …
const SYNC_WHEN_IDLE: std::time::Duration = std::time::Duration::from_secs(2);
/// … and at least this often under a load that never pauses.
const SYNC_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often the writer drops what is past the retention.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Events waiting for the writer; past it new ones are dropped (and
/// counted) rather than hold up the agents being recorded.
const MAX_QUEUED: u64 = 100_000;

/// Records conversations. Recording is off the agent's path: an event is
/// handed to one writer thread, which appends whatever has queued to a
/// log of its own (`recordings/` in the data directory, see
/// [`store`]) with one write, so a model call pays a channel send, not a
/// write, and never waits for nor holds up the database (agents' state,
/// budgets, memory).
pub struct Recorder {
    settings: RecordingSettings,
    queue: std::sync::Mutex<std::sync::mpsc::Sender<Work>>,
    queued: Arc<AtomicU64>,
    dropped: AtomicU64,
    store: Arc<store::Store>,
    /// Replays in progress, by the conversation id of the new run.
    replays: std::sync::Mutex<std::collections::HashMap<String, Arc<replay::ReplaySession>>>,
}

/// A segment of the log holds about this share of `max_bytes` (so the
/// total cap is kept to within a sixteenth), within these bounds.
const SEGMENT_SHARE: u64 = 16;
const SEGMENT_BYTES: std::ops::RangeInclusive<u64> = 4096..=16 * 1024 * 1024;

impl Recorder {
    pub fn open(
        data_dir: &std::path::Path,
        settings: RecordingSettings,
    ) -> Result<Recorder, StoreError> {
        let segment_bytes = (settings.max_bytes / SEGMENT_SHARE)
            .clamp(*SEGMENT_BYTES.start(), *SEGMENT_BYTES.end());
        let store = Arc::new(store::Store::open(data_dir, segment_bytes)?);
        migrate::from_redb(data_dir, &store, &settings);
        let (send, receive) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            store: store.clone(),
            settings: settings.clone(),
            queued: queued.clone(),
        };
        if let Err(e) = std::thread::Builder::new()
            .name("caxton-recorder".into())
            .spawn(move || writer.run(receive))
        {
            tracing::error!(error = %e, "cannot start the conversation recorder; nothing will be recorded");
        }
        Ok(Recorder {
            settings,
            queue: std::sync::Mutex::new(send),
            queued,
            dropped: AtomicU64::new(0),
            store,
            replays: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Whether an agent's conversations are recorded: `config` agents by
    /// default, all with `recordings.record: all`, none with `none`.
    pub fn records(&self, config_agent: bool) -> bool {
        match self.settings.record {
            RecordWhich::All => true,
            RecordWhich::Config => config_agent,
            RecordWhich::None => false,
        }
    }

    /// Appends `event` to `conversation`, in the background. Never the
    /// caller's failure: a recording must not break the run it records.
    pub fn record(&self, conversation: &str, event: Event) {
        self.enqueue(|at_ms| Work::Event {
            conversation: conversation.to_string(),
            event,
            at_ms,
        });
    }

    /// [`Recorder::record`] for an event that is costly to build (a model
    /// request and response as JSON trees): `make` runs on the writer
    /// thread, off the agent's path.
    pub fn record_later(&self, conversation: &str, make: impl FnOnce() -> Event + Send + 'static) {
        self.enqueue(|at_ms| Work::Later {
            conversation: conversation.to_string(),
            make: Box::new(make),
            at_ms,
        });
    }

    fn enqueue(&self, work: impl FnOnce(u64) -> Work) {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "the conversation recorder is behind; events are dropped until it catches up"
                );
            }
            return;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        let work = work(crate::clock::now_unix_ms());
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(work);
        if sent.is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Bytes on disk, conversations kept, and events dropped because the
    /// writer was behind (for `/metrics`).
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            bytes: self.store.total(),
            conversations: self.store.conversations() as u64,
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Serves the model and tool calls of conversation `conversation`
    /// from `session` until [`Recorder::end_replay`].
    pub fn start_replay(&self, conversation: &str, session: Arc<replay::ReplaySession>) {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(conversation.to_string(), session);
    }

    pub fn end_replay(&self, conversation: &str) {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(conversation);
    }

    /// The replay conversation `conversation` belongs to, for `agent`.
    pub fn replay(&self, conversation: &str, agent: &str) -> Option<Arc<replay::ReplaySession>> {
        self.replays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(conversation)
            .filter(|s| s.agent() == agent)
            .cloned()
    }

    /// The recording of `conversation`, if there is one, with every event
    /// recorded before the call written first.
    pub fn export(&self, conversation: &str) -> Result<Option<Recording>, StoreError> {
        self.flush(false);
        self.store.read(conversation)
    }

    /// Returns once every event recorded before the call is written (an
    /// export reads them) and, if `durable`, synced to disk (a stopping
    /// server keeps them), or after 10 s.
    pub fn flush(&self, durable: bool) {
        let (done, wait) = std::sync::mpsc::channel();
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Work::Flush { done, durable });
        if sent.is_ok() {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(10));
        }
    }
}

/// Puts the calling thread in the idle scheduling class (Linux
/// `SCHED_IDLE`), so writing recordings takes only the time agents leave
/// idle and a woken agent thread preempts it at once; a nice value of 19
/// alone still let it finish its slice first. Falls back to nice 19.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid, sched_setscheduler and setpriority only read
        // their arguments (the param struct lives on this stack); a
        // failure leaves the scheduling as it was, which is harmless.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) != 0 {
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
            }
        }
    }
}

/// The one thread that writes recordings.
struct Writer {
    store: Arc<store::Store>,
    settings: RecordingSettings,
    queued: Arc<AtomicU64>,
}

impl Writer {
    /// Syncs what is written; `unsynced_since` is cleared once it is, or
    /// restarted so a failure is tried again later.
    fn sync(&self, unsynced_since: &mut Option<std::time::Instant>) {
        match self.store.sync() {
            Ok(()) => *unsynced_since = None,
            Err(e) => {
                tracing::warn!(error = %e, "could not sync the recorded conversations");
                *unsynced_since = Some(std::time::Instant::now());
            }
        }
    }

    fn prune(&self) {
        let removed = self
            .store
            .prune(&self.settings, crate::clock::now_unix_ms());
        if removed > 0 {
            tracing::debug!(conversations = removed, "pruned recorded conversations");
        }
    }

    fn run(self, receive: std::sync::mpsc::Receiver<Work>) {
        lower_priority();
        self.prune();
        let mut last_prune = std::time::Instant::now();
        // Since when events are written but not yet synced.
        let mut unsynced_since: Option<std::time::Instant> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut events = Vec::with_capacity(MAX_BATCH);
        let mut flushes = Vec::new();
        loop {
            // Waits for work; with events not yet synced, no longer than
            // the idle time after which they are.
            let next = match unsynced_since {
                Some(_) => receive.recv_timeout(SYNC_WHEN_IDLE),
                None => receive
                    .recv()
                    .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected),
            };
            let first = match next {
                Ok(work) => work,
                Err(closed) => {
                    if unsynced_since.is_some() {
                        self.sync(&mut unsynced_since);
                    }
                    if closed == std::sync::mpsc::RecvTimeoutError::Disconnected {
                        break;
                    }
                    continue;
                }
            };
            // Gathered for a moment: on two cores the writer's time is the
            // agents' time, and one write of many events costs little more
            // than one of a few. The thread sleeps rather than waits on the
            // channel meanwhile, so an agent's send does not wake it for
            // every event.
            if !matches!(first, Work::Flush { .. }) {
                std::thread::sleep(GATHER);
            }
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match receive.try_recv() {
                    Ok(work) => batch.push(work),
                    Err(_) => break,
                }
            }
            let mut durable = false;
            for work in batch.drain(..) {
                match work {
                    Work::Event {
                        conversation,
                        event,
                        at_ms,
                    } => events.push((conversation, redact_event(event), at_ms)),
                    Work::Later {
                        conversation,
                        make,
                        at_ms,
                    } => events.push((conversation, redact_event(make()), at_ms)),
                    Work::Flush { done, durable: d } => {
                        durable |= d;
                        flushes.push(done);
                    }
                }
            }
            let count = events.len() as u64;
            if count > 0 {
                match self.store.append(&events, &self.settings) {
                    Ok(()) => {
                        unsynced_since.get_or_insert_with(std::time::Instant::now);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, events = count, "could not record conversation events")
                    }
                }
            }
            events.clear();
            self.queued.fetch_sub(count, Ordering::Relaxed);
            if unsynced_since.is_some_and(|t| durable || t.elapsed() >= SYNC_AT_LEAST_EVERY) {
                self.sync(&mut unsynced_since);
            }
            // The total cap as soon as it is passed, the retention now and
            // then; before a flush is answered, so an export or a metric
            // read after it sees the caps kept.
            if self.store.total() > self.settings.max_bytes
                || last_prune.elapsed() >= RETENTION_EVERY
            {
                self.prune();
                last_prune = std::time::Instant::now();
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }
}

fn redact(text: String) -> String {
    match crate::redact::text(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

/// Credentials out of a JSON value, in place: a recorded request is
/// walked, not rebuilt.
fn redact_json_in_place(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = crate::redact::text(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json_in_place),
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if crate::redact::is_secret_name(k) && v.is_string() {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_json_in_place(v);
                }
            }
        }
        _ => {}
    }
}

/// Credentials out of every text an event carries.
fn redact_event(mut event: Event) -> Event {
    fn clean(text: &mut String) {
        *text = redact(std::mem::take(text));
    }
    fn clean_json(value: &mut serde_json::Value) {
        redact_json_in_place(value);
    }
    match &mut event {
        Event::Inbound { content, .. } | Event::Reply { content, .. } => clean(content),
        Event::Llm {
            request,
            response,
            error,
            ..
        } => {
            clean_json(request);
            response.iter_mut().for_each(clean_json);
            error.iter_mut().for_each(clean);
        }
        Event::Tool {
            arguments,
            result,
            error,
            ..
        } => {
            clean(arguments);
            result.iter_mut().for_each(clean);
            error.iter_mut().for_each(clean);
        }
        Event::Ask {
            content,
            reply,
            error,
            ..
        } => {
            clean(content);
            reply.iter_mut().for_each(clean);
            error.iter_mut().for_each(clean);
        }
        Event::Memory {
            arguments,
            result,
            error,
            ..
        } => {
            clean_json(arguments);
            result.iter_mut().for_each(clean_json);
            error.iter_mut().for_each(clean_json);
        }
    }
    event
}
