//! The OpenAI-compatible API: `POST /v1/chat/completions` and
//! `GET /v1/models`, so the OpenAI SDKs, Open WebUI and LangChain talk to
//! any agent, WASM or config, with no Caxton-specific code.
//!
//! The model is the agent's name. OpenAI's API is stateless — the client
//! sends the whole conversation every time — so:
//! - a config agent receives the whole conversation (as
//!   [`acl::CHAT_CONTENT_TYPE`]) and answers from it, keeping no history of
//!   its own for it;
//! - a WASM agent receives the last user message as plain text, as if it
//!   had been sent with `caxton agents message`.
//!
//! Sampling parameters (`temperature`, `max_tokens`, …) are accepted and
//! ignored: an agent's model settings are the agent author's. `usage`
//! counts the tokens of every model call the request caused (zero for an
//! agent that calls no model).
//!
//! Errors have OpenAI's shape, `{"error": {"message", "type", "param",
//! "code"}}`, so the SDKs raise their usual exceptions with our message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::agents::read_body;
use super::error::ApiError;
use crate::agents::AgentHandle;
use crate::agents::record::AgentKind;
use crate::auth::Principal;
use crate::messaging::{AclMessage, Address, Delivered, MessageBus as _, Performative, acl};
use crate::trace::SpanKind;

/// How long a completion may take: config agents on a local model write
/// slowly, and OpenAI clients wait ten minutes by default.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// Most messages one request may carry (the body size caps their text).
const MAX_MESSAGES: usize = 1_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(models))
        .routes(routes!(model))
        .routes(routes!(chat_completions))
}

/// An [`ApiError`] answered in OpenAI's error shape.
struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let e = self.0;
        (e.status, Json(error_body(&e))).into_response()
    }
}

fn error_body(e: &ApiError) -> Value {
    let kind = match e.status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        502 => "agent_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    let param = match e.code {
        "model_not_found" => json!("model"),
        "invalid_messages" => json!("messages"),
        _ => Value::Null,
    };
    json!({ "error": { "message": e.message, "type": kind, "param": param, "code": e.code } })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn model_view(handle: &AgentHandle) -> Value {
    let record = handle.record();
    let created = time::OffsetDateTime::parse(
        &record.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_or(0, |t| t.unix_timestamp().max(0));
    json!({
        "id": record.name,
        "object": "model",
        "created": created,
        "owned_by": "caxton",
        "caxton": {
            "agent_id": record.id,
            "type": record.kind.as_str(),
            "capabilities": record.capabilities,
            "description": record.description,
        },
    })
}

/// OpenAI-compatible: every agent that can take a message, as a model.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    operation_id = "openai_list_models",
    responses((
        status = 200,
        description = "`{object: \"list\", data: [model]}` in name order; a model is `{id: the agent's name, object: \"model\", created: unix seconds, owned_by: \"caxton\", caxton: {agent_id, type: wasm|config, capabilities, description}}`",
        body = Object,
    )),
)]
async fn models(State(state): State<AppState>) -> Json<Value> {
    let mut agents = state.manager.registry().all();
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    let data: Vec<Value> = agents.iter().map(|h| model_view(h)).collect();
    Json(json!({ "object": "list", "data": data }))
}

/// OpenAI-compatible: one agent as a model.
#[utoipa::path(
    get,
    path = "/v1/models/{model}",
    tag = "openai",
    operation_id = "openai_get_model",
    params(("model" = String, Path, description = "The agent's name (or id)")),
    responses(
        (
            status = 200,
            description = "`{id: the agent's name, object: \"model\", created: unix seconds, owned_by: \"caxton\", caxton: {agent_id, type: wasm|config, capabilities, description}}`",
            body = Object,
        ),
        (
            status = 404,
            description = "No agent of that name, in OpenAI's error shape: `{error: {message, type: \"not_found_error\", param: \"model\", code: \"model_not_found\"}}`",
            body = Object,
        ),
    ),
)]
async fn model(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let handle = find_agent(&state, &model)?;
    Ok(Json(model_view(&handle)))
}

