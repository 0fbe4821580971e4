//! Dead letters: fire-and-forget messages that failed every try, kept for
//! an operator to read, replay or discard (admin only: they hold other
//! principals' messages).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::outbox::{DeadLetter, Outbox, OutboxError};

/// Most dead letters one page lists.
const MAX_PAGE: usize = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(discard))
        .routes(routes!(replay))
}

fn outbox(state: &AppState) -> Result<std::sync::Arc<Outbox>, ApiError> {
    state.manager.registry().outbox().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_outbox",
            "this server keeps no outbox",
        )
    })
}

fn millis_rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn view(id: u64, dead: &DeadLetter) -> Value {
    let queued = &dead.queued;
    json!({
        "id": id,
        "message": queued.message,
        "to": queued.to,
        "attempts": queued.attempts,
        "last_error": queued.last_error,
        "queued_at": millis_rfc3339(queued.queued_at_ms),
        "failed_at": millis_rfc3339(dead.failed_at_ms),
    })
}

fn storage_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        e.to_string(),
    )
}

fn outbox_error(e: OutboxError) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_queued", e.to_string())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only dead letters after this id (the previous page's `next`).
    after: Option<u64>,
    /// At most this many (default 100, at most 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// List dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "messages",
    operation_id = "dead_letters_list",
    params(ListQuery),
    responses(
        (status = 200, description = "`dead_letters` [{id, message, to, attempts, last_error, queued_at, failed_at}], `next` (the id to pass as `after`, or null), `waiting` (messages still queued)", body = Object),
        (status = 400, description = "Bad limit or `after`", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    // Ids are documented as int64: beyond it is not one this server gave.
    if query.after.is_some_and(|after| after > i64::MAX as u64) {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "`after` is larger than any dead letter id (they are int64)",
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let outbox = outbox(&state)?;
    let (letters, counts) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::storage::StorageError>((
            outbox.dead_letters(query.after, limit)?,
            outbox.counts()?,
        ))
    })
    .await
    .map_err(storage_error)?
    .map_err(storage_error)?;
    let next = (letters.len() == limit)
        .then(|| letters.last().map(|(id, _)| *id))
        .flatten();
    Ok(Json(json!({
        "dead_letters": letters.iter().map(|(id, d)| view(*id, d)).collect::<Vec<_>>(),
        "next": next,
        "waiting": counts.0,
        "dead": counts.1,
    })))
}

/// Put a dead letter back in the outbox, its tries counted from zero.
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/{id}/replay",
    tag = "messages",
    operation_id = "dead_letters_replay",
    params(("id" = u64, Path, description = "The dead letter's id")),
    responses(
        (status = 202, description = "Queued again: `replayed` (the id) and `queued_as`", body = Object),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 503, description = "The outbox is full or the server is stopping", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let outbox = outbox(&state)?;
    match outbox.replay(id).await {
        Ok(seq) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "replayed": id, "queued_as": seq })),
        )),
        Err(OutboxError::NotQueued(why)) if why.starts_with("no dead letter") => {
            Err(ApiError::not_found("dead_letter_not_found", why))
        }
        Err(e) => Err(outbox_error(e)),
    }
}

/// Delete a dead letter.
#[utoipa::path(
    delete,
    path = "/api/v1/dead-letters/{id}",
    tag = "messages",
    operation_id = "dead_letters_discard",
    params(("id" = u64, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "`discarded` (the id)", body = Object),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    )
)]
async fn discard(
    State(state): State<AppState>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let outbox = outbox(&state)?;
    if outbox.discard(id).await.map_err(outbox_error)? {
        Ok(Json(json!({ "discarded": id })))
    } else {
        Err(ApiError::not_found(
            "dead_letter_not_found",
            format!("no dead letter {id}; `caxton dead-letters list` shows them"),
        ))
    }
}
