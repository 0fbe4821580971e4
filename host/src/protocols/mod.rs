//! Protocols the host runs on top of the message bus, for any initiator
//! (the REST API, the CLI, a config agent's tool): one message to every
//! agent of a capability ([`broadcast`]), and a call for proposals with an
//! award by bid ([`contract_net`]). Each runs in one conversation that
//! records every step; the conversation ends with the protocol's outcome.

pub mod broadcast;
pub mod contract_net;
pub mod publish;

use std::time::{Duration, Instant};

use crate::messaging::{
    AclMessage, Address, Delivered, DeliveryError, MessageBus, Performative, acl,
};

/// Longest a protocol may run (a deadline, a result's wait).
pub const MAX_DEADLINE: Duration = Duration::from_secs(600);

/// Who starts a protocol.
#[derive(Debug, Clone)]
pub struct Initiator {
    /// The name its messages are sent under (a principal's or agent's).
    pub name: String,
    /// The sending agent's id, when an agent runs the protocol.
    pub agent_id: Option<String>,
    /// The span the protocol's messages hang under.
    pub trace_parent: Option<crate::trace::TraceParent>,
}

/// How one participant's part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// It replied (any performative but the ones below), or handled the
    /// message without a reply.
    Replied,
    /// It replied `refuse` or `not-understood`.
    Refused,
    /// It replied `failure`, or the delivery failed (trap, busy, stopped).
    Failed,
    /// No reply before the deadline.
    Timeout,
    /// The protocol stopped waiting for it before it answered (enough
    /// answers came, or the conversation was cancelled).
    Unanswered,
}

/// One participant's answer to one message of a protocol.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub agent: String,
    pub status: Status,
    /// The reply's performative, when one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performative: Option<Performative>,
    /// The reply's content, when one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Why no reply came (delivery failures and timeouts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From the message's sending to its answer.
    pub elapsed_ms: u64,
}

impl Answer {
    fn from_result(
        agent: &str,
        started: Instant,
        result: Result<Delivered, DeliveryError>,
    ) -> Answer {
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut answer = Answer {
            agent: agent.to_string(),
            status: Status::Replied,
            performative: None,
            content: None,
            error: None,
            elapsed_ms,
        };
        match result {
            Ok(Delivered {
                reply: Some(reply), ..
            }) => {
                answer.status = match reply.performative {
                    Performative::Refuse | Performative::NotUnderstood => Status::Refused,
                    Performative::Failure => Status::Failed,
                    _ => Status::Replied,
                };
                answer.performative = Some(reply.performative);
                answer.content = Some(reply.content);
            }
            Ok(Delivered { reply: None, .. }) => {}
            Err(DeliveryError::Timeout { .. }) => {
                answer.status = Status::Timeout;
                answer.error = Some("no reply before the deadline".into());
            }
            Err(e @ DeliveryError::Cancelled(_)) => {
                answer.status = Status::Unanswered;
                answer.error = Some(e.to_string());
            }
            Err(e) => {
                answer.status = Status::Failed;
                answer.error = Some(e.to_string());
            }
        }
        answer
    }

    fn unanswered(agent: &str, started: Instant, why: &str) -> Answer {
        Answer {
            agent: agent.to_string(),
            status: Status::Unanswered,
            performative: None,
            content: None,
            error: Some(why.to_string()),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// One message of a protocol, addressed to `agent` by name.
struct Outgoing<'a> {
    initiator: &'a Initiator,
    conversation_id: &'a str,
    performative: Performative,
    content: String,
    content_type: String,
    capability: Option<String>,
}

impl Outgoing<'_> {
    fn to(&self, agent: &str) -> AclMessage {
        AclMessage {
            id: acl::new_message_id(),
            performative: self.performative,
            sender: self.initiator.name.clone(),
            receiver: Some(agent.to_string()),
            capability: self.capability.clone(),
            content: self.content.clone(),
            content_type: self.content_type.clone(),
            conversation_id: Some(self.conversation_id.to_string()),
            reply_with: None,
            in_reply_to: None,
            trace_parent: self.initiator.trace_parent,
        }
    }

    /// Sends to `agent` and waits at most `timeout` for the answer.
    async fn ask(&self, bus: &dyn MessageBus, agent: &str, timeout: Duration) -> Answer {
        let started = Instant::now();
        let result = bus
            .request(
                self.initiator.agent_id.as_deref(),
                Address::Agent(agent.to_string()),
                self.to(agent),
                timeout,
            )
            .await;
        Answer::from_result(agent, started, result)
    }
}

/// Checks a deadline given by a caller: at least 1 ms, at most
/// [`MAX_DEADLINE`]; `what` names it in the error.
pub fn check_deadline(what: &str, ms: u64) -> Result<Duration, String> {
    let limit = u64::try_from(MAX_DEADLINE.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 || ms > limit {
        return Err(format!(
            "{what} is {ms} ms; it must be between 1 and {limit}"
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
