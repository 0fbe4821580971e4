//! A2A tasks: what an agent's FIPA reply means as a task, and the
//! in-memory store `GetTask`, `ListTasks`, `CancelTask` and
//! `SubscribeToTask` read (subscribers are told of every change).
//!
//! The store is bounded three ways: a task expires [`TASK_TTL`] after its
//! last change, at most [`MAX_TASKS`] are kept, and their JSON together
//! takes about at most [`MAX_TASK_BYTES`]; the oldest go first. Tasks are not
//! persisted: a restart forgets them (the agents' replies themselves are in
//! the conversation they were sent in).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::messaging::acl::{AclMessage, Performative};

/// How long a task is kept after its last change.
pub const TASK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Tasks kept at once.
pub const MAX_TASKS: usize = 10_000;
/// Bytes of task JSON kept at once.
pub const MAX_TASK_BYTES: usize = 64 * 1024 * 1024;

pub const SUBMITTED: &str = "TASK_STATE_SUBMITTED";
pub const COMPLETED: &str = "TASK_STATE_COMPLETED";
pub const FAILED: &str = "TASK_STATE_FAILED";
pub const REJECTED: &str = "TASK_STATE_REJECTED";
pub const WORKING: &str = "TASK_STATE_WORKING";
pub const CANCELED: &str = "TASK_STATE_CANCELED";
pub const INPUT_REQUIRED: &str = "TASK_STATE_INPUT_REQUIRED";

/// The task state a reply of this performative puts a task in: `inform`
/// (and the other answers that carry a result) completes it, `failure`
/// fails it, `refuse` and `not-understood` reject it, `agree` leaves it
/// working, and a question back (`propose`, `request`, …) asks for input.
pub fn state_for(performative: Performative) -> &'static str {
    use Performative::*;
    match performative {
        Inform | Confirm | Disconfirm => COMPLETED,
        Failure => FAILED,
        Refuse | NotUnderstood => REJECTED,
        Agree => WORKING,
        _ => INPUT_REQUIRED,
    }
}

/// States a task does not leave.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, COMPLETED | FAILED | REJECTED | CANCELED)
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A message's content as one A2A part: JSON content as a `data` part,
/// anything else as text, with its media type.
pub fn part_of(content: &str, content_type: &str) -> Value {
    if content_type.starts_with("application/json")
        && let Ok(data) = serde_json::from_str::<Value>(content)
    {
        return json!({ "data": data, "mediaType": "application/json" });
    }
    json!({ "text": content, "mediaType": content_type })
}

/// The agent's reply as an A2A message of the task.
pub fn agent_message(reply: &AclMessage, task_id: &str, context_id: &str) -> Value {
    json!({
        "messageId": reply.id,
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": [part_of(&reply.content, &reply.content_type)],
    })
}

/// The task a delivered message became. `reply` is the agent's answer
/// (`None`: it sent none, which completes the task with no artifact);
/// `user` is the caller's message as the task's history records it.
pub fn task_from_reply(
    task_id: &str,
    context_id: &str,
    user: Value,
    reply: Option<&AclMessage>,
) -> Value {
    let mut history = vec![user];
    let mut status = json!({ "state": COMPLETED, "timestamp": now_rfc3339() });
    let mut artifacts = Vec::new();
    if let Some(reply) = reply {
        let state = state_for(reply.performative);
        let message = agent_message(reply, task_id, context_id);
        status["state"] = json!(state);
        if state == COMPLETED {
            artifacts.push(json!({
                "artifactId": format!("{task_id}-reply"),
                "name": "reply",
                "parts": message["parts"].clone(),
            }));
        } else {
            status["message"] = message.clone();
        }
        history.push(message);
    }
    json!({
        "id": task_id,
        "contextId": context_id,
        "status": status,
        "artifacts": artifacts,
        "history": history,
    })
}

