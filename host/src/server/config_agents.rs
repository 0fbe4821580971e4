//! Config agents over REST: validate, install, reload, status.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::agents::{AGENT_VIEW, agent_view, read_body};
use super::error::{ApiError, ErrorBody, parse_json};
use crate::config_agents::ReloadError;
use crate::config_agents::validate::Problem;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, install))
        .routes(routes!(validate))
        .routes(routes!(reload_all))
        .routes(routes!(reload))
        .routes(routes!(reload_status))
}

/// The fields of a `FileStatus` (answered through `json!`).
const FILE_STATUS: &str = "The file's state: `id`, `file`, `state` (`active`, `stale`, \
     `error` or `removed`), `name`, `version`, `loaded_at`, `last_attempt_at`, `reloads`, \
     `last_reload_ms`, `problems` [{file, line, column, field, message, fix}]";

/// A definition sent as text: `file` is its file name (`data-analyzer.md`),
/// which gives the agent id and the format.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ConfigAgentSource)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    /// The file name, e.g. `data-analyzer.md` or `data-analyzer.toml`.
    file: String,
    /// The definition's whole text.
    source: String,
}

pub(super) fn problems_error(file: &str, problems: Vec<Problem>) -> ApiError {
    ApiError::bad_request(
        "invalid_agent_definition",
        format!(
            "{} problem(s) in {file}: {}",
            problems.len(),
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
    .with_details(json!({ "problems": problems }))
}

/// List config agents and the reload state of their files.
#[utoipa::path(
    get,
    path = "/api/v1/config-agents",
    tag = "config-agents",
    operation_id = "config_agents_list",
    responses(
        (status = 200, description = "`directory` (the agents directory) and `files`: one entry per definition file, each with `id`, `file`, `state`, `name`, `version`, `loaded_at`, `last_attempt_at`, `reloads`, `last_reload_ms`, `problems`", body = Object),
    )
)]
async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "directory": state.config_agents.dir(),
        "files": state.config_agents.statuses(),
    }))
}

/// Validate a definition without installing it.
#[utoipa::path(
    post,
    path = "/api/v1/config-agents/validate",
    tag = "config-agents",
    operation_id = "config_agents_validate",
    request_body = SourceBody,
    responses(
        (status = 200, description = "`file`, `valid`, and `problems`: [{file, line, column, field, message, fix}] (empty when valid)", body = Object),
        (status = 400, description = "Invalid JSON body", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
    )
)]
async fn validate(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body: SourceBody = parse_json(&read_body(bytes)?)?;
    // Parsing and checking a large definition is CPU work any `read` token
    // may ask for: on the blocking pool it cannot hold up other requests.
    let agents = state.config_agents.clone();
    let (file, source) = (body.file.clone(), body.source);
    let problems = tokio::task::spawn_blocking(move || agents.validate_source(&file, &source))
        .await
        .map_err(|e| ApiError::internal(format!("the validation failed: {e}")))?;
    Ok(Json(
        json!({ "file": body.file, "valid": problems.is_empty(), "problems": problems }),
    ))
}

/// Install a definition into the agents directory and load it.
#[utoipa::path(
    post,
    path = "/api/v1/config-agents",
    tag = "config-agents",
    operation_id = "config_agents_install",
    request_body = SourceBody,
    responses(
        (status = 201, description = AGENT_VIEW, body = Object),
        (status = 400, description = "Invalid JSON, or an invalid definition or one that cannot be written (`details.problems` lists every problem)", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
    )
)]
async fn install(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: SourceBody = parse_json(&read_body(bytes)?)?;
    match state.config_agents.install(&body.file, &body.source).await {
        Ok(handle) => Ok((StatusCode::CREATED, Json(agent_view(&handle)))),
        Err(problems) => Err(problems_error(&body.file, problems)),
    }
}

/// Options of a reload of every definition (the body may be empty).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ReloadAllRequest)]
#[serde(deny_unknown_fields)]
struct ReloadAll {
    /// Validate every file first and reload none if any is invalid.
    #[serde(default)]
    validate_first: bool,
}

/// Reload every definition in the agents directory.
#[utoipa::path(
    post,
    path = "/api/v1/config-agents/reload",
    tag = "config-agents",
    operation_id = "config_agents_reload_all",
    request_body(
        content = Option<ReloadAll>,
        description = "Optional: an empty body reloads every file without validating first",
    ),
    responses(
        (status = 200, description = "`reloaded` and `failed` counts, and `results`: [{file, reloaded, problems}]", body = Object),
        (status = 400, description = "Invalid JSON, or with validate_first a definition is invalid (nothing reloaded; `details.problems` lists them)", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 500, description = "A definition file cannot be read", body = ErrorBody),
    )
)]
async fn reload_all(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let request: ReloadAll = super::memory_ops::optional_body(bytes)?;
    let agents = &state.config_agents;
    let files = agents.files();
    if request.validate_first {
        let mut problems = Vec::new();
        for file in &files {
            let name = file.display().to_string();
            match std::fs::read_to_string(file) {
                Ok(source) => problems.extend(agents.validate_source(&name, &source)),
                Err(e) => return Err(ApiError::internal(format!("cannot read {name}: {e}"))),
            }
        }
        if !problems.is_empty() {
            return Err(problems_error(
                "the agents directory (nothing was reloaded)",
                problems,
            ));
        }
    }
    let mut results = Vec::new();
    for file in files {
        let outcome = agents.load_file(&file).await;
        results.push(json!({
            "file": file,
            "reloaded": outcome.is_ok(),
            "problems": outcome.err().unwrap_or_default(),
        }));
    }
    let failed = results.iter().filter(|r| r["reloaded"] == false).count();
    Ok(Json(
        json!({ "reloaded": results.len() - failed, "failed": failed, "results": results }),
    ))
}

/// Reload one config agent from its file.
///
/// When the file is invalid the last good version keeps serving.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent}/reload",
    tag = "config-agents",
    operation_id = "config_agents_reload",
    params(("agent" = String, Path, description = "Config agent name or id (its file stem)")),
    responses(
        (status = 200, description = FILE_STATUS, body = Object),
        (status = 400, description = "Invalid definition (`details.problems` lists every problem)", body = ErrorBody),
        (status = 404, description = "No config agent or definition file of that name", body = ErrorBody),
    )
)]
async fn reload(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.config_agents.reload(&agent).await {
        Ok(status) => Ok(Json(json!(status))),
        Err(ReloadError::NotFound(name)) => Err(ApiError::not_found(
            "unknown_config_agent",
            ReloadError::NotFound(name).to_string(),
        )),
        Err(ReloadError::Invalid { file, problems }) => Err(problems_error(&file, problems)),
    }
}

/// The last reload of a config agent.
#[utoipa::path(
    get,
    path = "/api/v1/agents/{agent}/reload-status",
    tag = "config-agents",
    operation_id = "config_agents_reload_status",
    params(("agent" = String, Path, description = "Config agent name or id (its file stem)")),
    responses(
        (status = 200, description = FILE_STATUS, body = Object),
        (status = 404, description = "No config agent of that name has been loaded or attempted", body = ErrorBody),
    )
)]
async fn reload_status(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .config_agents
        .status(&agent)
        .map(|s| Json(json!(s)))
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_config_agent",
                format!("no config agent `{agent}` has been loaded or attempted; `caxton agents list --type config` lists them"),
            )
        })
}
