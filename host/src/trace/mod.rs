//! What happened, hop by hop: every message an agent handles, and every
//! LLM and tool call made while handling it, is kept as a span in a bounded
//! in-memory store, so `caxton trace --agent A --conversation-id C` can
//! print a conversation as a tree with timings.
//!
//! A span names its parent: the span of the message being handled when it
//! started (an agent's request to another agent, an LLM call, a tool call).
//! The parent travels with the call — in the call's `HostState` and in the
//! outgoing message — so nothing global tracks "the current span".
//!
//! The store keeps the most recent `monitoring.trace_spans` spans (oldest
//! dropped first); every text in a span is cut short, so the store's memory
//! is bounded by its span count.
//!
//! Spans also carry a W3C trace id ([`context`]): an HTTP request that
//! names its caller's span in `traceparent` continues that trace, and
//! with `observability.otlp_endpoint` every finished span is also sent to
//! an OpenTelemetry collector ([`otlp`]).

pub mod context;
pub mod otlp;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use context::TraceParent;

/// The W3C header a [`TraceParent`] travels in (HTTP, NATS).
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Spans kept when the configuration does not say.
pub const DEFAULT_SPANS: usize = 10_000;

/// Longest text (an error, a name) a span keeps, in characters.
const MAX_TEXT: usize = 300;

/// What the span was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpanKind {
    /// A message handled by `agent`.
    Message {
        sender: String,
        performative: String,
        /// Time spent in the agent's mailbox before it ran.
        queued_ms: f64,
    },
    /// A chat completion asked by `agent`.
    Llm {
        provider: String,
        model: String,
        prompt_tokens: u32,
        completion_tokens: u32,
    },
    /// A tool called by `agent`.
    Tool { tool: String },
    /// A call of one of the host's WIT imports (memory, messaging) by
    /// `agent`'s guest, other than the LLM and tool calls above.
    Import { interface: String, function: String },
    /// An HTTP request that delivered a message to `agent`: the root of a
    /// conversation's spans (or the child of the caller's `traceparent`).
    Request {
        method: String,
        /// The route that matched, e.g. `/api/v1/agents/{name}/messages`.
        route: String,
        status: u16,
        request_id: String,
    },
}

impl SpanKind {
    /// Every text cut to [`MAX_TEXT`].
    fn cut(self) -> SpanKind {
        match self {
            SpanKind::Message {
                sender,
                performative,
                queued_ms,
            } => SpanKind::Message {
                sender: cut(&sender),
                performative,
                queued_ms,
            },
            SpanKind::Llm {
                provider,
                model,
                prompt_tokens,
                completion_tokens,
            } => SpanKind::Llm {
                provider: cut(&provider),
                model: cut(&model),
                prompt_tokens,
                completion_tokens,
            },
            SpanKind::Tool { tool } => SpanKind::Tool { tool: cut(&tool) },
            SpanKind::Import {
                interface,
                function,
            } => SpanKind::Import {
                interface: cut(&interface),
                function: cut(&function),
            },
            SpanKind::Request {
                method,
                route,
                status,
                request_id,
            } => SpanKind::Request {
                method: cut(&method),
                route: cut(&route),
                status,
                request_id: cut(&request_id),
            },
        }
    }
}

/// One finished step of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Span {
    pub id: u64,
    /// The span that caused this one: here, or in the caller that sent
    /// `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// The W3C trace id, 32 lowercase hex digits.
    #[serde(with = "context::hex_trace_id")]
    #[schema(value_type = String, pattern = "^[0-9a-f]{32}$")]
    pub trace_id: u128,
    pub conversation_id: String,
    /// The agent that handled the message or made the call.
    pub agent: String,
    #[serde(flatten)]
    pub kind: SpanKind,
    /// Milliseconds since the Unix epoch when it started.
    pub start_ms: u64,
    /// The same instant in nanoseconds, for exporters (not sent to clients).
    #[serde(skip)]
    pub start_unix_ns: u64,
    pub duration_ms: f64,
    /// Why it failed; absent when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a call is in its conversation: handed to children so they can
/// name their parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanContext {
    pub id: u64,
    pub trace_id: u128,
    pub conversation_id: String,
    /// The trace's `sampled` flag, from the caller's `traceparent` (a new
    /// trace is sampled): spans of an unsampled trace are kept for
    /// `caxton trace` but not exported.
    pub sampled: bool,
}

impl SpanContext {
    /// This span as the parent of the calls it makes.
    pub fn as_parent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            span_id: self.id,
            sampled: self.sampled,
        }
    }
}

/// A span being timed; [`TraceStore::finish`] files it.
#[derive(Debug)]
pub struct Started {
    pub context: SpanContext,
    parent: Option<u64>,
    agent: String,
    start_unix_ns: u64,
    started: std::time::Instant,
}

