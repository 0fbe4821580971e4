//! The A2A operations, whichever binding carried them: sending a message
//! (it becomes a task), reading, listing, cancelling and following tasks.
//! [`super::jsonrpc`] and [`super::rest`] only unwrap requests and wrap
//! answers; everything a caller can get wrong is checked here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use serde::{Deserialize, Serialize};

use super::A2a;
use super::tasks::{Message, Owner, Part, Task, TaskState, TaskStatus};
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

/// What a method answers, written by the binding that carried it.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Out {
    /// `{"task": …}`: what `SendMessage` answers.
    Sent { task: Arc<Task> },
    /// One task, as stored (or trimmed for the reader).
    Task(Arc<Task>),
    /// Anything else (a list page).
    Json(Value),
}

/// A sent message: its task as first stored, and the work that ends it
/// (to be awaited, or spawned when the caller does not wait).
pub struct Submitted {
    pub id: String,
    /// The task as submitted, when a stream asked for it
    /// (`send(…, stream: true)`).
    pub task: Option<Task>,
    pub done: Work,
}

/// A task's work: delivery, the agent's answer, the task's end.
pub type Work = crate::agents::run_to_end::Work<Arc<Task>>;

/// `SendMessage`'s parameters, read straight from the request's JSON
/// (no JSON tree on the way: this is every message's path). Fields this
/// server does not use (`metadata`, push configurations, …) are ignored.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    #[serde(default)]
    pub message: Option<Message>,
    #[serde(default)]
    pub configuration: Option<SendConfiguration>,
}

/// The part of `SendMessageConfiguration` this server reads.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct SendConfiguration {
    /// `true`: answer the task as it is at once, not when it ends.
    #[serde(default)]
    pub return_immediately: Option<Value>,
}

impl SendRequest {
    /// Reads the parameters of a send from JSON text.
    pub fn parse(json: &str) -> Result<SendRequest, A2aError> {
        serde_json::from_str(json).map_err(Self::invalid)
    }

    /// Reads the parameters of a send from JSON already parsed.
    pub fn from_json(json: &Value) -> Result<SendRequest, A2aError> {
        SendRequest::deserialize(json).map_err(Self::invalid)
    }

    fn invalid(e: serde_json::Error) -> A2aError {
        A2aError::invalid(format!(
            "the parameters are not a SendMessageRequest: {e}; e.g. {{\"message\": {{\"messageId\": \"m1\", \"role\": \"ROLE_USER\", \"parts\": [{{\"text\": \"hello\"}}]}}}}"
        ))
    }

