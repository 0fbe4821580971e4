//! `/api/v1/memory/…` and `/api/v1/health/memory`: the knowledge graph for
//! operators. Scopes are named `global`, `workspace` or `agent:NAME` (an
//! agent's private memory, by agent name or id).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::memory::MemoryHealth;
use crate::memory::report::{Imported, SearchResults, StatsReport};
use crate::memory::temporal::At;

use super::AppState;
use super::agents::read_body;
use super::error::{ApiError, ErrorBody, parse_json};
use crate::memory::model::{
    Direction, EntityInput, GraphPage, MemoryError, Relation, RelationKey, ScopeKey, Subgraph,
    Traversal, TraverseOptions, WriteSummary,
};
use crate::memory::transfer::{self, Record};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(stats))
        .routes(routes!(create_entities))
        .routes(routes!(delete_entities))
        .routes(routes!(add_observations))
        .routes(routes!(delete_observations))
        .routes(routes!(create_relations))
        .routes(routes!(delete_relations))
        .routes(routes!(open_nodes))
        .routes(routes!(history))
        .routes(routes!(supersede))
        .routes(routes!(single_valued_list))
        .routes(routes!(single_valued_declare, single_valued_undeclare))
        .routes(routes!(read_graph))
        .routes(routes!(search))
        .routes(routes!(traverse))
        .routes(routes!(export))
        .routes(routes!(import))
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Invalid(m) => ApiError::bad_request("invalid_memory_request", m),
            MemoryError::NotFound(m) => ApiError::not_found("memory_not_found", m),
            MemoryError::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, "memory_denied", m),
            MemoryError::Storage(m) => ApiError::internal(m),
            MemoryError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "memory_unavailable", m)
            }
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

/// What the 413 of a route reading a body says.
pub(super) const BODY_TOO_LARGE: &str =
    "The body is larger than the server accepts (server.max_body_bytes)";
/// What the 500 of a route touching the database says.
pub(super) const STORAGE_FAULT: &str =
    "The database could not be read or written (nothing half-written)";

/// Memory health.
///
/// `status` is `healthy`, `degraded` (the embedding model is not loaded:
/// `reason` says why) or `unhealthy` (the database cannot be read).
#[utoipa::path(
    get,
    path = "/api/v1/health/memory",
    tag = "memory",
    operation_id = "memory_health",
    responses((status = 200, description = "The memory system's health", body = MemoryHealth)),
)]
async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.memory.health()))
}

/// Memory statistics: counts, index and cache sizes, latency percentiles.
#[utoipa::path(
    get,
    path = "/api/v1/memory/stats",
    tag = "memory",
    operation_id = "memory_stats",
    responses(
        (status = 200, description = "The statistics and the database file's size", body = StatsReport),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let memory = state.memory.clone();
    let stats = blocking(move || memory.stats()).await?;
    let database_bytes = state.storage.file_bytes();
    Ok(Json(json!(StatsReport {
        stats,
        database_bytes,
    })))
}

/// Body of `POST /api/v1/memory/entities`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EntitiesBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// At most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000)]
    entities: Vec<EntityInput>,
}

