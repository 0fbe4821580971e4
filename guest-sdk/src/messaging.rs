//! Messages to other agents, addressed by name or by capability.

use crate::bindings::caxton::agent0_1_0::messaging::{self, Outgoing};
use crate::{Error, Message, Performative};

/// Default time [`ask`] and [`ask_capability`] wait for a reply.
pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;

/// Builds an outgoing message to the agent called (or with id) `receiver`.
pub fn to_agent(
    receiver: &str,
    performative: Performative,
    content: impl Into<String>,
) -> Outgoing {
    Outgoing {
        performative,
        receiver: Some(receiver.to_string()),
        capability: None,
        content: content.into(),
        content_type: None,
        conversation_id: None,
    }
}

/// Builds an outgoing message to whichever agent declares `capability`.
pub fn to_capability(
    capability: &str,
    performative: Performative,
    content: impl Into<String>,
) -> Outgoing {
    Outgoing {
        performative,
        receiver: None,
        capability: Some(capability.to_string()),
        content: content.into(),
        content_type: None,
        conversation_id: None,
    }
}

/// Sends without waiting for an answer.
pub fn send(msg: &Outgoing) -> Result<(), Error> {
    messaging::send(msg)
}

/// Sends and waits up to `timeout_ms` for the reply.
pub fn request(msg: &Outgoing, timeout_ms: u32) -> Result<Message, Error> {
    messaging::request(msg, timeout_ms)
}

/// Sends a `request` to the named agent and returns the content of its reply.
pub fn ask(receiver: &str, content: impl Into<String>) -> Result<String, Error> {
    request(
        &to_agent(receiver, Performative::Request, content),
        DEFAULT_TIMEOUT_MS,
    )
    .map(|m| m.content)
}

/// Sends a `request` to an agent with `capability` and returns the content of its reply.
pub fn ask_capability(capability: &str, content: impl Into<String>) -> Result<String, Error> {
    request(
        &to_capability(capability, Performative::Request, content),
        DEFAULT_TIMEOUT_MS,
    )
    .map(|m| m.content)
}