fn find_agent(state: &AppState, model: &str) -> Result<std::sync::Arc<AgentHandle>, ApiError> {
    state.manager.registry().get(model).ok_or_else(|| {
        ApiError::not_found(
            "model_not_found",
            format!(
                "no agent named `{model}`: the model is the agent's name; GET /v1/models lists them"
            ),
        )
    })
}

/// Body of `POST /v1/chat/completions`. Other OpenAI fields (sampling
/// parameters such as `temperature`, `max_tokens`) are accepted and
/// ignored: an agent's model settings are the agent author's.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatCompletionRequest)]
struct ChatRequest {
    /// The agent's name (or id); `GET /v1/models` lists them.
    model: String,
    /// The whole conversation, at most 1000 messages; the last is the
    /// user's, with text.
    #[schema(min_items = 1, max_items = 1000)]
    messages: Vec<ChatMessageIn>,
    /// Answer with server-sent `chat.completion.chunk` events.
    #[serde(default)]
    #[schema(default = false)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    /// Agents give one answer: 1 is the only value taken.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
}

/// Options of a streamed answer.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ChatCompletionStreamOptions)]
struct StreamOptions {
    /// Send a last chunk with `usage` (and no choices) before `[DONE]`.
    #[serde(default)]
    #[schema(default = false)]
    include_usage: bool,
}

/// One message of the conversation as the client sends it.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChatCompletionMessage)]
struct ChatMessageIn {
    /// `developer` is taken as `system`.
    #[schema(pattern = "^(system|developer|user|assistant)$")]
    role: String,
    /// A string, or an array of text parts `{"type": "text", "text": …}`;
    /// absent or null is empty.
    #[serde(default)]
    content: Option<Value>,
}

/// One message of the conversation as the agent receives it.
#[derive(serde::Serialize)]
struct Turn {
    role: &'static str,
    content: String,
}

/// The text of a message's `content`: a string, or text parts.
fn content_text(index: usize, content: Option<Value>) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => {
            let mut text = Vec::with_capacity(parts.len());
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push(t.clone()),
                    (kind, _) => {
                        return Err(invalid_messages(format!(
                            "messages[{index}].content has a part of type `{}`; agents take text parts only",
                            kind.unwrap_or("?")
                        )));
                    }
                }
            }
            Ok(text.join("\n"))
        }
        Some(_) => Err(invalid_messages(format!(
            "messages[{index}].content must be a string or an array of text parts"
        ))),
    }
}

fn invalid_messages(message: String) -> ApiError {
    ApiError::bad_request("invalid_messages", message)
}

/// The conversation with roles checked; the last message is the user's.
fn conversation(messages: Vec<ChatMessageIn>) -> Result<Vec<Turn>, ApiError> {
    if messages.is_empty() {
        return Err(invalid_messages(
            "`messages` is empty; send at least one {\"role\": \"user\", \"content\": …}".into(),
        ));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(invalid_messages(format!(
            "{} messages; a request takes at most {MAX_MESSAGES}",
            messages.len()
        )));
    }
    let mut turns = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let role = match message.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(invalid_messages(format!(
                    "messages[{index}].role is `{other}`; agents take `system`, `developer`, `user` and `assistant` messages"
                )));
            }
        };
        turns.push(Turn {
            role,
            content: content_text(index, message.content)?,
        });
    }
    match turns.last() {
        Some(last) if last.role == "user" && !last.content.trim().is_empty() => Ok(turns),
        _ => Err(invalid_messages(
            "the last message must be the user's, with text: it is what the agent answers".into(),
        )),
    }
}

/// The message the agent receives for this conversation.
fn agent_message(
    handle: &AgentHandle,
    turns: &[Turn],
    sender: &str,
    conversation_id: &str,
) -> AclMessage {
    let (content, content_type) = if handle.record().kind == AgentKind::Config {
        (
            json!({ "messages": turns }).to_string(),
            acl::CHAT_CONTENT_TYPE,
        )
    } else {
        let last = turns.last().map(|t| t.content.clone()).unwrap_or_default();
        (last, acl::TEXT_PLAIN)
    };
    AclMessage {
        id: acl::new_message_id(),
        performative: Performative::Request,
        sender: sender.to_string(),
        receiver: Some(handle.name.clone()),
        capability: None,
        content,
        content_type: content_type.to_string(),
        conversation_id: Some(conversation_id.to_string()),
        reply_with: None,
        in_reply_to: None,
        trace_parent: None,
    }
}