/// Create entities, merging into those that exist by name.
///
/// An existing entity gets the new observations (duplicates skipped), its
/// type replaced and, when given, its metadata. Every entity is checked
/// before anything is written.
#[utoipa::path(
    post,
    path = "/api/v1/memory/entities",
    tag = "memory",
    operation_id = "memory_create_entities",
    request_body = EntitiesBody,
    responses(
        (status = 201, description = "Written: how many entities were created, updated and unchanged", body = WriteSummary),
        (status = 400, description = "Invalid JSON or scope, no entities or more than 1000, an empty or too long name or type, an observation over 4096 bytes, more than 1000 observations on an entity, or metadata that is not an object", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn create_entities(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: EntitiesBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let summary = blocking(move || memory.create_entities(&scope, &b.entities)).await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// Body of the routes that take entity names.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NamesBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// Entity names; at most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000)]
    names: Vec<String>,
}

/// Delete entities with their observations and relations.
///
/// Names not in the scope are skipped.
#[utoipa::path(
    post,
    path = "/api/v1/memory/entities/delete",
    tag = "memory",
    operation_id = "memory_delete_entities",
    request_body = NamesBody,
    responses(
        (status = 200, description = "`{\"deleted\": n}`: how many entities were deleted", body = Object),
        (status = 400, description = "Invalid JSON or scope, or no names or more than 1000", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
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

/// Body of the routes that add or delete one entity's observations.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ObservationsBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// The entity's name.
    #[schema(min_length = 1, max_length = 256, pattern = r"\S")]
    entity: String,
    /// Observation texts, each at most 4096 bytes; at most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<crate::memory::model::ObservationText>)]
    observations: Vec<String>,
    /// When the observations became true in the world (RFC 3339 or
    /// `YYYY-MM-DD`; default: now). Adding only.
    valid_from: Option<String>,
    /// When they stopped being true, if they have. Adding only.
    valid_to: Option<String>,
    /// Observations of the entity they replace: retired in the same
    /// write, true until `valid_from`. Adding only.
    #[serde(default)]
    #[schema(value_type = Vec<crate::memory::model::ObservationText>)]
    supersede: Vec<String>,
}

/// Add observations to an entity.
///
/// Observations the entity already has are skipped.
#[utoipa::path(
    post,
    path = "/api/v1/memory/observations",
    tag = "memory",
    operation_id = "memory_add_observations",
    request_body = ObservationsBody,
    responses(
        (status = 200, description = "`{\"added\": n}`: how many observations were new", body = Object),
        (status = 400, description = "Invalid JSON or scope, an empty or too long entity name, no observations or more than 1000, an empty observation or one over 4096 bytes, or more than 1000 observations on the entity", body = ErrorBody),
        (status = 404, description = "No entity by that name in the scope, or no agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn add_observations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: ObservationsBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let added = blocking(move || {
        memory.add_observations_valid(
            &scope,
            &b.entity,
            &b.observations,
            b.valid_from.as_deref(),
            b.valid_to.as_deref(),
            &b.supersede,
        )
    })
    .await?;
    Ok(Json(json!({ "added": added })))
}

/// Delete observations from an entity.
///
/// Texts the entity does not have are skipped.
#[utoipa::path(
    post,
    path = "/api/v1/memory/observations/delete",
    tag = "memory",
    operation_id = "memory_delete_observations",
    request_body = ObservationsBody,
    responses(
        (status = 200, description = "`{\"deleted\": n}`: how many observations were deleted", body = Object),
        (status = 400, description = "Invalid JSON or scope, or no observations or more than 1000", body = ErrorBody),
        (status = 404, description = "No entity by that name in the scope, or no agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn delete_observations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: ObservationsBody = body(bytes)?;
    if b.valid_from.is_some() || b.valid_to.is_some() || !b.supersede.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "`valid_from`, `valid_to` and `supersede` go with added observations; a delete takes none of them (to keep a fact in history, supersede it: POST /api/v1/memory/supersede)",
        ));
    }
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let deleted =
        blocking(move || memory.delete_observations(&scope, &b.entity, &b.observations)).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

/// Body of `POST /api/v1/memory/relations`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RelationsBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// At most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000)]
    relations: Vec<Relation>,
}

