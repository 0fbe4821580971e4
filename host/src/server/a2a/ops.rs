//! The A2A operations, whichever binding carried them: sending a message
//! (it becomes a task), reading, listing, cancelling and following tasks.
//! [`super::jsonrpc`] and [`super::rest`] only unwrap requests and wrap
//! answers; everything a caller can get wrong is checked here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::A2a;
use super::tasks::{self, Owner};
use crate::conversations::{Protocol, Started, now_ms};
use crate::messaging::acl::{self, AclMessage, Performative};
use crate::messaging::{Address, MessageBus};
use crate::server::AppState;
use crate::server::request_context::RequestContext;

/// How long a task waits for the agent's reply (the REST default).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest `ListTasks` page.
const MAX_PAGE: u64 = 100;
/// Longest a `SubscribeToTask` stream follows one task.
const MAX_FOLLOW: Duration = Duration::from_secs(600);

/// An A2A error: the JSON-RPC code (the HTTP+JSON binding derives its
/// status and reason from it) and a message saying what to change.
#[derive(Debug, Clone)]
pub struct A2aError {
    pub code: i64,
    pub message: String,
}

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
pub const TASK_NOT_FOUND: i64 = -32001;
pub const TASK_NOT_CANCELABLE: i64 = -32002;
pub const PUSH_NOT_SUPPORTED: i64 = -32003;
pub const UNSUPPORTED_OPERATION: i64 = -32004;
pub const EXTENDED_CARD_NOT_CONFIGURED: i64 = -32007;
pub const VERSION_NOT_SUPPORTED: i64 = -32009;

impl A2aError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        A2aError {
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        A2aError::new(INVALID_PARAMS, message)
    }

    fn not_found(id: &str) -> Self {
        A2aError::new(
            TASK_NOT_FOUND,
            format!(
                "no task `{id}` of yours at this agent (tasks are kept a day, and not across restarts)"
            ),
        )
    }

    /// The `google.rpc.ErrorInfo` reason the A2A clients map back to the
    /// error's kind.
    pub fn reason(&self) -> &'static str {
        match self.code {
            TASK_NOT_FOUND => "TASK_NOT_FOUND",
            TASK_NOT_CANCELABLE => "TASK_NOT_CANCELABLE",
            PUSH_NOT_SUPPORTED => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            UNSUPPORTED_OPERATION => "UNSUPPORTED_OPERATION",
            VERSION_NOT_SUPPORTED => "VERSION_NOT_SUPPORTED",
            EXTENDED_CARD_NOT_CONFIGURED => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
            METHOD_NOT_FOUND => "METHOD_NOT_FOUND",
            INVALID_PARAMS => "INVALID_PARAMS",
            INTERNAL_ERROR => "INTERNAL_ERROR",
            _ => "INVALID_REQUEST",
        }
    }

    /// The error's details as A2A carries them.
    pub fn details(&self) -> Value {
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason(),
            "domain": "a2a-protocol.org",
            "metadata": {},
        }])
    }
}

/// Checks the `A2A-Version` a client asked for: absent or 1.x is served.
pub fn check_version(asked: Option<&str>) -> Result<(), A2aError> {
    match asked.map(str::trim) {
        None | Some("") => Ok(()),
        Some(v) if v == "1" || v.starts_with("1.") => Ok(()),
        Some(v) => Err(A2aError::new(
            VERSION_NOT_SUPPORTED,
            format!(
                "A2A-Version {v} is not served; this server speaks {}",
                super::card::PROTOCOL_VERSION
            ),
        )),
    }
}

/// Who asks, of which agent.
#[derive(Clone)]
pub struct Caller {
    /// The authenticated principal's name.
    pub principal: String,
    /// The agent, as addressed.
    pub agent: String,
}

impl Caller {
    fn owner(&self) -> Owner {
        Owner {
            principal: self.principal.clone(),
            agent: self.agent.clone(),
        }
    }
}

/// A sent message: its task as first stored, and the work that ends it
/// (to be awaited, or spawned when the caller does not wait).
pub struct Submitted {
    pub id: String,
    /// The task as submitted, when a stream asked for it
    /// (`send(…, stream: true)`).
    pub task: Option<Value>,
    pub done: Work,
}

/// A task's work: delivery, the agent's answer, the task's end.
pub type Work = Pin<Box<dyn Future<Output = Value> + Send>>;

impl Submitted {
    /// Whether the client asked not to wait (`returnImmediately`).
    pub fn return_immediately(params: &Value) -> bool {
        params["configuration"]["returnImmediately"]
            .as_bool()
            .unwrap_or(false)
    }
}

