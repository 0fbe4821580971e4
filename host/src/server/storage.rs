//! `/api/v1/storage/*`: the database's checks and care while the server
//! serves — verify (read), analyze (read), repair and compact (admin; both
//! allowed in safe mode, which is where an operator repairs from).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::storage::Analysis;
use crate::storage_check::{Level, RepairReport, Report};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/storage/verify", get(verify))
        .route("/api/v1/storage/analyze", get(analyze))
        .route("/api/v1/storage/repair", post(repair))
        .route("/api/v1/storage/compact", post(compact))
}

/// Runs `f` on a blocking thread: every storage check reads the whole file.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("{what} task failed: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    level: Option<Level>,
}

/// `GET /api/v1/storage/verify?level=quick|full|deep`: the checks of
/// `storage_check` on one snapshot while the server serves.
async fn verify(
    State(state): State<AppState>,
    query: Result<Query<VerifyQuery>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let level = query.level.unwrap_or(Level::Full);
    let storage = state.storage.clone();
    let memory = state.memory.clone();
    let report = blocking("verify", move || {
        crate::storage_check::run(&storage, level, |postings| {
            memory.check(postings).map_err(|e| e.to_string())
        })
    })
    .await?;
    Ok(Json(report))
}

async fn analyze(State(state): State<AppState>) -> Result<Json<Analysis>, ApiError> {
    let storage = state.storage.clone();
    blocking("analyze", move || storage.analyze())
        .await?
        .map(Json)
        .map_err(|e| ApiError::internal(format!("cannot analyze the database: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RepairBody {
    /// False: report what would be done, change nothing.
    #[serde(default)]
    apply: bool,
}

/// `POST /api/v1/storage/repair {"apply": true}`: drops what dangles,
/// rebuilds what is derived, reports what it cannot fix.
async fn repair(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<RepairReport>, ApiError> {
    let body: RepairBody = super::memory_ops::optional_body(bytes)?;
    let storage = state.storage.clone();
    let memory = state.memory.clone();
    let report = blocking("repair", move || {
        crate::storage_check::repair(&storage, body.apply, |apply| {
            memory.repair(apply).map_err(|e| e.to_string())
        })
    })
    .await?;
    if body.apply {
        tracing::info!(
            fixes = report.memory.fixes(),
            left = report.left.len(),
            "storage repaired over the API"
        );
    }
    Ok(Json(report))
}

/// What `POST /api/v1/storage/compact` answers: redb compacts with the
/// file to itself, so a running server schedules it for its next start.
#[derive(Debug, Serialize, Deserialize)]
pub struct CompactAnswer {
    pub scheduled: bool,
    pub database_bytes: u64,
    pub detail: String,
}

async fn compact(State(state): State<AppState>) -> Result<Json<CompactAnswer>, ApiError> {
    state.storage.request_compaction().map_err(|e| {
        ApiError::internal(format!("could not schedule the database compaction: {e}"))
    })?;
    Ok(Json(CompactAnswer {
        scheduled: true,
        database_bytes: state.storage.file_bytes(),
        detail: "compaction needs the database to itself: it runs at the next `caxton start` (or stop the server and run `caxton storage compact`)".into(),
    }))
}