    /// Whether the client asked not to wait (`returnImmediately`).
    pub fn return_immediately(&self) -> bool {
        self.configuration
            .as_ref()
            .and_then(|c| c.return_immediately.as_ref())
            .and_then(Value::as_bool)
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
fn content_of(message: &Message) -> Result<(String, String), A2aError> {
    let parts = &message.parts;
    if parts.is_empty() {
        return Err(A2aError::invalid(
            "`message.parts` must be a non-empty list",
        ));
    }
    let plain = |part: &Part| part.data.is_none() && part.url.is_none() && part.raw.is_none();
    if let [part] = parts.as_slice() {
        if let Some(data) = &part.data {
            return Ok((data.to_string(), acl::APPLICATION_JSON.into()));
        }
        if let Some(text) = &part.text
            && plain(part)
        {
            return Ok((text.clone(), acl::TEXT_PLAIN.into()));
        }
    }
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        match &part.text {
            Some(text) if plain(part) => texts.push(text.as_str()),
            _ => {
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
    params: SendRequest,
    request: &RequestContext,
    stream: bool,
) -> Result<Submitted, A2aError> {
    let mut user = params.message.ok_or_else(|| A2aError::invalid("`message` is required: {\"message\": {\"messageId\": \"…\", \"role\": \"ROLE_USER\", \"parts\": [{\"text\": \"hello\"}]}}"))?;
    if let Some(task_id) = user.task_id.as_deref().filter(|id| !id.is_empty()) {
        return Err(match a2a.tasks.get(&caller.owner(), task_id) {
            None => A2aError::not_found(task_id),
            Some(_) => A2aError::new(
                UNSUPPORTED_OPERATION,
                "a task is not continued here: send a new message with the same contextId",
            ),
        });
    }
    let (content, content_type) = content_of(&user)?;
    let context_id = match user.context_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            crate::conversations::model::check_id(id)
                .map_err(|why| A2aError::invalid(format!("`contextId`: {why}")))?;
            id.to_string()
        }
        None => acl::new_message_id(),
    };
    let task_id = uuid::Uuid::new_v4().to_string();
    user.context_id = Some(context_id.clone());
    user.task_id = Some(task_id.clone());
    let working = Task::working(task_id.clone(), context_id.clone(), user);
    // The task as first submitted, only for a stream's first event.
    let submitted = stream.then(|| {
        let mut task = working.clone();
        task.status.state = TaskState::Submitted;
        task
    });
    let owner = caller.owner();
    let working = Arc::new(working);
    a2a.tasks.put(owner.clone(), working.clone());
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
    let principal = caller.principal.clone();
    let done = async move {
        let conversations = registry.conversations().clone();
        let mut guard = Abandoned {
            a2a: a2a.clone(),
            conversations: conversations.clone(),
            owner: owner.clone(),
            task_id: working.id.clone(),
            context_id: working.context_id.clone(),
            armed: true,
        };
        conversations.begin(
            Started {
                conversation_id: &working.context_id,
                protocol: Protocol::A2a,
                initiator: &principal,
                from_agent: false,
                deadline_ms: u64::try_from(REPLY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
            },
            now_ms(),
        );
        let delivery = registry.request(None, Address::Agent(agent), acl_message, REPLY_TIMEOUT);
        let task = tokio::select! {
            delivered = delivery => {
                let task = Task::clone(&working);
                match delivered {
                    Ok(delivered) => task.answered(delivered.reply),
                    Err(e) => task.failed(&crate::server::error::ApiError::from(e).message),
                }
            }
            () = cancel.notified() => {
                // CancelTask stored the cancelled task already.
                guard.armed = false;
                a2a.finished(&working.id);
                conversations.end(&working.context_id, TaskState::Canceled.as_str(), true, now_ms());
                return a2a.tasks.get(&owner, &working.id).unwrap_or(working);
            }
        };
        guard.armed = false;
        a2a.finished(&task.id);
        let state = task.status.state;
        conversations.end(
            &task.context_id,
            state.as_str(),
            state != TaskState::Completed,
            now_ms(),
        );
        a2a.tasks.finish(owner, Arc::new(task))
    };
    Ok(Submitted {
        id: task_id,
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
        if let Some(task) = self.a2a.tasks.get(&self.owner, &self.task_id)
            && !task.status.state.is_terminal()
        {
            let canceled =
                Task::clone(&task).canceled(Some("the caller went away before the agent answered"));
            self.a2a.tasks.put(self.owner.clone(), Arc::new(canceled));
        }
        self.conversations.end(
            &self.context_id,
            TaskState::Canceled.as_str(),
            true,
            now_ms(),
        );
    }
}

/// How many messages of history to keep, if `historyLength` is given.
fn history_length(params: &Value) -> Result<Option<usize>, A2aError> {
    let Some(length) = params.get("historyLength").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = parse_u64(length)
        .ok_or_else(|| A2aError::invalid("`historyLength` must be a non-negative integer"))?;
    Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)))
}

/// Keeps the last `historyLength` messages of the history, if given (a
/// copy only when something is cut).
fn trim_history(task: Arc<Task>, keep: Option<usize>) -> Arc<Task> {
    match keep {
        Some(n) if n < task.history.len() => {
            let mut trimmed = Task::clone(&task);
            trimmed.keep_history(n);
            Arc::new(trimmed)
        }
        _ => task,
    }
}

fn task_id(params: &Value) -> Result<&str, A2aError> {
    non_empty_str(params, "id").ok_or_else(|| A2aError::invalid("`id` (the task id) is required"))
}

pub fn get(a2a: &A2a, caller: &Caller, params: &Value) -> Result<Arc<Task>, A2aError> {
    let id = task_id(params)?;
    let keep = history_length(params)?;
    let task = a2a
        .tasks
        .get(&caller.owner(), id)
        .ok_or_else(|| A2aError::not_found(id))?;
    Ok(trim_history(task, keep))
}

pub fn cancel(a2a: &A2a, caller: &Caller, params: &Value) -> Result<Arc<Task>, A2aError> {
    let id = task_id(params)?;
    let owner = caller.owner();
    let task = a2a
        .tasks
        .get(&owner, id)
        .ok_or_else(|| A2aError::not_found(id))?;
    let state = task.status.state;
    if state.is_terminal() {
        return Err(A2aError::new(
            TASK_NOT_CANCELABLE,
            format!(
                "task `{id}` cannot be canceled: it is already {}",
                state.as_str()
            ),
        ));
    }
    let canceled = Arc::new(Task::clone(&task).canceled(None));
    a2a.tasks.put(owner, canceled.clone());
    a2a.cancel(id);
    Ok(canceled)
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
    let keep = history_length(params)?;
    let all: Vec<Arc<Task>> = a2a
        .tasks
        .list(&caller.owner(), context)
        .into_iter()
        .filter(|t| status.is_none_or(|s| t.status.state.as_str() == s))
        .collect();
    let total = all.len();
    let mut page = Vec::new();
    for task in all
        .into_iter()
        .skip(offset)
        .take(usize::try_from(page_size).unwrap_or(50))
    {
        let mut task = trim_history(task, keep);
        if !include_artifacts && task.artifacts.is_some() {
            Arc::make_mut(&mut task).artifacts = None;
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
pub fn final_events(task: &Task) -> Vec<Value> {
    let (id, context) = (&task.id, &task.context_id);
    let mut events: Vec<Value> = task
        .artifacts
        .iter()
        .flatten()
        .map(|artifact| {
            json!({ "artifactUpdate": {
                "taskId": id, "contextId": context, "artifact": artifact, "lastChunk": true,
            }})
        })
        .collect();
    events.push(json!({ "statusUpdate": {
        "taskId": id, "contextId": context, "status": task.status,
    }}));
    events
}

/// The stream items of a sent message: the submitted task, a working
/// status, then [`final_events`] once `done` ends it.
pub fn stream_of_send(submitted: Submitted) -> tokio::sync::mpsc::Receiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let Submitted { task, done, .. } = submitted;
    tokio::spawn(async move {
        let (id, context) = task
            .as_ref()
            .map(|t| (t.id.clone(), t.context_id.clone()))
            .unwrap_or_default();
        let working = json!({ "statusUpdate": {
            "taskId": id, "contextId": context,
            "status": TaskStatus::now(TaskState::Working),
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
    let state = current.status.state;
    if state.is_terminal() {
        return Err(A2aError::new(
            UNSUPPORTED_OPERATION,
            format!(
                "task `{id}` is in terminal state {}: GetTask reads it",
                state.as_str()
            ),
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
                    Some(task) if task.status.state.is_terminal() => return Some(task),
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

    fn message_of(params: &Value) -> Result<Message, A2aError> {
        SendRequest::parse(&params.to_string())?
            .message
            .ok_or_else(|| A2aError::invalid("`message` is required"))
    }

    fn message(parts: Value) -> Result<Message, A2aError> {
        message_of(&json!({ "message": { "messageId": "m", "parts": parts } }))
    }

    #[test]
    fn text_parts_join_and_one_data_part_is_json() {
        let text = message(json!([{"text": "a"}, {"text": "b"}])).and_then(|m| content_of(&m));
        assert_eq!(text.ok(), Some(("a\nb".into(), "text/plain".into())));
        let data = message(json!([{"data": {"x": 1}}])).and_then(|m| content_of(&m));
        assert_eq!(
            data.ok(),
            Some(("{\"x\":1}".into(), "application/json".into()))
        );
        assert!(message(json!([])).and_then(|m| content_of(&m)).is_err());
        let url = message(json!([{"url": "http://x"}])).and_then(|m| content_of(&m));
        assert!(url.is_err_and(|e| e.message.contains("no files or URLs")));
        let wrong = message(json!([{"text": 5}]));
        assert!(
            wrong.is_err_and(
                |e| e.code == INVALID_PARAMS && e.message.contains("SendMessageRequest")
            )
        );
        let later = SendRequest::parse(
            r#"{"message": null, "configuration": {"returnImmediately": true}}"#,
        );
        assert!(later.is_ok_and(|r| r.message.is_none() && r.return_immediately()));
        let missing = message_of(&json!({}));
        assert!(missing.is_err_and(|e| e.message.contains("`message` is required")));
    }

    #[test]
    fn a_message_keeps_what_the_caller_sent() {
        let sent = json!({"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}],
            "metadata": {"k": "v"}, "extensions": ["e"], "referenceTaskIds": ["t0"]});
        let read = message_of(&json!({ "message": sent.clone() }));
        let written = read
            .ok()
            .map(|m| serde_json::to_value(m).unwrap_or_default());
        assert_eq!(written, Some(sent));
    }

    #[test]
    fn history_is_trimmed_to_the_last_n() {
        let user = Message {
            parts: vec![Part::default()],
            ..Message::default()
        };
        let mut task = Task::working("t".into(), "c".into(), user.clone());
        task.history
            .extend([Arc::new(user.clone()), Arc::new(user)]);
        let task = Arc::new(task);
        let keep = history_length(&json!({"historyLength": 1})).ok().flatten();
        assert_eq!(trim_history(task.clone(), keep).history.len(), 1);
        assert_eq!(task.history.len(), 3, "the stored task is not cut");
        let keep = history_length(&json!({})).ok().flatten();
        assert_eq!(trim_history(task, keep).history.len(), 3);
        assert!(history_length(&json!({"historyLength": -1})).is_err());
        assert_eq!(
            history_length(&json!({"historyLength": "2"})).ok(),
            Some(Some(2))
        );
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
        let reply = AclMessage {
            id: "r".into(),
            performative: Performative::Inform,
            sender: "echo".into(),
            receiver: None,
            capability: None,
            content: "hi".into(),
            content_type: "text/plain".into(),
            conversation_id: None,
            reply_with: None,
            in_reply_to: None,
            trace_parent: None,
        };
        let task = Task::working("t".into(), "c".into(), Message::default()).answered(Some(reply));
        let events = final_events(&task);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0]["artifactUpdate"]["artifact"]["artifactId"],
            "t-reply"
        );
        assert_eq!(events[0]["artifactUpdate"]["taskId"], "t");
        assert_eq!(
            events[1]["statusUpdate"]["status"]["state"],
            "TASK_STATE_COMPLETED"
        );
    }

    #[test]
    fn send_answers_are_written_as_a2a_wants_them() {
        let task = Arc::new(Task::working("t".into(), "c".into(), Message::default()));
        let sent = serde_json::to_value(Out::Sent { task: task.clone() }).unwrap_or_default();
        assert_eq!(sent["task"]["id"], "t");
        let one = serde_json::to_value(Out::Task(task)).unwrap_or_default();
        assert_eq!(one["contextId"], "c");
    }
}