fn non_empty_str<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The caller's message as content and content type: text parts joined by
/// newlines, or a single data part as JSON.
fn content_of(message: &Value) -> Result<(String, String), A2aError> {
    let parts = message["parts"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| A2aError::invalid("`message.parts` must be a non-empty list"))?;
    if let [part] = parts.as_slice()
        && let Some(data) = part.get("data")
    {
        return Ok((data.to_string(), "application/json".into()));
    }
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("text").and_then(Value::as_str) {
            Some(text) => texts.push(text),
            None => {
                return Err(A2aError::invalid(
                    "only text parts, or one data part, are accepted (no files or URLs): e.g. {\"parts\": [{\"text\": \"hello\"}]}",
                ));
            }
        }
    }
    Ok((texts.join("\n"), acl::TEXT_PLAIN.into()))
}

/// Starts a task for `params.message`: checks it, stores the task as
/// working, and returns the work that delivers the message, waits for the
/// reply (or a `CancelTask`) and stores the outcome.
pub fn send(
    state: &AppState,
    a2a: &Arc<A2a>,
    caller: &Caller,
    params: &Value,
    request: &RequestContext,
    stream: bool,
) -> Result<Submitted, A2aError> {
    let message = params
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| A2aError::invalid("`message` is required: {\"message\": {\"messageId\": \"…\", \"role\": \"ROLE_USER\", \"parts\": [{\"text\": \"hello\"}]}}"))?;
    if let Some(task_id) = non_empty_str(message, "taskId") {
        return Err(match a2a.tasks.get(&caller.owner(), task_id) {
            None => A2aError::not_found(task_id),
            Some(_) => A2aError::new(
                UNSUPPORTED_OPERATION,
                "a task is not continued here: send a new message with the same contextId",
            ),
        });
    }
    let (content, content_type) = content_of(message)?;
    let context_id = match non_empty_str(message, "contextId") {
        Some(id) => {
            crate::conversations::model::check_id(id)
                .map_err(|why| A2aError::invalid(format!("`contextId`: {why}")))?;
            id.to_string()
        }
        None => acl::new_message_id(),
    };
    let task_id = uuid::Uuid::new_v4().to_string();
    let mut user = message.clone();
    user["contextId"] = json!(context_id);
    user["taskId"] = json!(task_id);
    let now = tasks::now_rfc3339();
    let working = json!({
        "id": task_id,
        "contextId": context_id,
        "status": { "state": tasks::WORKING, "timestamp": now },
        "history": [user.clone()],
    });
    // The task as first submitted, only for a stream's first event.
    let submitted = stream.then(|| {
        let mut task = working.clone();
        task["status"] = json!({ "state": tasks::SUBMITTED, "timestamp": now });
        task
    });
    let owner = caller.owner();
    a2a.tasks.put(owner.clone(), working);
    let cancel = a2a.running(&task_id);
    let acl_message = AclMessage {
        id: acl::new_message_id(),
        performative: Performative::Request,
        sender: caller.principal.clone(),
        receiver: Some(caller.agent.clone()),
        capability: None,
        content,
        content_type,
        conversation_id: Some(context_id.clone()),
        reply_with: None,
        in_reply_to: None,
        trace_parent: Some(request.delivering(&caller.agent, &context_id)),
    };
    let registry = state.manager.registry().clone();
    let a2a = a2a.clone();
    let agent = caller.agent.clone();
    let task_id_out = task_id.clone();
    let principal = caller.principal.clone();
    let done = async move {
        let conversations = registry.conversations().clone();
        let mut guard = Abandoned {
            a2a: a2a.clone(),
            conversations: conversations.clone(),
            owner: owner.clone(),
            task_id: task_id.clone(),
            context_id: context_id.clone(),
            armed: true,
        };
        conversations.begin(
            Started {
                conversation_id: &context_id,
                protocol: Protocol::A2a,
                initiator: &principal,
                from_agent: false,
                deadline_ms: u64::try_from(REPLY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            },
            now_ms(),
        );
        let delivery = registry.request(None, Address::Agent(agent), acl_message, REPLY_TIMEOUT);
        let task = tokio::select! {
            delivered = delivery => match delivered {
                Ok(delivered) => tasks::task_from_reply(&task_id, &context_id, user, delivered.reply.as_ref()),
                Err(e) => {
                    let e = crate::server::error::ApiError::from(e);
                    tasks::failed_task(&task_id, &context_id, user, &e.message)
                }
            },
            () = cancel.notified() => {
                // CancelTask stored the cancelled task already.
                a2a.tasks.get(&owner, &task_id).unwrap_or(Value::Null)
            }
        };
        guard.armed = false;
        a2a.finished(&task_id);
        let state = task["status"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let failed = state != tasks::COMPLETED;
        conversations.end(&context_id, &state, failed, now_ms());
        if a2a.tasks.finish(owner.clone(), task.clone()) {
            task
        } else {
            a2a.tasks.get(&owner, &task_id).unwrap_or(task)
        }
    };
    Ok(Submitted {
        id: task_id_out,
        task: submitted,
        done: Box::pin(done),
    })
}

/// Ends a task whose work was dropped half-way (a caller that waited
/// inline went away): it is cancelled, saying why, rather than left
/// working for ever.
struct Abandoned {
    a2a: Arc<A2a>,
    conversations: Arc<crate::conversations::ConversationStore>,
    owner: Owner,
    task_id: String,
    context_id: String,
    armed: bool,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.a2a.finished(&self.task_id);
        if let Some(mut task) = self.a2a.tasks.get(&self.owner, &self.task_id)
            && !tasks::is_terminal(task["status"]["state"].as_str().unwrap_or_default())
        {
            task["status"] = json!({
                "state": tasks::CANCELED,
                "timestamp": tasks::now_rfc3339(),
                "message": {
                    "messageId": acl::new_message_id(),
                    "role": "ROLE_AGENT",
                    "parts": [{ "text": "the caller went away before the agent answered" }],
                },
            });
            self.a2a.tasks.put(self.owner.clone(), task);
        }
        self.conversations
            .end(&self.context_id, tasks::CANCELED, true, now_ms());
    }
}

