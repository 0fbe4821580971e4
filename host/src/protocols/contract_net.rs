//! Contract net, run by the host: a call for proposals (`cfp`) to every
//! agent of a capability; each answers `propose` with a bid or `refuse`;
//! at the deadline the best bid wins by the initiator's rule, ties going
//! to the agent whose name sorts first (a stated, deterministic rule: not
//! arrival order, which depends on scheduling) — or, with
//! [`Award::Initiator`], the initiator sees the proposals and chooses
//! ([`award`]), within its award deadline; the proposals wait for it
//! parked in the conversation. The winner gets
//! `accept-proposal` and answers `inform` (the result) or `failure`; on a
//! failure the next-best proposal is accepted when `fallback` is on. Once
//! a result is in (or every try failed), the proposals not accepted get
//! `reject-proposal`. Every step is recorded in the conversation.
//!
//! A proposal's content is JSON, `{"bid": 12.5, "text": "…"}`, or text
//! that starts with the bid (`12.5 by Friday`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};

use super::{Answer, Initiator, Outgoing, Status, millis};
use crate::conversations::{Cancelled, Protocol, Started, now_ms};
use crate::messaging::{DeliveryError, MessageBus, Performative};
use thiserror::Error;

/// Longest the host waits for rejected proposers to take their
/// `reject-proposal` (they are told, not asked).
const REJECTION_WAIT: Duration = Duration::from_secs(5);

/// Which bid wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Award {
    /// The lowest bid (a price, a duration).
    Lowest,
    /// The highest bid (a score, a confidence).
    Highest,
    /// The initiator chooses, having seen the proposals ([`award`]).
    Initiator,
}

/// A contract net as its initiator asks for it.
#[derive(Debug, Clone)]
pub struct ContractNet {
    pub capability: String,
    /// What is to be done: the `cfp`'s and the `accept-proposal`'s content.
    pub task: String,
    pub content_type: String,
    pub award: Award,
    /// How long proposals are gathered.
    pub bid_deadline: Duration,
    /// How long an accepted proposer has for its result.
    pub result_deadline: Duration,
    /// On a winner's failure, accept the next-best proposal.
    pub fallback: bool,
    /// With [`Award::Initiator`]: how long the initiator has to choose
    /// before every proposal is rejected.
    pub award_deadline: Duration,
    /// The conversation to run in; a new one when `None`.
    pub conversation_id: Option<String>,
}

/// Why an award was not taken.
#[derive(Debug, Error)]
pub enum AwardError {
    #[error(
        "no contract net `{0}` waits for your award (it never existed, was awarded already, \
         ran out of time, or another initiator started it)"
    )]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// How a participant answered the call for proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BidStatus {
    /// `propose` with a readable bid.
    Proposed,
    Refused,
    Failed,
    Timeout,
    Unanswered,
    /// A `propose` without a readable bid, or another performative.
    Invalid,
}

impl BidStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BidStatus::Proposed => "proposed",
            BidStatus::Refused => "refused",
            BidStatus::Failed => "failed",
            BidStatus::Timeout => "timeout",
            BidStatus::Unanswered => "unanswered",
            BidStatus::Invalid => "invalid",
        }
    }
}

/// A participant's answer to the call for proposals.
///
/// Serialised as the answer's fields with `status` replaced by the
/// bid's own (`proposed` says more than the answer's `replied`).
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct Bid {
    pub status: BidStatus,
    pub bid: Option<f64>,
    pub answer: Answer,
}

impl Serialize for Bid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap as _};
        let serde_json::Value::Object(mut fields) =
            serde_json::to_value(&self.answer).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("an answer serialises as an object"));
        };
        fields.insert("status".into(), self.status.as_str().into());
        if let Some(bid) = self.bid {
            fields.insert("bid".into(), bid.into());
        }
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (key, value) in &fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// One accepted proposal and how its work ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub bid: f64,
    /// `completed` or not (the answer says how).
    pub completed: bool,
    #[serde(flatten)]
    pub answer: Answer,
}