/// A task that failed before the agent answered (it trapped, timed out,
/// its mailbox was full): the reason is the status message.
pub fn failed_task(task_id: &str, context_id: &str, user: Value, reason: &str) -> Value {
    json!({
        "id": task_id,
        "contextId": context_id,
        "status": {
            "state": FAILED,
            "timestamp": now_rfc3339(),
            "message": {
                "messageId": crate::messaging::acl::new_message_id(),
                "contextId": context_id,
                "taskId": task_id,
                "role": "ROLE_AGENT",
                "parts": [{ "text": reason, "mediaType": "text/plain" }],
            },
        },
        "artifacts": [],
        "history": [user],
    })
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
    task: Value,
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

/// About the bytes of `value` written as JSON, counted without writing it
/// (serialising every task twice per message was a tenth of an A2A
/// request's time): string and key bytes plus punctuation; escapes are
/// not counted, which is closer to the memory the task takes anyway.
/// Recursion is bounded by the JSON parser's depth limit.
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

/// The bounded in-memory task store.
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
    pub fn put(&self, owner: Owner, task: Value) {
        self.put_quietly(owner, task);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Replaces a task unless it was cancelled meanwhile (an answer that
    /// comes after `CancelTask` does not undo it). False when it was.
    pub fn finish(&self, owner: Owner, task: Value) -> bool {
        let id = task["id"].as_str().unwrap_or_default();
        let cancelled = self
            .lock()
            .tasks
            .get(id)
            .is_some_and(|s| s.task["status"]["state"] == CANCELED);
        if !cancelled {
            self.put(owner, task);
        }
        !cancelled
    }

    fn put_quietly(&self, owner: Owner, task: Value) {
        let Some(id) = task["id"].as_str().map(str::to_string) else {
            return;
        };
        let bytes = json_size(&task);
        let mut inner = self.lock();
        inner.remove(&id);
        if bytes > self.max_bytes {
            return;
        }
        self.expire(&mut inner);
        while inner.tasks.len() >= self.max_tasks || inner.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            inner.remove(&oldest);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += bytes;
        inner.order.insert(seq, id.clone());
        inner.tasks.insert(
            id,
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
    pub fn get(&self, owner: &Owner, id: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .tasks
            .get(id)
            .filter(|s| s.owner == *owner && s.changed.elapsed() < self.ttl)
            .map(|s| s.task.clone())
    }

    /// `owner`'s tasks, newest first, optionally only those of one context.
    pub fn list(&self, owner: &Owner, context_id: Option<&str>) -> Vec<Value> {
        let inner = self.lock();
        inner
            .order
            .values()
            .rev()
            .filter_map(|id| inner.tasks.get(id))
            .filter(|s| s.owner == *owner && s.changed.elapsed() < self.ttl)
            .filter(|s| context_id.is_none_or(|c| s.task["contextId"] == c))
            .map(|s| s.task.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(p: &str) -> Owner {
        Owner {
            principal: p.into(),
            agent: "echo".into(),
        }
    }

    fn task(id: &str, padding: usize) -> Value {
        json!({ "id": id, "contextId": "c", "pad": "x".repeat(padding) })
    }

    #[test]
    fn fipa_replies_map_onto_task_states() {
        assert_eq!(state_for(Performative::Inform), COMPLETED);
        assert_eq!(state_for(Performative::Failure), FAILED);
        assert_eq!(state_for(Performative::Refuse), REJECTED);
        assert_eq!(state_for(Performative::NotUnderstood), REJECTED);
        assert_eq!(state_for(Performative::Agree), WORKING);
        assert_eq!(state_for(Performative::Propose), INPUT_REQUIRED);
    }

    #[test]
    fn an_inform_completes_with_an_artifact_and_a_failure_carries_its_reason() {
        let mut reply = AclMessage {
            id: "r1".into(),
            performative: Performative::Inform,
            sender: "echo".into(),
            receiver: None,
            capability: None,
            content: "hi".into(),
            content_type: "text/plain".into(),
            conversation_id: Some("c".into()),
            reply_with: None,
            in_reply_to: None,
            trace_parent: None,
        };
        let done = task_from_reply("t", "c", json!({}), Some(&reply));
        assert_eq!(done["status"]["state"], COMPLETED);
        assert_eq!(done["artifacts"][0]["parts"][0]["text"], "hi");
        reply.performative = Performative::Failure;
        let failed = task_from_reply("t", "c", json!({}), Some(&reply));
        assert_eq!(failed["status"]["state"], FAILED);
        assert_eq!(failed["artifacts"], json!([]));
        assert_eq!(failed["status"]["message"]["parts"][0]["text"], "hi");
    }

    #[test]
    fn a_tasks_size_is_counted_close_to_its_json() {
        let reply = AclMessage {
            id: "r1".into(),
            performative: Performative::Inform,
            sender: "echo".into(),
            receiver: None,
            capability: None,
            content: "a reply of some length, as agents give".into(),
            content_type: "text/plain".into(),
            conversation_id: Some("c".into()),
            reply_with: None,
            in_reply_to: None,
            trace_parent: None,
        };
        let user = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hello"}]});
        for task in [
            task_from_reply("t", "c", user.clone(), Some(&reply)),
            failed_task("t", "c", user, "it trapped"),
            json!([null, true, 1, [], {}]),
        ] {
            let written = task.to_string().len();
            let counted = json_size(&task);
            assert!(
                counted >= written && counted <= written * 2,
                "{counted} counted for {written} written: {task}"
            );
        }
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
    fn the_count_and_byte_caps_evict_the_oldest() {
        let store = TaskStore::new(TASK_TTL, 2, 1_000_000);
        for id in ["a", "b", "c"] {
            store.put(owner("p"), task(id, 0));
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(&owner("p"), "a").is_none());
        assert!(store.get(&owner("p"), "c").is_some());

        let store = TaskStore::new(TASK_TTL, 100, 250);
        store.put(owner("p"), task("a", 100));
        store.put(owner("p"), task("b", 100));
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
