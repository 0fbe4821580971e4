//! `POST /api/v1/broadcast`, `POST /api/v1/contract-net` and its
//! `/{conversation}/award`: the host's protocols (`crate::protocols`)
//! started over REST, in the caller's name.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::agents::{content_of, read_body};
use super::error::{ApiError, ErrorBody, parse_json};
use super::request_context::RequestContext;
use crate::auth::Principal;
use crate::messaging::{Performative, acl};
use crate::protocols::broadcast::{self, Broadcast, Gathered};
use crate::protocols::contract_net::{self, Award, ContractNet, Outcome};
use crate::protocols::{Initiator, check_deadline};

const DEFAULT_DEADLINE_MS: u64 = 10_000;
const DEFAULT_RESULT_DEADLINE_MS: u64 = 60_000;
const DEFAULT_AWARD_DEADLINE_MS: u64 = 60_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(broadcast))
        .routes(routes!(contract_net))
        .routes(routes!(award_contract))
}

/// The registry, as the bus the protocols run over.
fn bus(state: &AppState) -> std::sync::Arc<dyn crate::messaging::MessageBus> {
    state.manager.registry().clone()
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_protocol", message)
}

/// The caller's conversation id (checked), or a new one.
pub(super) fn conversation_id(id: Option<String>) -> Result<String, ApiError> {
    match id {
        Some(id) => {
            crate::conversations::model::check_id(&id).map_err(invalid)?;
            Ok(id)
        }
        None => Ok(acl::new_message_id()),
    }
}