/// What a contract net came to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub conversation_id: String,
    pub capability: String,
    pub award: Award,
    /// `completed` (a result came), `failed`, or `awaiting-award` (the
    /// initiator chooses: `award_within_ms`).
    pub state: String,
    /// The agent whose result came, if one did.
    pub winner: Option<String>,
    /// The winner's result.
    pub result: Option<String>,
    /// Why the protocol ended without a result, if it did.
    pub reason: Option<String>,
    /// One per agent asked, in name order.
    pub proposals: Vec<Bid>,
    /// The proposals accepted, in the order they were.
    pub attempts: Vec<Attempt>,
    /// Agents sent `reject-proposal`.
    pub rejected: Vec<String>,
    /// While `awaiting-award`: how long the initiator has to choose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub award_within_ms: Option<u64>,
    pub elapsed_ms: u64,
}

/// A `propose`'s content as the host writes it (and [`parse_bid`] reads
/// it): `{"bid": …, "text": …}`. A bid that is not a finite number is
/// written as `null`, which no ranking accepts.
pub fn proposal_content(bid: f64, text: &str) -> String {
    serde_json::json!({"bid": bid, "text": text}).to_string()
}

/// Reads the bid out of a `propose`'s content.
pub fn parse_bid(content: &str) -> Option<f64> {
    #[derive(Deserialize)]
    struct Proposal {
        bid: f64,
    }
    let bid = match serde_json::from_str::<Proposal>(content) {
        Ok(p) => p.bid,
        Err(_) => {
            let first = content.split_whitespace().next()?;
            first
                .trim_end_matches([',', ':', ';'])
                .parse::<f64>()
                .ok()?
        }
    };
    bid.is_finite().then_some(bid)
}

/// The proposals in the order they are accepted: best bid first by
/// `award`, equal bids by agent name.
pub fn ranking(proposals: &[Bid], award: Award) -> Vec<(f64, String)> {
    let mut ranked: Vec<(f64, String)> = proposals
        .iter()
        .filter_map(|p| p.bid.map(|bid| (bid, p.answer.agent.clone())))
        .collect();
    ranked.sort_by(|(a, an), (b, bn)| {
        let by_bid = match award {
            Award::Lowest | Award::Initiator => a.total_cmp(b),
            Award::Highest => b.total_cmp(a),
        };
        by_bid.then_with(|| an.cmp(bn))
    });
    ranked
}

fn bid_of(answer: Answer) -> Bid {
    let (status, bid) = match (answer.status, answer.performative) {
        (Status::Replied, Some(Performative::Propose)) => {
            match answer.content.as_deref().and_then(parse_bid) {
                Some(bid) => (BidStatus::Proposed, Some(bid)),
                None => (BidStatus::Invalid, None),
            }
        }
        (Status::Replied, _) => (BidStatus::Invalid, None),
        (Status::Refused, _) => (BidStatus::Refused, None),
        (Status::Failed, _) => (BidStatus::Failed, None),
        (Status::Timeout, _) => (BidStatus::Timeout, None),
        (Status::Unanswered, _) => (BidStatus::Unanswered, None),
    };
    Bid {
        status,
        bid,
        answer,
    }
}

/// A contract net whose proposals are in: what the award needs.
struct Called {
    initiator: Initiator,
    net: ContractNet,
    conversation_id: String,
    started: Instant,
    /// Agents asked.
    asked: usize,
    /// One per agent asked, in name order.
    proposals: Vec<Bid>,
    cancelled: Cancelled,
}

