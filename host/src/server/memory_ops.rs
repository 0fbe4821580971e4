//! Operator maintenance of embedded memory: optimise, clear caches, clean
//! up, capacity and usage reports, slow-query diagnosis, loading the model
//! after `caxton memory pull`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::memory::{BODY_TOO_LARGE, STORAGE_FAULT, blocking, body};
use crate::memory::embedding;
use crate::memory::report::{
    CacheCleared, Diagnosis, IndexRebuilt, ModelLoaded, Optimized, VacuumScheduled,
};
use crate::memory::{Capacity, Cleanup as CleanupDone, Usage};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(optimize))
        .routes(routes!(cache_clear))
        .routes(routes!(cleanup))
        .routes(routes!(capacity))
        .routes(routes!(usage))
        .routes(routes!(diagnose))
        .routes(routes!(load_model))
}

/// Body of `POST /api/v1/memory/optimize`; an empty body (or neither
/// field true) means both.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Optimize {
    /// Schedule the database's compaction for the next start.
    #[serde(default)]
    vacuum: bool,
    /// Rebuild the vector index from the database and save it.
    #[serde(default)]
    rebuild_index: bool,
}

/// Accepts an empty body or JSON `null` as `{}`, so `curl -X POST` works
/// without `-d` and the document can call the body optional.
pub(super) fn optional_body<T: serde::de::DeserializeOwned + Default>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    match &bytes {
        Ok(b) if is_absent(b) => Ok(T::default()),
        _ => body(bytes),
    }
}

/// An optional body that was not given: nothing but whitespace, or `null`.
fn is_absent(bytes: &[u8]) -> bool {
    let text = bytes.trim_ascii();
    text.is_empty() || text == b"null"
}

/// Optimise memory: rebuild the vector index, schedule a compaction.
///
/// redb compacts with exclusive access, so the compaction happens at the
/// next `caxton start`.
#[utoipa::path(
    post,
    path = "/api/v1/memory/optimize",
    tag = "memory",
    operation_id = "memory_optimize",
    request_body(
        content = Option<Optimize>,
        description = "What to do; no body (or `{}`) does both",
    ),
    responses(
        (status = 200, description = "What was done: `index` when rebuilt, `vacuum` when scheduled", body = Optimized),
        (status = 400, description = "Invalid JSON or an unknown field", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = "The index could not be rebuilt or saved, or the compaction not scheduled", body = ErrorBody),
    ),
)]
async fn optimize(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Optimized>, ApiError> {
    let mut request: Optimize = optional_body(bytes)?;
    if !request.vacuum && !request.rebuild_index {
        request = Optimize {
            vacuum: true,
            rebuild_index: true,
        };
    }
    let mut answer = Optimized::default();
    if request.rebuild_index {
        let memory = state.memory.clone();
        let started = std::time::Instant::now();
        let vectors = blocking(move || {
            let n = memory.rebuild_index()?;
            memory.save_index()?;
            Ok(n)
        })
        .await?;
        answer.index = Some(IndexRebuilt {
            rebuilt_vectors: vectors,
            elapsed_ms: started.elapsed().as_millis() as u64,
        });
    }
    if request.vacuum {
        state.storage.request_compaction().map_err(|e| {
            ApiError::internal(format!("could not schedule the database compaction: {e}"))
        })?;
        answer.vacuum = Some(VacuumScheduled {
            scheduled: true,
            database_bytes: state.storage.file_bytes(),
            detail: "redb compacts with exclusive access: the database is compacted at the next `caxton start`".into(),
        });
    }
    Ok(Json(answer))
}

/// Body of `POST /api/v1/memory/cache/clear`; may be empty.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CacheClear {
    /// Also rebuild the vector index from the database.
    #[serde(default)]
    rebuild: bool,
}

