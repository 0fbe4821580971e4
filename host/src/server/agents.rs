//! `/api/v1/agents…` and `/api/v1/messages`: deploy, list, show, remove,
//! suspend, resume, ping, logs, and messages to agents.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, parse_json};
use super::request_context::RequestContext;
use crate::agents::AgentHandle;
use crate::agents::deploy::DeployRequest;
use crate::agents::record::AgentKind;
use crate::auth::Principal;
use crate::messaging::{AclMessage, Address, MessageBus, Performative, acl};
use crate::runtime::limits::RequestedLimits;

/// How long an API caller waits for a reply unless it says otherwise.
const DEFAULT_REPLY_TIMEOUT_MS: u64 = 60_000;
const MAX_REPLY_TIMEOUT_MS: u64 = 600_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list).post(deploy))
        .route("/api/v1/agents/{agent}", get(show).delete(remove))
        .route("/api/v1/agents/{agent}/message", post(message))
        .route("/api/v1/agents/{agent}/ping", post(ping))
        .route("/api/v1/agents/{agent}/suspend", post(suspend))
        .route("/api/v1/agents/{agent}/resume", post(resume))
        .route("/api/v1/agents/{agent}/logs", get(logs))
        .route("/api/v1/messages", post(route_message))
}

/// The JSON view of an agent, shared by list, show and deploy.
pub fn agent_view(handle: &AgentHandle) -> Value {
    let record = handle.record();
    let mut view = json!({
        "id": record.id,
        "name": record.name,
        "type": record.kind.as_str(),
        "status": handle.status(),
        "capabilities": record.capabilities,
        "description": record.description,
        "resource_limits": record.limits,
        "created_at": record.created_at,
        "component_sha256": record.component_sha256,
        "memory_grants": record.memory_grants,
        "llm": record.llm_granted || record.kind == AgentKind::Config,
        "tools": record.tools,
        "queued_messages": handle.queued(),
        "stats": handle.stats(),
    });
    if record.kind == AgentKind::Config {
        let definition: Value = serde_json::from_str(&record.config_json).unwrap_or(Value::Null);
        view["source"] = json!(record.source);
        view["version"] = definition["version"].clone();
        view["llm"] = definition["llm"].clone();
        view["documentation"] = definition["documentation"].clone();
    }
    view
}

/// A body the size limit or the connection cut short.
pub(super) fn read_body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "payload_too_large",
                "the request body is larger than the server accepts (server.max_body_bytes in caxton.yaml)",
            )
        } else {
            ApiError::new(status, "invalid_body", format!("cannot read the request body: {rejection}"))
        }
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted = match query.kind.as_deref() {
        None => None,
        Some("wasm") => Some(AgentKind::Wasm),
        Some("config") => Some(AgentKind::Config),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown agent type `{other}`; use `wasm` or `config`"),
            ));
        }
    };
    let agents: Vec<Value> = state
        .manager
        .registry()
        .all()
        .iter()
        .filter(|h| wanted.is_none_or(|k| h.record().kind == k))
        .map(|h| agent_view(h))
        .collect();
    Ok(Json(json!({ "total": agents.len(), "agents": agents })))
}

async fn show(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let handle = state
        .manager
        .registry()
        .get(&agent)
        .ok_or_else(|| ApiError::unknown_agent(&agent))?;
    Ok(Json(agent_view(&handle)))
}

async fn remove(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state.manager.remove(&agent).await?;
    Ok(Json(
        json!({ "id": record.id, "name": record.name, "status": "removed" }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    name: String,
    /// The component, base64 (standard alphabet; whitespace ignored).
    wasm_module: String,
    #[serde(default)]
    resource_limits: RequestedLimits,
    #[serde(default)]
    config: Option<Value>,
    /// Shared memory scopes to grant: `workspace`, `global`.
    #[serde(default)]
    memory_grants: Vec<String>,
    /// Grant the server's LLM (its provider key is spent for the agent).
    #[serde(default)]
    llm: bool,
    /// Tools the agent may call (`caxton tools list` names them).
    #[serde(default)]
    tools: Vec<String>,
}

/// Query of a raw `application/wasm` upload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployQuery {
    name: Option<String>,
    max_memory_bytes: Option<u64>,
    max_fuel: Option<u64>,
    max_execution_time_ms: Option<u64>,
    llm: Option<bool>,
    /// Comma-separated tool names.
    tools: Option<String>,
    /// Comma-separated shared memory scopes.
    memory_grants: Option<String>,
}

/// `a,b` → `["a", "b"]`; empty items dropped.
fn comma_list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn decode_base64(text: &str) -> Result<Vec<u8>, ApiError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_base64",
                format!(
                    "wasm_module is not valid base64: {e}; encode the component with `base64 -w0 agent.wasm`"
                ),
            )
        })
}

