//! Broadcast by capability: one message to every running agent that
//! declares a capability, answers gathered until the deadline or until
//! enough have come; the outcome lists every agent's reply, refusal,
//! failure, timeout, or that nobody waited for it any more.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::{Answer, Initiator, Outgoing, Status, millis};
use crate::conversations::{Protocol, Started, now_ms};
use crate::messaging::{DeliveryError, MessageBus, Performative};

/// A broadcast as its initiator asks for it.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub capability: String,
    pub performative: Performative,
    pub content: String,
    pub content_type: String,
    /// How long answers are gathered.
    pub deadline: Duration,
    /// Stop gathering once this many agents replied (any performative).
    pub max_answers: Option<usize>,
    /// The conversation to run in; a new one when `None`.
    pub conversation_id: Option<String>,
}

/// What a broadcast gathered.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Gathered {
    pub conversation_id: String,
    pub capability: String,
    /// Agents the message went to.
    pub asked: usize,
    /// Agents that replied (any performative).
    pub answered: usize,
    /// One per agent asked, in name order.
    pub answers: Vec<Answer>,
    pub elapsed_ms: u64,
}

/// Runs `broadcast` from `initiator` over `bus`. Fails only when no agent
/// declares the capability; everything else is in the answers.
pub async fn run(
    bus: &dyn MessageBus,
    initiator: &Initiator,
    broadcast: Broadcast,
) -> Result<Gathered, DeliveryError> {
    let recipients = bus.recipients(&broadcast.capability, initiator.agent_id.as_deref());
    if recipients.is_empty() {
        return Err(DeliveryError::UnknownCapability(broadcast.capability));
    }
    let started = Instant::now();
    let conversation_id = broadcast
        .conversation_id
        .clone()
        .unwrap_or_else(crate::messaging::acl::new_message_id);
    let store = bus.conversations().clone();
    let mut cancelled = store.begin(
        Started {
            conversation_id: &conversation_id,
            protocol: Protocol::Broadcast,
            initiator: &initiator.name,
            from_agent: initiator.agent_id.is_some(),
            deadline_ms: millis(broadcast.deadline),
        },
        now_ms(),
    );
    let outgoing = Outgoing {
        initiator,
        conversation_id: &conversation_id,
        performative: broadcast.performative,
        content: broadcast.content,
        content_type: broadcast.content_type,
        capability: Some(broadcast.capability.clone()),
    };
    let wanted = broadcast.max_answers.unwrap_or(usize::MAX);
    let deadline = broadcast.deadline;
    let mut answers: Vec<Option<Answer>> = vec![None; recipients.len()];
    let mut answered = 0;
    let mut stopped_why = "enough agents answered";
    crate::messaging::fan_out::fan_out(async {
        let mut pending: FuturesUnordered<_> = recipients
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let outgoing = &outgoing;
                async move { (i, outgoing.ask(bus, agent, deadline).await) }
            })
            .collect();
        while answered < wanted {
            let next = tokio::select! {
                next = pending.next() => next,
                () = cancelled.wait() => {
                    stopped_why = "the conversation was cancelled";
                    break;
                }
            };
            let Some((i, answer)) = next else { break };
            if answer.performative.is_some() {
                answered += 1;
            }
            answers[i] = Some(answer);
        }
        // Dropping the rest stops waiting for them; each is recorded in
        // the conversation as unanswered.
    })
    .await;
    let answers: Vec<Answer> = answers
        .into_iter()
        .zip(&recipients)
        .map(|(answer, agent)| {
            answer.unwrap_or_else(|| Answer::unanswered(agent, started, stopped_why))
        })
        .collect();
    let count = |status: Status| answers.iter().filter(|a| a.status == status).count();
    let outcome = format!(
        "{answered} of {} answered ({} replied, {} refused, {} failed, {} timed out, {} not waited for)",
        recipients.len(),
        count(Status::Replied),
        count(Status::Refused),
        count(Status::Failed),
        count(Status::Timeout),
        count(Status::Unanswered),
    );
    store.end(&conversation_id, &outcome, answered == 0, now_ms());
    Ok(Gathered {
        conversation_id,
        capability: broadcast.capability,
        asked: recipients.len(),
        answered,
        answers,
        elapsed_ms: millis(started.elapsed()),
    })
}
