//! Protocols the host runs for the agent (`caxton:agent/protocols@0.2.0`):
//! a broadcast by capability, a contract net, topics, and what the host
//! knows of a conversation. Each protocol runs in one conversation the
//! host records step by step; its messages go out in this agent's name.
//!
//! ```ignore
//! use caxton_guest_sdk::protocols::{self, Award};
//!
//! // Who does it cheapest? The host asks, ranks, awards and collects.
//! let outcome = protocols::contract_net(
//!     protocols::CallForProposals::new("translation", "Translate the README", Award::Lowest),
//! )?;
//! if let Some(result) = outcome.result { /* the winner's work */ }
//! ```

use crate::bindings::caxton::agent0_2_0::protocols as raw;
pub use crate::bindings::caxton::agent0_2_0::protocols::{
    Answer, AnswerStatus, Attempt, Award, BidStatus, BroadcastRequest, CallForProposals,
    ContractOutcome, ConversationInfo, Gathered, Proposal, Published,
};
use crate::{Error, Performative, Reply};

/// Default time a broadcast gathers answers, and a contract net gathers bids.
pub const DEFAULT_DEADLINE_MS: u32 = 10_000;
/// Default time the winner of a contract net has for its result.
pub const DEFAULT_RESULT_DEADLINE_MS: u32 = 60_000;
/// Default time an initiator has to choose ([`Award::Initiator`]).
pub const DEFAULT_AWARD_DEADLINE_MS: u32 = 60_000;

impl BroadcastRequest {
    /// A `request` to every agent of `capability`, answers gathered for
    /// [`DEFAULT_DEADLINE_MS`], in a new conversation.
    pub fn new(capability: &str, content: impl Into<String>) -> Self {
        BroadcastRequest {
            capability: capability.to_string(),
            performative: Performative::Request,
            content: content.into(),
            content_type: None,
            deadline_ms: DEFAULT_DEADLINE_MS,
            max_answers: None,
            conversation_id: None,
        }
    }

    /// Gathers answers for at most `deadline_ms`.
    pub fn deadline_ms(mut self, deadline_ms: u32) -> Self {
        self.deadline_ms = deadline_ms;
        self
    }

    /// Stops gathering once `n` agents replied.
    pub fn max_answers(mut self, n: u32) -> Self {
        self.max_answers = Some(n);
        self
    }
}

impl CallForProposals {
    /// A call for proposals on `task` to every agent of `capability`,
    /// awarded by `award`: bids gathered for [`DEFAULT_DEADLINE_MS`], the
    /// winner given [`DEFAULT_RESULT_DEADLINE_MS`], falling back to the
    /// next-best proposal when it fails.
    pub fn new(capability: &str, task: impl Into<String>, award: Award) -> Self {
        CallForProposals {
            capability: capability.to_string(),
            task: task.into(),
            content_type: None,
            award,
            bid_deadline_ms: DEFAULT_DEADLINE_MS,
            result_deadline_ms: DEFAULT_RESULT_DEADLINE_MS,
            fallback: true,
            award_deadline_ms: DEFAULT_AWARD_DEADLINE_MS,
            conversation_id: None,
        }
    }

    /// Gathers bids for at most `deadline_ms`.
    pub fn bid_deadline_ms(mut self, deadline_ms: u32) -> Self {
        self.bid_deadline_ms = deadline_ms;
        self
    }

    /// Gives an accepted proposer at most `deadline_ms` for its result.
    pub fn result_deadline_ms(mut self, deadline_ms: u32) -> Self {
        self.result_deadline_ms = deadline_ms;
        self
    }

    /// With [`Award::Initiator`]: gives this agent at most `deadline_ms`
    /// to call [`award`] before every proposal is rejected.
    pub fn award_deadline_ms(mut self, deadline_ms: u32) -> Self {
        self.award_deadline_ms = deadline_ms;
        self
    }

    /// Whether a failed winner is replaced by the next-best proposal.
    pub fn fallback(mut self, fallback: bool) -> Self {
        self.fallback = fallback;
        self
    }
}

/// Sends one message to every agent of a capability and gathers their
/// answers (replies, refusals, failures, timeouts). Fails only when no
/// agent declares the capability.
pub fn broadcast(request: &BroadcastRequest) -> Result<Gathered, Error> {
    raw::broadcast(request)
}

/// Runs a contract net to its end: call for proposals, award by bid,
/// the winner's result (or the next one's, on failure), rejections.
/// With [`Award::Initiator`] it returns once the proposals are in
/// (`awaiting_award`): choose with [`award`]. Fails only when no agent
/// declares the capability.
pub fn contract_net(request: &CallForProposals) -> Result<ContractOutcome, Error> {
    raw::run_contract_net(request)
}

/// Awards this agent's contract net that awaits its choice: `choice`
/// names proposers, best first (the next is accepted if one fails, when
/// fallback is on); the others are rejected.
pub fn award(conversation_id: &str, choice: &[String]) -> Result<ContractOutcome, Error> {
    raw::award_contract(conversation_id, choice)
}

/// The answer to a `cfp`: a `propose` reply carrying the bid. Same as
/// [`Reply::propose`].
pub fn propose(bid: f64, text: &str) -> Reply {
    raw::propose(bid, text)
}

/// Publishes `content` (plain text) to every agent subscribed to `topic`;
/// durable once this returns.
pub fn publish(topic: &str, content: &str) -> Result<Published, Error> {
    raw::publish(topic, content, None)
}

/// Subscribes this agent to `topic`.
pub fn subscribe(topic: &str) -> Result<(), Error> {
    raw::subscribe(topic)
}

/// Ends this agent's subscription to `topic`; `false` when there was none.
pub fn unsubscribe(topic: &str) -> Result<bool, Error> {
    raw::unsubscribe(topic)
}

/// The topics this agent is subscribed to, in name order.
pub fn subscriptions() -> Result<Vec<String>, Error> {
    raw::subscriptions()
}

/// The conversation of the message being handled.
pub fn current_conversation() -> Result<ConversationInfo, Error> {
    raw::conversation(None)
}

/// A conversation this agent takes part in, by id.
pub fn conversation(id: &str) -> Result<ConversationInfo, Error> {
    raw::conversation(Some(id))
}
