//! A2A tasks: what an agent's FIPA reply means as a task, and the
//! in-memory store `GetTask`, `ListTasks`, `CancelTask` and
//! `SubscribeToTask` read (subscribers are told of every change).
//!
//! The store is bounded three ways: a task expires [`TASK_TTL`] after its
//! last change, at most [`MAX_TASKS`] are kept, and their JSON together
//! takes about at most [`MAX_TASK_BYTES`]; the oldest go first. Tasks are not
//! persisted: a restart forgets them (the agents' replies themselves are in
//! the conversation they were sent in).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::messaging::acl::{self, AclMessage, Performative};

/// How long a task is kept after its last change.
pub const TASK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Tasks kept at once.
pub const MAX_TASKS: usize = 10_000;
/// Bytes of task JSON kept at once.
pub const MAX_TASK_BYTES: usize = 64 * 1024 * 1024;

/// A task's state, named as A2A 1.0 writes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TaskState {
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
}

impl TaskState {
    /// The state as A2A writes it (`TASK_STATE_COMPLETED`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Rejected => "TASK_STATE_REJECTED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
        }
    }

    /// States a task does not leave.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Rejected | TaskState::Canceled
        )
    }

    /// The task state a reply of this performative puts a task in:
    /// `inform` (and the other answers that carry a result) completes it,
    /// `failure` fails it, `refuse` and `not-understood` reject it, `agree`
    /// leaves it working, and a question back (`propose`, `request`, …)
    /// asks for input.
    pub fn of_reply(performative: Performative) -> TaskState {
        use Performative::*;
        match performative {
            Inform | Confirm | Disconfirm => TaskState::Completed,
            Failure => TaskState::Failed,
            Refuse | NotUnderstood => TaskState::Rejected,
            Agree => TaskState::Working,
            _ => TaskState::InputRequired,
        }
    }
}

/// One part of a message or artifact. Only text and data parts are made
/// or accepted here; `url` and `raw` are read so that a message carrying
/// one is refused saying so rather than for an unknown field.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Part {
    /// A message's content as one part: JSON content as a `data` part,
    /// anything else as text, with its media type.
    pub fn of_content(content: String, content_type: String) -> Part {
        if content_type.starts_with(acl::APPLICATION_JSON)
            && let Ok(data) = serde_json::from_str::<Value>(&content)
        {
            return Part {
                data: Some(data),
                media_type: Some(Cow::Borrowed(acl::APPLICATION_JSON)),
                ..Part::default()
            };
        }
        let media_type = match content_type.as_str() {
            acl::TEXT_PLAIN => Cow::Borrowed(acl::TEXT_PLAIN),
            _ => Cow::Owned(content_type),
        };
        Part {
            text: Some(content),
            media_type: Some(media_type),
            ..Part::default()
        }
    }

    pub(crate) fn text(text: &str) -> Part {
        Part {
            text: Some(text.into()),
            media_type: Some(Cow::Borrowed(acl::TEXT_PLAIN)),
            ..Part::default()
        }
    }
}

/// An A2A message: the caller's, as sent (with its task and context ids
/// filled in), or the agent's reply.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default)]
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Cow<'static, str>>,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_task_ids: Option<Vec<String>>,
}

impl Message {
    /// A message of the agent in a task.
    fn of_agent(message_id: String, task_id: &str, context_id: &str, part: Part) -> Message {
        Message {
            message_id,
            context_id: Some(context_id.into()),
            task_id: Some(task_id.into()),
            role: Some(Cow::Borrowed("ROLE_AGENT")),
            parts: vec![part],
            ..Message::default()
        }
    }
}

/// Where a task is, since when, and the agent's word on it when it is
/// not a result (a failure's reason, a question back).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    pub state: TaskState,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

impl TaskStatus {
    pub fn now(state: TaskState) -> TaskStatus {
        TaskStatus {
            state,
            timestamp: now_rfc3339(),
            message: None,
        }
    }
}

/// A task's result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub artifact_id: String,
    pub name: &'static str,
    pub parts: Vec<Part>,
}

