//! The conversations kept in memory, behind one lock: a map by id and an
//! index by creation order (for paging, newest first, and for eviction,
//! oldest first). Every cap is applied as a message is recorded, and
//! finished conversations past `ttl_secs` are swept at most once a second
//! while messages or queries arrive.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use thiserror::Error;

use super::model::{
    Conversation, ConversationState, ENTRY_CONTENT_BYTES, Entry, InitiatorKind, MAX_PARTICIPANTS,
    OUTCOME_BYTES, Protocol, cut,
};
use super::settings::ConversationsConfig;

/// An active conversation this long past its deadline is `expired`.
const EXPIRY_GRACE_MS: u64 = 60_000;

/// Sweeps run at most this often.
const SWEEP_EVERY_MS: u64 = 1_000;

/// Who is looking: admins see every conversation, anyone else those a
/// principal of their name started.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    Admin,
    Principal(&'a str),
    /// An agent, by name: the conversations it started or took part in.
    Participant(&'a str),
}

/// What a listing keeps.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// A participant (agent or principal name).
    pub agent: Option<String>,
    pub protocol: Option<Protocol>,
    pub state: Option<ConversationState>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Page {
    /// Without their histories.
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CancelError {
    #[error("no conversation `{0}` (it never existed, it expired, or it is not yours)")]
    NotFound(String),
    #[error("conversation `{id}` is already {state}; only an active conversation can be cancelled")]
    Finished { id: String, state: &'static str },
}

/// A message as the store records it.
pub struct Recorded<'a> {
    pub conversation_id: &'a str,
    pub entry: Entry,
    /// When the message is a request: whether an agent sent it, and the
    /// time its sender waits for the reply.
    pub request: Option<(bool, u64)>,
}

/// A conversation a host protocol runs, as [`ConversationStore::begin`]
/// takes it.
pub struct Started<'a> {
    pub conversation_id: &'a str,
    pub protocol: Protocol,
    /// The principal's or agent's name.
    pub initiator: &'a str,
    pub from_agent: bool,
    /// How long the protocol may take.
    pub deadline_ms: u64,
}

/// Resolves once the conversation is cancelled (never, if it is not).
pub struct Cancelled(tokio::sync::watch::Receiver<bool>);

impl Cancelled {
    pub async fn wait(&mut self) {
        if self.0.wait_for(|cancelled| *cancelled).await.is_err() {
            // The conversation was forgotten (caps, expiry): it will
            // never be cancelled now.
            std::future::pending::<()>().await;
        }
    }

    /// Whether it is cancelled already.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
}

struct Record {
    seq: u64,
    protocol: Protocol,
    initiator: String,
    initiator_kind: InitiatorKind,
    participants: Vec<String>,
    state: ConversationState,
    created_ms: u64,
    updated_ms: u64,
    deadline_ms: Option<u64>,
    /// Requests sent and not yet answered.
    pending: u32,
    history: VecDeque<Entry>,
    bytes: usize,
    messages: u64,
    dropped: u64,
    outcome: Option<String>,
    /// Set to `true` by [`ConversationStore::cancel`]; every request of
    /// the conversation still waiting watches it.
    cancel: tokio::sync::watch::Sender<bool>,
    /// What a protocol left here while it waits for its initiator (a
    /// contract net's proposals, until the award); dropped with the record.
    parked: Option<Box<dyn std::any::Any + Send>>,
}

impl Record {
    fn view(&self, id: &str, with_history: bool) -> Conversation {
        Conversation {
            id: id.to_string(),
            protocol: self.protocol,
            initiator: self.initiator.clone(),
            initiator_kind: self.initiator_kind,
            participants: self.participants.clone(),
            state: self.state,
            created_at: crate::clock::rfc3339_from_millis(self.created_ms),
            updated_at: crate::clock::rfc3339_from_millis(self.updated_ms),
            deadline: self.deadline_ms.map(crate::clock::rfc3339_from_millis),
            messages: self.messages,
            dropped: self.dropped,
            outcome: self.outcome.clone(),
            history: with_history.then(|| self.history.iter().cloned().collect()),
        }
    }

    fn visible_to(&self, viewer: Viewer<'_>) -> bool {
        match viewer {
            Viewer::Admin => true,
            Viewer::Principal(name) => {
                self.initiator_kind == InitiatorKind::Principal && self.initiator == name
            }
            Viewer::Participant(name) => {
                self.initiator == name || self.participants.iter().any(|p| p == name)
            }
        }
    }

    /// One more request (or a protocol) waits, until `deadline_ms` at
    /// least; a finished conversation is active again (a cancelled one
    /// stays cancelled).
    fn wait_for(&mut self, deadline_ms: u64) {
        self.pending = self.pending.saturating_add(1);
        if self.state != ConversationState::Cancelled {
            if self.state.is_finished() {
                self.deadline_ms = None;
            }
            self.state = ConversationState::Active;
        }
        self.deadline_ms = Some(self.deadline_ms.map_or(deadline_ms, |d| d.max(deadline_ms)));
    }

    /// One waiting request (or the protocol) is answered; when none
    /// waits any more the conversation is finished with `outcome`.
    fn answered(&mut self, outcome: &str, failed: bool) {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0
            && matches!(
                self.state,
                ConversationState::Active | ConversationState::Expired
            )
        {
            self.state = if failed {
                ConversationState::Failed
            } else {
                ConversationState::Completed
            };
            self.outcome = Some(outcome.to_string());
        }
    }

    fn join(&mut self, name: &str) {
        if self.participants.len() < MAX_PARTICIPANTS
            && !self.participants.iter().any(|p| p == name)
        {
            self.participants.push(name.to_string());
        }
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Record>,
    /// Creation sequence → id.
    order: BTreeMap<u64, String>,
    next_seq: u64,
    total_bytes: usize,
    last_sweep_ms: u64,
}

/// Every conversation the server has seen lately (see the module's doc).
pub struct ConversationStore {
    settings: ConversationsConfig,
    inner: Mutex<Inner>,
}

impl Default for ConversationStore {
    fn default() -> Self {
        ConversationStore::new(ConversationsConfig::default())
    }
}

pub use crate::clock::now_unix_ms as now_ms;

/// A history entry for a message.
pub fn entry(
    id: &str,
    performative: &str,
    sender: &str,
    receiver: &str,
    content: &str,
    at_ms: u64,
) -> Entry {
    Entry {
        id: id.to_string(),
        performative: performative.to_string(),
        sender: sender.to_string(),
        receiver: receiver.to_string(),
        content: cut(content, ENTRY_CONTENT_BYTES).to_string(),
        content_bytes: content.len(),
        at_ms,
    }
}

impl ConversationStore {
    pub fn new(settings: ConversationsConfig) -> Self {
        ConversationStore {
            settings,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> &ConversationsConfig {
        &self.settings
    }

    /// Conversations kept, and the bytes of their histories.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.by_id.len(), inner.total_bytes)
    }

    /// How many conversations are kept, by protocol and state (for
    /// `/metrics`), in a stable order.
    pub fn tally(&self) -> BTreeMap<(Protocol, ConversationState), usize> {
        let inner = self.lock();
        let mut counts = BTreeMap::new();
        for record in inner.by_id.values() {
            *counts.entry((record.protocol, record.state)).or_insert(0) += 1;
        }
        counts
    }

    /// Records a request sent (`recorded.request` set): opens the
    /// conversation, or reopens a finished one (a cancelled one stays
    /// cancelled). Returns what the request's sender watches to learn the
    /// conversation was cancelled.
    pub fn open(&self, recorded: Recorded<'_>, now: u64) -> Option<Cancelled> {
        let (from_agent, timeout_ms) = recorded.request?;
        super::model::check_id(recorded.conversation_id).ok()?;
        let mut inner = self.lock();
        self.maybe_sweep(&mut inner, now);
        let id = recorded.conversation_id;
        let record = create(
            &mut inner,
            id,
            Protocol::Request,
            &recorded.entry.sender,
            from_agent,
            now,
        );
        let watch = record.cancel.subscribe();
        record.wait_for(now.saturating_add(timeout_ms));
        self.push(&mut inner, id, recorded.entry, now);
        Some(Cancelled(watch))
    }

    /// Starts a conversation run by a host protocol (broadcast, contract
    /// net): it stays active until [`ConversationStore::end`], whatever its
    /// single requests do. An existing conversation of that id is taken
    /// over (its protocol is kept when it had messages before).
    pub fn begin(&self, started: Started<'_>, now: u64) -> Cancelled {
        let mut inner = self.lock();
        self.maybe_sweep(&mut inner, now);
        let record = create(
            &mut inner,
            started.conversation_id,
            started.protocol,
            started.initiator,
            started.from_agent,
            now,
        );
        if record.messages == 0 {
            record.protocol = started.protocol;
        }
        record.wait_for(now.saturating_add(started.deadline_ms));
        record.updated_ms = now;
        Cancelled(record.cancel.subscribe())
    }

    /// Ends what [`ConversationStore::begin`] started: `failed` or
    /// completed, with `outcome` (unless cancelled meanwhile).
    pub fn end(&self, conversation_id: &str, outcome: &str, failed: bool, now: u64) {
        let mut inner = self.lock();
        if let Some(record) = inner.by_id.get_mut(conversation_id) {
            record.answered(cut(outcome, OUTCOME_BYTES), failed);
            record.updated_ms = now;
        }
    }

    /// Leaves `state` in conversation `id` (which must exist) until a
    /// [`ConversationStore::unpark`] takes it: how a protocol waits for
    /// its initiator between two calls. Hands `state` back when there is
    /// no such conversation (it was evicted), or something is parked there
    /// already.
    pub fn park<T: std::any::Any + Send>(&self, id: &str, state: T) -> Result<(), T> {
        let mut inner = self.lock();
        match inner.by_id.get_mut(id) {
            Some(record) if record.parked.is_none() => {
                record.parked = Some(Box::new(state));
                Ok(())
            }
            _ => Err(state),
        }
    }

    /// Takes what is parked in conversation `id`, if it is a `T` and
    /// `accept` agrees (it sees the state and may refuse with a reason,
    /// leaving it parked). `Ok(None)`: nothing of that kind is parked there.
    pub fn unpark<T: std::any::Any + Send, E>(
        &self,
        id: &str,
        accept: impl FnOnce(&T) -> Result<(), E>,
    ) -> Result<Option<T>, E> {
        let mut inner = self.lock();
        let Some(record) = inner.by_id.get_mut(id) else {
            return Ok(None);
        };
        match record.parked.as_ref().and_then(|p| p.downcast_ref::<T>()) {
            Some(state) => accept(state)?,
            None => return Ok(None),
        }
        Ok(record
            .parked
            .take()
            .and_then(|p| p.downcast::<T>().ok())
            .map(|b| *b))
    }

    /// Records the answer to a request: the reply, or why none came. When
    /// no other request of the conversation waits, it is finished:
    /// `failed` when `failed`, else `completed`, with `outcome`.
    pub fn close(&self, conversation_id: &str, entry: Entry, failed: bool, now: u64) {
        let mut inner = self.lock();
        let Some(record) = inner.by_id.get_mut(conversation_id) else {
            return;
        };
        record.answered(cut(&entry.content, OUTCOME_BYTES), failed);
        self.push(&mut inner, conversation_id, entry, now);
    }

    /// Adds `entry` to the history of `id` and applies the caps.
    fn push(&self, inner: &mut Inner, id: &str, entry: Entry, now: u64) {
        let Some(record) = inner.by_id.get_mut(id) else {
            return;
        };
        record.join(&entry.sender);
        record.join(&entry.receiver);
        record.updated_ms = now;
        record.messages += 1;
        let size = entry.size();
        record.bytes += size;
        inner.total_bytes += size;
        record.history.push_back(entry);
        while record.history.len() > self.settings.max_history
            || (record.bytes > self.settings.max_bytes && record.history.len() > 1)
        {
            if let Some(old) = record.history.pop_front() {
                record.bytes -= old.size();
                inner.total_bytes -= old.size();
                record.dropped += 1;
            }
        }
        while inner.by_id.len() > self.settings.max_conversations
            || inner.total_bytes > self.settings.max_total_bytes
        {
            let victim = inner
                .order
                .values()
                .find(|id| inner.by_id.get(*id).is_some_and(|r| r.state.is_finished()))
                .or_else(|| inner.order.values().next())
                .cloned();
            match victim {
                Some(victim) => remove(inner, &victim),
                None => break,
            }
        }
    }

    fn maybe_sweep(&self, inner: &mut Inner, now: u64) {
        if now < inner.last_sweep_ms.saturating_add(SWEEP_EVERY_MS) {
            return;
        }
        inner.last_sweep_ms = now;
        let ttl_ms = self.settings.ttl_secs.saturating_mul(1000);
        let mut gone = Vec::new();
        for (id, record) in inner.by_id.iter_mut() {
            if record.state == ConversationState::Active
                && record
                    .deadline_ms
                    .is_some_and(|d| now > d.saturating_add(EXPIRY_GRACE_MS))
            {
                record.state = ConversationState::Expired;
                record.outcome = Some("no reply came before the deadline".into());
                record.updated_ms = now;
            }
            if record.state.is_finished() && now >= record.updated_ms.saturating_add(ttl_ms) {
                gone.push(id.clone());
            }
        }
        for id in gone {
            remove(inner, &id);
        }
    }

    /// One conversation with its history, if `viewer` may see it.
    pub fn get(&self, id: &str, viewer: Viewer<'_>, now: u64) -> Option<Conversation> {
        let mut inner = self.lock();
        self.maybe_sweep(&mut inner, now);
        inner
            .by_id
            .get(id)
            .filter(|r| r.visible_to(viewer))
            .map(|r| r.view(id, true))
    }

    /// The conversations `viewer` may see that pass `filter`, newest
    /// first, `limit` at most, starting after `cursor`.
    pub fn list(
        &self,
        filter: &Filter,
        viewer: Viewer<'_>,
        limit: usize,
        cursor: Option<u64>,
        now: u64,
    ) -> Page {
        let mut inner = self.lock();
        self.maybe_sweep(&mut inner, now);
        let mut conversations = Vec::new();
        let mut next_cursor = None;
        let range = inner.order.range(..cursor.unwrap_or(u64::MAX)).rev();
        for (seq, id) in range {
            let Some(record) = inner.by_id.get(id) else {
                continue;
            };
            let keep = record.visible_to(viewer)
                && filter.protocol.is_none_or(|p| p == record.protocol)
                && filter.state.is_none_or(|s| s == record.state)
                && filter
                    .agent
                    .as_deref()
                    .is_none_or(|a| record.participants.iter().any(|p| p == a));
            if !keep {
                continue;
            }
            if conversations.len() == limit {
                next_cursor = Some((seq + 1).to_string());
                break;
            }
            conversations.push(record.view(id, false));
        }
        Page {
            conversations,
            next_cursor,
        }
    }

    /// Marks an active conversation cancelled (an answer still on its way
    /// is recorded, the state stays `cancelled`). Cancelling a cancelled
    /// one changes nothing.
    pub fn cancel(
        &self,
        id: &str,
        viewer: Viewer<'_>,
        now: u64,
    ) -> Result<Conversation, CancelError> {
        let mut inner = self.lock();
        let record = inner
            .by_id
            .get_mut(id)
            .filter(|r| r.visible_to(viewer))
            .ok_or_else(|| CancelError::NotFound(id.to_string()))?;
        match record.state {
            ConversationState::Active => {
                record.state = ConversationState::Cancelled;
                record.outcome = Some("cancelled".into());
                record.updated_ms = now;
                record.cancel.send_replace(true);
            }
            ConversationState::Cancelled => {}
            other => {
                return Err(CancelError::Finished {
                    id: id.to_string(),
                    state: state_name(other),
                });
            }
        }
        Ok(record.view(id, true))
    }
}

fn state_name(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Active => "active",
        ConversationState::Completed => "completed",
        ConversationState::Failed => "failed",
        ConversationState::Cancelled => "cancelled",
        ConversationState::Expired => "expired",
    }
}

/// The record of `id`, created (active, no history) when there is none.
fn create<'a>(
    inner: &'a mut Inner,
    id: &str,
    protocol: Protocol,
    initiator: &str,
    from_agent: bool,
    now: u64,
) -> &'a mut Record {
    let Inner {
        by_id,
        order,
        next_seq,
        ..
    } = inner;
    by_id.entry(id.to_string()).or_insert_with(|| {
        let seq = *next_seq;
        *next_seq += 1;
        order.insert(seq, id.to_string());
        Record {
            seq,
            protocol,
            initiator: initiator.to_string(),
            initiator_kind: if from_agent {
                InitiatorKind::Agent
            } else {
                InitiatorKind::Principal
            },
            participants: Vec::new(),
            state: ConversationState::Active,
            parked: None,
            created_ms: now,
            updated_ms: now,
            deadline_ms: None,
            pending: 0,
            history: VecDeque::new(),
            bytes: 0,
            messages: 0,
            dropped: 0,
            outcome: None,
            cancel: tokio::sync::watch::channel(false).0,
        }
    })
}

