//! `/api/v1/tools…`: the tool registry — list, show, deploy and remove
//! tool components (`caxton tools …`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::agents::{decode_base64, is_raw_component, read_body};
use super::error::{ApiError, ErrorBody, parse_json};
use crate::auth::Principal;
use crate::runtime::ToolHost;
use crate::runtime::limits::RequestedLimits;
use crate::tools::ToolError;
use crate::tools::component::ToolDeployError;
use crate::tools::component_info;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, deploy))
        .routes(routes!(show, remove))
        .routes(routes!(invoke))
}

/// The fields of a `ToolInfo` (answered through `json!`).
const TOOL_INFO: &str = "The tool: `name`, `description`, `parameters` (its JSON Schema), \
     `kind` (`builtin`, `component` or `mcp`); a component also has `component_sha256`, \
     `size_bytes`, `resource_limits` and `deployed_at`";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InvokeQuery {
    /// Call the tool as this agent (its memory scope, its name on the
    /// messages the tool sends); by default as the caller.
    agent: Option<String>,
}

/// Call a tool directly with the body as its arguments.
///
/// So an operator can try one before granting it (`caxton tools invoke
/// NAME JSON`). Admin only: a tool may fetch URLs, send messages and write
/// memory.
#[utoipa::path(
    post,
    path = "/api/v1/tools/{tool}/invoke",
    tag = "tools",
    operation_id = "tools_invoke",
    params(("tool" = String, Path, description = "Tool name"), InvokeQuery),
    request_body(
        content = Value,
        content_type = "application/json",
        description = "The tool's arguments, checked against its `parameters` schema",
    ),
    responses(
        (status = 200, description = "`tool`, `caller` (the agent it ran as), `result`, `duration_ms`", body = Object),
        (status = 400, description = "Invalid query, arguments not UTF-8, or arguments that do not match the tool's schema", body = ErrorBody),
        (status = 403, description = "The caller may not use this tool", body = ErrorBody),
        (status = 404, description = "Unknown tool or agent", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 502, description = "The tool failed", body = ErrorBody),
    )
)]
async fn invoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(tool): Path<String>,
    query: Result<Query<InvokeQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let arguments = read_body(bytes)?;
    let arguments = std::str::from_utf8(&arguments)
        .map_err(|_| ApiError::bad_request("invalid_json", "the arguments are not UTF-8 text"))?;
    if !state.tools.contains(&tool) {
        return Err(unknown_tool(&tool));
    }
    let caller = state
        .manager
        .tool_caller(&principal.name, query.agent.as_deref(), &tool)
        .map_err(|e| ApiError::not_found("agent_not_found", e.to_string()))?;
    let started = std::time::Instant::now();
    let result = state
        .tools
        .invoke(&caller, &tool, arguments)
        .await
        .map_err(|e| tool_error(&tool, e))?;
    Ok(Json(json!({
        "tool": tool,
        "caller": caller.name,
        "result": result,
        "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
    })))
}

fn tool_error(tool: &str, e: ToolError) -> ApiError {
    let (status, code) = match &e {
        ToolError::NotFound(_) => (StatusCode::NOT_FOUND, "tool_not_found"),
        ToolError::Denied(_) => (StatusCode::FORBIDDEN, "tool_denied"),
        ToolError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_tool_arguments"),
        ToolError::Failed(_) => (StatusCode::BAD_GATEWAY, "tool_failed"),
    };
    ApiError::new(status, code, format!("tool `{tool}`: {e}")).with_details(json!({ "tool": tool }))
}

fn unknown_tool(name: &str) -> ApiError {
    ApiError::not_found(
        "tool_not_found",
        format!("no tool named `{name}`; `caxton tools list` shows the available tools"),
    )
    .with_details(json!({ "tool": name }))
}

/// List every tool agents can call (built-in, components, MCP) with its JSON Schema.
#[utoipa::path(
    get,
    path = "/api/v1/tools",
    tag = "tools",
    operation_id = "tools_list",
    responses(
        (status = 200, description = "`total` and `tools`: [{name, description, parameters, kind, …}], each as `GET /api/v1/tools/{tool}` shows it", body = Object),
    )
)]
async fn list(State(state): State<AppState>) -> Json<Value> {
    let tools = state.tools.list();
    Json(json!({ "total": tools.len(), "tools": tools }))
}

/// Show one tool.
#[utoipa::path(
    get,
    path = "/api/v1/tools/{tool}",
    tag = "tools",
    operation_id = "tools_show",
    params(("tool" = String, Path, description = "Tool name")),
    responses(
        (status = 200, description = TOOL_INFO, body = Object),
        (status = 404, description = "Unknown tool", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = state.tools.info(&tool).ok_or_else(|| unknown_tool(&tool))?;
    Ok(Json(json!(info)))
}

/// JSON form of a deployment.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = DeployToolRequest)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// The component, base64 (standard alphabet; whitespace ignored).
    #[schema(content_encoding = "base64", content_media_type = "application/wasm")]
    wasm_module: String,
    /// Each limit defaults to the server's; none may exceed its ceiling.
    #[serde(default)]
    resource_limits: RequestedLimits,
    /// Replace a deployed tool of the same name.
    #[serde(default)]
    replace: bool,
}

