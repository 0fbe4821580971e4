//! `/api/v1/agents…` and `/api/v1/messages`: deploy, list, show, remove,
//! suspend, resume, ping, logs, and messages to agents.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
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

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, deploy))
        .routes(routes!(show, remove))
        .routes(routes!(message))
        .routes(routes!(ping))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(logs))
        .routes(routes!(route_message))
        .routes(routes!(send_and_forget))
}

/// Most messages one `POST /api/v1/send` may queue.
const MAX_SEND_BATCH: usize = 1000;

/// The fields of [`agent_view`], for the API document (the view is built
/// with `json!`, so there is no type to derive a schema from).
pub(super) const AGENT_VIEW: &str = "The agent: `id`, `name`, `type` (`wasm`, `config` or `a2a`), \
     `status` (`running`, `failed` or `suspended`), `capabilities`, `description`, \
     `resource_limits` {max_memory_bytes, max_fuel, max_execution_time_ms}, `created_at` \
     (RFC 3339), `component_sha256`, `memory_grants`, `llm`, `tools`, `queued_messages`, \
     `stats`; a config agent also has `source`, `version` and `documentation`";

/// The fields of [`DeliveredBody`].
const REPLY: &str = "The reply: `conversation_id`, `agent` {id, name}, `reply` (the agent's \
     FIPA message: id, performative, sender, receiver, content, content_type, \
     conversation_id, in_reply_to) and `timing` {queue_ms, execution_ms, total_ms}";

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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only agents of this type: `wasm`, `config` or `a2a`.
    #[serde(rename = "type")]
    #[param(pattern = "^(wasm|config|a2a)$")]
    kind: Option<String>,
}

/// List agents.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "agents_list",
    params(ListQuery),
    responses(
        (status = 200, description = "`total` and `agents`, each as `GET /api/v1/agents/{agent}` shows it", body = Object),
        (status = 400, description = "Unknown agent type", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted = match query.kind.as_deref() {
        None => None,
        Some("wasm") => Some(AgentKind::Wasm),
        Some("config") => Some(AgentKind::Config),
        Some("a2a") => Some(AgentKind::A2a),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown agent type `{other}`; use `wasm`, `config` or `a2a`"),
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

/// Show one agent.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{agent}",
    tag = "agents",
    operation_id = "agents_show",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = AGENT_VIEW, body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    )
)]
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

/// Remove a WASM agent with its state and memory.
///
/// A config agent lives in its definition file: remove the file instead.
#[utoipa::path(
    delete,
    path = "/api/v1/agents/{agent}",
    tag = "agents",
    operation_id = "agents_remove",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = "Removed: `id`, `name`, `status` (`removed`)", body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 409, description = "A config agent, defined by its file", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(cluster) = state.cluster.get() else {
        let record = state.manager.remove(&agent).await?;
        return Ok(Json(
            json!({ "id": record.id, "name": record.name, "status": "removed" }),
        ));
    };
    // In a cluster: removed everywhere (each node running it stops it at
    // its next look), and here at once.
    let name = state
        .manager
        .registry()
        .get(&agent)
        .map_or_else(|| agent.clone(), |h| h.name.clone());
    let entry = cluster.entry(&name).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            e.to_string(),
        )
    })?;
    if let Some(entry) = &entry {
        cluster.unpublish(entry).await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                e.to_string(),
            )
        })?;
    }
    match (state.manager.remove(&agent).await, entry) {
        (Ok(record), _) => Ok(Json(
            json!({ "id": record.id, "name": record.name, "status": "removed" }),
        )),
        (Err(crate::agents::manager::ManageError::NotFound(_)), Some(entry)) => {
            // Its node stops it; its memory is the cluster's, deleted here.
            state.manager.forget_memory(&entry.name, &entry.id).await;
            Ok(Json(
                json!({ "id": entry.id, "name": entry.name, "status": "removed" }),
            ))
        }
        (Err(e), _) => Err(e.into()),
    }
}