/// Whether an upload is the component's bytes (`application/wasm` or
/// `application/octet-stream`) rather than JSON with base64.
pub(super) fn is_raw_component(headers: &HeaderMap) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    content_type.starts_with("application/wasm")
        || content_type.starts_with("application/octet-stream")
}

async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RawDeployQuery>, axum::extract::rejection::QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = read_body(bytes)?;
    let request = if is_raw_component(&headers) {
        let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        let name = q.name.ok_or_else(|| {
            ApiError::bad_request(
                "missing_name",
                "a raw component upload needs the agent name in the query: POST /api/v1/agents?name=NAME",
            )
        })?;
        DeployRequest {
            name,
            component: bytes.to_vec(),
            limits: RequestedLimits {
                max_memory_bytes: q.max_memory_bytes,
                max_fuel: q.max_fuel,
                max_execution_time_ms: q.max_execution_time_ms,
            },
            config: None,
            memory_grants: comma_list(q.memory_grants.as_deref()),
            llm: q.llm.unwrap_or(false),
            tools: comma_list(q.tools.as_deref()),
        }
    } else {
        let body: DeployBody = parse_json(&bytes)?;
        DeployRequest {
            name: body.name,
            component: decode_base64(&body.wasm_module)?,
            limits: body.resource_limits,
            config: body.config,
            memory_grants: body.memory_grants,
            llm: body.llm,
            tools: body.tools,
        }
    };
    let handle = state.manager.deploy(request).await?;
    Ok((StatusCode::CREATED, Json(agent_view(&handle))))
}

/// A message from the API: either the runbook's `{"message": "..."}` or a
/// FIPA message with `performative` and `content`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    message: Option<Value>,
    content: Option<Value>,
    performative: Option<Performative>,
    content_type: Option<String>,
    conversation_id: Option<String>,
    reply_with: Option<String>,
    sender: Option<String>,
    /// Only for `/api/v1/messages`: the agent name or id.
    receiver: Option<String>,
    /// Only for `/api/v1/messages`: route to an agent declaring it.
    capability: Option<String>,
    /// How long to wait for the reply (default 60 s).
    timeout_ms: Option<u64>,
}

impl MessageBody {
    /// The message as `principal` sends it: the sender is who the caller
    /// authenticated as, never what the body claims.
    fn into_message(self, principal: &Principal) -> Result<(AclMessage, Duration), ApiError> {
        if let Some(claimed) = &self.sender
            && *claimed != principal.name
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "sender_mismatch",
                format!(
                    "`sender` is `{claimed}` but you are `{}`: the sender is taken from your token (or `user` on this machine); remove the field",
                    principal.name
                ),
            ));
        }
        let content = match (self.message, self.content) {
            (Some(c), None) | (None, Some(c)) => c,
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_message",
                    "give either `message` (shorthand) or `content` (FIPA form), not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "invalid_message",
                    "the body needs `message`, e.g. {\"message\": \"hello\"}, or a FIPA message with `performative` and `content`",
                ));
            }
        };
        let (content, default_type) = match content {
            Value::String(s) => (s, acl::TEXT_PLAIN),
            other => (other.to_string(), "application/json"),
        };
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_REPLY_TIMEOUT_MS);
        if timeout_ms == 0 || timeout_ms > MAX_REPLY_TIMEOUT_MS {
            return Err(ApiError::bad_request(
                "invalid_message",
                format!("timeout_ms must be between 1 and {MAX_REPLY_TIMEOUT_MS}"),
            ));
        }
        let message = AclMessage {
            id: acl::new_message_id(),
            performative: self.performative.unwrap_or(Performative::Request),
            sender: principal.name.clone(),
            receiver: self.receiver,
            capability: self.capability,
            content,
            content_type: self
                .content_type
                .unwrap_or_else(|| default_type.to_string()),
            conversation_id: Some(self.conversation_id.unwrap_or_else(acl::new_message_id)),
            reply_with: self.reply_with,
            in_reply_to: None,
            trace_parent: None,
        };
        Ok((message, Duration::from_millis(timeout_ms)))
    }
}

/// The answer to a delivered message, as REST returns it.
fn delivered_json(
    conversation_id: &Option<String>,
    delivered: crate::messaging::Delivered,
    started: Instant,
) -> Value {
    json!({
        "conversation_id": conversation_id,
        "agent": { "id": delivered.agent_id, "name": delivered.agent_name },
        "reply": delivered.reply,
        "timing": {
            "queue_ms": delivered.queued.as_secs_f64() * 1000.0,
            "execution_ms": delivered.executed.as_secs_f64() * 1000.0,
            "total_ms": started.elapsed().as_secs_f64() * 1000.0,
        }
    })
}

