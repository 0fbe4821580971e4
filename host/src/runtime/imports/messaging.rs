//! `caxton:agent/messaging`: agents talking to agents through the message
//! bus (the conversions to and from WIT types are in `runtime::wit_convert`).

use std::time::Duration;

use crate::messaging::{AclMessage, Address, DeliveryError, acl};
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent0_1_0::messaging::{self, Outgoing};
use crate::runtime::bindings::caxton::agent0_1_0::types::{self as wit, Error};
use crate::runtime::wit_convert::{from_wit_performative, to_wit_message};

/// Longest a `request` may wait, whatever the agent asks for.
const MAX_REQUEST_TIMEOUT_MS: u32 = 300_000;

impl messaging::Host for HostState {
    async fn send(&mut self, msg: Outgoing) -> Result<(), Error> {
        // Durable: on disk before `send` returns (see `crate::outbox`).
        let (to, message) = self.outgoing(msg)?;
        self.agent
            .bus
            .post(Some(&self.agent.id), to, message)
            .await
            .map_err(|e| delivery_error(&e))
    }

    async fn request(&mut self, msg: Outgoing, timeout_ms: u32) -> Result<wit::Message, Error> {
        let (to, message) = self.outgoing(msg)?;
        let timeout = Duration::from_millis(u64::from(timeout_ms.clamp(1, MAX_REQUEST_TIMEOUT_MS)));
        let budgets = self.agent.budgets.get().cloned();
        let _on_behalf = match (&budgets, &message.conversation_id) {
            (Some(b), Some(c)) => Some(b.on_behalf_of(c, &self.agent.name)),
            _ => None,
        };
        let (asked_of, asked) = (
            message
                .receiver
                .clone()
                .or_else(|| {
                    message
                        .capability
                        .clone()
                        .map(|c| format!("capability:{c}"))
                })
                .unwrap_or_default(),
            message.content.clone(),
        );
        if let Some(served) = self
            .replay()
            .and_then(|replay| replay.ask(&asked_of, &asked))
        {
            // A replay: the recorded answer, the other agent left alone.
            return served.map_err(Error::Internal).map(|content| {
                to_wit_message(AclMessage {
                    id: acl::new_message_id(),
                    performative: crate::messaging::Performative::Inform,
                    sender: asked_of,
                    receiver: Some(message.sender.clone()),
                    capability: None,
                    content,
                    content_type: acl::TEXT_PLAIN.into(),
                    conversation_id: message.conversation_id.clone(),
                    reply_with: None,
                    in_reply_to: Some(message.id.clone()),
                    trace_parent: None,
                })
            });
        }
        let started = std::time::Instant::now();
        let answered = self
            .agent
            .bus
            .request(Some(&self.agent.id), to, message, timeout)
            .await;
        self.record(|| crate::recordings::Event::Ask {
            agent: self.agent.name.clone(),
            to: asked_of,
            content: asked,
            reply: answered
                .as_ref()
                .ok()
                .and_then(|d| d.reply.as_ref().map(|r| r.content.clone())),
            error: answered.as_ref().err().map(ToString::to_string),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        let delivered = answered.map_err(|e| delivery_error(&e))?;
        match delivered.reply {
            Some(reply) => Ok(to_wit_message(reply)),
            None => Err(Error::Internal(format!(
                "agent `{}` handled the request but sent no reply",
                delivered.agent_name
            ))),
        }
    }
}

impl HostState {
    /// Validates an outgoing message and turns it into an address and a full message.
    fn outgoing(&self, msg: Outgoing) -> Result<(Address, AclMessage), Error> {
        self.check_content(&msg.content, msg.content_type.as_deref())?;
        let to = match (msg.receiver, msg.capability) {
            (Some(r), None) if !r.is_empty() => Address::Agent(r),
            (None, Some(c)) if !c.is_empty() => Address::Capability(c),
            (Some(_), Some(_)) => {
                return Err(Error::InvalidInput(
                    "set either receiver or capability, not both".into(),
                ));
            }
            _ => {
                return Err(Error::InvalidInput(
                    "set a receiver (agent name) or a capability to address the message".into(),
                ));
            }
        };
        let (receiver, capability) = match &to {
            Address::Agent(a) => (Some(a.clone()), None),
            Address::Capability(c) => (None, Some(c.clone())),
        };
        let message = AclMessage {
            id: acl::new_message_id(),
            performative: from_wit_performative(msg.performative),
            sender: self.agent.name.clone(),
            receiver,
            capability,
            content: msg.content,
            content_type: msg
                .content_type
                .unwrap_or_else(|| acl::TEXT_PLAIN.to_string()),
            // A request made while handling a message continues its
            // conversation unless the agent names another.
            conversation_id: Some(
                msg.conversation_id
                    .or_else(|| self.span.as_ref().map(|s| s.conversation_id.clone()))
                    .unwrap_or_else(acl::new_message_id),
            ),
            reply_with: None,
            in_reply_to: None,
            trace_parent: self.span.as_ref().map(crate::trace::SpanContext::as_parent),
        };
        Ok((to, message))
    }
}

pub(super) fn delivery_error(e: &DeliveryError) -> Error {
    let text = e.to_string();
    match e {
        DeliveryError::UnknownAgent(_) | DeliveryError::UnknownCapability(_) => {
            Error::NotFound(text)
        }
        DeliveryError::SelfRequest(_) => Error::Denied(text),
        DeliveryError::Timeout { .. } => Error::Timeout(text),
        DeliveryError::Suspended(_)
        | DeliveryError::MailboxFull { .. }
        | DeliveryError::Stopped(_)
        | DeliveryError::Cancelled(_)
        | DeliveryError::NotQueued(_)
        | DeliveryError::Unreachable { .. } => Error::Unavailable(text),
        DeliveryError::AgentFailed { .. } => Error::Internal(text),
    }
}