/// Keeps the last `historyLength` messages of the history, if given.
fn trim_history(mut task: Value, params: &Value) -> Result<Value, A2aError> {
    let Some(length) = params.get("historyLength").filter(|v| !v.is_null()) else {
        return Ok(task);
    };
    let n = length
        .as_u64()
        .or_else(|| length.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| A2aError::invalid("`historyLength` must be a non-negative integer"))?;
    if let Some(history) = task["history"].as_array_mut() {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let skip = history.len().saturating_sub(n);
        history.drain(..skip);
    }
    Ok(task)
}

fn task_id(params: &Value) -> Result<&str, A2aError> {
    non_empty_str(params, "id").ok_or_else(|| A2aError::invalid("`id` (the task id) is required"))
}

pub fn get(a2a: &A2a, caller: &Caller, params: &Value) -> Result<Value, A2aError> {
    let id = task_id(params)?;
    let task = a2a
        .tasks
        .get(&caller.owner(), id)
        .ok_or_else(|| A2aError::not_found(id))?;
    trim_history(task, params)
}

pub fn cancel(a2a: &A2a, caller: &Caller, params: &Value) -> Result<Value, A2aError> {
    let id = task_id(params)?;
    let owner = caller.owner();
    let mut task = a2a
        .tasks
        .get(&owner, id)
        .ok_or_else(|| A2aError::not_found(id))?;
    let state = task["status"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if tasks::is_terminal(&state) {
        return Err(A2aError::new(
            TASK_NOT_CANCELABLE,
            format!("task `{id}` cannot be canceled: it is already {state}"),
        ));
    }
    task["status"] = json!({ "state": tasks::CANCELED, "timestamp": tasks::now_rfc3339() });
    a2a.tasks.put(owner, task.clone());
    a2a.cancel(id);
    Ok(task)
}

fn parse_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

pub fn list(a2a: &A2a, caller: &Caller, params: &Value) -> Result<Value, A2aError> {
    let context = non_empty_str(params, "contextId");
    let status = non_empty_str(params, "status").filter(|s| *s != "TASK_STATE_UNSPECIFIED");
    let page_size = match params.get("pageSize").filter(|v| !v.is_null()) {
        None => 50,
        Some(v) => match parse_u64(v) {
            Some(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(A2aError::invalid(format!(
                    "`pageSize` must be between 1 and {MAX_PAGE}"
                )));
            }
        },
    };
    let offset = match non_empty_str(params, "pageToken") {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| A2aError::invalid("`pageToken` is not one this server gave"))?,
        None => 0,
    };
    let include_artifacts = match &params["includeArtifacts"] {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    };
    let all: Vec<Value> = a2a
        .tasks
        .list(&caller.owner(), context)
        .into_iter()
        .filter(|t| status.is_none_or(|s| t["status"]["state"] == s))
        .collect();
    let total = all.len();
    let mut page = Vec::new();
    for task in all
        .into_iter()
        .skip(offset)
        .take(usize::try_from(page_size).unwrap_or(50))
    {
        let mut task = trim_history(task, params)?;
        if !include_artifacts && let Some(map) = task.as_object_mut() {
            map.remove("artifacts");
        }
        page.push(task);
    }
    let next = offset + page.len();
    Ok(json!({
        "tasks": page,
        "nextPageToken": if next < total { next.to_string() } else { String::new() },
        "pageSize": page_size,
        "totalSize": total,
    }))
}