async fn send(
    state: &AppState,
    to: Address,
    message: AclMessage,
    timeout: Duration,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let conversation_id = message.conversation_id.clone();
    let delivered = state
        .manager
        .registry()
        .request(None, to, message, timeout)
        .await?;
    Ok(Json(delivered_json(&conversation_id, delivered, started)))
}

#[derive(Deserialize)]
struct StreamQuery {
    stream: Option<bool>,
}

/// `?stream=true` or `Accept: text/event-stream`.
fn wants_stream(headers: &HeaderMap, query: &StreamQuery) -> bool {
    query.stream.unwrap_or(false)
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// Answers with server-sent events: `token` events (`{"text": …}`) as the
/// agent's model writes its answer, then one `reply` event holding exactly
/// what the non-streamed request answers, or one `error` event in the usual
/// error shape. An unknown agent is refused before the stream starts, with
/// the ordinary HTTP error.
async fn send_streaming(
    state: AppState,
    to: Address,
    message: AclMessage,
    timeout: Duration,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};

    let registry = state.manager.registry().clone();
    registry.resolve(&to)?;
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        let started = Instant::now();
        let conversation_id = message.conversation_id.clone();
        let (tokens_tx, mut tokens_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let token = |text: String| {
            Event::default()
                .event("token")
                .data(json!({ "text": text }).to_string())
        };
        let delivery = registry.request_streaming(to, message, timeout, tokens_tx);
        let result = crate::llm::relay(delivery, &mut tokens_rx, |text| {
            let _ = events_tx.send(token(text));
        })
        .await;
        let last = match result {
            Ok(delivered) => Event::default()
                .event("reply")
                .data(delivered_json(&conversation_id, delivered, started).to_string()),
            Err(e) => {
                let e = ApiError::from(e);
                Event::default().event("error").data(
                    json!({"error": {"code": e.code, "message": e.message, "details": e.details}})
                        .to_string(),
                )
            }
        };
        let _ = events_tx.send(last);
    });
    let events = futures_util::stream::unfold(events_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn message(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(agent): Path<String>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    let body: MessageBody = parse_json(&read_body(bytes)?)?;
    if body.capability.is_some() {
        return Err(ApiError::bad_request(
            "invalid_message",
            "`capability` routing is done by POST /api/v1/messages; this route already names the agent",
        ));
    }
    let (mut message, timeout) = body.into_message(&principal)?;
    message.receiver = Some(agent.clone());
    message.trace_parent = Some(request.delivering(&agent, conversation(&message)));
    if wants_stream(&headers, &query) {
        return send_streaming(state, Address::Agent(agent), message, timeout).await;
    }
    Ok(send(&state, Address::Agent(agent), message, timeout)
        .await?
        .into_response())
}

async fn route_message(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body: MessageBody = parse_json(&read_body(bytes)?)?;
    let to = match (&body.receiver, &body.capability) {
        (Some(r), None) => Address::Agent(r.clone()),
        (None, Some(c)) => Address::Capability(c.clone()),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_message",
                "address the message with exactly one of `receiver` (agent name or id) or `capability`",
            ));
        }
    };
    let (mut message, timeout) = body.into_message(&principal)?;
    let addressed = match &to {
        Address::Agent(name) => name.clone(),
        Address::Capability(c) => format!("capability {c}"),
    };
    message.trace_parent = Some(request.delivering(&addressed, conversation(&message)));
    send(&state, to, message, timeout).await
}

/// The conversation a REST message is in (`into_message` always sets one).
fn conversation(message: &AclMessage) -> &str {
    message.conversation_id.as_deref().unwrap_or(&message.id)
}

async fn ping(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let elapsed = state.manager.ping(&agent, Duration::from_secs(30)).await?;
    Ok(Json(
        json!({ "agent": agent, "status": "ok", "latency_ms": elapsed.as_secs_f64() * 1000.0 }),
    ))
}

async fn suspend(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.manager.set_suspended(&agent, true).await?;
    Ok(Json(agent_view(&handle)))
}

async fn resume(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.manager.set_suspended(&agent, false).await?;
    Ok(Json(agent_view(&handle)))
}

#[derive(Deserialize)]
struct LogsQuery {
    tail: Option<usize>,
}

async fn logs(
    State(state): State<AppState>,
    Path(agent): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    let handle = state
        .manager
        .registry()
        .get(&agent)
        .ok_or_else(|| ApiError::unknown_agent(&agent))?;
    let lines = handle.log.tail(query.tail.unwrap_or(100));
    Ok(Json(json!({ "agent": handle.name, "lines": lines })))
}
