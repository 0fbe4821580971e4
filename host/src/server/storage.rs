//! `/api/v1/storage/*`: the database's checks and care while the server
//! serves — verify (read), analyze (read), repair and compact (admin; both
//! allowed in safe mode, which is where an operator repairs from).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::storage::Analysis;
use crate::storage_check::{Level, RepairReport, Report};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(analyze))
        .routes(routes!(repair))
        .routes(routes!(compact))
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    /// `quick`, `full` (default) or `deep`.
    #[param(inline)]
    level: Option<Level>,
}

/// Verify the database while the server serves.
///
/// `GET /api/v1/storage/verify?level=quick|full|deep`: the checks of
/// `storage_check` on one snapshot while the server serves.
#[utoipa::path(
    get,
    path = "/api/v1/storage/verify",
    tag = "storage",
    operation_id = "storage_verify",
    params(VerifyQuery),
    responses(
        (status = 200, description = "Every check and what it found", body = Report),
        (status = 400, description = "Invalid query (unknown level)", body = ErrorBody),
        (status = 500, description = "The check could not run", body = ErrorBody),
    )
)]
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

/// Analyze where the database's bytes go.
///
/// Per table: entries, stored, metadata and fragmented bytes, tree height;
/// for the whole file: size, free space a compaction would return, and
/// growth.
#[utoipa::path(
    get,
    path = "/api/v1/storage/analyze",
    tag = "storage",
    operation_id = "storage_analyze",
    responses(
        (status = 200, description = "The analysis", body = Analysis),
        (status = 500, description = "The database could not be analyzed", body = ErrorBody),
    )
)]
async fn analyze(State(state): State<AppState>) -> Result<Json<Analysis>, ApiError> {
    let storage = state.storage.clone();
    blocking("analyze", move || storage.analyze())
        .await?
        .map(Json)
        .map_err(|e| ApiError::internal(format!("cannot analyze the database: {e}")))
}

/// Options of a repair (the body may be empty).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = StorageRepairRequest)]
#[serde(deny_unknown_fields)]
struct RepairBody {
    /// False: report what would be done, change nothing.
    #[serde(default)]
    apply: bool,
}

/// Repair what dangles or is derived, or report what would be done.
///
/// `POST /api/v1/storage/repair {"apply": true}`: drops what dangles,
/// rebuilds what is derived, reports what it cannot fix. Without
/// `apply` (or with no body) nothing is changed.
#[utoipa::path(
    post,
    path = "/api/v1/storage/repair",
    tag = "storage",
    operation_id = "storage_repair",
    request_body(
        content = Option<RepairBody>,
        description = "Optional: an empty body only reports",
    ),
    responses(
        (status = 200, description = "What was (or would be) fixed, and what no repair can fix", body = RepairReport),
        (status = 400, description = "Invalid JSON body", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 500, description = "The repair could not run", body = ErrorBody),
    )
)]
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompactAnswer {
    /// Always true: the compaction runs at the next start.
    pub scheduled: bool,
    /// The database file's size now.
    pub database_bytes: u64,
    /// When and how the compaction runs.
    pub detail: String,
}

/// Schedule a compaction of the database file for the next start.
#[utoipa::path(
    post,
    path = "/api/v1/storage/compact",
    tag = "storage",
    operation_id = "storage_compact",
    responses(
        (status = 200, description = "Scheduled", body = CompactAnswer),
        (status = 500, description = "The compaction could not be scheduled", body = ErrorBody),
    )
)]
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