/// The answer's text, or why the agent gave none.
fn answer_text(agent: &str, delivered: Delivered) -> Result<String, ApiError> {
    let Some(reply) = delivered.reply else {
        return Ok(String::new());
    };
    match reply.performative {
        Performative::Failure | Performative::Refuse => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "agent_failure",
            format!(
                "agent `{agent}` answered {}: {}",
                reply.performative.as_str(),
                reply.content
            ),
        )),
        Performative::NotUnderstood => Err(ApiError::bad_request(
            "not_understood",
            format!("agent `{agent}` did not understand: {}", reply.content),
        )),
        _ => Ok(reply.content),
    }
}

/// Tokens spent by the model calls of one conversation, which began at
/// `started_ms`.
fn usage(state: &AppState, conversation_id: &str, started_ms: u64) -> Value {
    let (mut prompt, mut completion) = (0u64, 0u64);
    for span in state.trace.finished_since(conversation_id, started_ms) {
        if let SpanKind::Llm {
            prompt_tokens,
            completion_tokens,
            ..
        } = span.kind
        {
            prompt += u64::from(prompt_tokens);
            completion += u64::from(completion_tokens);
        }
    }
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// OpenAI-compatible chat completion; the model is the agent's name.
///
/// A config agent answers from the whole conversation; a WASM agent
/// receives the last user message as plain text. `usage` counts the
/// tokens of every model call the request caused. With `stream: true` the
/// answer is OpenAI's server-sent events: `data: {chat.completion.chunk}`
/// (the role, the text as the agent's model writes it, a last chunk with
/// `finish_reason`, the usage chunk when asked), then `data: [DONE]`; an
/// error after the stream started is one `data: {"error": …}` event.
/// Errors have OpenAI's shape, `{"error": {"message", "type", "param",
/// "code"}}`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    operation_id = "openai_chat_completions",
    request_body = ChatRequest,
    responses(
        (
            status = 200,
            description = "Without `stream`: `{id, object: \"chat.completion\", created, model, choices: [{index: 0, message: {role: \"assistant\", content, refusal: null}, logprobs: null, finish_reason: \"stop\"}], usage: {prompt_tokens, completion_tokens, total_tokens}, system_fingerprint: null}`. With `stream: true`: `text/event-stream` of `chat.completion.chunk` events ending in `data: [DONE]`",
            content(
                (Object = "application/json"),
                (String = "text/event-stream"),
            ),
        ),
        (
            status = 400,
            description = "Invalid JSON, `n` other than 1, invalid messages (none, more than 1000, an unknown role, a non-text part, or a last message that is not the user's with text), or the agent did not understand; `type: \"invalid_request_error\"`",
            body = Object,
        ),
        (
            status = 404,
            description = "No agent of that name; `type: \"not_found_error\"`, `code: \"model_not_found\"`",
            body = Object,
        ),
        (
            status = 409,
            description = "The agent is suspended (`agent_suspended`)",
            body = Object,
        ),
        (
            status = 413,
            description = "The body is larger than the server accepts (`payload_too_large`)",
            body = Object,
        ),
        (
            status = 502,
            description = "The agent answered failure or refused, trapped, or hit its fuel or memory limit; `type: \"agent_error\"`",
            body = Object,
        ),
        (
            status = 503,
            description = "The agent's mailbox is full (`agent_busy`) or it stopped (`agent_stopped`); `type: \"server_error\"`",
            body = Object,
        ),
        (
            status = 504,
            description = "No answer within 600 s, or the agent exceeded its time limit; `type: \"server_error\"`",
            body = Object,
        ),
    ),
)]
async fn chat_completions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(context): Extension<super::request_context::RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let request: ChatRequest = super::error::parse_json(&read_body(bytes)?)?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(
            ApiError::bad_request("invalid_n", "agents give one answer: `n` must be 1").into(),
        );
    }
    let handle = find_agent(&state, &request.model)?;
    let turns = conversation(request.messages)?;
    let id = format!("chatcmpl-{}", acl::new_message_id());
    let mut message = agent_message(&handle, &turns, &principal.name, &id);
    message.trace_parent = Some(context.delivering(&handle.name, &id));
    let completion = Completion {
        id,
        model: handle.name.clone(),
        created: unix_now(),
        started_ms: crate::trace::now_ms(),
    };
    if request.stream {
        let include_usage = request.stream_options.unwrap_or_default().include_usage;
        return Ok(stream(state, completion, message, include_usage));
    }
    let delivered = state
        .manager
        .registry()
        .request(
            None,
            Address::Agent(handle.name.clone()),
            message,
            REPLY_TIMEOUT,
        )
        .await
        .map_err(ApiError::from)?;
    let text = answer_text(&handle.name, delivered)?;
    Ok(Json(json!({
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage(&state, &completion.id, completion.started_ms),
        "system_fingerprint": null,
    }))
    .into_response())
}

