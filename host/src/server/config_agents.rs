//! Config agents over REST: validate, install, reload, status.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::agents::{agent_view, read_body};
use super::error::{ApiError, parse_json};
use crate::config_agents::ReloadError;
use crate::config_agents::validate::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/config-agents", get(list).post(install))
        .route("/api/v1/config-agents/validate", post(validate))
        .route("/api/v1/config-agents/reload", post(reload_all))
        .route("/api/v1/agents/{agent}/reload", post(reload))
        .route("/api/v1/agents/{agent}/reload-status", get(reload_status))
}

/// A definition sent as text: `file` is its file name (`data-analyzer.md`),
/// which gives the agent id and the format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    file: String,
    source: String,
}

fn problems_error(file: &str, problems: Vec<Problem>) -> ApiError {
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

async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "directory": state.config_agents.dir(),
        "files": state.config_agents.statuses(),
    }))
}

async fn validate(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body: SourceBody = parse_json(&read_body(bytes)?)?;
    let problems = state
        .config_agents
        .validate_source(&body.file, &body.source);
    Ok(Json(
        json!({ "file": body.file, "valid": problems.is_empty(), "problems": problems }),
    ))
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadAll {
    /// Validate every file first and reload none if any is invalid.
    #[serde(default)]
    validate_first: bool,
}

async fn reload_all(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(bytes)?;
    let request: ReloadAll = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReloadAll::default()
    } else {
        parse_json(&bytes)?
    };
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
