//! `caxton:agent/protocols@0.2.0`: the protocols of `crate::protocols`
//! (broadcast, contract net, publish), run with the calling agent as the
//! initiator, plus its topic subscriptions and the conversations it is in.
//! The same protocols the REST API and the built-in tools run: this file
//! only checks the guest's arguments and converts to and from WIT.

use crate::conversations::{Viewer, now_ms};
use crate::messaging::{Performative, SubscribeError, acl};
use crate::protocols::{self as host, Answer, Initiator, Status, contract_net};
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent0_1_0::types::{Error, Reply};
use crate::runtime::bindings::caxton::agent0_2_0::protocols as wit;
use crate::runtime::wit_convert::{from_wit_performative, to_wit_performative};

use super::messaging::delivery_error;

impl wit::Host for HostState {
    async fn broadcast(&mut self, request: wit::BroadcastRequest) -> Result<wit::Gathered, Error> {
        self.check_content(&request.content, request.content_type.as_deref())?;
        let deadline = host::check_deadline("deadline-ms", u64::from(request.deadline_ms))
            .map_err(Error::InvalidInput)?;
        let max_answers = match request.max_answers {
            Some(0) => {
                return Err(Error::InvalidInput(
                    "max-answers is 0; give none to wait for everyone, or at least 1".into(),
                ));
            }
            n => n.and_then(|n| usize::try_from(n).ok()),
        };
        check_conversation_id(request.conversation_id.as_deref())?;
        let gathered = host::broadcast::run(
            self.agent.bus.as_ref(),
            &self.initiator(),
            host::broadcast::Broadcast {
                capability: request.capability,
                performative: from_wit_performative(request.performative),
                content: request.content,
                content_type: content_type(request.content_type),
                deadline,
                max_answers,
                conversation_id: request.conversation_id,
            },
        )
        .await
        .map_err(|e| delivery_error(&e))?;
        Ok(wit::Gathered {
            conversation_id: gathered.conversation_id,
            asked: count(gathered.asked),
            answered: count(gathered.answered),
            answers: gathered.answers.into_iter().map(to_wit_answer).collect(),
            elapsed_ms: gathered.elapsed_ms,
        })
    }

    async fn run_contract_net(
        &mut self,
        request: wit::CallForProposals,
    ) -> Result<wit::ContractOutcome, Error> {
        self.check_content(&request.task, request.content_type.as_deref())?;
        let bid_deadline =
            host::check_deadline("bid-deadline-ms", u64::from(request.bid_deadline_ms))
                .map_err(Error::InvalidInput)?;
        let result_deadline =
            host::check_deadline("result-deadline-ms", u64::from(request.result_deadline_ms))
                .map_err(Error::InvalidInput)?;
        let award_deadline = match request.award {
            wit::Award::Initiator => {
                host::check_deadline("award-deadline-ms", u64::from(request.award_deadline_ms))
                    .map_err(Error::InvalidInput)?
            }
            _ => std::time::Duration::ZERO,
        };
        check_conversation_id(request.conversation_id.as_deref())?;
        let outcome = contract_net::run(
            &self.agent.bus,
            &self.initiator(),
            contract_net::ContractNet {
                capability: request.capability,
                task: request.task,
                content_type: content_type(request.content_type),
                award: match request.award {
                    wit::Award::Lowest => contract_net::Award::Lowest,
                    wit::Award::Highest => contract_net::Award::Highest,
                    wit::Award::Initiator => contract_net::Award::Initiator,
                },
                bid_deadline,
                result_deadline,
                fallback: request.fallback,
                award_deadline,
                conversation_id: request.conversation_id,
            },
        )
        .await
        .map_err(|e| delivery_error(&e))?;
        Ok(to_wit_outcome(outcome))
    }

    async fn award_contract(
        &mut self,
        conversation_id: String,
        choice: Vec<String>,
    ) -> Result<wit::ContractOutcome, Error> {
        check_conversation_id(Some(&conversation_id))?;
        contract_net::award(&self.agent.bus, &self.initiator(), &conversation_id, choice)
            .await
            .map(to_wit_outcome)
            .map_err(|e| match e {
                contract_net::AwardError::NotFound(_) => Error::NotFound(e.to_string()),
                contract_net::AwardError::Invalid(why) => Error::InvalidInput(why),
            })
    }

    async fn propose(&mut self, bid: f64, text: String) -> Reply {
        Reply {
            performative: to_wit_performative(Performative::Propose),
            content: contract_net::proposal_content(bid, &text),
            content_type: Some(acl::APPLICATION_JSON.to_string()),
        }
    }

    async fn publish(
        &mut self,
        topic: String,
        content: String,
        content_type: Option<String>,
    ) -> Result<wit::Published, Error> {
        host::publish::check_topic(&topic).map_err(Error::InvalidInput)?;
        self.check_content(&content, content_type.as_deref())?;
        let published = host::publish::run(
            self.agent.bus.as_ref(),
            &self.initiator(),
            host::publish::Publication {
                topic,
                content,
                content_type: self::content_type(content_type),
                conversation_id: None,
            },
        )
        .await
        .map_err(|e| delivery_error(&e))?;
        Ok(wit::Published {
            conversation_id: published.conversation_id,
            subscribers: published.subscribers,
        })
    }