impl Started {
    /// Names the agent once it is known (a request learns it late).
    pub fn set_agent(&mut self, agent: &str) {
        self.agent = cut(agent);
    }

    /// Files the span in a conversation learnt after it started.
    pub fn set_conversation(&mut self, conversation_id: &str) {
        self.context.conversation_id = cut(conversation_id);
    }
}

/// One conversation in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub conversation_id: String,
    pub spans: usize,
    pub start_ms: u64,
    pub errors: usize,
}

/// What `GET /api/v1/traces` answers (and `caxton trace` reads): a
/// conversation's spans, or a list of conversations.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TraceAnswer {
    Conversation {
        conversation_id: String,
        spans: Vec<Span>,
    },
    Conversations {
        conversations: Vec<ConversationSummary>,
        /// Spans the store holds now, and at most.
        kept_spans: usize,
    },
}

/// The bounded store of recent spans.
pub struct TraceStore {
    spans: Mutex<VecDeque<Span>>,
    capacity: usize,
    next_id: AtomicU64,
    /// Where finished spans are also sent (the OTLP exporter), when set.
    export: Mutex<Option<tokio::sync::mpsc::Sender<Span>>>,
    /// Spans the exporter had no room for, or could not deliver (shared
    /// with the exporter's task).
    export_dropped: Arc<AtomicU64>,
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(MAX_TEXT).collect();
        short.push('…');
        short
    }
}

pub fn now_ms() -> u64 {
    now_unix_ns() / 1_000_000
}

fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

