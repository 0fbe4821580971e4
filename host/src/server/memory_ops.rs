//! Operator maintenance of embedded memory: optimise, clear caches, clean
//! up, capacity and usage reports, slow-query diagnosis, loading the model
//! after `caxton memory pull`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::memory::{blocking, body};
use crate::memory::embedding;
use crate::memory::report::{
    CacheCleared, Diagnosis, IndexRebuilt, ModelLoaded, Optimized, VacuumScheduled,
};
use crate::memory::{Capacity, Cleanup as CleanupDone, Usage};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/memory/optimize", post(optimize))
        .route("/api/v1/memory/cache/clear", post(cache_clear))
        .route("/api/v1/memory/cleanup", post(cleanup))
        .route("/api/v1/memory/capacity", get(capacity))
        .route("/api/v1/memory/usage", get(usage))
        .route("/api/v1/memory/diagnose", get(diagnose))
        .route("/api/v1/memory/model/load", post(load_model))
}

/// Body of `POST /api/v1/memory/optimize`; an empty body means both.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Optimize {
    #[serde(default)]
    vacuum: bool,
    #[serde(default)]
    rebuild_index: bool,
}

/// Accepts an empty body as `{}` so `curl -X POST` works without `-d`.
pub(super) fn optional_body<T: serde::de::DeserializeOwned + Default>(
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    match &bytes {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => body(bytes),
    }
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheClear {
    /// Also rebuild the vector index from the database.
    #[serde(default)]
    rebuild: bool,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cleanup {
    remove_orphaned: bool,
    older_than_days: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

async fn cleanup(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<CleanupDone>, ApiError> {
    let request: Cleanup = body(bytes)?;
    if !request.remove_orphaned {
        return Err(ApiError::bad_request(
            "invalid_memory_request",
            "nothing to clean: set \"remove_orphaned\": true (entities without relations)",
        ));
    }
    let memory = state.memory.clone();
    let done =
        blocking(move || memory.cleanup_orphans(request.older_than_days, request.dry_run)).await?;
    Ok(Json(done))
}

async fn capacity(State(state): State<AppState>) -> Result<Json<Capacity>, ApiError> {
    let memory = state.memory.clone();
    Ok(Json(blocking(move || memory.capacity()).await?))
}

async fn usage(State(state): State<AppState>) -> Json<Usage> {
    Json(state.memory.usage(state.storage.file_bytes()))
}

async fn diagnose(State(state): State<AppState>) -> Json<Diagnosis> {
    let telemetry = state.memory.telemetry();
    Json(Diagnosis {
        slow_query_threshold_ms: telemetry.slow_threshold().as_millis() as u64,
        operations: telemetry.summary(),
        slow_queries: telemetry.slow_queries(),
    })
}

/// Loads the embedding model from the cache (after `caxton memory pull`)
/// and embeds what was written without it.
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
    state.memory.clone().backfill_in_background();
    Ok(Json(ModelLoaded {
        embedding_model: "loaded".into(),
        changed: true,
    }))
}
