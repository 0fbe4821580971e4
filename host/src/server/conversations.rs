//! `/api/v1/conversations`: every conversation the server keeps (see
//! `crate::conversations`), listed, shown and cancelled. A caller sees the
//! conversations its principal started; `admin` sees all.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Principal, Scope};
use crate::conversations::{
    CancelError, Conversation, ConversationState, Filter, Page, Protocol, Viewer, now_ms,
};
use crate::messaging::MessageBus as _;

/// Most conversations one page lists.
const MAX_PAGE: usize = 500;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(recording))
        .routes(routes!(replay))
        .routes(routes!(fork))
}

/// A recorded conversation, read for a replay or a fork: its first
/// agent, the messages that agent was given, and its replies.
struct Recorded {
    agent: String,
    events: Vec<crate::recordings::Event>,
    inbound: Vec<(String, String)>,
    replies: Vec<String>,
}

async fn recorded(state: &AppState, id: &str) -> Result<Recorded, ApiError> {
    use crate::recordings::Event;
    let recording = recording(State(state.clone()), Path(id.to_string()))
        .await?
        .0;
    let events: Vec<Event> = recording.events.into_iter().map(|e| e.event).collect();
    let Some(agent) = events.iter().find_map(|e| match e {
        Event::Inbound { agent, .. } => Some(agent.clone()),
        _ => None,
    }) else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "nothing_to_replay",
            format!("the recording of `{id}` holds no message an agent was given"),
        ));
    };
    let inbound = events
        .iter()
        .filter_map(|e| match e {
            Event::Inbound {
                agent: a,
                sender,
                content,
                ..
            } if *a == agent => Some((sender.clone(), content.clone())),
            _ => None,
        })
        .collect();
    let replies = events
        .iter()
        .filter_map(|e| match e {
            Event::Reply {
                agent: a, content, ..
            } if *a == agent => Some(content.clone()),
            _ => None,
        })
        .collect();
    Ok(Recorded {
        agent,
        events,
        inbound,
        replies,
    })
}

/// A replay or fork in progress; dropped (done, or the client went away),
/// it ends the replay and removes the agent version started for it.
struct Running {
    state: AppState,
    recorder: std::sync::Arc<crate::recordings::Recorder>,
    run: String,
    version: Option<String>,
}

impl Running {
    fn start(
        state: &AppState,
        recorder: std::sync::Arc<crate::recordings::Recorder>,
        run: &str,
        session: std::sync::Arc<crate::recordings::replay::ReplaySession>,
        version: Option<String>,
    ) -> Running {
        recorder.start_replay(run, session);
        Running {
            state: state.clone(),
            recorder,
            run: run.to_string(),
            version,
        }
    }
}

impl Running {
    /// Ends the replay and removes its agent version before answering.
    async fn finish(mut self) {
        if let Some(id) = self.version.take() {
            self.state.manager.unload_config(&id).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.recorder.end_replay(&self.run);
        if let Some(id) = self.version.take() {
            let manager = self.state.manager.clone();
            tokio::spawn(async move {
                manager.unload_config(&id).await;
            });
        }
    }
}

/// Sends `content` from `sender` to `agent` in conversation `run`;
/// answers the reply's text (or why there was none).
async fn send_in(
    state: &AppState,
    agent: &str,
    run: &str,
    (sender, content): (String, String),
    timeout: std::time::Duration,
) -> String {
    use crate::messaging::{AclMessage, Address, Performative};
    let message = AclMessage {
        id: crate::messaging::acl::new_message_id(),
        performative: Performative::Request,
        sender,
        receiver: Some(agent.to_string()),
        capability: None,
        content,
        content_type: crate::messaging::acl::TEXT_PLAIN.into(),
        conversation_id: Some(run.to_string()),
        reply_with: None,
        in_reply_to: None,
        trace_parent: None,
    };
    match state
        .manager
        .registry()
        .request(None, Address::Agent(agent.to_string()), message, timeout)
        .await
    {
        Ok(delivered) => delivered.reply.map(|r| r.content).unwrap_or_default(),
        Err(e) => format!("[no reply: {e}]"),
    }
}

/// Where to fork and what to say instead.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    /// The message (1-based) the new conversation replaces: messages
    /// before it are replayed from the recording, this one is `message`.
    at: usize,
    /// What is said instead, answered live.
    message: String,
    /// How long each message may take (default 60 s).
    timeout_ms: Option<u64>,
}