/// An A2A task, as every binding writes it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    pub context_id: String,
    pub status: TaskStatus,
    /// `None` while the task works, and in a list that left them out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
    /// Shared: every state of a task holds the same messages.
    pub history: Vec<Arc<Message>>,
}

impl Task {
    /// A task the agent is working on: only the caller's message so far.
    pub fn working(id: String, context_id: String, user: Message) -> Task {
        Task {
            id,
            context_id,
            status: TaskStatus::now(TaskState::Working),
            artifacts: None,
            history: vec![Arc::new(user)],
        }
    }

    /// The task a delivered message became. `reply` is the agent's answer
    /// (`None`: it sent none, which completes the task with no artifact).
    pub fn answered(mut self, reply: Option<AclMessage>) -> Task {
        self.status = TaskStatus::now(TaskState::Completed);
        let mut artifacts = Vec::new();
        if let Some(reply) = reply {
            let state = TaskState::of_reply(reply.performative);
            let message = Message::of_agent(
                reply.id,
                &self.id,
                &self.context_id,
                Part::of_content(reply.content, reply.content_type),
            );
            self.status.state = state;
            if state == TaskState::Completed {
                artifacts.push(Artifact {
                    artifact_id: format!("{}-reply", self.id),
                    name: "reply",
                    parts: message.parts.clone(),
                });
            } else {
                self.status.message = Some(message.clone());
            }
            self.history.push(Arc::new(message));
        }
        self.artifacts = Some(artifacts);
        self
    }

    /// A task that failed before the agent answered (it trapped, timed
    /// out, its mailbox was full): the reason is the status message.
    pub fn failed(self, reason: &str) -> Task {
        let mut task = self.now(TaskState::Failed, Some(reason));
        task.artifacts = Some(Vec::new());
        task
    }

    /// The task cancelled now, saying why when there is a reason.
    pub fn canceled(self, reason: Option<&str>) -> Task {
        self.now(TaskState::Canceled, reason)
    }

    /// The task in `state` as of now, the reason (if any) as the agent's
    /// status message.
    fn now(mut self, state: TaskState, reason: Option<&str>) -> Task {
        let message = reason.map(|why| {
            Message::of_agent(
                acl::new_message_id(),
                &self.id,
                &self.context_id,
                Part::text(why),
            )
        });
        self.status = TaskStatus {
            message,
            ..TaskStatus::now(state)
        };
        self
    }

    /// Keeps the last `n` messages of the history.
    pub fn keep_history(&mut self, n: usize) {
        let skip = self.history.len().saturating_sub(n);
        self.history.drain(..skip);
    }

    /// About the bytes of this task written as JSON, counted without
    /// writing it (serialising every task twice per message was a tenth
    /// of an A2A request's time): string bytes plus a fixed overhead per
    /// field; escapes are not counted, which is closer to the memory the
    /// task takes anyway.
    fn approx_bytes(&self) -> usize {
        let message = |m: &Message| {
            80 + m.message_id.len()
                + opt_len(&m.context_id)
                + opt_len(&m.task_id)
                + m.role.as_ref().map_or(0, |r| r.len() + 16)
                + m.parts.iter().map(part_bytes).sum::<usize>()
                + m.metadata.as_ref().map_or(0, json_size)
                + m.extensions
                    .iter()
                    .flatten()
                    .map(|s| s.len() + 3)
                    .sum::<usize>()
                + m.reference_task_ids
                    .iter()
                    .flatten()
                    .map(|s| s.len() + 3)
                    .sum::<usize>()
        };
        100 + self.id.len()
            + self.context_id.len()
            + self.status.timestamp.len()
            + self.status.message.as_ref().map_or(0, message)
            + self
                .artifacts
                .iter()
                .flatten()
                .map(|a| {
                    40 + a.artifact_id.len()
                        + a.name.len()
                        + a.parts.iter().map(part_bytes).sum::<usize>()
                })
                .sum::<usize>()
            + self.history.iter().map(|m| message(m)).sum::<usize>()
    }
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| s.len() + 16)
}

