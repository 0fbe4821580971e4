//! LLM budgets and spend (`crate::budgets`): read by anyone who may read,
//! set and removed by admins.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::budgets::{BudgetError, BudgetStatus, Budgets, Limit, Subject};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, set, remove))
}

fn budgets(state: &AppState) -> Result<std::sync::Arc<Budgets>, ApiError> {
    state.manager.budgets().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "budgets_unavailable",
            "the server is still starting; try again in a moment",
        )
    })
}

fn subject(text: &str) -> Result<Subject, ApiError> {
    Subject::parse(text).map_err(|e| ApiError::bad_request("invalid_budget_subject", e))
}

fn budget_error(e: BudgetError) -> ApiError {
    match e {
        BudgetError::Invalid(why) => ApiError::bad_request("invalid_budget", why),
        other => ApiError::internal(other.to_string()),
    }
}

/// Every budget and every subject that spent something.
#[derive(Serialize, utoipa::ToSchema)]
struct BudgetList {
    budgets: Vec<BudgetStatus>,
}

/// Budgets with their current spend: agents, principals, the server.
#[utoipa::path(get, path = "/api/v1/budgets", tag = "budgets", operation_id = "budgets_list",
    responses((status = 200, description = "Every budget and every subject with spend on record", body = BudgetList)))]
async fn list(State(state): State<AppState>) -> Result<Json<BudgetList>, ApiError> {
    let budgets = budgets(&state)?;
    let all = tokio::task::spawn_blocking(move || budgets.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(budget_error)?;
    Ok(Json(BudgetList { budgets: all }))
}

/// One subject's budget and spend (`agent:NAME`, `principal:NAME`,
/// `server`).
#[utoipa::path(get, path = "/api/v1/budgets/{subject}", tag = "budgets", operation_id = "budgets_show",
    params(("subject" = String, Path, description = "agent:NAME, principal:NAME or server")),
    responses(
        (status = 200, description = "The budget and its spend", body = BudgetStatus),
        (status = 400, description = "Not a subject", body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let subject = subject(&text)?;
    let budgets = budgets(&state)?;
    let status = tokio::task::spawn_blocking(move || budgets.status(&subject))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(budget_error)?;
    Ok(Json(status))
}

/// A budget to set: `{"limits": [...]}`, or one limit.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // The body's shape, for the API document.
struct SetBody {
    limits: Vec<Limit>,
}

/// Sets a budget at run time (kept across restarts; it comes before the
/// agent's file and `caxton.yaml`).
#[utoipa::path(put, path = "/api/v1/budgets/{subject}", tag = "budgets", operation_id = "budgets_set",
    params(("subject" = String, Path, description = "agent:NAME, principal:NAME or server")),
    request_body = SetBody,
    responses(
        (status = 200, description = "The budget as it now stands", body = BudgetStatus),
        (status = 400, description = "Not a subject, or not a budget", body = ErrorBody)))]
async fn set(
    State(state): State<AppState>,
    Path(text): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let subject = subject(&text)?;
    let body: serde_json::Value = super::error::parse_json(&super::agents::read_body(bytes)?)?;
    let limits = crate::budgets::model::limits_from_json(body.get("limits").unwrap_or(&body))
        .map_err(|e| ApiError::bad_request("invalid_budget", e))?;
    if limits.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_budget",
            "no limits given: to remove a budget, DELETE it (`caxton budgets reset SUBJECT`)",
        ));
    }
    let budgets = budgets(&state)?;
    let status = tokio::task::spawn_blocking(move || {
        budgets.set(&subject, Some(limits))?;
        budgets.status(&subject)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(budget_error)?;
    tracing::info!(subject = %status.subject, "budget set");
    Ok(Json(status))
}

/// Removes a budget set at run time: the agent's file or `caxton.yaml`
/// applies again.
#[utoipa::path(delete, path = "/api/v1/budgets/{subject}", tag = "budgets", operation_id = "budgets_reset",
    params(("subject" = String, Path, description = "agent:NAME, principal:NAME or server")),
    responses(
        (status = 200, description = "The budget as it now stands", body = BudgetStatus),
        (status = 400, description = "Not a subject", body = ErrorBody),
        (status = 404, description = "No budget was set at run time for it", body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let subject = subject(&text)?;
    let budgets = budgets(&state)?;
    let shown = subject.to_string();
    let (removed, status) = tokio::task::spawn_blocking(move || {
        let removed = budgets.set(&subject, None)?;
        Ok::<_, BudgetError>((removed, budgets.status(&subject)?))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(budget_error)?;
    if !removed {
        return Err(ApiError::not_found(
            "budget_not_set",
            format!(
                "no budget was set at run time for {shown} (a file's or caxton.yaml's budget is changed there)"
            ),
        ));
    }
    Ok(Json(status))
}