/// Runs `net` from `initiator` over `bus`: to its end, or, with
/// [`Award::Initiator`], until the proposals are in (the outcome is then
/// `awaiting-award`; [`award`] goes on). Fails only when no agent
/// declares the capability; everything else is in the outcome.
pub async fn run(
    bus: &Arc<dyn MessageBus>,
    initiator: &Initiator,
    net: ContractNet,
) -> Result<Outcome, DeliveryError> {
    let recipients = bus.recipients(&net.capability, initiator.agent_id.as_deref());
    if recipients.is_empty() {
        return Err(DeliveryError::UnknownCapability(net.capability));
    }
    let started = Instant::now();
    let conversation_id = net
        .conversation_id
        .clone()
        .unwrap_or_else(crate::messaging::acl::new_message_id);
    let store = bus.conversations().clone();
    let fallback_rounds = if net.fallback { recipients.len() } else { 1 };
    let choosing = if net.award == Award::Initiator {
        net.award_deadline
    } else {
        Duration::ZERO
    };
    let whole = net.bid_deadline
        + choosing
        + net
            .result_deadline
            .saturating_mul(u32::try_from(fallback_rounds).unwrap_or(u32::MAX))
        + REJECTION_WAIT;
    let mut cancelled = store.begin(
        Started {
            conversation_id: &conversation_id,
            protocol: Protocol::ContractNet,
            initiator: &initiator.name,
            from_agent: initiator.agent_id.is_some(),
            deadline_ms: millis(whole),
        },
        now_ms(),
    );
    let outgoing = Outgoing {
        initiator,
        conversation_id: &conversation_id,
        performative: Performative::Cfp,
        content: net.task.clone(),
        content_type: net.content_type.clone(),
        capability: Some(net.capability.clone()),
    };

    // Proposals, until the deadline.
    let answers = gather(
        bus.as_ref(),
        &outgoing,
        &recipients,
        net.bid_deadline,
        &mut cancelled,
    )
    .await;
    let proposals: Vec<Bid> = answers
        .into_iter()
        .zip(&recipients)
        .map(|(answer, agent)| {
            bid_of(answer.unwrap_or_else(|| {
                Answer::unanswered(agent, started, "the conversation was cancelled")
            }))
        })
        .collect();
    let called = Called {
        initiator: initiator.clone(),
        net,
        conversation_id,
        started,
        asked: recipients.len(),
        proposals,
        cancelled,
    };
    if called.net.award == Award::Initiator && !called.cancelled.is_cancelled() {
        return Ok(park(bus, called).await);
    }
    let ranked = ranking(&called.proposals, called.net.award);
    Ok(conclude(bus.as_ref(), called, ranked, None).await)
}

/// Leaves the proposals in the conversation for the initiator to choose
/// from; when it has not within its award deadline, every proposer is
/// rejected and the conversation fails.
async fn park(bus: &Arc<dyn MessageBus>, called: Called) -> Outcome {
    let within = called.net.award_deadline;
    let waiting = Outcome {
        conversation_id: called.conversation_id.clone(),
        capability: called.net.capability.clone(),
        award: Award::Initiator,
        state: "awaiting-award".to_string(),
        winner: None,
        result: None,
        reason: Some(format!(
            "the initiator chooses among the proposals within {} ms",
            millis(within)
        )),
        proposals: called.proposals.clone(),
        attempts: Vec::new(),
        rejected: Vec::new(),
        award_within_ms: Some(millis(within)),
        elapsed_ms: millis(called.started.elapsed()),
    };
    let id = called.conversation_id.clone();
    if let Err(called) = bus.conversations().park(&id, called) {
        // The conversation is gone (evicted under the caps): nothing to
        // wait in, so nothing is awarded.
        let reason = "the conversation was evicted before the award";
        return conclude(bus.as_ref(), called, Vec::new(), Some(reason)).await;
    }
    let bus = Arc::clone(bus);
    tokio::spawn(async move {
        tokio::time::sleep(within).await;
        let parked = bus
            .conversations()
            .unpark::<Called, std::convert::Infallible>(&id, |_| Ok(()));
        if let Ok(Some(called)) = parked {
            let reason = "the initiator did not choose a proposal in time";
            conclude(bus.as_ref(), called, Vec::new(), Some(reason)).await;
        }
    });
    waiting
}