/// Query of a raw `application/wasm` upload (ignored for a JSON body).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RawDeployQuery {
    /// Replace a deployed tool of the same name.
    #[serde(default)]
    replace: bool,
    #[param(minimum = 1)]
    max_memory_bytes: Option<u64>,
    #[param(minimum = 1)]
    max_fuel: Option<u64>,
    #[param(minimum = 1)]
    max_execution_time_ms: Option<u64>,
}

/// Deploy a tool component; its name comes from its own `describe`.
///
/// The body is JSON with the component in base64, or the component's own
/// bytes (`application/wasm` or `application/octet-stream`) with the
/// options in the query. 201 for a new tool, 200 when it replaced one.
#[utoipa::path(
    post,
    path = "/api/v1/tools",
    tag = "tools",
    operation_id = "tools_deploy",
    params(RawDeployQuery),
    request_body(
        description = "JSON with the component in base64, or the raw component",
        content((DeployBody = "application/json"), ("application/wasm"), ("application/octet-stream")),
    ),
    responses(
        (status = 200, description = "Replaced (replace=true): the tool as `GET /api/v1/tools/{tool}` shows it, with `replaced`: true", body = Object),
        (status = 201, description = "Deployed: the tool as `GET /api/v1/tools/{tool}` shows it, with `replaced`: false", body = Object),
        (status = 400, description = "Invalid JSON, query or base64, or not a WebAssembly component", body = ErrorBody),
        (status = 409, description = "Name taken by a built-in or deployed tool, or the tool quota is reached", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 422, description = "Limits above the ceiling, wrong world, unusable name or schema, or describe failed within the limits", body = ErrorBody),
        (status = 500, description = "Storage error, or this server cannot host tool components", body = ErrorBody),
    )
)]
async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RawDeployQuery>, QueryRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = read_body(bytes)?;
    let (component, limits, replace) = if is_raw_component(&headers) {
        let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        let limits = RequestedLimits {
            max_memory_bytes: q.max_memory_bytes,
            max_fuel: q.max_fuel,
            max_execution_time_ms: q.max_execution_time_ms,
        };
        (bytes.to_vec(), limits, q.replace)
    } else {
        let body: DeployBody = parse_json(&bytes)?;
        (
            decode_base64(&body.wasm_module)?,
            body.resource_limits,
            body.replace,
        )
    };
    let components = state
        .tools
        .components()
        .ok_or_else(|| ApiError::internal("this server cannot host tool components"))?;
    let registry = state.tools.clone();
    let (tool, replaced) = components
        .deploy(component, limits, replace, |name| registry.is_builtin(name))
        .await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut view = json!(component_info(&tool));
    view["replaced"] = json!(replaced);
    Ok((status, Json(view)))
}

/// Remove a tool component.
#[utoipa::path(
    delete,
    path = "/api/v1/tools/{tool}",
    tag = "tools",
    operation_id = "tools_remove",
    params(("tool" = String, Path, description = "Tool name")),
    responses(
        (status = 200, description = "Removed: `name`, `status` (`removed`)", body = Object),
        (status = 404, description = "Unknown tool", body = ErrorBody),
        (status = 409, description = "Built-in tools cannot be removed", body = ErrorBody),
        (status = 500, description = "Storage error (nothing removed)", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.tools.is_builtin(&tool) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "builtin_tool",
            format!(
                "`{tool}` is built into the server and cannot be removed; agents that should not use it leave it out of their `tools`"
            ),
        ));
    }
    let components = state
        .tools
        .components()
        .ok_or_else(|| unknown_tool(&tool))?;
    let existed = components
        .remove(&tool)
        .await
        .map_err(|e| ApiError::internal(format!("storage error, nothing was removed: {e}")))?;
    if !existed {
        return Err(unknown_tool(&tool));
    }
    Ok(Json(json!({ "name": tool, "status": "removed" })))
}

impl From<ToolDeployError> for ApiError {
    fn from(e: ToolDeployError) -> Self {
        let code = e.code();
        match e {
            ToolDeployError::Component(inner) => inner.into(),
            ToolDeployError::BuiltinName(_)
            | ToolDeployError::Exists(_)
            | ToolDeployError::Quota(_) => ApiError::new(StatusCode::CONFLICT, code, e.to_string()),
            ToolDeployError::DescribeFailed(ref failure) => {
                let failure = failure.code();
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
                    .with_details(json!({ "failure": failure }))
            }
            ToolDeployError::InvalidName { .. } | ToolDeployError::InvalidSchema(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
            }
            ToolDeployError::Storage(_) => ApiError::internal(e.to_string()),
        }
    }
}