impl TraceStore {
    pub fn new(capacity: usize) -> Self {
        TraceStore {
            spans: Mutex::new(VecDeque::with_capacity(capacity.min(DEFAULT_SPANS))),
            capacity,
            next_id: AtomicU64::new(first_span_id()),
            export: Mutex::new(None),
            export_dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts timing a span of `agent` in `conversation_id`, under `parent`
    /// (a new trace when there is none).
    pub fn start(
        &self,
        agent: &str,
        conversation_id: &str,
        parent: Option<TraceParent>,
    ) -> Started {
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            // Zero is no span in W3C and OTLP; the counter wrapped.
            id = self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        Started {
            context: SpanContext {
                id,
                trace_id: parent.map_or_else(context::new_trace_id, |p| p.trace_id),
                conversation_id: cut(conversation_id),
                sampled: parent.is_none_or(|p| p.sampled),
            },
            parent: parent.map(|p| p.span_id),
            agent: cut(agent),
            start_unix_ns: now_unix_ns(),
            started: std::time::Instant::now(),
        }
    }

    /// Sends every span finished from now on to `to` as well; a full
    /// channel drops the span (counted) rather than slow the caller.
    pub fn export_to(&self, to: tokio::sync::mpsc::Sender<Span>) {
        *self.export.lock().unwrap_or_else(|p| p.into_inner()) = Some(to);
    }

    /// Stops exporting: the exporter sends what it holds and ends.
    pub fn close_export(&self) {
        self.export.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Spans not exported since the start: the exporter had no room for
    /// them, or the collector did not take them.
    pub fn export_dropped(&self) -> u64 {
        self.export_dropped.load(Ordering::Relaxed)
    }

    /// The counter of [`TraceStore::export_dropped`], for the exporter to
    /// add the spans a collector refused.
    pub fn export_dropped_counter(&self) -> Arc<AtomicU64> {
        self.export_dropped.clone()
    }

    /// Files a finished span; the oldest goes when the store is full. A
    /// span outside any conversation (a request that delivered nothing)
    /// is only exported.
    pub fn finish(&self, started: Started, kind: SpanKind, error: Option<&str>) {
        let sampled = started.context.sampled;
        let span = Span {
            id: started.context.id,
            parent: started.parent,
            trace_id: started.context.trace_id,
            conversation_id: started.context.conversation_id,
            agent: started.agent,
            kind: kind.cut(),
            start_ms: started.start_unix_ns / 1_000_000,
            start_unix_ns: started.start_unix_ns,
            duration_ms: millis(started.started.elapsed()),
            // Errors quote URLs (reqwest's do); spans are shown and exported.
            error: error.map(|e| cut(&crate::redact::text(e))),
        };
        if sampled
            && let Some(export) = &*self.export.lock().unwrap_or_else(|p| p.into_inner())
            && export.try_send(span.clone()).is_err()
        {
            self.export_dropped.fetch_add(1, Ordering::Relaxed);
        }
        if self.capacity == 0 || span.conversation_id.is_empty() {
            return;
        }
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        while spans.len() >= self.capacity {
            spans.pop_front();
        }
        spans.push_back(span);
    }

    /// Every kept span of `conversation_id`, oldest first.
    pub fn conversation(&self, conversation_id: &str) -> Vec<Span> {
        let conversation_id = cut(conversation_id);
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<Span> = spans
            .iter()
            .filter(|s| s.conversation_id == conversation_id)
            .cloned()
            .collect();
        found.sort_by_key(|s| (s.start_unix_ns, s.id));
        found
    }

    /// The spans of `conversation_id` that finished at or after
    /// `since_ms`, newest first. Spans are filed as they finish, so the
    /// scan from the newest stops at the first one that ended before
    /// `since_ms`: its cost is what finished since then, not the store's
    /// size (the OpenAI API's `usage` asks this on every request).
    pub fn finished_since(&self, conversation_id: &str, since_ms: u64) -> Vec<Span> {
        // Start and duration come from two clocks; allow them to disagree
        // by a few milliseconds.
        const SLACK_MS: u64 = 5;
        let conversation_id = cut(conversation_id);
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = Vec::new();
        for span in spans.iter().rev() {
            let ended = span.start_ms + span.duration_ms.ceil() as u64;
            if ended + SLACK_MS < since_ms {
                break;
            }
            if span.conversation_id == conversation_id {
                found.push(span.clone());
            }
        }
        found
    }

    /// The most recent conversations `agent` took part in (any agent when
    /// `None`), newest first, at most `limit`.
    pub fn conversations(&self, agent: Option<&str>, limit: usize) -> Vec<ConversationSummary> {
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_id: BTreeMap<&str, ConversationSummary> = BTreeMap::new();
        let mut involved: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for span in spans.iter() {
            if agent.is_none_or(|a| span.agent == a) {
                involved.insert(&span.conversation_id);
            }
            let entry = by_id
                .entry(&span.conversation_id)
                .or_insert_with(|| ConversationSummary {
                    conversation_id: span.conversation_id.clone(),
                    spans: 0,
                    start_ms: span.start_ms,
                    errors: 0,
                });
            entry.spans += 1;
            entry.start_ms = entry.start_ms.min(span.start_ms);
            entry.errors += usize::from(span.error.is_some());
        }
        let mut list: Vec<ConversationSummary> = by_id
            .into_iter()
            .filter(|(id, _)| involved.contains(id))
            .map(|(_, summary)| summary)
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.start_ms));
        list.truncate(limit);
        list
    }

    pub fn len(&self) -> usize {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Span ids start at a random point so two servers (or two runs) sending
/// to one collector do not reuse each other's ids within a trace.
fn first_span_id() -> u64 {
    let random = (context::new_trace_id() & u128::from(u64::MAX)) as u64;
    // Room for 2^62 spans before the counter wraps.
    (random >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(store: &TraceStore, conversation: &str, parent: Option<u64>) -> u64 {
        let parent = parent.map(|span_id| TraceParent {
            trace_id: 1,
            span_id,
            sampled: true,
        });
        let started = store.start("a", conversation, parent);
        let id = started.context.id;
        store.finish(started, SpanKind::Tool { tool: "t".into() }, None);
        id
    }

    #[test]
    fn keeps_the_newest_spans_and_finds_conversations() {
        let store = TraceStore::new(3);
        let root = tool(&store, "c1", None);
        tool(&store, "c1", Some(root));
        tool(&store, "c2", None);
        tool(&store, "c3", None);
        // c1's root was dropped to make room.
        let c1 = store.conversation("c1");
        assert_eq!(c1.len(), 1);
        assert_eq!(c1[0].parent, Some(root));
        assert_eq!(store.len(), 3);
        let listed = store.conversations(Some("a"), 10);
        assert_eq!(listed.len(), 3);
        assert!(store.conversations(Some("b"), 10).is_empty());
    }

    #[test]
    fn finished_since_stops_at_older_spans() {
        let store = TraceStore::new(100);
        // An old span of the same conversation, filed long ago.
        let mut old = store.start("a", "c", None);
        old.start_unix_ns -= 60_000_000_000;
        store.finish(old, SpanKind::Tool { tool: "t".into() }, None);
        let since = now_ms();
        tool(&store, "other", None);
        tool(&store, "c", None);
        let found = store.finished_since("c", since);
        assert_eq!(found.len(), 1, "only the span that finished after `since`");
        assert_eq!(store.conversation("c").len(), 2);
    }

    #[test]
    fn long_texts_are_cut() {
        let store = TraceStore::new(10);
        let started = store.start(&"x".repeat(1000), "c", None);
        store.finish(
            started,
            SpanKind::Tool { tool: "t".into() },
            Some(&"e".repeat(5000)),
        );
        let span = &store.conversation("c")[0];
        assert_eq!(span.agent.chars().count(), MAX_TEXT + 1);
        assert_eq!(
            span.error.as_deref().map(|e| e.chars().count()),
            Some(MAX_TEXT + 1)
        );
    }
}
