//! Where a message enters: the REST API under `/api/v1` (axum).

pub mod a2a;
mod agents;
pub mod auth;
mod backup;
mod budgets;
mod cluster;
mod config_agents;
mod conversations;
mod dead_letters;
pub mod debug;
mod docs;
pub mod error;
pub mod listen;
pub mod mcp;
mod memory;
mod memory_ops;
pub mod metrics;
mod openai;
mod openapi;
pub mod peer;
mod protocols;
pub mod request_context;
pub mod server_state;
pub mod settings;
mod sock_diag;
pub mod storage;
pub mod tls;
mod tokens;
mod tools;
mod topics;
mod traces;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::{Json, response::IntoResponse};
use serde_json::json;
use tokio::sync::Notify;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents::AgentManager;
use error::{ApiError, ErrorBody};

/// What every handler reaches: one shared allocation, so the clone each
/// extractor and middleware makes is one reference count, not a dozen
/// (and no path copies).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The server's parts, as the handlers see them.
pub struct Services {
    pub manager: Arc<AgentManager>,
    /// Agents on other servers (`a2a_agents:`), for their health.
    pub a2a_agents: Arc<crate::agents::remote::RemoteAgents>,
    pub memory: Arc<crate::memory::MemoryService>,
    /// The database, for size reports and compaction requests.
    pub storage: Arc<crate::storage::Storage>,
    /// Config agents (markdown definitions) and the tools they may call.
    pub config_agents: Arc<crate::config_agents::ConfigAgents>,
    pub tools: Arc<crate::tools::ToolRegistry>,
    /// Where the embedding model is cached (for loading it after a pull).
    pub model_cache_dir: std::path::PathBuf,
    pub started: Instant,
    /// Notified by `POST /api/v1/shutdown`.
    pub shutdown: Arc<Notify>,
    /// Who may do what; the tokens routes manage it.
    pub gate: Arc<auth::Gate>,
    /// The configuration file the server was started with, if any (backups
    /// include it).
    pub config_path: Option<std::path::PathBuf>,
    /// Servers started on this data directory, this one included.
    pub starts: u64,
    /// Recent message hops, LLM and tool calls (`caxton trace`).
    pub trace: Arc<crate::trace::TraceStore>,
    /// The effective configuration, secrets redacted (`debug dump`).
    pub config_snapshot: Arc<serde_json::Value>,
    /// This node's part in a cluster, once it has joined (set after the
    /// API listens: the node announces its address); empty when
    /// `cluster.nats_url` is not set.
    pub cluster: Arc<std::sync::OnceLock<Arc<crate::cluster::Cluster>>>,
}

/// The whole HTTP surface: REST, OpenAI, MCP and A2A (`a2a` holds the
/// A2A tasks and the public URL its cards name).
pub fn router(state: AppState, max_body_bytes: usize, a2a: a2a::A2a) -> Router {
    let gate = state.gate.clone();
    // MCP tools call this same router (through the gate, with the
    // caller's credentials); it goes into the cell once built.
    let cell = Arc::new(std::sync::OnceLock::new());
    // Every documented route is registered through its `#[utoipa::path]`,
    // so the API document cannot leave one out or describe one that is
    // not there.
    let (api, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(openapi::document))
        .routes(routes!(docs::page))
        .routes(routes!(docs::script))
        .routes(routes!(shutdown))
        .routes(routes!(safe_mode))
        .routes(routes!(metrics::metrics))
        .routes(routes!(metrics::metrics_under_api))
        .merge(agents::routes())
        .merge(memory::routes())
        .merge(memory_ops::routes())
        .merge(config_agents::routes())
        .merge(tools::routes())
        .merge(tokens::routes())
        .merge(backup::routes())
        .merge(traces::routes())
        .merge(conversations::routes())
        .merge(protocols::routes())
        .merge(storage::routes())
        .merge(debug::routes())
        .merge(openai::routes())
        .merge(a2a::routes())
        .merge(dead_letters::routes())
        .merge(cluster::routes())
        .merge(budgets::routes())
        .merge(topics::routes())
        .split_for_parts();
    let document = openapi::ServedDocument::finish(document);
    let app = api
        .nest_service("/mcp", mcp::http_service(cell.clone()))
        .fallback(not_found)
        .layer(axum::Extension(document))
        .layer(axum::Extension(Arc::new(a2a)))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(error::json_rejections))
        .layer(axum::middleware::from_fn_with_state(gate, auth::gate))
        .layer(axum::middleware::from_fn_with_state(
            state.trace.clone(),
            request_context::middleware,
        ))
        .with_state(state);
    let _ = cell.set(app.clone());
    app
}