fn initiator(
    principal: &Principal,
    request: &RequestContext,
    capability: &str,
    conversation_id: &str,
) -> Initiator {
    Initiator {
        name: principal.name.clone(),
        agent_id: None,
        trace_parent: Some(
            request.delivering(&format!("capability {capability}"), conversation_id),
        ),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    /// Every running agent declaring it gets the message.
    capability: String,
    /// A string is sent as text, anything else as JSON.
    content: Value,
    /// `request` by default.
    performative: Option<Performative>,
    /// `text/plain` for a string content, `application/json` otherwise.
    content_type: Option<String>,
    /// How long answers are gathered (default 10 s).
    #[schema(minimum = 1, maximum = 600000)]
    timeout_ms: Option<u64>,
    /// Stop once this many agents have replied.
    #[schema(minimum = 1)]
    max_answers: Option<usize>,
    /// A new one is made when absent.
    conversation_id: Option<String>,
}

/// Send one message to every agent of a capability and gather the answers.
///
/// Answers are gathered until `timeout_ms` or until `max_answers` agents
/// replied; every agent asked is listed with its reply, refusal, failure,
/// timeout, or `unanswered` (nobody waited for it any more).
#[utoipa::path(
    post,
    path = "/api/v1/broadcast",
    tag = "messages",
    operation_id = "broadcast",
    request_body = BroadcastBody,
    responses(
        (status = 200, description = "Every agent's answer", body = Gathered),
        (status = 400, description = "Invalid body (timeout, max_answers, conversation id)", body = ErrorBody),
        (status = 404, description = "No running agent declares the capability", body = ErrorBody),
    )
)]
async fn broadcast(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Gathered>, ApiError> {
    let body: BroadcastBody = parse_json(&read_body(bytes)?)?;
    let deadline = check_deadline("timeout_ms", body.timeout_ms.unwrap_or(DEFAULT_DEADLINE_MS))
        .map_err(invalid)?;
    if body.max_answers == Some(0) {
        return Err(invalid("max_answers is 0; it must be at least 1".into()));
    }
    let (content, content_type) = content_of(body.content, body.content_type);
    let id = conversation_id(body.conversation_id)?;
    let initiator = initiator(&principal, &request, &body.capability, &id);
    let gathered = broadcast::run(
        state.manager.registry().as_ref(),
        &initiator,
        Broadcast {
            capability: body.capability,
            performative: body.performative.unwrap_or(Performative::Request),
            content,
            content_type,
            deadline,
            max_answers: body.max_answers,
            conversation_id: Some(id),
        },
    )
    .await?;
    Ok(Json(gathered))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ContractNetBody {
    /// Every running agent declaring it is asked for a proposal.
    capability: String,
    /// What is to be done: the content of the `cfp` and of the
    /// `accept-proposal`. A string is sent as text, anything else as JSON.
    task: Value,
    content_type: Option<String>,
    /// `lowest` (the default) or `highest` bid wins; equal bids go to the
    /// agent whose name sorts first. `initiator`: the answer comes once
    /// the proposals are in (`state: awaiting-award`), and the caller
    /// chooses with `POST /api/v1/contract-net/{conversation_id}/award`.
    award: Option<Award>,
    /// With `award: initiator`, how long the caller has to choose before
    /// every proposal is rejected (default 60 s).
    #[schema(minimum = 1, maximum = 600000)]
    award_timeout_ms: Option<u64>,
    /// How long proposals are gathered (default 10 s).
    #[schema(minimum = 1, maximum = 600000)]
    timeout_ms: Option<u64>,
    /// How long an accepted proposer has for its result (default 60 s).
    #[schema(minimum = 1, maximum = 600000)]
    result_timeout_ms: Option<u64>,
    /// On a winner's failure, accept the next-best proposal (default true).
    fallback: Option<bool>,
    /// A new one is made when absent.
    conversation_id: Option<String>,
}

/// Run a contract net: call for proposals, award the best bid, get its result.
///
/// Participants answer the `cfp` with `propose` (content
/// `{"bid": 12.5, "text": "…"}`, or text starting with the bid) or
/// `refuse`. The winner gets `accept-proposal` and answers `inform` (the
/// result) or `failure`; on a failure the next-best proposal is accepted
/// (unless `fallback` is false). The rest get `reject-proposal`.
#[utoipa::path(
    post,
    path = "/api/v1/contract-net",
    tag = "messages",
    operation_id = "contract_net",
    request_body = ContractNetBody,
    responses(
        (status = 200, description = "Proposals, attempts, the winner and its result (`state` says whether one came)", body = Outcome),
        (status = 400, description = "Invalid body (timeouts, award, conversation id)", body = ErrorBody),
        (status = 404, description = "No running agent declares the capability", body = ErrorBody),
    )
)]
async fn contract_net(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(request): Extension<RequestContext>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let body: ContractNetBody = parse_json(&read_body(bytes)?)?;
    let bid_deadline = check_deadline("timeout_ms", body.timeout_ms.unwrap_or(DEFAULT_DEADLINE_MS))
        .map_err(invalid)?;
    let result_deadline = check_deadline(
        "result_timeout_ms",
        body.result_timeout_ms.unwrap_or(DEFAULT_RESULT_DEADLINE_MS),
    )
    .map_err(invalid)?;
    let award_deadline = check_deadline(
        "award_timeout_ms",
        body.award_timeout_ms.unwrap_or(DEFAULT_AWARD_DEADLINE_MS),
    )
    .map_err(invalid)?;
    let (task, content_type) = content_of(body.task, body.content_type);
    let id = conversation_id(body.conversation_id)?;
    let initiator = initiator(&principal, &request, &body.capability, &id);
    let bus = bus(&state);
    let outcome = contract_net::run(
        &bus,
        &initiator,
        ContractNet {
            capability: body.capability,
            task,
            content_type,
            award: body.award.unwrap_or(Award::Lowest),
            bid_deadline,
            result_deadline,
            fallback: body.fallback.unwrap_or(true),
            award_deadline,
            conversation_id: Some(id),
        },
    )
    .await?;
    Ok(Json(outcome))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AwardBody {
    /// Proposers, best first: the first is accepted, and if it fails the
    /// next (when the contract net has fallback on). Every other proposer
    /// is rejected.
    agents: Vec<String>,
}

/// Award a contract net that waits for its initiator's choice.
///
/// For a contract net started with `award: initiator` whose `state` is
/// `awaiting-award`; only its initiator (the same token's name) may award
/// it, before its `award_within_ms` runs out.
#[utoipa::path(
    post,
    path = "/api/v1/contract-net/{conversation_id}/award",
    tag = "messages",
    operation_id = "award_contract",
    params(("conversation_id" = String, Path, description = "The contract net's conversation id")),
    request_body = AwardBody,
    responses(
        (status = 200, description = "The attempts, the winner and its result", body = Outcome),
        (status = 400, description = "Invalid body, or an agent that made no proposal", body = ErrorBody),
        (status = 404, description = "No contract net of the caller's awaits an award under that id", body = ErrorBody),
    )
)]
async fn award_contract(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(conversation): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let body: AwardBody = parse_json(&read_body(bytes)?)?;
    let bus = bus(&state);
    let by = Initiator {
        name: principal.name.clone(),
        agent_id: None,
        trace_parent: None,
    };
    contract_net::award(&bus, &by, &conversation, body.agents)
        .await
        .map(Json)
        .map_err(|e| match e {
            contract_net::AwardError::NotFound(_) => {
                ApiError::not_found("award_not_found", e.to_string())
            }
            contract_net::AwardError::Invalid(why) => invalid(why),
        })
}