fn part_bytes(part: &Part) -> usize {
    20 + opt_len(&part.text)
        + opt_len(&part.url)
        + opt_len(&part.raw)
        + part.media_type.as_ref().map_or(0, |m| m.len() + 16)
        + opt_len(&part.filename)
        + part.data.as_ref().map_or(0, json_size)
        + part.metadata.as_ref().map_or(0, json_size)
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Whose task it is: only the principal that sent the message, and only
/// at the agent it was sent to, sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Owner {
    pub principal: String,
    pub agent: String,
}

struct Stored {
    owner: Owner,
    task: Arc<Task>,
    bytes: usize,
    changed: Instant,
    /// Its key in [`Inner::order`].
    seq: u64,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Stored>,
    /// Ids by last change, oldest first: eviction and expiry take from the
    /// front, listing reads from the back, both without a scan.
    order: BTreeMap<u64, String>,
    next_seq: u64,
    bytes: usize,
}

impl Inner {
    fn remove(&mut self, id: &str) {
        if let Some(old) = self.tasks.remove(id) {
            self.bytes -= old.bytes;
            self.order.remove(&old.seq);
        }
    }
}

/// About the bytes of `value` written as JSON: string and key bytes plus
/// punctuation. Recursion is bounded by the JSON parser's depth limit.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        Value::Object(fields) => {
            2 + fields
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
    }
}

/// The bounded in-memory task store. Tasks are kept behind `Arc`s: a
/// read hands out the task as stored, without copying it.
pub struct TaskStore {
    inner: Mutex<Inner>,
    /// Bumped on every change; `SubscribeToTask` waits on it.
    changes: tokio::sync::watch::Sender<u64>,
    ttl: Duration,
    max_tasks: usize,
    max_bytes: usize,
}

impl Default for TaskStore {
    fn default() -> Self {
        TaskStore::new(TASK_TTL, MAX_TASKS, MAX_TASK_BYTES)
    }
}

