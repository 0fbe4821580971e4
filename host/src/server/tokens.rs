//! `/api/v1/tokens`: create, list and revoke bearer tokens (admin scope,
//! enforced by the gate in `server::auth`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::agents::read_body;
use super::error::{ApiError, parse_json};
use crate::auth::Scope;
use crate::auth::tokens::TokenError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{token}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    scope: String,
}

fn token_error(e: TokenError) -> ApiError {
    let message = e.to_string();
    match e {
        TokenError::InvalidName { .. } => ApiError::bad_request("invalid_token_name", message),
        TokenError::NameTaken(_) => {
            ApiError::new(StatusCode::CONFLICT, "token_name_conflict", message)
        }
        TokenError::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_tokens", message),
        TokenError::NotFound(_) => ApiError::not_found("token_not_found", message),
        TokenError::Storage(_) | TokenError::File { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message)
        }
    }
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tokens = state.gate.tokens.list().map_err(token_error)?;
    let tokens: Vec<Value> = tokens
        .iter()
        .map(
            |t| json!({ "id": t.id, "name": t.name, "scope": t.scope, "created_at": t.created_at }),
        )
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

async fn create(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateBody = parse_json(&read_body(bytes)?)?;
    let scope = Scope::parse(&body.scope).map_err(|e| ApiError::bad_request("invalid_scope", e))?;
    let (record, secret) = state
        .gate
        .tokens
        .create(&body.name, scope)
        .map_err(token_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": record.id,
            "name": record.name,
            "scope": record.scope,
            "created_at": record.created_at,
            "token": secret,
        })),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state.gate.tokens.revoke(&token).map_err(token_error)?;
    Ok(Json(
        json!({ "revoked": { "id": record.id, "name": record.name } }),
    ))
}