/// Fork a recorded conversation (admin): a new conversation whose
/// history is the recorded one up to message `at` (replayed, the model's
/// answers served from the recording), then `message`, answered live.
/// The new conversation goes on like any other.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/fork",
    tag = "conversations",
    operation_id = "conversations_fork",
    params(("id" = String, Path, description = "The recorded conversation's id")),
    request_body = ForkBody,
    responses(
        (status = 200, description = "The new conversation's id and its live answer", body = Object),
        (status = 400, description = "`at` is not a message of the recording", body = ErrorBody),
        (status = 404, description = "Nothing was recorded for this conversation", body = ErrorBody),
    )
)]
async fn fork(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: ForkBody = super::error::parse_json(&super::agents::read_body(bytes)?)?;
    let recorded = recorded(&state, &id).await?;
    if body.at == 0 || body.at > recorded.inbound.len() + 1 {
        return Err(ApiError::bad_request(
            "invalid_fork",
            format!(
                "`at` must be between 1 and {} (the recording holds {} message(s); {} adds one after them)",
                recorded.inbound.len() + 1,
                recorded.inbound.len(),
                recorded.inbound.len() + 1
            ),
        ));
    }
    let recorder = state
        .manager
        .recorder()
        .cloned()
        .ok_or_else(|| ApiError::internal("recordings are not set up"))?;
    let run = format!("fork-{}", uuid::Uuid::new_v4());
    let session = std::sync::Arc::new(crate::recordings::replay::ReplaySession::new(
        &recorded.agent,
        &recorded.agent,
        &recorded.events,
        false,
    ));
    let running = Running::start(&state, recorder, &run, session.clone(), None);
    let timeout =
        std::time::Duration::from_millis(body.timeout_ms.unwrap_or(60_000).clamp(1, 600_000));
    let sender = recorded
        .inbound
        .first()
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
    for (i, message) in recorded.inbound.into_iter().take(body.at - 1).enumerate() {
        let text = send_in(&state, &recorded.agent, &run, message, timeout).await;
        session.reply(recorded.replies.get(i).map_or("", String::as_str), &text);
    }
    session.go_live();
    let reply = send_in(
        &state,
        &recorded.agent,
        &run,
        (sender, body.message),
        timeout,
    )
    .await;
    running.finish().await;
    let (divergences, served, live) = session.outcome();
    Ok(Json(serde_json::json!({
        "conversation_id": id,
        "fork_conversation_id": run,
        "agent": recorded.agent,
        "reply": reply,
        "history_identical": divergences.is_empty(),
        "divergences": divergences,
        "model_calls_from_recording": served,
        "live_model_calls": live,
    })))
}

/// How to replay.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct ReplayBody {
    /// Call the model for real from the first divergence on (spends
    /// budget); otherwise every model call is answered from the recording.
    live_llm: bool,
    /// How long each replayed message may take (default 60 s).
    timeout_ms: Option<u64>,
    /// Another version of a config agent to replay against: a definition's
    /// whole text (markdown with frontmatter, or TOML). It runs beside the
    /// deployed one for the replay only, unreachable by anything else.
    agent_version: Option<String>,
}

/// Replay a recorded conversation against the agent as it is now, or
/// against another version of a config agent (admin).
///
/// Its inbound messages are sent again, in a conversation of their own;
/// the agent's model, tool and memory calls and its asks of other agents
/// are answered from the recording (no tokens spent, memory unchanged) and
/// compared with it, and so are its replies. Answers where the new run
/// first diverges, with a readable diff.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/replay",
    tag = "conversations",
    operation_id = "conversations_replay",
    params(("id" = String, Path, description = "The recorded conversation's id")),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "The replay's outcome: divergences (none: identical), replies, calls served", body = Object),
        (status = 404, description = "Nothing was recorded for this conversation", body = ErrorBody),
        (status = 422, description = "The recording holds no message to replay", body = ErrorBody),
    )
)]
async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = super::agents::read_body(bytes)?;
    let body: ReplayBody = if raw.is_empty() {
        ReplayBody::default()
    } else {
        super::error::parse_json(&raw)?
    };
    let Recorded {
        agent,
        events,
        inbound,
        replies: recorded_replies,
    } = recorded(&state, &id).await?;
    let recorder = state
        .manager
        .recorder()
        .cloned()
        .ok_or_else(|| ApiError::internal("recordings are not set up"))?;
    let run = format!("replay-{}", uuid::Uuid::new_v4());
    // Another version runs as an agent of its own for the replay's length.
    let version = match &body.agent_version {
        Some(source) => {
            let id = format!(
                "replay-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            state
                .config_agents
                .start_version(&id, source)
                .await
                .map_err(|problems| {
                    super::config_agents::problems_error("the agent version", problems)
                })?;
            Some(id)
        }
        None => None,
    };
    let target = version.clone().unwrap_or_else(|| agent.clone());
    let session = std::sync::Arc::new(crate::recordings::replay::ReplaySession::new(
        &agent,
        &target,
        &events,
        body.live_llm,
    ));
    let running = Running::start(&state, recorder, &run, session.clone(), version.clone());
    let timeout =
        std::time::Duration::from_millis(body.timeout_ms.unwrap_or(60_000).clamp(1, 600_000));
    let mut replies = Vec::new();
    for (i, message) in inbound.into_iter().enumerate() {
        let text = send_in(&state, &target, &run, message, timeout).await;
        let recorded = recorded_replies.get(i).cloned().unwrap_or_default();
        session.reply(&recorded, &text);
        replies.push(serde_json::json!({"recorded": recorded, "replayed": text}));
    }
    running.finish().await;
    let (divergences, served, live) = session.outcome();
    Ok(Json(serde_json::json!({
        "conversation_id": id,
        "replay_conversation_id": run,
        "agent": agent,
        "agent_version": version.is_some(),
        "identical": divergences.is_empty(),
        "first_divergence": divergences.first(),
        "divergences": divergences,
        "model_calls_from_recording": served,
        "live_model_calls": live,
        "replies": replies,
    })))
}