impl TaskStore {
    pub fn new(ttl: Duration, max_tasks: usize, max_bytes: usize) -> Self {
        TaskStore {
            inner: Mutex::new(Inner::default()),
            changes: tokio::sync::watch::Sender::new(0),
            ttl,
            max_tasks,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells of every later change to the store.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Keeps (or replaces) a task, evicting expired and then the oldest
    /// tasks until the caps hold. A task larger than the byte cap alone is
    /// not kept.
    pub fn put(&self, owner: Owner, task: Arc<Task>) {
        let mut inner = self.lock();
        self.put_locked(&mut inner, owner, task);
        drop(inner);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Replaces a task unless it was cancelled meanwhile (an answer that
    /// comes after `CancelTask` does not undo it); either way, the task
    /// as stored now.
    pub fn finish(&self, owner: Owner, task: Arc<Task>) -> Arc<Task> {
        let mut inner = self.lock();
        if let Some(stored) = inner.tasks.get(&task.id)
            && stored.task.status.state == TaskState::Canceled
        {
            return stored.task.clone();
        }
        self.put_locked(&mut inner, owner, task.clone());
        drop(inner);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        task
    }

    fn put_locked(&self, inner: &mut Inner, owner: Owner, task: Arc<Task>) {
        let bytes = task.approx_bytes();
        inner.remove(&task.id);
        if bytes > self.max_bytes {
            return;
        }
        self.expire(inner);
        while inner.tasks.len() >= self.max_tasks || inner.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            inner.remove(&oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += bytes;
        inner.order.insert(seq, task.id.clone());
        inner.tasks.insert(
            task.id.clone(),
            Stored {
                owner,
                task,
                bytes,
                changed: Instant::now(),
                seq,
            },
        );
    }

    /// Drops the tasks unchanged for the time to live: the oldest are at
    /// the front of the order, so this stops at the first one still fresh.
    fn expire(&self, inner: &mut Inner) {
        while let Some((_, id)) = inner.order.first_key_value() {
            let fresh = inner
                .tasks
                .get(id)
                .is_some_and(|s| s.changed.elapsed() < self.ttl);
            if fresh {
                break;
            }
            let id = id.clone();
            inner.order.pop_first();
            inner.remove(&id);
        }
    }

    /// The task, if it exists, has not expired and is `owner`'s.
    pub fn get(&self, owner: &Owner, id: &str) -> Option<Arc<Task>> {
        let inner = self.lock();
        inner
            .tasks
            .get(id)
            .filter(|s| s.owner == *owner && s.changed.elapsed() < self.ttl)
            .map(|s| s.task.clone())
    }

    /// `owner`'s tasks, newest first, optionally only those of one context.
    pub fn list(&self, owner: &Owner, context_id: Option<&str>) -> Vec<Arc<Task>> {
        let inner = self.lock();
        inner
            .order
            .values()
            .rev()
            .filter_map(|id| inner.tasks.get(id))
            .filter(|s| s.owner == *owner && s.changed.elapsed() < self.ttl)
            .filter(|s| context_id.is_none_or(|c| s.task.context_id == c))
            .map(|s| s.task.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().tasks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(p: &str) -> Owner {
        Owner {
            principal: p.into(),
            agent: "echo".into(),
        }
    }

    fn user(text: &str) -> Message {
        Message {
            message_id: "m".into(),
            role: Some(Cow::Borrowed("ROLE_USER")),
            parts: vec![Part::text(text)],
            ..Message::default()
        }
    }

    fn task(id: &str, padding: usize) -> Arc<Task> {
        Arc::new(Task::working(
            id.into(),
            "c".into(),
            user(&"x".repeat(padding)),
        ))
    }

    fn reply(performative: Performative, content: &str) -> AclMessage {
        AclMessage {
            id: "r1".into(),
            performative,
            sender: "echo".into(),
            receiver: None,
            capability: None,
            content: content.into(),
            content_type: "text/plain".into(),
            conversation_id: Some("c".into()),
            reply_with: None,
            in_reply_to: None,
            trace_parent: None,
        }
    }

    fn as_json(task: &Task) -> Value {
        serde_json::to_value(task).unwrap_or_default()
    }

    #[test]
    fn fipa_replies_map_onto_task_states() {
        use TaskState::*;
        assert_eq!(TaskState::of_reply(Performative::Inform), Completed);
        assert_eq!(TaskState::of_reply(Performative::Failure), Failed);
        assert_eq!(TaskState::of_reply(Performative::Refuse), Rejected);
        assert_eq!(TaskState::of_reply(Performative::NotUnderstood), Rejected);
        assert_eq!(TaskState::of_reply(Performative::Agree), Working);
        assert_eq!(TaskState::of_reply(Performative::Propose), InputRequired);
        for state in [
            Submitted,
            Working,
            InputRequired,
            Completed,
            Failed,
            Rejected,
            Canceled,
        ] {
            assert_eq!(json!(state), json!(state.as_str()));
        }
    }

    #[test]
    fn an_inform_completes_with_an_artifact_and_a_failure_carries_its_reason() {
        let working = Task::working("t".into(), "c".into(), user("hello"));
        let written = as_json(&working);
        assert_eq!(written["status"]["state"], "TASK_STATE_WORKING");
        assert!(written.get("artifacts").is_none(), "{written}");
        assert_eq!(written["history"][0]["parts"][0]["text"], "hello");

        let done = as_json(
            &working
                .clone()
                .answered(Some(reply(Performative::Inform, "hi"))),
        );
        assert_eq!(done["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(done["artifacts"][0]["parts"][0]["text"], "hi");
        assert_eq!(done["history"][1]["role"], "ROLE_AGENT");
        assert_eq!(done["history"][1]["taskId"], "t");

        let failed = as_json(
            &working
                .clone()
                .answered(Some(reply(Performative::Failure, "hi"))),
        );
        assert_eq!(failed["status"]["state"], "TASK_STATE_FAILED");
        assert_eq!(failed["artifacts"], json!([]));
        assert_eq!(failed["status"]["message"]["parts"][0]["text"], "hi");

        let data = AclMessage {
            content_type: "application/json".into(),
            ..reply(Performative::Inform, "{\"n\": 1}")
        };
        let done = as_json(&working.clone().answered(Some(data)));
        assert_eq!(done["artifacts"][0]["parts"][0]["data"], json!({"n": 1}));

        let silent = as_json(&working.answered(None));
        assert_eq!(silent["status"]["state"], "TASK_STATE_COMPLETED");
        assert_eq!(silent["artifacts"], json!([]));
    }

    #[test]
    fn a_tasks_size_is_counted_close_to_its_json() {
        let working = Task::working("t".into(), "c".into(), user("hello"));
        let long = "a reply of some length, as agents give ".repeat(20);
        for task in [
            working.clone(),
            working
                .clone()
                .answered(Some(reply(Performative::Inform, &long))),
            working
                .clone()
                .answered(Some(reply(Performative::Refuse, "no"))),
            working.failed("it trapped"),
        ] {
            let written = as_json(&task).to_string().len();
            let counted = task.approx_bytes();
            assert!(
                counted >= written && counted <= written * 2,
                "{counted} counted for {written} written: {task:?}"
            );
        }
        let value = json!([null, true, 1, [], {}]);
        let written = value.to_string().len();
        assert!(json_size(&value) >= written && json_size(&value) <= written * 2);
    }

    #[test]
    fn tasks_are_seen_only_by_their_owner() {
        let store = TaskStore::default();
        store.put(owner("alice"), task("t1", 0));
        assert!(store.get(&owner("alice"), "t1").is_some());
        assert!(store.get(&owner("bob"), "t1").is_none());
        let other_agent = Owner {
            principal: "alice".into(),
            agent: "other".into(),
        };
        assert!(store.get(&other_agent, "t1").is_none());
        assert_eq!(store.list(&owner("alice"), None).len(), 1);
        assert_eq!(store.list(&owner("alice"), Some("d")).len(), 0);
        assert_eq!(store.list(&owner("bob"), None).len(), 0);
    }

    #[test]
    fn a_cancelled_task_is_not_finished_over() {
        let store = TaskStore::default();
        let working = task("t", 0);
        store.put(owner("p"), working.clone());
        let canceled = Arc::new(Task::clone(&working).canceled(None));
        store.put(owner("p"), canceled);
        let answered = Arc::new(Task::clone(&working).answered(None));
        let kept = store.finish(owner("p"), answered);
        assert_eq!(kept.status.state, TaskState::Canceled);
        assert_eq!(
            store.get(&owner("p"), "t").map(|t| t.status.state),
            Some(TaskState::Canceled)
        );
    }

    #[test]
    fn the_count_and_byte_caps_evict_the_oldest() {
        let store = TaskStore::new(TASK_TTL, 2, 1_000_000);
        for id in ["a", "b", "c"] {
            store.put(owner("p"), task(id, 0));
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(&owner("p"), "a").is_none());
        assert!(store.get(&owner("p"), "c").is_some());

        let store = TaskStore::new(TASK_TTL, 100, 800);
        store.put(owner("p"), task("a", 200));
        store.put(owner("p"), task("b", 200));
        assert!(store.get(&owner("p"), "a").is_none(), "over the byte cap");
        assert!(store.get(&owner("p"), "b").is_some());
        store.put(owner("p"), task("huge", 1000));
        assert!(
            store.get(&owner("p"), "huge").is_none(),
            "larger than the cap"
        );
    }

    #[test]
    fn expired_tasks_are_gone() {
        let store = TaskStore::new(Duration::ZERO, 10, 1_000_000);
        store.put(owner("p"), task("a", 0));
        assert!(store.get(&owner("p"), "a").is_none());
        store.put(owner("p"), task("b", 0));
        assert_eq!(store.len(), 1, "the expired one was dropped");
    }
}
