//! `/api/v1/memory/…` and `/api/v1/health/memory`: the knowledge graph for
//! operators. Scopes are named `global`, `workspace` or `agent:NAME` (an
//! agent's private memory, by agent name or id).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::memory::report::{Imported, SearchResults, StatsReport};

use super::AppState;
use super::agents::read_body;
use super::error::{ApiError, parse_json};
use crate::memory::model::{
    EntityInput, MemoryError, Relation, RelationKey, ScopeKey, TraverseOptions,
};
use crate::memory::transfer::{self, Record};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health/memory", get(health))
        .route("/api/v1/memory/stats", get(stats))
        .route("/api/v1/memory/entities", post(create_entities))
        .route("/api/v1/memory/entities/delete", post(delete_entities))
        .route("/api/v1/memory/observations", post(add_observations))
        .route(
            "/api/v1/memory/observations/delete",
            post(delete_observations),
        )
        .route("/api/v1/memory/relations", post(create_relations))
        .route("/api/v1/memory/relations/delete", post(delete_relations))
        .route("/api/v1/memory/nodes", post(open_nodes))
        .route("/api/v1/memory/graph", get(read_graph))
        .route("/api/v1/memory/search", post(search))
        .route("/api/v1/memory/traverse", post(traverse))
        .route("/api/v1/memory/export", get(export))
        .route("/api/v1/memory/import", post(import))
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Invalid(m) => ApiError::bad_request("invalid_memory_request", m),
            MemoryError::NotFound(m) => ApiError::not_found("memory_not_found", m),
            MemoryError::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, "memory_denied", m),
            MemoryError::Storage(m) => ApiError::internal(m),
        }
    }
}

/// Resolves an operator's scope name to a stored scope key.
fn scope(state: &AppState, text: Option<&str>) -> Result<ScopeKey, ApiError> {
    let text = text.unwrap_or("global");
    match text {
        "global" => Ok(ScopeKey::global()),
        "workspace" => Ok(ScopeKey::workspace()),
        other => match other.strip_prefix("agent:") {
            Some(agent) => state
                .manager
                .registry()
                .get(agent)
                .map(|h| ScopeKey::agent(&h.id))
                .ok_or_else(|| ApiError::unknown_agent(agent)),
            None => Err(ApiError::bad_request(
                "invalid_scope",
                format!("unknown scope `{other}`; use global, workspace or agent:NAME"),
            )),
        },
    }
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MemoryError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("memory task failed: {e}")))?
        .map_err(ApiError::from)
}

pub(super) fn body<T: DeserializeOwned>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_json(&read_body(bytes)?)
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.memory.health()))
}

async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let memory = state.memory.clone();
    let stats = blocking(move || memory.stats()).await?;
    let database_bytes = state.storage.file_bytes();
    Ok(Json(json!(StatsReport {
        stats,
        database_bytes,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitiesBody {
    scope: Option<String>,
    entities: Vec<EntityInput>,
}

async fn create_entities(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: EntitiesBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let summary = blocking(move || memory.create_entities(&scope, &b.entities)).await?;
    Ok((StatusCode::CREATED, Json(json!(summary))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesBody {
    scope: Option<String>,
    names: Vec<String>,
}

async fn delete_entities(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NamesBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let deleted = blocking(move || memory.delete_entities(&scope, &b.names)).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObservationsBody {
    scope: Option<String>,
    entity: String,
    observations: Vec<String>,
}

async fn add_observations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: ObservationsBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let added =
        blocking(move || memory.add_observations(&scope, &b.entity, &b.observations)).await?;
    Ok(Json(json!({ "added": added })))
}

async fn delete_observations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: ObservationsBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let deleted =
        blocking(move || memory.delete_observations(&scope, &b.entity, &b.observations)).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationsBody {
    scope: Option<String>,
    relations: Vec<Relation>,
}

async fn create_relations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: RelationsBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let summary = blocking(move || memory.create_relations(&scope, &b.relations)).await?;
    Ok((StatusCode::CREATED, Json(json!(summary))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationKeysBody {
    scope: Option<String>,
    relations: Vec<RelationKey>,
}

async fn delete_relations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: RelationKeysBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let deleted = blocking(move || memory.delete_relations(&scope, &b.relations)).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

async fn open_nodes(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: NamesBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let graph = blocking(move || memory.open_nodes(&scope, &b.names)).await?;
    Ok(Json(json!(graph)))
}

#[derive(Deserialize)]
struct GraphQuery {
    scope: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn read_graph(
    State(state): State<AppState>,
    Query(q): Query<GraphQuery>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&state, q.scope.as_deref())?;
    let memory = state.memory.clone();
    let page =
        blocking(move || memory.read_graph(&scope, q.cursor.as_deref(), q.limit.unwrap_or(100)))
            .await?;
    Ok(Json(json!(page)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    /// One scope, or several with `scopes`; default global.
    scope: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    query: String,
    limit: Option<usize>,
}

async fn search(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: SearchBody = body(bytes)?;
    let mut scopes = Vec::new();
    for s in b.scope.iter().chain(b.scopes.iter()) {
        scopes.push(scope(&state, Some(s))?);
    }
    if scopes.is_empty() {
        scopes.push(ScopeKey::global());
    }
    let memory = state.memory.clone();
    let limit = b.limit.unwrap_or(10);
    let hits = blocking(move || memory.search(&scopes, &b.query, limit)).await?;
    Ok(Json(json!(SearchResults { results: hits })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraverseBody {
    scope: Option<String>,
    start: String,
    #[serde(flatten)]
    options: TraverseOptions,
}

async fn traverse(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: TraverseBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let traversal = blocking(move || memory.traverse(&scope, &b.start, &b.options)).await?;
    Ok(Json(json!(traversal)))
}

async fn export(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let memory = state.memory.clone();
    let lines = blocking(move || {
        let mut out = Vec::new();
        memory.export(|record| {
            serde_json::to_writer(&mut out, &record).map_err(std::io::Error::other)?;
            out.push(b'\n');
            Ok(())
        })?;
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines))
}

/// Imports JSON lines as produced by export. All lines are parsed and
/// checked before anything is written.
async fn import(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(bytes)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_import", format!("not UTF-8: {e}")))?;
    let mut records = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| {
            ApiError::bad_request("invalid_import", format!("line {}: {e}", number + 1))
        })?;
        let scope_text = match &record {
            Record::Entity { scope, .. } | Record::Relation { scope, .. } => scope.clone(),
        };
        transfer::parse_scope(&scope_text).map_err(|e| {
            ApiError::bad_request("invalid_import", format!("line {}: {e}", number + 1))
        })?;
        records.push(record);
    }
    let memory = state.memory.clone();
    let (entities, relations) = blocking(move || memory.import(records)).await?;
    Ok(Json(json!(Imported {
        entities,
        relations
    })))
}
