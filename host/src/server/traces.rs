//! `GET /api/v1/traces`: what happened in a conversation (every message
//! hop, LLM call and tool call, with timings), or the recent conversations
//! of an agent. Read from the bounded store in `crate::trace`.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::trace::TraceAnswer;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TraceQuery {
    /// Only conversations this agent took part in.
    agent: Option<String>,
    /// The conversation to show; without it, recent conversations are
    /// listed.
    conversation_id: Option<String>,
    /// Conversations listed when no id is given (default 20; values
    /// outside 1..=1000 are clamped).
    limit: Option<usize>,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(traces))
}

/// A conversation's spans, or the recent conversations.
///
/// With `conversation_id`: every message hop, LLM call and tool call of
/// that conversation, with parents and timings. Without it: the recent
/// conversations (of `agent`, when given). Read from the bounded store of
/// the most recent spans (`monitoring.trace_spans`).
#[utoipa::path(
    get,
    path = "/api/v1/traces",
    tag = "traces",
    operation_id = "traces_get",
    params(TraceQuery),
    responses(
        (status = 200, description = "`{conversation_id, spans}` or `{conversations, kept_spans}`", body = TraceAnswer),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No such conversation (with that agent) in the kept spans", body = ErrorBody),
    )
)]
async fn traces(
    State(state): State<AppState>,
    query: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TraceAnswer>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{e}; use ?agent=NAME&conversation_id=ID (or ?agent=NAME&limit=N to list)"),
        )
    })?;
    let agent = match query.agent.as_deref() {
        Some(name) => Some(
            state
                .manager
                .registry()
                .get(name)
                .map(|h| h.name.clone())
                .unwrap_or_else(|| name.to_string()),
        ),
        None => None,
    };
    let Some(conversation_id) = query.conversation_id else {
        let limit = query.limit.unwrap_or(20).clamp(1, 1000);
        return Ok(Json(TraceAnswer::Conversations {
            conversations: state.trace.conversations(agent.as_deref(), limit),
            kept_spans: state.trace.len(),
        }));
    };
    let spans = state.trace.conversation(&conversation_id);
    let involved = agent
        .as_deref()
        .is_none_or(|a| spans.iter().any(|s| s.agent == a));
    if spans.is_empty() || !involved {
        let whose = agent
            .as_deref()
            .map(|a| format!(" with agent `{a}`"))
            .unwrap_or_default();
        return Err(ApiError::not_found(
            "unknown_conversation",
            format!(
                "no trace of conversation `{conversation_id}`{whose}: it never happened, or it is older than the {} most recent spans kept (monitoring.trace_spans); `caxton trace --agent NAME` lists recent conversations",
                state.trace.len()
            ),
        ));
    }
    Ok(Json(TraceAnswer::Conversation {
        conversation_id,
        spans,
    }))
}