/// A WASM agent deployed as JSON, its component base64-encoded.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = DeployAgentRequest)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// Letters, digits, `-`, `_` and `.`, starting with a letter or digit;
    /// not a UUID (ids are UUIDs).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    name: String,
    /// The component, base64 (standard alphabet; whitespace ignored).
    #[schema(content_encoding = "base64", content_media_type = "application/wasm")]
    wasm_module: String,
    /// Each limit defaults to the server's; none may exceed its ceiling.
    #[serde(default)]
    resource_limits: RequestedLimits,
    /// A JSON object passed to the agent's `init` (`{}` when absent).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    /// Shared memory scopes to grant: `workspace`, `global`.
    #[serde(default)]
    memory_grants: Vec<String>,
    /// Grant the server's LLM (its provider key is spent for the agent).
    #[serde(default)]
    llm: bool,
    /// Tools the agent may call (`caxton tools list` names them), each
    /// once.
    #[serde(default)]
    #[schema(max_items = 64)]
    tools: Vec<String>,
    /// In a cluster: on how many nodes the agent runs (default 1); the
    /// cluster places them and moves them when a node dies.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 16)]
    replicas: Option<u32>,
    /// What the agent may spend on models: one limit
    /// (`{"per": "hour", "tokens": 10000}`) or a list; see
    /// `/api/v1/budgets`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::budgets::Limit>>)]
    budget: Option<Value>,
}

/// Query of a raw `application/wasm` upload (ignored for a JSON body).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RawDeployQuery {
    /// The agent's name; required with a raw component body.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )]
    name: Option<String>,
    #[param(minimum = 1)]
    max_memory_bytes: Option<u64>,
    #[param(minimum = 1)]
    max_fuel: Option<u64>,
    #[param(minimum = 1)]
    max_execution_time_ms: Option<u64>,
    /// Grant the server's LLM.
    llm: Option<bool>,
    /// Comma-separated tool names.
    tools: Option<String>,
    /// Comma-separated shared memory scopes.
    memory_grants: Option<String>,
    /// In a cluster: on how many nodes the agent runs (default 1).
    #[param(minimum = 1, maximum = 16)]
    replicas: Option<u32>,
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

