//! Publish: one message to every agent subscribed to a topic, each a
//! durable fire-and-forget message (see `crate::outbox`), so every
//! subscriber gets each publication once, after a restart too. The
//! publication is one conversation (protocol `publish`).

use crate::conversations::{Protocol, Started, now_ms};
use crate::messaging::{AclMessage, Address, DeliveryError, MessageBus, Performative, acl};

use super::Initiator;

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 128;
/// A topic is 1–128 characters of letters, digits, `.`, `_`, `-`, `:` (one
/// URL path segment as it is).
pub fn check_topic(topic: &str) -> std::result::Result<(), String> {
    let valid = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a topic: use 1 to {MAX_TOPIC_LEN} letters, digits, `.`, `_`, `-` or `:` (e.g. `orders.created`)",
            topic.chars().take(MAX_TOPIC_LEN).collect::<String>()
        ))
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Publication {
    pub topic: String,
    pub content: String,
    pub content_type: String,
    /// A new one is made when absent.
    pub conversation_id: Option<String>,
}

/// What a publication reached.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Published {
    pub topic: String,
    pub conversation_id: String,
    /// The subscribers it was queued for, in name order (none is fine:
    /// nobody listens yet).
    pub subscribers: Vec<String>,
    /// The message id each subscriber gets, in the same order.
    pub message_ids: Vec<String>,
}

/// Queues `publication` for every subscriber of its topic but the
/// initiator itself.
pub async fn run(
    bus: &dyn MessageBus,
    initiator: &Initiator,
    publication: Publication,
) -> Result<Published, DeliveryError> {
    let subscribers = bus.subscribers(&publication.topic, initiator.agent_id.as_deref());
    let conversation_id = publication
        .conversation_id
        .clone()
        .unwrap_or_else(acl::new_message_id);
    let store = bus.conversations().clone();
    store.begin(
        Started {
            conversation_id: &conversation_id,
            protocol: Protocol::Publish,
            initiator: &initiator.name,
            from_agent: initiator.agent_id.is_some(),
            deadline_ms: 0,
        },
        now_ms(),
    );
    let messages: Vec<(Address, AclMessage)> = subscribers
        .iter()
        .map(|agent| {
            (
                Address::Agent(agent.clone()),
                AclMessage {
                    id: acl::new_message_id(),
                    performative: Performative::Inform,
                    sender: initiator.name.clone(),
                    receiver: Some(agent.clone()),
                    capability: None,
                    content: publication.content.clone(),
                    content_type: publication.content_type.clone(),
                    conversation_id: Some(conversation_id.clone()),
                    reply_with: None,
                    in_reply_to: None,
                    trace_parent: initiator.trace_parent,
                },
            )
        })
        .collect();
    let message_ids = messages.iter().map(|(_, m)| m.id.clone()).collect();
    let queued = if messages.is_empty() {
        Ok(0)
    } else {
        bus.post_all(initiator.agent_id.as_deref(), messages).await
    };
    let outcome = match &queued {
        Ok(n) => format!("queued for {n} subscribers of {}", publication.topic),
        Err(e) => format!("not queued: {e}"),
    };
    store.end(&conversation_id, &outcome, queued.is_err(), now_ms());
    queued?;
    Ok(Published {
        topic: publication.topic,
        conversation_id,
        subscribers,
        message_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_short_plain_names() {
        assert!(check_topic("orders.created").is_ok());
        assert!(check_topic("a.b:c-d_e").is_ok());
        for bad in ["", "has space", "a/b", "é", &"x".repeat(129)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