/// Awards a contract net that waits for its initiator (`by`: the same
/// name, and the same agent or none — a principal named like an agent is
/// not that agent): `choice` lists proposers, best first; the first is
/// accepted, and on its failure the next (when the call asked for
/// fallback). Every other proposer is rejected.
pub async fn award(
    bus: &Arc<dyn MessageBus>,
    by: &Initiator,
    conversation_id: &str,
    choice: Vec<String>,
) -> Result<Outcome, AwardError> {
    let called = bus
        .conversations()
        .unpark::<Called, AwardError>(conversation_id, |called| {
            if called.initiator.name != by.name || called.initiator.agent_id != by.agent_id {
                return Err(AwardError::NotFound(conversation_id.to_string()));
            }
            check_choice(&called.proposals, &choice)
        })?
        .ok_or_else(|| AwardError::NotFound(conversation_id.to_string()))?;
    let ranked = choice
        .into_iter()
        .filter_map(|agent| {
            let bid = called
                .proposals
                .iter()
                .find(|p| p.answer.agent == agent)
                .and_then(|p| p.bid)?;
            Some((bid, agent))
        })
        .collect();
    Ok(conclude(bus.as_ref(), called, ranked, None).await)
}

/// A choice names proposers that proposed, each once, at least one.
fn check_choice(proposals: &[Bid], choice: &[String]) -> Result<(), AwardError> {
    let proposed: Vec<&str> = proposals
        .iter()
        .filter(|p| p.bid.is_some())
        .map(|p| p.answer.agent.as_str())
        .collect();
    if choice.is_empty() {
        return Err(AwardError::Invalid(format!(
            "name at least one proposer to accept; these proposed: {}",
            proposed.join(", ")
        )));
    }
    for (i, agent) in choice.iter().enumerate() {
        if !proposed.contains(&agent.as_str()) {
            return Err(AwardError::Invalid(format!(
                "`{}` made no proposal in this contract net; these did: {}",
                crate::conversations::model::cut(agent, 64),
                proposed.join(", ")
            )));
        }
        if choice[..i].contains(agent) {
            return Err(AwardError::Invalid(format!("`{agent}` is named twice")));
        }
    }
    Ok(())
}

/// The award, down `ranked` while results fail; then the rejections, the
/// conversation's end and the outcome. `no_award` says why nothing is
/// ranked, when that is not for lack of proposals.
async fn conclude(
    bus: &dyn MessageBus,
    mut called: Called,
    ranked: Vec<(f64, String)>,
    no_award: Option<&str>,
) -> Outcome {
    let net = &called.net;
    let mut outgoing = Outgoing {
        initiator: &called.initiator,
        conversation_id: &called.conversation_id,
        performative: Performative::AcceptProposal,
        content: net.task.clone(),
        content_type: net.content_type.clone(),
        capability: Some(net.capability.clone()),
    };
    let fallback_rounds = if net.fallback { ranked.len() } else { 1 };
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut winner = None;
    for (bid, agent) in ranked.iter().take(fallback_rounds) {
        if called.cancelled.is_cancelled() {
            break;
        }
        let answer = outgoing.ask(bus, agent, net.result_deadline).await;
        let completed = answer.status == Status::Replied;
        attempts.push(Attempt {
            bid: *bid,
            completed,
            answer,
        });
        if completed {
            winner = Some(agent.clone());
            break;
        }
    }

    // Everyone who proposed and was not tried is told: in the order of
    // the ranking, then the proposers it left out, by name.
    let tried = |agent: &str| attempts.iter().any(|a| a.answer.agent == agent);
    let mut rejected: Vec<String> = ranked
        .iter()
        .map(|(_, agent)| agent.clone())
        .filter(|agent| !tried(agent))
        .collect();
    for p in called.proposals.iter().filter(|p| p.bid.is_some()) {
        if !tried(&p.answer.agent) && !rejected.contains(&p.answer.agent) {
            rejected.push(p.answer.agent.clone());
        }
    }
    if !rejected.is_empty() && !called.cancelled.is_cancelled() {
        outgoing.performative = Performative::RejectProposal;
        outgoing.content = match &winner {
            Some(w) => format!("another proposal was accepted (from `{w}`)"),
            None => "no proposal is accepted".to_string(),
        };
        gather(
            bus,
            &outgoing,
            &rejected,
            REJECTION_WAIT,
            &mut called.cancelled,
        )
        .await;
    }

    let result = attempts
        .iter()
        .find(|a| a.completed)
        .and_then(|a| a.answer.content.clone());
    let reason = if called.cancelled.is_cancelled() {
        Some("the conversation was cancelled".to_string())
    } else if winner.is_some() {
        None
    } else if let Some(why) = no_award {
        Some(why.to_string())
    } else if ranked.is_empty() {
        Some(format!(
            "no proposal came ({} agent(s) asked)",
            called.asked
        ))
    } else {
        Some(format!(
            "no accepted proposal delivered a result ({} tried)",
            attempts.len()
        ))
    };
    let outcome_text = match (&winner, &reason) {
        (Some(w), _) => format!("`{w}` delivered: {}", result.as_deref().unwrap_or("")),
        (None, Some(why)) => why.clone(),
        (None, None) => String::new(),
    };
    bus.conversations().end(
        &called.conversation_id,
        &outcome_text,
        winner.is_none(),
        now_ms(),
    );
    Outcome {
        conversation_id: called.conversation_id,
        capability: called.net.capability,
        award: called.net.award,
        state: if winner.is_some() {
            "completed"
        } else {
            "failed"
        }
        .to_string(),
        winner,
        result,
        reason,
        proposals: called.proposals,
        attempts,
        rejected,
        award_within_ms: None,
        elapsed_ms: millis(called.started.elapsed()),
    }
}