/// Deploy a WASM agent.
///
/// The body is JSON with the component in base64, or the component's own
/// bytes (`application/wasm` or `application/octet-stream`) with the name
/// and limits in the query. The agent must instantiate, init and describe
/// itself within its limits before it is accepted.
#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "agents",
    operation_id = "agents_deploy",
    params(RawDeployQuery),
    request_body(
        description = "JSON with the component in base64, or the raw component",
        content((DeployBody = "application/json"), ("application/wasm"), ("application/octet-stream")),
    ),
    responses(
        (status = 201, description = AGENT_VIEW, body = Object),
        (status = 400, description = "Invalid JSON, query, base64, name, config, grants, tools or component", body = ErrorBody),
        (status = 409, description = "Name already taken (by an agent or a token), or the agent quota is reached", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 422, description = "Limits above the ceiling, wrong world, the agent failed to start, or its `describe` answer is over the size caps", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RawDeployQuery>, axum::extract::rejection::QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = read_body(bytes)?;
    let (request, replicas, budget) = if is_raw_component(&headers) {
        let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        let name = q.name.ok_or_else(|| {
            ApiError::bad_request(
                "missing_name",
                "a raw component upload needs the agent name in the query: POST /api/v1/agents?name=NAME",
            )
        })?;
        let request = DeployRequest {
            name,
            id: None,
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
        };
        (request, q.replicas, None)
    } else {
        let body: DeployBody = parse_json(&bytes)?;
        let request = DeployRequest {
            name: body.name,
            id: None,
            component: decode_base64(&body.wasm_module)?,
            limits: body.resource_limits,
            config: body.config,
            memory_grants: body.memory_grants,
            llm: body.llm,
            tools: body.tools,
        };
        let budget = body
            .budget
            .as_ref()
            .map(crate::budgets::model::limits_from_json)
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid_budget", format!("budget: {e}")))?;
        (request, body.replicas, budget)
    };
    let budgets = state.manager.budgets().cloned();
    let subject = crate::budgets::Subject::Agent(request.name.clone());
    let set_budget = move || -> Result<(), ApiError> {
        if let (Some(budgets), Some(limits)) = (budgets, budget) {
            budgets
                .set(&subject, Some(limits))
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        Ok(())
    };
    if let Some(n) = replicas
        && !(1..=crate::cluster::MAX_REPLICAS).contains(&n)
    {
        return Err(ApiError::bad_request(
            "invalid_replicas",
            format!(
                "replicas must be between 1 and {}",
                crate::cluster::MAX_REPLICAS
            ),
        ));
    }
    super::tokens::refuse_token_name_for_agent(&state, &request.name)?;
    let Some(cluster) = state.cluster.get() else {
        let handle = state.manager.deploy(request).await?;
        set_budget()?;
        return Ok((StatusCode::CREATED, Json(agent_view(&handle))));
    };
    let deployed = deploy_in_cluster(&state, cluster, request, replicas.unwrap_or(1)).await?;
    set_budget()?;
    Ok(deployed)
}

/// Deploys here, then publishes the agent so every node knows it and
/// the others take it over when this node dies. A name the cluster
/// already runs is refused first; when NATS cannot be reached the agent
/// runs here only, and the answer says so.
async fn deploy_in_cluster(
    state: &AppState,
    cluster: &crate::cluster::Cluster,
    request: DeployRequest,
    replicas: u32,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::cluster::PublishError;
    let unpublished = match cluster.check_free(&request.name).await {
        Ok(()) => None,
        Err(e @ PublishError::Taken { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "name_conflict",
                e.to_string(),
            ));
        }
        Err(e @ PublishError::Unavailable(_)) => Some(e.to_string()),
    };
    let component = request.component.clone();
    let (memory_grants, llm, tools, config) = (
        request.memory_grants.clone(),
        request.llm,
        request.tools.clone(),
        request.config.clone(),
    );
    let handle = state.manager.deploy(request).await?;
    let record = handle.record();
    let unpublished = match unpublished {
        Some(reason) => Some(reason),
        None => {
            let entry = crate::cluster::AgentEntry {
                name: record.name.clone(),
                id: record.id.clone(),
                component_sha256: record.component_sha256.clone(),
                limits: record.limits,
                config,
                memory_grants,
                llm,
                tools,
                replicas,
                deployed_on: cluster.node().to_string(),
                deployed_unix_ms: crate::clock::now_unix_ms(),
                definition: None,
            };
            cluster
                .publish(entry, &component)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let mut view = agent_view(&handle);
    view["cluster"] = match unpublished {
        None => json!({"published": true, "replicas": replicas, "node": cluster.node()}),
        Some(reason) => {
            tracing::warn!(agent = %record.name, %reason, "agent runs on this node only: not published in the cluster");
            json!({"published": false, "node": cluster.node(), "reason": reason})
        }
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// A message from the API: either the runbook's `{"message": "..."}` or a
/// FIPA message with `performative` and `content`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = MessageRequest)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    /// Shorthand for the content of a `request`; give it or `content`,
    /// not both. A string is sent as text, anything else as JSON.
    message: Option<Value>,
    /// The FIPA form's content; give it or `message`, not both.
    content: Option<Value>,
    /// `request` by default.
    performative: Option<Performative>,
    /// `text/plain` for a string content, `application/json` otherwise.
    content_type: Option<String>,
    /// A new one is made when absent.
    conversation_id: Option<String>,
    reply_with: Option<String>,
    /// Must be who the caller authenticated as (the sender is always
    /// taken from the token); best left out.
    sender: Option<String>,
    /// Only for `/api/v1/messages`: the agent name or id.
    receiver: Option<String>,
    /// Only for `/api/v1/messages`: route to an agent declaring it.
    capability: Option<String>,
    /// How long to wait for the reply (default 60 s).
    #[schema(minimum = 1, maximum = 600000)]
    timeout_ms: Option<u64>,
}

impl MessageBody {
    /// Where the message goes: exactly one of `receiver` and `capability`.
    fn address(&self) -> Result<Address, ApiError> {
        match (&self.receiver, &self.capability) {
            (Some(r), None) => Ok(Address::Agent(r.clone())),
            (None, Some(c)) => Ok(Address::Capability(c.clone())),
            _ => Err(ApiError::bad_request(
                "invalid_message",
                "address the message with exactly one of `receiver` (agent name or id) or `capability`",
            )),
        }
    }

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
        let (content, content_type) = content_of(content, self.content_type);
        if let Some(id) = &self.conversation_id {
            crate::conversations::model::check_id(id)
                .map_err(|why| ApiError::bad_request("invalid_message", why))?;
        }
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
            content_type,
            conversation_id: Some(self.conversation_id.unwrap_or_else(acl::new_message_id)),
            reply_with: self.reply_with,
            in_reply_to: None,
            trace_parent: None,
        };
        Ok((message, Duration::from_millis(timeout_ms)))
    }
}

/// The answer to a message (REST, and the `reply` event of a stream).
#[derive(Serialize)]
struct DeliveredBody {
    conversation_id: Option<String>,
    agent: AgentRef,
    reply: Option<AclMessage>,
    timing: Timing,
}

#[derive(Serialize)]
struct AgentRef {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct Timing {
    queue_ms: f64,
    execution_ms: f64,
    total_ms: f64,
}

/// The answer to `delivered`, timed from `started`.
fn delivered_json(
    conversation_id: Option<String>,
    delivered: crate::messaging::Delivered,
    started: Instant,
) -> DeliveredBody {
    DeliveredBody {
        conversation_id,
        agent: AgentRef {
            id: delivered.agent_id,
            name: delivered.agent_name,
        },
        reply: delivered.reply,
        timing: Timing {
            queue_ms: delivered.queued.as_secs_f64() * 1000.0,
            execution_ms: delivered.executed.as_secs_f64() * 1000.0,
            total_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
    }
}

async fn send(
    state: &AppState,
    to: Address,
    message: AclMessage,
    timeout: Duration,
) -> Result<Json<DeliveredBody>, ApiError> {
    let started = Instant::now();
    let conversation_id = message.conversation_id.clone();
    let delivered = state
        .manager
        .registry()
        .request(None, to, message, timeout)
        .await?;
    Ok(Json(delivered_json(conversation_id, delivered, started)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Answer with server-sent events (as `Accept: text/event-stream` does).
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
    registry.check_route(&to)?;
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
            Ok(delivered) => {
                let body = delivered_json(conversation_id, delivered, started);
                // Strings and numbers: writing them cannot fail.
                let data = serde_json::to_string(&body).unwrap_or_default();
                Event::default().event("reply").data(data)
            }
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

/// Send a message to an agent and wait for its reply.
///
/// With `?stream=true` or `Accept: text/event-stream` the answer is
/// server-sent events: `token` events (`{"text": …}`) as the agent's model
/// writes, then one `reply` event with the usual response body, or one
/// `error` event in the error shape. An unknown agent is refused before the
/// stream starts, with the ordinary HTTP error.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent}/message",
    tag = "messages",
    operation_id = "agents_message",
    params(("agent" = String, Path, description = "Agent name or id"), StreamQuery),
    request_body = MessageBody,
    responses(
        (status = 200, description = REPLY, content((Object = "application/json"), ("text/event-stream"))),
        (status = 400, description = "Invalid message (both or neither of `message` and `content`, `capability` given, timeout_ms out of range)", body = ErrorBody),
        (status = 403, description = "`sender` is not who the caller authenticated as", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 409, description = "Agent suspended", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 502, description = "The agent trapped or hit its fuel or memory limit", body = ErrorBody),
        (status = 503, description = "Mailbox full, or the agent is stopping", body = ErrorBody),
        (status = 504, description = "The agent exceeded its time limit, or no reply in timeout_ms", body = ErrorBody),
    )
)]
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

/// Send a message routed by `receiver` or `capability` and wait for the reply.
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "messages",
    operation_id = "messages_send",
    request_body = MessageBody,
    responses(
        (status = 200, description = REPLY, body = Object),
        (status = 400, description = "Invalid message (not exactly one of `receiver` and `capability`, both or neither of `message` and `content`, timeout_ms out of range)", body = ErrorBody),
        (status = 403, description = "`sender` is not who the caller authenticated as", body = ErrorBody),
        (status = 404, description = "No agent of that name, or none declaring the capability", body = ErrorBody),
        (status = 409, description = "Agent suspended", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 502, description = "The agent trapped or hit its fuel or memory limit", body = ErrorBody),
        (status = 503, description = "Mailbox full, or the agent is stopping", body = ErrorBody),
        (status = 504, description = "The agent exceeded its time limit, or no reply in timeout_ms", body = ErrorBody),
    )
)]
async fn route_message(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<DeliveredBody>, ApiError> {
    let body: MessageBody = parse_json(&read_body(bytes)?)?;
    let to = body.address()?;
    let (mut message, timeout) = body.into_message(&principal)?;
    message.trace_parent = Some(request.delivering(&label(&to), conversation(&message)));
    send(&state, to, message, timeout).await
}

/// Queue messages without waiting for replies (durable fire-and-forget).
///
/// Each message (addressed by `receiver` or `capability`; `inform` unless
/// `performative` says otherwise) is written to the database before the
/// answer: it is delivered after a restart too, retried with backoff when
/// the receiver fails, and after `outbox.max_attempts` failures kept as a
/// dead letter (`GET /api/v1/dead-letters`). Addresses are checked first:
/// one wrong address queues none of the batch.
#[utoipa::path(
    post,
    path = "/api/v1/send",
    tag = "messages",
    operation_id = "messages_send_and_forget",
    request_body(content = Object, description = "One message (the fields of MessageRequest with `receiver` or `capability`), or `{\"messages\": [...]}` with up to 1000 of them"),
    responses(
        (status = 202, description = "Queued: `queued` (count) and `messages` [{id, conversation_id}]", body = Object),
        (status = 400, description = "Invalid message or batch", body = ErrorBody),
        (status = 403, description = "`sender` is not who the caller authenticated as", body = ErrorBody),
        (status = 404, description = "No agent of that name, or none declaring the capability", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_request_bytes", body = ErrorBody),
        (status = 503, description = "The outbox is full (outbox.max_queued) or the server is stopping", body = ErrorBody),
    )
)]
async fn send_and_forget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: Value = parse_json(&read_body(bytes)?)?;
    let bodies: Vec<MessageBody> = match body.get("messages") {
        Some(batch) if body.as_object().is_some_and(|o| o.len() == 1) => {
            let bodies: Vec<MessageBody> = serde_json::from_value(batch.clone()).map_err(|e| {
                ApiError::bad_request("invalid_message", format!("`messages`: {e}"))
            })?;
            if bodies.is_empty() || bodies.len() > MAX_SEND_BATCH {
                return Err(ApiError::bad_request(
                    "invalid_message",
                    format!(
                        "`messages` holds {} messages; send 1 to {MAX_SEND_BATCH}",
                        bodies.len()
                    ),
                ));
            }
            bodies
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_message",
                "a batch is `{\"messages\": [...]}` and nothing else",
            ));
        }
        None => vec![serde_json::from_value(body).map_err(|e| {
            ApiError::bad_request("invalid_message", format!("invalid message: {e}"))
        })?],
    };
    let mut messages = Vec::with_capacity(bodies.len());
    for mut body in bodies {
        let to = body.address()?;
        if body.performative.is_none() {
            body.performative = Some(Performative::Inform);
        }
        let (mut message, _) = body.into_message(&principal)?;
        message.trace_parent = Some(request.delivering(&label(&to), conversation(&message)));
        messages.push((to, message));
    }
    let queued: Vec<Value> = messages
        .iter()
        .map(|(_, m)| json!({ "id": m.id, "conversation_id": m.conversation_id }))
        .collect();
    let count = state.manager.registry().post_all(None, messages).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": count, "messages": queued })),
    ))
}