fn remove(inner: &mut Inner, id: &str) {
    if let Some(record) = inner.by_id.remove(id) {
        inner.order.remove(&record.seq);
        inner.total_bytes -= record.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConversationsConfig {
        ConversationsConfig {
            ttl_secs: 10,
            max_conversations: 3,
            max_history: 4,
            max_bytes: 2048,
            max_total_bytes: 1 << 20,
        }
    }

    fn ask(store: &ConversationStore, id: &str, who: &str, text: &str, now: u64) {
        store.open(
            Recorded {
                conversation_id: id,
                entry: entry("m", "request", who, "echo", text, now),
                request: Some((false, 1000)),
            },
            now,
        );
    }

    fn answer(store: &ConversationStore, id: &str, text: &str, failed: bool, now: u64) {
        let performative = if failed { "failure" } else { "inform" };
        let asker = store
            .get(id, Viewer::Admin, now)
            .map(|c| c.initiator)
            .unwrap_or_default();
        store.close(
            id,
            entry("r", performative, "echo", &asker, text, now),
            failed,
            now,
        );
    }

    #[test]
    fn a_request_and_its_reply_make_a_finished_conversation() {
        let store = ConversationStore::new(settings());
        ask(&store, "c1", "alice", "hello", 1);
        let c = store.get("c1", Viewer::Admin, 1).expect("kept");
        assert_eq!(c.state, ConversationState::Active);
        assert_eq!(c.initiator, "alice");
        answer(&store, "c1", "hello back", false, 2);
        let c = store
            .get("c1", Viewer::Principal("alice"), 2)
            .expect("hers");
        assert_eq!(c.state, ConversationState::Completed);
        assert_eq!(c.outcome.as_deref(), Some("hello back"));
        assert_eq!(c.participants, vec!["alice", "echo"]);
        assert_eq!(c.history.map(|h| h.len()), Some(2));
        assert!(store.get("c1", Viewer::Principal("bob"), 2).is_none());
        ask(&store, "c2", "bob", "hi", 3);
        answer(&store, "c2", "no", true, 3);
        let c = store.get("c2", Viewer::Admin, 3).expect("kept");
        assert_eq!(c.state, ConversationState::Failed);
    }

    #[test]
    fn nested_requests_finish_with_the_outer_reply() {
        let store = ConversationStore::new(settings());
        ask(&store, "c", "user", "ask echo hi", 1);
        ask(&store, "c", "asker", "hi", 2);
        answer(&store, "c", "boom", true, 3);
        assert_eq!(
            store.get("c", Viewer::Admin, 3).map(|c| c.state),
            Some(ConversationState::Active)
        );
        answer(&store, "c", "they said: hi", false, 4);
        let c = store.get("c", Viewer::Admin, 4).expect("kept");
        assert_eq!(c.state, ConversationState::Completed);
        assert_eq!(c.initiator, "user");
    }

    #[test]
    fn caps_bound_the_history_and_the_count() {
        let store = ConversationStore::new(settings());
        for i in 0..10 {
            ask(&store, "c", "user", &format!("m{i}"), i);
        }
        let c = store.get("c", Viewer::Admin, 10).expect("kept");
        assert_eq!(c.history.as_ref().map(Vec::len), Some(4));
        assert_eq!((c.messages, c.dropped), (10, 6));
        // Content is cut, bytes per conversation capped.
        ask(&store, "big", "user", &"x".repeat(10_000), 11);
        ask(&store, "big", "user", &"y".repeat(10_000), 12);
        let c = store.get("big", Viewer::Admin, 12).expect("kept");
        let history = c.history.unwrap_or_default();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].content.len(), ENTRY_CONTENT_BYTES);
        assert_eq!(history[0].content_bytes, 10_000);
        // Finished ones go first when the count is over (two requests,
        // two answers).
        answer(&store, "big", "done", false, 13);
        answer(&store, "big", "done", false, 13);
        ask(&store, "d", "user", "1", 14);
        ask(&store, "e", "user", "2", 15);
        assert!(
            store.get("big", Viewer::Admin, 15).is_none(),
            "finished, evicted"
        );
        assert!(store.get("c", Viewer::Admin, 15).is_some(), "active, kept");
        assert_eq!(store.usage().0, 3);
    }

    #[test]
    fn finished_conversations_expire_and_stale_ones_time_out() {
        let store = ConversationStore::new(settings());
        ask(&store, "done", "user", "a", 5_000);
        answer(&store, "done", "b", false, 5_000);
        ask(&store, "hung", "user", "a", 5_000);
        assert!(store.get("done", Viewer::Admin, 14_000).is_some());
        assert!(
            store.get("done", Viewer::Admin, 15_001).is_none(),
            "ttl passed"
        );
        let hung = store
            .get("hung", Viewer::Admin, 15_001)
            .expect("still kept");
        assert_eq!(hung.state, ConversationState::Active);
        let hung = store.get("hung", Viewer::Admin, 70_000).expect("kept");
        assert_eq!(hung.state, ConversationState::Expired);
        assert!(store.get("hung", Viewer::Admin, 90_000).is_none());
    }

    #[test]
    fn pages_are_newest_first_and_filtered() {
        let store = ConversationStore::new(ConversationsConfig {
            max_conversations: 100,
            ..settings()
        });
        for i in 0..7 {
            let who = if i % 2 == 0 { "alice" } else { "bob" };
            ask(&store, &format!("c{i}"), who, "x", i);
        }
        let mine = Viewer::Principal("alice");
        let first = store.list(&Filter::default(), mine, 2, None, 10);
        let ids: Vec<_> = first.conversations.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c6", "c4"]);
        let cursor = first.next_cursor.and_then(|c| c.parse().ok());
        let second = store.list(&Filter::default(), mine, 2, cursor, 10);
        let ids: Vec<_> = second.conversations.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c2", "c0"]);
        assert!(second.next_cursor.is_none());
        answer(&store, "c5", "ok", false, 11);
        let filter = Filter {
            state: Some(ConversationState::Completed),
            ..Filter::default()
        };
        let done = store.list(&filter, Viewer::Admin, 10, None, 11);
        assert_eq!(done.conversations.len(), 1);
        assert!(done.conversations[0].history.is_none());
        let filter = Filter {
            agent: Some("nobody".into()),
            ..Filter::default()
        };
        assert!(
            store
                .list(&filter, Viewer::Admin, 10, None, 11)
                .conversations
                .is_empty()
        );
    }

    #[test]
    fn only_its_initiator_or_an_admin_cancels() {
        let store = ConversationStore::new(settings());
        ask(&store, "c", "alice", "x", 1);
        assert_eq!(
            store.cancel("c", Viewer::Principal("bob"), 2),
            Err(CancelError::NotFound("c".into()))
        );
        let c = store
            .cancel("c", Viewer::Principal("alice"), 2)
            .expect("hers");
        assert_eq!(c.state, ConversationState::Cancelled);
        answer(&store, "c", "late", false, 3);
        assert_eq!(
            store.get("c", Viewer::Admin, 3).map(|c| c.state),
            Some(ConversationState::Cancelled)
        );
        ask(&store, "d", "alice", "x", 4);
        answer(&store, "d", "ok", false, 4);
        assert!(matches!(
            store.cancel("d", Viewer::Admin, 5),
            Err(CancelError::Finished { .. })
        ));
    }
}