/// The stream items that end a task: its artifacts, then its last status.
pub fn final_events(task: &Value) -> Vec<Value> {
    let (id, context) = (&task["id"], &task["contextId"]);
    let mut events: Vec<Value> = task["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|artifact| {
            json!({ "artifactUpdate": {
                "taskId": id, "contextId": context, "artifact": artifact, "lastChunk": true,
            }})
        })
        .collect();
    events.push(json!({ "statusUpdate": {
        "taskId": id, "contextId": context, "status": task["status"],
    }}));
    events
}

/// The stream items of a sent message: the submitted task, a working
/// status, then [`final_events`] once `done` ends it.
pub fn stream_of_send(submitted: Submitted) -> tokio::sync::mpsc::Receiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let Submitted { task, done, .. } = submitted;
    let task = task.unwrap_or(Value::Null);
    tokio::spawn(async move {
        let working = json!({ "statusUpdate": {
            "taskId": task["id"], "contextId": task["contextId"],
            "status": { "state": tasks::WORKING, "timestamp": tasks::now_rfc3339() },
        }});
        let _ = tx.send(json!({ "task": task })).await;
        let _ = tx.send(working).await;
        // The task runs to its end even when the client goes away.
        let finished = done.await;
        for event in final_events(&finished) {
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// Follows a task that is not finished: its current state first, then its
/// end. A finished task is refused (there is nothing left to follow).
pub fn subscribe(
    a2a: &Arc<A2a>,
    caller: &Caller,
    params: &Value,
) -> Result<tokio::sync::mpsc::Receiver<Value>, A2aError> {
    let id = task_id(params)?.to_string();
    let owner = caller.owner();
    let mut changes = a2a.tasks.subscribe();
    let current = a2a
        .tasks
        .get(&owner, &id)
        .ok_or_else(|| A2aError::not_found(&id))?;
    let state = current["status"]["state"].as_str().unwrap_or_default();
    if tasks::is_terminal(state) {
        return Err(A2aError::new(
            UNSUPPORTED_OPERATION,
            format!("task `{id}` is in terminal state {state}: GetTask reads it"),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let a2a = a2a.clone();
    tokio::spawn(async move {
        if tx.send(json!({ "task": current })).await.is_err() {
            return;
        }
        let follow = async {
            loop {
                if changes.changed().await.is_err() {
                    return None;
                }
                match a2a.tasks.get(&owner, &id) {
                    None => return None,
                    Some(task)
                        if tasks::is_terminal(
                            task["status"]["state"].as_str().unwrap_or_default(),
                        ) =>
                    {
                        return Some(task);
                    }
                    Some(_) => {}
                }
            }
        };
        if let Ok(Some(task)) = tokio::time::timeout(MAX_FOLLOW, follow).await {
            for event in final_events(&task) {
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parts_join_and_one_data_part_is_json() {
        let text = json!({"parts": [{"text": "a"}, {"text": "b"}]});
        assert_eq!(
            content_of(&text).ok(),
            Some(("a\nb".into(), "text/plain".into()))
        );
        let data = json!({"parts": [{"data": {"x": 1}}]});
        assert_eq!(
            content_of(&data).ok(),
            Some(("{\"x\":1}".into(), "application/json".into()))
        );
        assert!(content_of(&json!({"parts": []})).is_err());
        assert!(content_of(&json!({"parts": [{"url": "http://x"}]})).is_err());
    }

    #[test]
    fn history_is_trimmed_to_the_last_n() {
        let task = json!({"history": [1, 2, 3]});
        let trimmed = trim_history(task.clone(), &json!({"historyLength": 1})).ok();
        assert_eq!(trimmed.map(|t| t["history"].clone()), Some(json!([3])));
        let whole = trim_history(task.clone(), &json!({})).ok();
        assert_eq!(whole.map(|t| t["history"].clone()), Some(json!([1, 2, 3])));
        assert!(trim_history(task, &json!({"historyLength": -1})).is_err());
    }

    #[test]
    fn versions_other_than_1_are_refused() {
        assert!(check_version(None).is_ok());
        assert!(check_version(Some("1.0")).is_ok());
        assert!(check_version(Some("1.2")).is_ok());
        let old = check_version(Some("0.3")).err();
        assert_eq!(old.map(|e| e.code), Some(VERSION_NOT_SUPPORTED));
    }

    #[test]
    fn a_task_ends_with_its_artifacts_then_its_status() {
        let task = json!({"id": "t", "contextId": "c", "status": {"state": tasks::COMPLETED},
            "artifacts": [{"artifactId": "a", "parts": [{"text": "hi"}]}]});
        let events = final_events(&task);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["artifactUpdate"]["artifact"]["artifactId"], "a");
        assert_eq!(
            events[1]["statusUpdate"]["status"]["state"],
            tasks::COMPLETED
        );
    }
}