/// How a request's span names where its message went.
fn label(to: &Address) -> String {
    match to {
        Address::Agent(name) => name.clone(),
        Address::Capability(c) => format!("capability {c}"),
    }
}

/// The conversation a REST message is in (`into_message` always sets one).
fn conversation(message: &AclMessage) -> &str {
    message.conversation_id.as_deref().unwrap_or(&message.id)
}

/// Check that an agent is alive and can be instantiated.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent}/ping",
    tag = "agents",
    operation_id = "agents_ping",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = "Alive: `agent`, `status` (`ok`), `latency_ms`", body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 502, description = "The agent cannot be instantiated (trap, fuel or memory limit)", body = ErrorBody),
        (status = 504, description = "No answer within 30 s, or the agent hit its time limit", body = ErrorBody),
    )
)]
async fn ping(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let elapsed = state.manager.ping(&agent, Duration::from_secs(30)).await?;
    Ok(Json(
        json!({ "agent": agent, "status": "ok", "latency_ms": elapsed.as_secs_f64() * 1000.0 }),
    ))
}

/// Suspend an agent: its messages are refused until it is resumed.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent}/suspend",
    tag = "agents",
    operation_id = "agents_suspend",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = AGENT_VIEW, body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn suspend(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.manager.set_suspended(&agent, true).await?;
    Ok(Json(agent_view(&handle)))
}

