//! `caxton:agent/messaging`: agents talking to agents through the registry,
//! plus the conversions between the WIT message types and [`AclMessage`].

use std::time::Duration;

use crate::messaging::{AclMessage, Address, DeliveryError, MessageBus, Performative, acl};
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent::messaging::{self, Outgoing};
use crate::runtime::bindings::caxton::agent::types::{self as wit, Error};

/// Longest a `request` may wait, whatever the agent asks for.
const MAX_REQUEST_TIMEOUT_MS: u32 = 300_000;

impl messaging::Host for HostState {
    async fn send(&mut self, msg: Outgoing) -> Result<(), Error> {
        let (to, message) = self.outgoing(msg)?;
        let registry = self.agent.registry.clone();
        registry.resolve(&to).map_err(|e| delivery_error(&e))?;
        let from = self.agent.id.clone();
        tokio::spawn(async move {
            let result = registry
                .request(
                    Some(&from),
                    to,
                    message,
                    Duration::from_millis(u64::from(MAX_REQUEST_TIMEOUT_MS)),
                )
                .await;
            if let Err(e) = result {
                tracing::debug!(from, "fire-and-forget message not handled: {e}");
            }
        });
        Ok(())
    }

    async fn request(&mut self, msg: Outgoing, timeout_ms: u32) -> Result<wit::Message, Error> {
        let (to, message) = self.outgoing(msg)?;
        let timeout = Duration::from_millis(u64::from(timeout_ms.clamp(1, MAX_REQUEST_TIMEOUT_MS)));
        let delivered = self
            .agent
            .registry
            .request(Some(&self.agent.id), to, message, timeout)
            .await
            .map_err(|e| delivery_error(&e))?;
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
            conversation_id: Some(msg.conversation_id.unwrap_or_else(acl::new_message_id)),
            reply_with: None,
            in_reply_to: None,
        };
        Ok((to, message))
    }
}

fn delivery_error(e: &DeliveryError) -> Error {
    let text = e.to_string();
    match e {
        DeliveryError::UnknownAgent(_) | DeliveryError::UnknownCapability(_) => {
            Error::NotFound(text)
        }
        DeliveryError::SelfRequest(_) => Error::Denied(text),
        DeliveryError::Timeout { .. } => Error::Timeout(text),
        DeliveryError::Suspended(_)
        | DeliveryError::MailboxFull { .. }
        | DeliveryError::Stopped(_) => Error::Unavailable(text),
        DeliveryError::AgentFailed { .. } => Error::Internal(text),
    }
}

pub(crate) fn to_wit_message(m: AclMessage) -> wit::Message {
    wit::Message {
        id: m.id,
        performative: to_wit_performative(m.performative),
        sender: m.sender,
        receiver: m.receiver,
        capability: m.capability,
        content: m.content,
        content_type: m.content_type,
        conversation_id: m.conversation_id,
        reply_with: m.reply_with,
        in_reply_to: m.in_reply_to,
    }
}

pub(crate) fn to_wit_performative(p: Performative) -> wit::Performative {
    use wit::Performative as W;
    match p {
        Performative::Request => W::Request,
        Performative::Inform => W::Inform,
        Performative::QueryIf => W::QueryIf,
        Performative::QueryRef => W::QueryRef,
        Performative::Propose => W::Propose,
        Performative::AcceptProposal => W::AcceptProposal,
        Performative::RejectProposal => W::RejectProposal,
        Performative::Agree => W::Agree,
        Performative::Refuse => W::Refuse,
        Performative::Failure => W::Failure,
        Performative::NotUnderstood => W::NotUnderstood,
        Performative::Cfp => W::Cfp,
        Performative::Confirm => W::Confirm,
        Performative::Disconfirm => W::Disconfirm,
        Performative::Subscribe => W::Subscribe,
        Performative::Cancel => W::Cancel,
    }
}

pub(crate) fn from_wit_performative(p: wit::Performative) -> Performative {
    use wit::Performative as W;
    match p {
        W::Request => Performative::Request,
        W::Inform => Performative::Inform,
        W::QueryIf => Performative::QueryIf,
        W::QueryRef => Performative::QueryRef,
        W::Propose => Performative::Propose,
        W::AcceptProposal => Performative::AcceptProposal,
        W::RejectProposal => Performative::RejectProposal,
        W::Agree => Performative::Agree,
        W::Refuse => Performative::Refuse,
        W::Failure => Performative::Failure,
        W::NotUnderstood => Performative::NotUnderstood,
        W::Cfp => Performative::Cfp,
        W::Confirm => Performative::Confirm,
        W::Disconfirm => Performative::Disconfirm,
        W::Subscribe => Performative::Subscribe,
        W::Cancel => Performative::Cancel,
    }
}

/// Text of a WIT error as the agent returned it.
pub(crate) fn describe_wit_error(e: &Error) -> String {
    match e {
        Error::NotFound(t) => format!("not found: {t}"),
        Error::InvalidInput(t) => format!("invalid input: {t}"),
        Error::Denied(t) => format!("denied: {t}"),
        Error::Timeout(t) => format!("timeout: {t}"),
        Error::Unavailable(t) => format!("unavailable: {t}"),
        Error::Internal(t) => format!("internal: {t}"),
    }
}