    async fn subscribe(&mut self, topic: String) -> Result<(), Error> {
        self.agent
            .bus
            .subscribe(&self.agent.id, &topic, true)
            .await
            .map(|_| ())
            .map_err(|e| subscribe_error(&e))
    }

    async fn unsubscribe(&mut self, topic: String) -> Result<bool, Error> {
        let was = self
            .agent
            .bus
            .subscriptions(&self.agent.id)
            .contains(&topic);
        if !was {
            return Ok(false);
        }
        self.agent
            .bus
            .subscribe(&self.agent.id, &topic, false)
            .await
            .map(|_| true)
            .map_err(|e| subscribe_error(&e))
    }

    async fn subscriptions(&mut self) -> Result<Vec<String>, Error> {
        Ok(self.agent.bus.subscriptions(&self.agent.id))
    }

    async fn conversation(&mut self, id: Option<String>) -> Result<wit::ConversationInfo, Error> {
        let id = match id {
            Some(id) => id,
            None => self
                .span
                .as_ref()
                .map(|s| s.conversation_id.clone())
                .ok_or_else(|| {
                    Error::NotFound(
                        "no message is being handled, so there is no current conversation; \
                         give a conversation id"
                            .into(),
                    )
                })?,
        };
        let found = self.agent.bus.conversations().get(
            &id,
            Viewer::Participant(&self.agent.name),
            now_ms(),
        );
        let c = found.ok_or_else(|| {
            Error::NotFound(format!(
                "no conversation `{}` this agent takes part in (it never existed, or it expired)",
                crate::conversations::model::cut(&id, 64)
            ))
        })?;
        Ok(wit::ConversationInfo {
            id: c.id,
            protocol: c.protocol.as_str().to_string(),
            initiator: c.initiator,
            participants: c.participants,
            state: c.state.as_str().to_string(),
            deadline: c.deadline,
            messages: c.messages,
            outcome: c.outcome,
        })
    }
}

impl HostState {
    /// The calling agent, as a protocol's initiator: its messages go out
    /// in its name, under the span of the message it is handling.
    fn initiator(&self) -> Initiator {
        let parent = self.span.as_ref().map(crate::trace::SpanContext::as_parent);
        self.agent.initiator(parent)
    }

    /// Refuses content over the caps on what a guest may send.
    pub(super) fn check_content(
        &self,
        content: &str,
        content_type: Option<&str>,
    ) -> Result<(), Error> {
        match crate::runtime::instance::oversized("the message", content, content_type) {
            Some(why) => Err(Error::InvalidInput(why)),
            None => Ok(()),
        }
    }
}

fn check_conversation_id(id: Option<&str>) -> Result<(), Error> {
    match id {
        Some(id) => crate::conversations::model::check_id(id).map_err(Error::InvalidInput),
        None => Ok(()),
    }
}

fn content_type(given: Option<String>) -> String {
    given.unwrap_or_else(|| acl::TEXT_PLAIN.to_string())
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_wit_outcome(outcome: contract_net::Outcome) -> wit::ContractOutcome {
    wit::ContractOutcome {
        conversation_id: outcome.conversation_id,
        completed: outcome.winner.is_some(),
        awaiting_award: outcome.award_within_ms.is_some(),
        winner: outcome.winner,
        result: outcome.result,
        reason: outcome.reason,
        proposals: outcome
            .proposals
            .into_iter()
            .map(|p| wit::Proposal {
                status: bid_status(p.status),
                bid: p.bid,
                answer: to_wit_answer(p.answer),
            })
            .collect(),
        attempts: outcome
            .attempts
            .into_iter()
            .map(|a| wit::Attempt {
                bid: a.bid,
                completed: a.completed,
                answer: to_wit_answer(a.answer),
            })
            .collect(),
        rejected: outcome.rejected,
        elapsed_ms: outcome.elapsed_ms,
    }
}

fn to_wit_answer(a: Answer) -> wit::Answer {
    wit::Answer {
        agent: a.agent,
        status: match a.status {
            Status::Replied => wit::AnswerStatus::Replied,
            Status::Refused => wit::AnswerStatus::Refused,
            Status::Failed => wit::AnswerStatus::Failed,
            Status::Timeout => wit::AnswerStatus::Timeout,
            Status::Unanswered => wit::AnswerStatus::Unanswered,
        },
        performative: a.performative.map(to_wit_performative),
        content: a.content,
        error: a.error,
        elapsed_ms: a.elapsed_ms,
    }
}

fn bid_status(status: contract_net::BidStatus) -> wit::BidStatus {
    use contract_net::BidStatus as Host;
    match status {
        Host::Proposed => wit::BidStatus::Proposed,
        Host::Refused => wit::BidStatus::Refused,
        Host::Failed => wit::BidStatus::Failed,
        Host::Timeout => wit::BidStatus::Timeout,
        Host::Unanswered => wit::BidStatus::Unanswered,
        Host::Invalid => wit::BidStatus::Invalid,
    }
}

fn subscribe_error(e: &SubscribeError) -> Error {
    match e {
        SubscribeError::Invalid(why) => Error::InvalidInput(why.clone()),
        SubscribeError::UnknownAgent(_) => Error::NotFound(e.to_string()),
        SubscribeError::Storage(_) => Error::Internal(e.to_string()),
    }
}
