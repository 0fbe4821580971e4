//! `/api/v1/tokens`: create, list and revoke bearer tokens (admin scope,
//! enforced by the gate in `server::auth`).

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
use super::agents::read_body;
use super::error::{ApiError, ErrorBody, parse_json};
use crate::auth::Scope;
use crate::auth::tokens::TokenError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// A token to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CreateTokenRequest)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Letters, digits, `-`, `_` and `.`; unique among live tokens and
    /// agents, and not `user`, `operator`, `system` or `metrics` (the
    /// server's own sender names).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._-]+$")]
    name: String,
    /// `read`, `message` or `admin` (case and surrounding spaces ignored).
    #[schema(value_type = TokenScope)]
    scope: String,
}

/// A token's scope, as the document lists it (the body's `scope` is read
/// by `Scope::parse`, which also takes other cases).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "a schema only: never constructed")]
enum TokenScope {
    Read,
    Message,
    Admin,
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

/// List the live bearer tokens (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "tokens_list",
    responses(
        (status = 200, description = "`tokens`: [{id, name, scope, created_at}]", body = Object),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
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

/// Create a bearer token; the answer carries its secret, shown only once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "tokens_create",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The token: `id`, `name`, `scope`, `created_at`, and `token` (the secret, shown once)", body = Object),
        (status = 400, description = "Invalid JSON, name or scope", body = ErrorBody),
        (status = 409, description = "Name taken (by a token or an agent), or too many tokens", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_body_bytes", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn create(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreateBody = parse_json(&read_body(bytes)?)?;
    let scope = Scope::parse(&body.scope).map_err(|e| ApiError::bad_request("invalid_scope", e))?;
    if let Some(agent) = state.manager.registry().get(&body.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "token_name_conflict",
            format!(
                "`{}` is the name or id of the agent `{}`: a token sends under its name, and agents would take its messages for that agent's; choose another name",
                body.name, agent.name
            ),
        ));
    }
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

/// Revoke a token by id or name.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "tokens_revoke",
    params(("id" = String, Path, description = "The token's id or name (not its secret)")),
    responses(
        (status = 200, description = "`revoked`: {id, name}", body = Object),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 500, description = "Storage error", body = ErrorBody),
    )
)]
async fn revoke(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = state.gate.tokens.revoke(&token).map_err(token_error)?;
    Ok(Json(
        json!({ "revoked": { "id": record.id, "name": record.name } }),
    ))
}

/// Refuses an agent name that is a live token's: the agent would send
/// under the token's name, and the agents it talks to would take it for
/// that token's holder (and show it that holder's conversations).
pub(super) fn refuse_token_name_for_agent(state: &AppState, name: &str) -> Result<(), ApiError> {
    let tokens = state.gate.tokens.list().map_err(token_error)?;
    match tokens.iter().find(|t| t.name == name) {
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_name_conflict",
            format!(
                "`{name}` is the name of a token: an agent sends under its name, and agents would take its messages for that token's; choose another name"
            ),
        )),
        None => Ok(()),
    }
}
