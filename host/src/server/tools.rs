//! `/api/v1/tools…`: the tool registry — list, show, deploy and remove
//! tool components (`caxton tools …`).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::agents::{decode_base64, is_raw_component, read_body};
use super::error::{ApiError, parse_json};
use crate::runtime::limits::RequestedLimits;
use crate::tools::component::ToolDeployError;
use crate::tools::component_info;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tools", get(list).post(deploy))
        .route("/api/v1/tools/{tool}", get(show).delete(remove))
}

fn unknown_tool(name: &str) -> ApiError {
    ApiError::not_found(
        "tool_not_found",
        format!("no tool named `{name}`; `caxton tools list` shows the available tools"),
    )
    .with_details(json!({ "tool": name }))
}

async fn list(State(state): State<AppState>) -> Json<Value> {
    let tools = state.tools.list();
    Json(json!({ "total": tools.len(), "tools": tools }))
}

async fn show(
    State(state): State<AppState>,
    Path(tool): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = state.tools.info(&tool).ok_or_else(|| unknown_tool(&tool))?;
    Ok(Json(json!(info)))
}

/// JSON form of a deployment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// The component, base64 (standard alphabet; whitespace ignored).
    wasm_module: String,
    #[serde(default)]
    resource_limits: RequestedLimits,
    /// Replace a deployed tool of the same name.
    #[serde(default)]
    replace: bool,
}

/// Query of a raw `application/wasm` upload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployQuery {
    #[serde(default)]
    replace: bool,
    max_memory_bytes: Option<u64>,
    max_fuel: Option<u64>,
    max_execution_time_ms: Option<u64>,
}

/// Deploys a tool component; its name comes from its own `describe`.
/// 201 for a new tool, 200 when it replaced one.
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