/// Create or update relations.
///
/// A relation is unique per (from, relation_type, to); writing it again
/// updates its strength and confidence. Both entities must exist in the
/// scope.
#[utoipa::path(
    post,
    path = "/api/v1/memory/relations",
    tag = "memory",
    operation_id = "memory_create_relations",
    request_body = RelationsBody,
    responses(
        (status = 201, description = "Written: how many relations were created, updated and unchanged", body = WriteSummary),
        (status = 400, description = "Invalid JSON or scope, no relations or more than 1000, an empty or too long name or relation_type, or strength or confidence outside 0..1", body = ErrorBody),
        (status = 404, description = "An entity of a relation is not in the scope, or no agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn create_relations(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: RelationsBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let summary = blocking(move || memory.create_relations(&scope, &b.relations)).await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// Body of `POST /api/v1/memory/relations/delete`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RelationKeysBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// At most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000)]
    relations: Vec<RelationKey>,
}

/// Delete relations.
///
/// Relations not in the scope are skipped.
#[utoipa::path(
    post,
    path = "/api/v1/memory/relations/delete",
    tag = "memory",
    operation_id = "memory_delete_relations",
    request_body = RelationKeysBody,
    responses(
        (status = 200, description = "`{\"deleted\": n}`: how many relations were deleted", body = Object),
        (status = 400, description = "Invalid JSON or scope, or no relations or more than 1000", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
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

/// Open entities by name, with the relations between them.
///
/// Names not in the scope are left out of the answer.
#[utoipa::path(
    post,
    path = "/api/v1/memory/nodes",
    tag = "memory",
    operation_id = "memory_open_nodes",
    request_body = NamesBody,
    responses(
        (status = 200, description = "The entities found and the relations among them", body = Subgraph),
        (status = 400, description = "Invalid JSON or scope, or no names or more than 1000", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn open_nodes(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Subgraph>, ApiError> {
    let b: OpenBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let at = At::parse(b.as_of.as_deref(), b.known_at.as_deref()).map_err(ApiError::from)?;
    let memory = state.memory.clone();
    let graph = blocking(move || memory.open_nodes_at(&scope, &b.names, &at)).await?;
    Ok(Json(graph))
}

/// Body of `POST /api/v1/memory/nodes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// Entity names; at most 1000 in one call.
    #[schema(min_items = 1, max_items = 1000)]
    names: Vec<String>,
    /// The facts true in the world at this time (RFC 3339 or
    /// `YYYY-MM-DD`), retired ones included; default: current facts.
    as_of: Option<String>,
    /// The facts memory held at this time (RFC 3339 or `YYYY-MM-DD`).
    known_at: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// `global` (default), `workspace`, or `agent:NAME`.
    #[param(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// The entity's name.
    name: String,
}

/// Every version of an entity's facts, with both times.
///
/// Current and retired observations and relations, oldest recorded first:
/// when each was true in the world (`valid_from`, `valid_to`) and when
/// memory recorded it and retired it (`recorded_at`, `retired_at`).
#[utoipa::path(
    get,
    path = "/api/v1/memory/history",
    tag = "memory",
    operation_id = "memory_history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "`{entity, scope, versions: [...]}`", body = Object),
        (status = 400, description = "A query parameter that does not parse, or an unknown scope", body = ErrorBody),
        (status = 404, description = "No entity by that name in the scope", body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn history(
    State(state): State<AppState>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&state, q.scope.as_deref())?;
    let memory = state.memory.clone();
    let shown = scope.to_string();
    let name = q.name.clone();
    let versions = blocking(move || memory.history(&scope, &name)).await?;
    Ok(Json(
        json!({ "entity": q.name, "scope": shown, "versions": versions }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeQuery {
    /// `global` (default), `workspace`, or `agent:NAME`.
    #[param(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
}

/// The relation types a source holds one of at a time in a scope.
///
/// `configured`: `memory.single_valued_relations` in caxton.yaml (every
/// scope); `declared`: declared for this scope at run time.
#[utoipa::path(
    get,
    path = "/api/v1/memory/single-valued",
    tag = "memory",
    operation_id = "memory_single_valued_list",
    params(ScopeQuery),
    responses(
        (status = 200, description = "`{scope, configured: [...], declared: [...]}`", body = Object),
        (status = 400, description = "An unknown scope", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn single_valued_list(
    State(state): State<AppState>,
    Query(q): Query<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(&state, q.scope.as_deref())?;
    let shown = scope.to_string();
    let memory = state.memory.clone();
    let (configured, declared) = blocking(move || memory.single_valued_in(&scope)).await?;
    Ok(Json(
        json!({ "scope": shown, "configured": configured, "declared": declared }),
    ))
}

/// Declare a relation type single-valued in a scope.
///
/// From now on a new relation of this type retires the source's previous
/// one (kept in history). Relations already there are left as they are.
#[utoipa::path(
    put,
    path = "/api/v1/memory/single-valued/{relation_type}",
    tag = "memory",
    operation_id = "memory_single_valued_declare",
    params(("relation_type" = String, Path, description = "The relation type"), ScopeQuery),
    responses(
        (status = 200, description = "`{relation_type, scope, declared: true, changed}`", body = Object),
        (status = 400, description = "An unknown scope, or a blank or too long type", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn single_valued_declare(
    State(state): State<AppState>,
    axum::extract::Path(relation_type): axum::extract::Path<String>,
    Query(q): Query<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    declare(&state, relation_type, q.scope.as_deref(), true).await
}

/// Undeclare a relation type single-valued in a scope.
#[utoipa::path(
    delete,
    path = "/api/v1/memory/single-valued/{relation_type}",
    tag = "memory",
    operation_id = "memory_single_valued_undeclare",
    params(("relation_type" = String, Path, description = "The relation type"), ScopeQuery),
    responses(
        (status = 200, description = "`{relation_type, scope, declared: false, changed}`", body = Object),
        (status = 400, description = "An unknown scope, or a blank or too long type", body = ErrorBody),
        (status = 404, description = "Not declared in this scope, or no agent by that name", body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn single_valued_undeclare(
    State(state): State<AppState>,
    axum::extract::Path(relation_type): axum::extract::Path<String>,
    Query(q): Query<ScopeQuery>,
) -> Result<Json<Value>, ApiError> {
    declare(&state, relation_type, q.scope.as_deref(), false).await
}

async fn declare(
    state: &AppState,
    relation_type: String,
    scope_text: Option<&str>,
    single: bool,
) -> Result<Json<Value>, ApiError> {
    let scope = scope(state, scope_text)?;
    let shown = scope.to_string();
    let memory = state.memory.clone();
    let kind = relation_type.clone();
    let changed = blocking(move || memory.declare_single_valued(&scope, &kind, single)).await?;
    if !single && !changed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_declared",
            format!(
                "`{relation_type}` is not declared single-valued in `{shown}` (GET /api/v1/memory/single-valued lists what is)"
            ),
        ));
    }
    Ok(Json(json!({
        "relation_type": relation_type,
        "scope": shown,
        "declared": single,
        "changed": changed,
    })))
}

/// A fact to retire: an observation of an entity.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ObservationRef {
    entity: String,
    observation: String,
}

/// Body of `POST /api/v1/memory/supersede`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SupersedeBody {
    /// `global` (default), `workspace`, or `agent:NAME`.
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    #[serde(default)]
    observations: Vec<ObservationRef>,
    #[serde(default)]
    relations: Vec<RelationKey>,
    /// When the facts stopped being true (default: now).
    valid_from: Option<String>,
}

/// Retire named facts: they leave the current graph and its indexes and
/// stay in their entity's history.
///
/// Facts that are not current are skipped.
#[utoipa::path(
    post,
    path = "/api/v1/memory/supersede",
    tag = "memory",
    operation_id = "memory_supersede",
    request_body = SupersedeBody,
    responses(
        (status = 200, description = "`{\"retired\": n}`: how many facts were current and are now retired", body = Object),
        (status = 400, description = "Invalid JSON, scope or time, or nothing named", body = ErrorBody),
        (status = 404, description = "No entity by a name given", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn supersede(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let b: SupersedeBody = body(bytes)?;
    if b.observations.is_empty() && b.relations.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name the facts to retire: `observations` [{entity, observation}] and/or `relations` [{from, to, relation_type}]",
        ));
    }
    let scope = scope(&state, b.scope.as_deref())?;
    let observations: Vec<(String, String)> = b
        .observations
        .into_iter()
        .map(|o| (o.entity, o.observation))
        .collect();
    let memory = state.memory.clone();
    let retired = blocking(move || {
        memory.supersede(&scope, &observations, &b.relations, b.valid_from.as_deref())
    })
    .await?;
    Ok(Json(json!({ "retired": retired })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct GraphQuery {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[param(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// The `next_cursor` of the previous page; absent for the first.
    cursor: Option<String>,
    /// Entities per page: 100 by default, brought into 1..=1000.
    #[param(default = 100)]
    limit: Option<usize>,
}

/// Read the graph one page of entities at a time, in name order.
#[utoipa::path(
    get,
    path = "/api/v1/memory/graph",
    tag = "memory",
    operation_id = "memory_read_graph",
    params(GraphQuery),
    responses(
        (status = 200, description = "A page: its entities, the relations going out of them, and `next_cursor` (null on the last page)", body = GraphPage),
        (status = 400, description = "A query parameter that does not parse, or an unknown scope", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn read_graph(
    State(state): State<AppState>,
    Query(q): Query<GraphQuery>,
) -> Result<Json<GraphPage>, ApiError> {
    let scope = scope(&state, q.scope.as_deref())?;
    let memory = state.memory.clone();
    let page =
        blocking(move || memory.read_graph(&scope, q.cursor.as_deref(), q.limit.unwrap_or(100)))
            .await?;
    Ok(Json(page))
}

/// Body of `POST /api/v1/memory/search`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    /// One scope, or several with `scopes`; default global. `global`,
    /// `workspace`, or `agent:NAME` (an agent's private memory, by agent
    /// name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// More scopes to search, named as `scope` is.
    #[serde(default)]
    #[schema(value_type = Vec<crate::memory::model::ScopeText>)]
    scopes: Vec<String>,
    /// The text to look for; at most 4096 bytes, not blank.
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    query: String,
    /// Results wanted: 10 by default, brought into 1..=100.
    #[schema(default = 10)]
    limit: Option<usize>,
    /// Search the facts true in the world at this time (RFC 3339 or
    /// `YYYY-MM-DD`), retired ones included; default: current facts.
    as_of: Option<String>,
    /// Search the facts memory held at this time.
    known_at: Option<String>,
}

/// Hybrid search: semantic and keyword rankings fused.
///
/// Without an embedding model the search is by keyword only.
#[utoipa::path(
    post,
    path = "/api/v1/memory/search",
    tag = "memory",
    operation_id = "memory_search",
    request_body = SearchBody,
    responses(
        (status = 200, description = "The best-matching entities, best first", body = SearchResults),
        (status = 400, description = "Invalid JSON or scope, or an empty query or one over 4096 bytes", body = ErrorBody),
        (status = 404, description = "No agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn search(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<SearchResults>, ApiError> {
    let b: SearchBody = body(bytes)?;
    let mut scopes = Vec::new();
    for s in b.scope.iter().chain(b.scopes.iter()) {
        scopes.push(scope(&state, Some(s))?);
    }
    if scopes.is_empty() {
        scopes.push(ScopeKey::global());
    }
    let at = At::parse(b.as_of.as_deref(), b.known_at.as_deref()).map_err(ApiError::from)?;
    let memory = state.memory.clone();
    let limit = b.limit.unwrap_or(10);
    let hits = blocking(move || memory.search_at(&scopes, &b.query, limit, &at)).await?;
    Ok(Json(SearchResults { results: hits }))
}

/// Body of `POST /api/v1/memory/traverse`: the start and the traversal's
/// options side by side. The options are spelled out rather than
/// flattened from [`TraverseOptions`] so unknown fields are refused and the
/// document describes one object.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TraverseBody {
    /// `global` (default), `workspace`, or `agent:NAME` (an agent's
    /// private memory, by agent name or id).
    #[schema(pattern = "^(global|workspace|agent:.+)$")]
    scope: Option<String>,
    /// The entity to start from.
    start: String,
    /// Relations followed from the start, at most 6 (default 2).
    #[schema(maximum = 6)]
    max_depth: Option<u32>,
    /// Empty or absent: every relation type.
    #[serde(default)]
    relation_types: Vec<String>,
    /// `outgoing` (default), `incoming` or `both`.
    #[serde(default)]
    direction: Direction,
    /// Relations weaker than this are not followed (default 0).
    #[serde(default)]
    min_strength: f32,
}

impl TraverseBody {
    fn options(&self) -> TraverseOptions {
        let defaults = TraverseOptions::default();
        TraverseOptions {
            max_depth: self.max_depth.unwrap_or(defaults.max_depth),
            relation_types: self.relation_types.clone(),
            direction: self.direction,
            min_strength: self.min_strength,
        }
    }
}

/// Breadth-first traversal from an entity.
#[utoipa::path(
    post,
    path = "/api/v1/memory/traverse",
    tag = "memory",
    operation_id = "memory_traverse",
    request_body = TraverseBody,
    responses(
        (status = 200, description = "Each entity reached with its depth, and the relations followed", body = Traversal),
        (status = 400, description = "Invalid JSON or scope, max_depth above 6, or more than 10000 entities reached", body = ErrorBody),
        (status = 404, description = "No entity by the start's name in the scope, or no agent by that name (`agent:NAME` scope)", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn traverse(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Traversal>, ApiError> {
    let b: TraverseBody = body(bytes)?;
    let scope = scope(&state, b.scope.as_deref())?;
    let memory = state.memory.clone();
    let options = b.options();
    let traversal = blocking(move || memory.traverse(&scope, &b.start, &options)).await?;
    Ok(Json(traversal))
}

/// Every entity and relation of every scope, as JSON lines.
///
/// Scope by scope, its entities first, then its relations, so that
/// `POST /api/v1/memory/import` can replay the lines in order.
#[utoipa::path(
    get,
    path = "/api/v1/memory/export",
    tag = "memory",
    operation_id = "memory_export",
    responses(
        (status = 200, description = "One JSON record a line: `{\"type\": \"entity\", scope, name, entity_type, observations, metadata?}` or `{\"type\": \"relation\", scope, from, to, relation_type, strength, confidence}`", body = String, content_type = "application/x-ndjson"),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
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

/// Load JSON lines written by export.
///
/// All lines are parsed and checked before anything is written, and the
/// records are written in one transaction: a refused import changes
/// nothing.
#[utoipa::path(
    post,
    path = "/api/v1/memory/import",
    tag = "memory",
    operation_id = "memory_import",
    request_body(
        content = String,
        content_type = "application/x-ndjson",
        description = "The lines of `GET /api/v1/memory/export`: one record a line, `{\"type\": \"entity\", scope, name, entity_type, observations, metadata?}` or `{\"type\": \"relation\", scope, from, to, relation_type, strength?, confidence?}`; the scope is `global`, `workspace` or `agent:AGENT_ID`. Blank lines are skipped.",
    ),
    responses(
        (status = 200, description = "Records written", body = Imported),
        (status = 400, description = "Not UTF-8, a line that is not a record or names an unknown scope, or an invalid entity or relation", body = ErrorBody),
        (status = 404, description = "A relation's entity is neither in the scope nor in the file; nothing was written", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
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
        transfer::parse_scope(record.scope()).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::model::tests::schema;
    use crate::memory::model::{MAX_BATCH, MAX_DEPTH, MAX_NAME_BYTES, MAX_QUERY_BYTES};

    /// The document's caps are literals (utoipa takes no constant there);
    /// these are the ones the memory checks.
    #[test]
    fn the_documented_caps_are_the_enforced_ones() {
        for (body, list) in [
            (schema::<EntitiesBody>(), "entities"),
            (schema::<NamesBody>(), "names"),
            (schema::<ObservationsBody>(), "observations"),
            (schema::<RelationsBody>(), "relations"),
            (schema::<RelationKeysBody>(), "relations"),
        ] {
            assert_eq!(body["properties"][list]["maxItems"], MAX_BATCH, "{body}");
        }
        let observations = schema::<ObservationsBody>();
        assert_eq!(
            observations["properties"]["entity"]["maxLength"],
            MAX_NAME_BYTES
        );
        let search = schema::<SearchBody>();
        assert_eq!(search["properties"]["query"]["maxLength"], MAX_QUERY_BYTES);
        let traverse = schema::<TraverseBody>();
        assert_eq!(traverse["properties"]["max_depth"]["maximum"], MAX_DEPTH);
    }
}