/// Drop the cached query embeddings.
#[utoipa::path(
    post,
    path = "/api/v1/memory/cache/clear",
    tag = "memory",
    operation_id = "memory_cache_clear",
    request_body(
        content = Option<CacheClear>,
        description = "No body (or `{}`) only clears the cache",
    ),
    responses(
        (status = 200, description = "Embeddings dropped, and vectors rebuilt when asked", body = CacheCleared),
        (status = 400, description = "Invalid JSON or an unknown field", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn cache_clear(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<CacheCleared>, ApiError> {
    let request: CacheClear = optional_body(bytes)?;
    let cleared = state.memory.clear_query_cache();
    let mut answer = CacheCleared {
        query_embeddings_cleared: cleared,
        rebuilt_vectors: None,
    };
    if request.rebuild {
        let memory = state.memory.clone();
        answer.rebuilt_vectors = Some(blocking(move || memory.rebuild_index()).await?);
    }
    Ok(Json(answer))
}

/// The oldest `older_than_days` a cleanup takes.
const MAX_AGE_DAYS: u64 = 36_500;

/// Body of `POST /api/v1/memory/cleanup`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryCleanupRequest)]
#[serde(deny_unknown_fields)]
struct Cleanup {
    /// Delete entities without relations.
    #[serde(default)]
    remove_orphaned: bool,
    /// Drop retired facts (history) retired before this time (RFC 3339
    /// or `YYYY-MM-DD`): the only way anything retired is removed.
    retired_before: Option<String>,
    /// Only those not updated for this many days (at most 36,500).
    #[schema(maximum = 36500)]
    older_than_days: Option<u64>,
    /// Only count and list them.
    #[serde(default)]
    dry_run: bool,
}

/// Delete orphaned entities (those without relations) and/or history
/// retired before a time.
#[utoipa::path(
    post,
    path = "/api/v1/memory/cleanup",
    tag = "memory",
    operation_id = "memory_cleanup",
    request_body = Cleanup,
    responses(
        (status = 200, description = "Orphans found, how many were removed, and a sample of them", body = CleanupDone),
        (status = 400, description = "Invalid JSON, an unknown field, neither `remove_orphaned` nor `retired_before`, or a time that does not parse", body = ErrorBody),
        (status = 413, description = BODY_TOO_LARGE, body = ErrorBody),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn cleanup(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<CleanupDone>, ApiError> {
    let request: Cleanup = body(bytes)?;
    if request.older_than_days.is_some_and(|d| d > MAX_AGE_DAYS) {
        return Err(ApiError::bad_request(
            "invalid_memory_request",
            format!("older_than_days is at most {MAX_AGE_DAYS} (a hundred years)"),
        ));
    }
    if !request.remove_orphaned && request.retired_before.is_none() {
        return Err(ApiError::bad_request(
            "invalid_memory_request",
            "nothing to clean: set \"remove_orphaned\": true (entities without relations) and/or \"retired_before\": a time (history retired before it)",
        ));
    }
    let memory = state.memory.clone();
    let done = blocking(move || {
        let mut done = if request.remove_orphaned {
            memory.cleanup_orphans(request.older_than_days, request.dry_run)?
        } else {
            CleanupDone {
                orphans: 0,
                removed: 0,
                sample: Vec::new(),
                retired_dropped: None,
            }
        };
        // A dry run lists orphans only; history is dropped for real or not.
        if let Some(before) = request
            .retired_before
            .as_deref()
            .filter(|_| !request.dry_run)
        {
            done.retired_dropped = Some(memory.drop_retired_before(before)?);
        }
        Ok(done)
    })
    .await?;
    Ok(Json(done))
}

/// Entities stored against the recommended maximum.
#[utoipa::path(
    get,
    path = "/api/v1/memory/capacity",
    tag = "memory",
    operation_id = "memory_capacity",
    responses(
        (status = 200, description = "The entity count and the share of the recommended maximum", body = Capacity),
        (status = 500, description = STORAGE_FAULT, body = ErrorBody),
    ),
)]
async fn capacity(State(state): State<AppState>) -> Result<Json<Capacity>, ApiError> {
    let memory = state.memory.clone();
    Ok(Json(blocking(move || memory.capacity()).await?))
}

/// Where memory's bytes go: model, database, vector index, query cache.
#[utoipa::path(
    get,
    path = "/api/v1/memory/usage",
    tag = "memory",
    operation_id = "memory_usage",
    responses((status = 200, description = "Bytes by part, against the configured budget", body = Usage)),
)]
async fn usage(State(state): State<AppState>) -> Json<Usage> {
    Json(state.memory.usage(state.storage.file_bytes()))
}

/// Latency by operation and the slowest recent queries.
#[utoipa::path(
    get,
    path = "/api/v1/memory/diagnose",
    tag = "memory",
    operation_id = "memory_diagnose",
    responses((status = 200, description = "Latency percentiles by operation and the recent queries over the threshold, slowest first", body = Diagnosis)),
)]
async fn diagnose(State(state): State<AppState>) -> Json<Diagnosis> {
    let telemetry = state.memory.telemetry();
    Json(Diagnosis {
        slow_query_threshold_ms: telemetry.slow_threshold().as_millis() as u64,
        operations: telemetry.summary(),
        slow_queries: telemetry.slow_queries(),
    })
}

/// Load the embedding model from the cache, after `caxton memory pull`.
///
/// What was written without the model is then embedded in the background.
#[utoipa::path(
    post,
    path = "/api/v1/memory/model/load",
    tag = "memory",
    operation_id = "memory_load_model",
    responses(
        (status = 200, description = "The model is loaded; `changed` is false when it already was", body = ModelLoaded),
        (status = 500, description = "The loading task failed", body = ErrorBody),
        (status = 503, description = "The model is not in the cache or cannot be loaded (`model_unavailable`)", body = ErrorBody),
    ),
)]
async fn load_model(State(state): State<AppState>) -> Result<Json<ModelLoaded>, ApiError> {
    if state.memory.embedder().get().is_some() {
        return Ok(Json(ModelLoaded {
            embedding_model: "loaded".into(),
            changed: false,
        }));
    }
    let dir = state.model_cache_dir.clone();
    let model = tokio::task::spawn_blocking(move || embedding::load_cached(&dir))
        .await
        .map_err(|e| ApiError::internal(format!("model load task failed: {e}")))?
        .map_err(|reason| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                reason,
            )
        })?;
    state.memory.embedder().set(model);
    state.memory.embed_backlog();
    Ok(Json(ModelLoaded {
        embedding_model: "loaded".into(),
        changed: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::model::tests::schema;

    /// The document's cap is a literal (utoipa takes no constant there).
    #[test]
    fn the_documented_age_cap_is_the_enforced_one() {
        let cleanup = schema::<Cleanup>();
        assert_eq!(
            cleanup["properties"]["older_than_days"]["maximum"],
            MAX_AGE_DAYS
        );
    }
}