/// Sends `outgoing` to every agent of `to` at once and waits for all
/// answers (each at most `timeout`), or until the conversation is
/// cancelled; the answers are in `to`'s order (`None`: not waited for).
async fn gather(
    bus: &dyn MessageBus,
    outgoing: &Outgoing<'_>,
    to: &[String],
    timeout: Duration,
    cancelled: &mut Cancelled,
) -> Vec<Option<Answer>> {
    crate::messaging::fan_out::fan_out(async {
        let mut answers: Vec<Option<Answer>> = vec![None; to.len()];
        let mut pending: FuturesUnordered<_> = to
            .iter()
            .enumerate()
            .map(|(i, agent)| async move { (i, outgoing.ask(bus, agent, timeout).await) })
            .collect();
        loop {
            let next = tokio::select! {
                next = pending.next() => next,
                () = cancelled.wait() => break,
            };
            let Some((i, answer)) = next else { break };
            answers[i] = Some(answer);
        }
        answers
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(agent: &str, bid: Option<f64>) -> Bid {
        Bid {
            status: BidStatus::Proposed,
            bid,
            answer: Answer::unanswered(agent, Instant::now(), ""),
        }
    }

    #[test]
    fn bids_are_read_from_json_or_leading_numbers() {
        assert_eq!(parse_bid(r#"{"bid": 12.5, "text": "soon"}"#), Some(12.5));
        assert_eq!(parse_bid("7 by Friday"), Some(7.0));
        assert_eq!(parse_bid("3.5: fast"), Some(3.5));
        assert_eq!(parse_bid("cheap"), None);
        assert_eq!(parse_bid(r#"{"bid": "x"}"#), None);
        assert_eq!(parse_bid("NaN"), None);
        assert_eq!(parse_bid("inf"), None);
    }

    #[test]
    fn the_best_bid_wins_and_ties_go_to_the_first_name() {
        let proposals = vec![
            proposal("carol", Some(5.0)),
            proposal("bob", Some(3.0)),
            proposal("alice", Some(5.0)),
            proposal("dave", None),
            proposal("erin", Some(3.0)),
        ];
        let names = |ranked: Vec<(f64, String)>| -> Vec<String> {
            ranked.into_iter().map(|(_, a)| a).collect()
        };
        assert_eq!(
            names(ranking(&proposals, Award::Lowest)),
            ["bob", "erin", "alice", "carol"]
        );
        assert_eq!(
            names(ranking(&proposals, Award::Highest)),
            ["alice", "carol", "bob", "erin"]
        );
    }
}