/// The recording of a conversation (admin): every inbound message, model
/// call (request and response), tool call and reply, with timings, as one
/// JSON document (`caxton conversations export ID`).
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/recording",
    tag = "conversations",
    operation_id = "conversations_recording",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The recording, events in order", body = crate::recordings::Recording),
        (status = 404, description = "Nothing was recorded for this conversation", body = ErrorBody),
    )
)]
async fn recording(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::recordings::Recording>, ApiError> {
    let recorder = state.manager.recorder().cloned().ok_or_else(|| {
        ApiError::not_found("no_recording", "recordings are not set up yet; try again")
    })?;
    let wanted = id.clone();
    let found = tokio::task::spawn_blocking(move || recorder.export(&wanted))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    found.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "no_recording",
            format!(
                "nothing was recorded for conversation `{id}` (recordings.record in caxton.yaml says whose conversations are: config agents' by default; kept recordings.retention_hours)"
            ),
        )
    })
}

fn viewer(principal: &Principal) -> Viewer<'_> {
    if principal.scope == Scope::Admin {
        Viewer::Admin
    } else {
        Viewer::Principal(&principal.name)
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only conversations this agent (or principal) took part in.
    agent: Option<String>,
    /// `request`, `broadcast`, `contract-net`, `publish` or `a2a`.
    protocol: Option<String>,
    /// `active`, `completed`, `failed`, `cancelled` or `expired`.
    state: Option<String>,
    /// Conversations per page (default 50, at most 500).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List conversations, newest first.
///
/// Without histories (`GET /api/v1/conversations/{id}` has them). Kept in
/// memory: a restart forgets them; `conversations:` in `caxton.yaml` caps
/// how many and for how long.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    tag = "conversations",
    operation_id = "conversations_list",
    params(ListQuery),
    responses(
        (status = 200, description = "`conversations` and `next_cursor`", body = Page),
        (status = 400, description = "Unknown protocol or state, bad cursor or limit", body = ErrorBody),
    )
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(
            "invalid_query",
            format!("{e}; use ?agent=NAME&protocol=P&state=S&limit=N&cursor=C"),
        )
    })?;
    let invalid = |message: String| ApiError::bad_request("invalid_query", message);
    let filter = Filter {
        agent: query.agent,
        protocol: query
            .protocol
            .as_deref()
            .map(Protocol::parse)
            .transpose()
            .map_err(invalid)?,
        state: query
            .state
            .as_deref()
            .map(ConversationState::parse)
            .transpose()
            .map_err(invalid)?,
    };
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(invalid(format!(
            "limit is {limit}; it must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>().map_err(|_| {
                invalid(format!(
                    "cursor `{c}` is not one this server gave; pass the `next_cursor` of the previous page"
                ))
            })
        })
        .transpose()?;
    let store = state.manager.registry().conversations();
    Ok(Json(store.list(
        &filter,
        viewer(&principal),
        limit,
        cursor,
        now_ms(),
    )))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "unknown_conversation",
        format!(
            "no conversation `{id}`: it never existed, it has expired (conversations.ttl_secs), or it is not yours; `caxton conversations list` shows yours"
        ),
    )
}

/// A conversation with its history.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    tag = "conversations",
    operation_id = "conversations_show",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation, its history oldest first", body = Conversation),
        (status = 404, description = "No such conversation, or not the caller's", body = ErrorBody),
    )
)]
async fn show(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    state
        .manager
        .registry()
        .conversations()
        .get(&id, viewer(&principal), now_ms())
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// Cancel an active conversation.
///
/// Every request of it still waiting is answered `409
/// conversation_cancelled` at once; an agent's run for it stops where the
/// sender's absence is noticed (a queued message is skipped, a config
/// agent's tool loop ends). Only its initiator or an admin may.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/cancel",
    tag = "conversations",
    operation_id = "conversations_cancel",
    params(("id" = String, Path, description = "The conversation's id")),
    responses(
        (status = 200, description = "The conversation, now cancelled", body = Conversation),
        (status = 404, description = "No such conversation, or not the caller's", body = ErrorBody),
        (status = 409, description = "The conversation has already finished", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Conversation>, ApiError> {
    let store = state.manager.registry().conversations();
    match store.cancel(&id, viewer(&principal), now_ms()) {
        Ok(conversation) => Ok(Json(conversation)),
        Err(CancelError::NotFound(_)) => Err(not_found(&id)),
        Err(e @ CancelError::Finished { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conversation_finished",
            e.to_string(),
        )),
    }
}
