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

pub mod settings;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

pub use settings::{RecordWhich, RecordingSettings};

use crate::storage::{Storage, StorageError};

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

/// Records conversations.
pub struct Recorder {
    storage: Arc<Storage>,
    settings: RecordingSettings,
    writes: AtomicU64,
}

impl Recorder {
    pub fn new(storage: Arc<Storage>, settings: RecordingSettings) -> Recorder {
        Recorder {
            storage,
            settings,
            writes: AtomicU64::new(0),
        }
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

    /// Appends `event` to `conversation`. A failure is logged, never the
    /// caller's: a recording must not break the run it records.
    pub fn record(&self, conversation: &str, event: Event) {
        let event = redact_event(event);
        let result = store::append(
            &self.storage,
            conversation,
            &event,
            crate::clock::now_unix_ms(),
            &self.settings,
        );
        if let Err(e) = result {
            tracing::warn!(conversation, error = %e, "could not record a conversation event");
        }
        // Retention and the total cap, now and then rather than per event.
        if self.writes.fetch_add(1, Ordering::Relaxed).is_multiple_of(256)
            && let Err(e) = store::prune(&self.storage, &self.settings, crate::clock::now_unix_ms())
        {
            tracing::warn!(error = %e, "could not prune recorded conversations");
        }
    }

    /// The recording of `conversation`, if there is one.
    pub fn export(&self, conversation: &str) -> Result<Option<Recording>, StorageError> {
        store::read(&self.storage, conversation)
    }
}

fn redact(text: String) -> String {
    match crate::redact::text(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

fn redact_json(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => serde_json::Value::String(redact(s)),
        serde_json::Value::Array(items) => items.into_iter().map(redact_json).collect(),
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                if crate::redact::is_secret_name(&k) && v.is_string() {
                    (k, serde_json::Value::String("[redacted]".into()))
                } else {
                    (k, redact_json(v))
                }
            })
            .collect(),
        other => other,
    }
}

/// Credentials out of every text an event carries.
fn redact_event(event: Event) -> Event {
    match event {
        Event::Inbound {
            agent,
            sender,
            performative,
            content,
        } => Event::Inbound {
            agent,
            sender,
            performative,
            content: redact(content),
        },
        Event::Llm {
            agent,
            provider,
            model,
            request,
            response,
            error,
            elapsed_ms,
        } => Event::Llm {
            agent,
            provider,
            model,
            request: redact_json(request),
            response: response.map(redact_json),
            error: error.map(redact),
            elapsed_ms,
        },
        Event::Tool {
            agent,
            tool,
            arguments,
            result,
            error,
            elapsed_ms,
        } => Event::Tool {
            agent,
            tool,
            arguments: redact(arguments),
            result: result.map(redact),
            error: error.map(redact),
            elapsed_ms,
        },
        Event::Reply {
            agent,
            performative,
            content,
            elapsed_ms,
        } => Event::Reply {
            agent,
            performative,
            content: redact(content),
            elapsed_ms,
        },
    }
}