/// What every chunk of one completion repeats.
#[derive(Clone)]
struct Completion {
    id: String,
    model: String,
    created: u64,
    /// When the request began (ms since the epoch), for `usage`.
    started_ms: u64,
}

impl Completion {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    }
}

/// OpenAI's stream: `data: {chunk}` events — the role, the text as the
/// agent's model writes it (all at once for an agent that does not
/// stream), a last chunk with `finish_reason`, the usage chunk when asked,
/// then `data: [DONE]`. An error after the stream started is one
/// `data: {"error": …}` event, which the SDKs raise.
fn stream(
    state: AppState,
    completion: Completion,
    message: AclMessage,
    include_usage: bool,
) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};

    let registry = state.manager.registry().clone();
    let agent = completion.model.clone();
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let data = |value: Value| Event::default().data(value.to_string());
    tokio::spawn(async move {
        let _ = events_tx.send(data(
            completion.chunk(json!({ "role": "assistant", "content": "" }), None),
        ));
        let (tokens_tx, mut tokens_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let delivery = registry.request_streaming(
            Address::Agent(agent.clone()),
            message,
            REPLY_TIMEOUT,
            tokens_tx,
        );
        let mut streamed = false;
        let result = crate::llm::relay(delivery, &mut tokens_rx, |text| {
            streamed = true;
            let _ = events_tx.send(data(completion.chunk(json!({ "content": text }), None)));
        })
        .await;
        match result
            .map_err(ApiError::from)
            .and_then(|d| answer_text(&agent, d))
        {
            Ok(text) => {
                if !streamed && !text.is_empty() {
                    let _ =
                        events_tx.send(data(completion.chunk(json!({ "content": text }), None)));
                }
                let _ = events_tx.send(data(completion.chunk(json!({}), Some("stop"))));
                if include_usage {
                    let mut last = completion.chunk(json!({}), None);
                    last["choices"] = json!([]);
                    last["usage"] = usage(&state, &completion.id, completion.started_ms);
                    let _ = events_tx.send(data(last));
                }
            }
            Err(e) => {
                let _ = events_tx.send(data(error_body(&e)));
            }
        }
        let _ = events_tx.send(Event::default().data("[DONE]"));
    });
    let events = futures_util::stream::unfold(events_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: Value) -> ChatMessageIn {
        ChatMessageIn {
            role: role.into(),
            content: Some(content),
        }
    }

    #[test]
    fn the_conversation_ends_with_the_user() {
        let turns = conversation(vec![
            message("developer", json!("be brief")),
            message(
                "user",
                json!([{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]),
            ),
        ])
        .expect("valid");
        assert_eq!(turns[0].role, "system");
        assert_eq!(turns[1].content, "hi\nthere");
        assert!(conversation(vec![]).is_err());
        assert!(conversation(vec![message("assistant", json!("hello"))]).is_err());
        assert!(
            conversation(vec![
                message("tool", json!("x")),
                message("user", json!("y"))
            ])
            .is_err()
        );
        let image = message(
            "user",
            json!([{"type": "image_url", "image_url": {"url": "x"}}]),
        );
        let e = conversation(vec![image]).err().expect("refused");
        assert!(e.message.contains("image_url"), "{}", e.message);
    }

    #[test]
    fn errors_have_openai_shape() {
        let body = error_body(&ApiError::not_found("model_not_found", "no agent"));
        assert_eq!(body["error"]["type"], "not_found_error");
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["message"], "no agent");
    }
}
