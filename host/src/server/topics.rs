//! Topics over REST: publish (`message` scope), list (`read`), and
//! subscribe or unsubscribe an agent (`admin`: it changes what an agent
//! receives). Publishing is `crate::protocols::publish`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::agents::{content_of, read_body};
use super::error::{ApiError, ErrorBody, parse_json};
use super::request_context::RequestContext;
use crate::agents::topics::check_topic;
use crate::auth::Principal;
use crate::protocols::Initiator;
use crate::protocols::publish::{self, Publication, Published};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(publish_to))
        .routes(routes!(subscribe, unsubscribe))
}

fn invalid_topic(why: String) -> ApiError {
    ApiError::bad_request("invalid_topic", why)
}

/// List topics and their subscribers.
#[utoipa::path(
    get,
    path = "/api/v1/topics",
    tag = "messages",
    operation_id = "topics_list",
    responses((status = 200, description = "`topics` [{topic, subscribers}]", body = Object))
)]
async fn list(State(state): State<AppState>) -> Json<Value> {
    let topics: Vec<Value> = state
        .manager
        .registry()
        .topics()
        .all()
        .into_iter()
        .map(|(topic, subscribers)| json!({ "topic": topic, "subscribers": subscribers }))
        .collect();
    Json(json!({ "topics": topics }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// A string is sent as text, anything else as JSON.
    content: Value,
    /// `text/plain` for a string content, `application/json` otherwise.
    content_type: Option<String>,
    /// A new one is made when absent.
    conversation_id: Option<String>,
}

/// Publish a message to every agent subscribed to a topic.
///
/// Each subscriber gets it as a durable fire-and-forget `inform` (queued
/// before this answers; delivered after a restart too, retried, dead
/// letters after repeated failures). No subscriber is not an error.
#[utoipa::path(
    post,
    path = "/api/v1/topics/{topic}/publish",
    tag = "messages",
    operation_id = "topics_publish",
    params(("topic" = String, Path, description = "The topic")),
    request_body = PublishBody,
    responses(
        (status = 202, description = "Queued for every subscriber", body = Published),
        (status = 400, description = "Invalid topic or body", body = ErrorBody),
        (status = 413, description = "Body larger than server.max_request_bytes", body = ErrorBody),
        (status = 503, description = "The outbox is full or the server is stopping", body = ErrorBody),
    )
)]
async fn publish_to(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    Path(topic): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    check_topic(&topic).map_err(invalid_topic)?;
    let body: PublishBody = parse_json(&read_body(bytes)?)?;
    let conversation_id = super::protocols::conversation_id(body.conversation_id)?;
    let (content, content_type) = content_of(body.content, body.content_type);
    let initiator = Initiator {
        name: principal.name.clone(),
        agent_id: None,
        trace_parent: Some(request.delivering(&format!("topic {topic}"), &conversation_id)),
    };
    let published = publish::run(
        state.manager.registry().as_ref(),
        &initiator,
        Publication {
            topic,
            content,
            content_type,
            conversation_id: Some(conversation_id),
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(published)))
}

/// Subscribe an agent to a topic (kept across reloads and restarts).
#[utoipa::path(
    post,
    path = "/api/v1/topics/{topic}/subscribers/{agent}",
    tag = "messages",
    operation_id = "topics_subscribe",
    params(("topic" = String, Path, description = "The topic"), ("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = "`agent` and its `topics`", body = Object),
        (status = 400, description = "Invalid topic, or too many subscriptions", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    )
)]
async fn subscribe(
    State(state): State<AppState>,
    Path((topic, agent)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_subscription(&state, &topic, &agent, true).await
}

/// End an agent's subscription to a topic.
#[utoipa::path(
    delete,
    path = "/api/v1/topics/{topic}/subscribers/{agent}",
    tag = "messages",
    operation_id = "topics_unsubscribe",
    params(("topic" = String, Path, description = "The topic"), ("agent" = String, Path, description = "Agent name or id")),
    responses(
        (status = 200, description = "`agent` and its remaining `topics`", body = Object),
        (status = 400, description = "Invalid topic", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    )
)]
async fn unsubscribe(
    State(state): State<AppState>,
    Path((topic, agent)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    set_subscription(&state, &topic, &agent, false).await
}

async fn set_subscription(
    state: &AppState,
    topic: &str,
    agent: &str,
    subscribed: bool,
) -> Result<Json<Value>, ApiError> {
    check_topic(topic).map_err(invalid_topic)?;
    let topics = state.manager.subscribe(agent, topic, subscribed).await?;
    Ok(Json(json!({ "agent": agent, "topics": topics })))
}