/// Server health.
///
/// The runbook's shape; `safe_mode: true` is added only while it is on,
/// `reason` only when degraded, `mcp_servers` and `a2a_agents` only when
/// configured.
#[utoipa::path(get, path = "/api/v1/health", tag = "operations", operation_id = "health",
    responses((status = 200, description = "`{status: healthy|degraded, memory_backend, agents, reason?, mcp_servers?, a2a_agents?, safe_mode?}`", body = Object)))]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let agents = state.manager.registry().len();
    let max_agents = state.manager.config().max_agents;
    let mut body = json!({
        "status": "healthy",
        "memory_backend": "embedded",
        "agents": agents,
    });
    // At the quota no agent can be added; the pool slots beyond it stay
    // free for tool calls and fresh instances, so this is what runs out.
    if agents >= max_agents {
        body["status"] = json!("degraded");
        body["reason"] = json!(format!(
            "{agents} agents run, the most runtime.max_agents ({max_agents}) allows: deployments are refused"
        ));
    }
    let mcp = state.tools.mcp_health();
    let down: Vec<&String> = mcp
        .iter()
        .filter(|(_, h)| !matches!(h, crate::tools::mcp::ServerHealth::Up { .. }))
        .map(|(name, _)| name)
        .collect();
    if !mcp.is_empty() {
        body["mcp_servers"] = json!(mcp);
    }
    if !down.is_empty() && body["status"] == "healthy" {
        body["status"] = json!("degraded");
        body["reason"] = json!(format!(
            "MCP servers not connected: {}; their tools are unavailable until they are back",
            down.iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(reason) = state.cluster.get().and_then(|c| c.degraded_reason())
        && body["status"] == "healthy"
    {
        body["status"] = json!("degraded");
        body["reason"] = json!(reason);
    }
    let remote = state.a2a_agents.health();
    let unreachable: Vec<&str> = remote
        .iter()
        .filter(|(_, h)| matches!(h, crate::agents::remote::RemoteHealth::Down { .. }))
        .map(|(name, _)| name.as_str())
        .collect();
    if !remote.is_empty() {
        body["a2a_agents"] = json!(remote);
    }
    if !unreachable.is_empty() && body["status"] == "healthy" {
        body["status"] = json!("degraded");
        body["reason"] = json!(format!(
            "A2A agents unreachable: {}; messages to them fail until they are back",
            unreachable.join(", ")
        ));
    }
    if state
        .gate
        .safe_mode
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        body["safe_mode"] = json!(true);
    }
    Json(body)
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SafeModeBody {
    /// On: every write is refused except storage repair and compaction.
    enabled: bool,
}

/// Turn safe mode on or off.
///
/// Kept in the database, so it holds across restarts.
#[utoipa::path(post, path = "/api/v1/safe-mode", tag = "operations", operation_id = "safe_mode",
    request_body = SafeModeBody,
    responses((status = 200, description = "`{safe_mode}`", body = Object),
        (status = 400, description = "Not `{\"enabled\": bool}`", body = ErrorBody)))]
async fn safe_mode(
    State(state): State<AppState>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: SafeModeBody = error::parse_json(&agents::read_body(bytes)?)?;
    let storage = state.storage.clone();
    let on = body.enabled;
    tokio::task::spawn_blocking(move || server_state::set_safe_mode(&storage, on))
        .await
        .map_err(|e| ApiError::internal(format!("safe-mode task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    state
        .gate
        .safe_mode
        .store(on, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(safe_mode = on, "safe mode changed over the API");
    Ok(Json(json!({ "safe_mode": on })))
}

/// `POST /api/v1/shutdown` body; every field optional (`{}` or no body is
/// a graceful shutdown with no deadline).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct ShutdownBody {
    /// `graceful` (in-flight requests finish) or `immediate` (exit now;
    /// every acknowledged write is already durable).
    #[schema(pattern = "^(graceful|immediate)$")]
    mode: Option<String>,
    /// For `graceful`: exit anyway after this many seconds.
    timeout_secs: Option<u64>,
}

/// A graceful shutdown whose requests take longer than this is cut short
/// unless the caller says otherwise.
const MAX_GRACE_SECS: u64 = 3600;

/// Shut the server down.
///
/// Graceful by default: in-flight requests finish, then the server exits.
#[utoipa::path(post, path = "/api/v1/shutdown", tag = "operations", operation_id = "shutdown",
    request_body(content = Option<ShutdownBody>, description = "Optional; no body is a graceful shutdown"),
    responses((status = 202, description = "Shutting down", body = Object),
        (status = 400, description = "Unknown mode or field", body = ErrorBody)))]
async fn shutdown(
    State(state): State<AppState>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = agents::read_body(bytes)?;
    let body: ShutdownBody = if bytes.is_empty() {
        ShutdownBody::default()
    } else {
        error::parse_json(&bytes)?
    };
    let mode = body.mode.as_deref().unwrap_or("graceful");
    match mode {
        "graceful" => {
            let grace = body
                .timeout_secs
                .unwrap_or(MAX_GRACE_SECS)
                .min(MAX_GRACE_SECS);
            tracing::info!(
                grace_secs = grace,
                "graceful shutdown requested over the API"
            );
            state.shutdown.notify_one();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(grace)).await;
                tracing::warn!(
                    grace_secs = grace,
                    "requests still running after the grace period; exiting"
                );
                std::process::exit(0);
            });
        }
        "immediate" => {
            tracing::warn!("immediate shutdown requested over the API; exiting now");
            tokio::spawn(async {
                // Long enough for this answer to leave.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                std::process::exit(0);
            });
        }
        other => {
            return Err(ApiError::bad_request(
                "invalid_shutdown_mode",
                format!("mode `{other}` is not known; use `graceful` (default) or `immediate`"),
            ));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "shutting_down", "mode": mode })),
    ))
}

/// Percent-encodes one path segment or query value (everything but
/// RFC 3986's unreserved characters), for the API's own clients: the CLI
/// and the MCP tools.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!("no route for {uri}; GET /api/v1/openapi.json lists the API"),
    )
}

/// Serves until ctrl-c, SIGTERM or `POST /api/v1/shutdown`; in-flight
/// requests finish first.
pub async fn serve<L>(listener: L, state: AppState, settings: &settings::ServerConfig)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: listen::ServerEnd,
{
    let shutdown = state.shutdown.clone();
    let a2a = a2a::A2a::new(settings.public_url.as_deref(), settings.tls.is_some());
    let app = router(state, settings.max_body_bytes, a2a);
    let limits = settings.connection_limits();
    listen::serve_connections(listener, app, limits, async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate => {},
            _ = shutdown.notified() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await;
}