/// Resume a suspended agent: it accepts messages again.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent}/resume",
    tag = "agents",
    operation_id = "agents_resume",
    params(("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = AGENT_VIEW, body = Object),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn resume(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.manager.set_suspended(&agent, false).await?;
    Ok(Json(agent_view(&handle)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// How many of the latest lines (default 100; at most 1000 are kept).
    #[param(minimum = 0, maximum = 1000)]
    tail: Option<usize>,
}

/// The agent's recent log lines.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{agent}/logs",
    tag = "agents",
    operation_id = "agents_logs",
    params(("agent" = String, Path, description = "Agent name or id"), LogsQuery),
    responses(
        (status = 200, description = "`agent` and `lines`: [{seq, at, level, message}], oldest first", body = Object),
        (status = 400, description = "`tail` above 1000", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    )
)]
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
    let tail = query.tail.unwrap_or(100);
    if tail > crate::runtime::guest_log::CAPACITY {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "tail is at most {}: that many lines are kept",
                crate::runtime::guest_log::CAPACITY
            ),
        ));
    }
    let lines = handle.log.tail(tail);
    Ok(Json(json!({ "agent": handle.name, "lines": lines })))
}

/// A JSON body's `content`: a string is sent as text, anything else as
/// JSON; an explicit `content_type` wins.
pub(super) fn content_of(content: Value, content_type: Option<String>) -> (String, String) {
    let (text, default_type) = match content {
        Value::String(s) => (s, acl::TEXT_PLAIN),
        other => (other.to_string(), "application/json"),
    };
    (
        text,
        content_type.unwrap_or_else(|| default_type.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::model::tests::schema;
    use utoipa::IntoParams;

    /// The document's caps are literals (utoipa takes no constant there).
    #[test]
    fn the_documented_caps_are_the_enforced_ones() {
        let params = LogsQuery::into_params(|| None);
        let params = serde_json::to_value(params).expect("JSON");
        assert_eq!(
            params[0]["schema"]["maximum"],
            crate::runtime::guest_log::CAPACITY
        );
        let message = schema::<MessageBody>();
        assert_eq!(
            message["properties"]["timeout_ms"]["maximum"],
            MAX_REPLY_TIMEOUT_MS
        );
    }
}
