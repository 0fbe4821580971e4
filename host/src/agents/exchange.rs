//! The hook the registry calls around every delivery: [`Exchange`] records
//! the request in its conversation when it is sent and its answer when it
//! comes — or, if the sender stops waiting (its future is dropped), that
//! none came.

use std::sync::Arc;
use std::time::Duration;

use crate::conversations::{Cancelled, ConversationStore, Recorded, entry, now_ms};
use crate::messaging::{AclMessage, Delivered, DeliveryError, Performative};

/// One request in flight, as the conversation store sees it.
pub struct Exchange {
    store: Arc<ConversationStore>,
    conversation_id: String,
    request_id: String,
    sender: String,
    receiver: String,
    done: bool,
    /// Fires when the conversation is cancelled.
    cancelled: Option<Cancelled>,
}

impl Exchange {
    /// Records `message`, sent to `receiver` (the agent it was routed to),
    /// as a request of its conversation.
    pub fn begin(
        store: &Arc<ConversationStore>,
        message: &AclMessage,
        from_agent: bool,
        receiver: &str,
        timeout: Duration,
    ) -> Exchange {
        let now = now_ms();
        let conversation_id = message
            .conversation_id
            .clone()
            .unwrap_or_else(|| message.id.clone());
        let cancelled = store.open(
            Recorded {
                conversation_id: &conversation_id,
                entry: entry(
                    &message.id,
                    message.performative.as_str(),
                    &message.sender,
                    receiver,
                    &message.content,
                    now,
                ),
                request: Some((
                    from_agent,
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                )),
            },
            now,
        );
        Exchange {
            store: store.clone(),
            conversation_id,
            request_id: message.id.clone(),
            sender: message.sender.clone(),
            receiver: receiver.to_string(),
            done: false,
            cancelled,
        }
    }

    /// The conversation's id.
    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// Resolves when the conversation is cancelled (never, if it is not).
    pub async fn cancelled(&mut self) {
        match &mut self.cancelled {
            Some(cancelled) => cancelled.wait().await,
            None => std::future::pending().await,
        }
    }

    /// Records the answer: the reply (a `failure` fails the
    /// conversation), no reply, or the delivery error.
    pub fn finish(mut self, result: &Result<Delivered, DeliveryError>) {
        self.done = true;
        let now = now_ms();
        let (recorded, failed) = match result {
            Ok(Delivered {
                reply: Some(reply), ..
            }) => (
                entry(
                    &reply.id,
                    reply.performative.as_str(),
                    &reply.sender,
                    reply.receiver.as_deref().unwrap_or(&self.sender),
                    &reply.content,
                    now,
                ),
                reply.performative == Performative::Failure,
            ),
            Ok(Delivered { reply: None, .. }) => (
                entry(
                    &self.request_id,
                    "none",
                    &self.receiver,
                    &self.sender,
                    "(handled, no reply)",
                    now,
                ),
                false,
            ),
            Err(e) => (self.error_entry(&e.to_string(), now), true),
        };
        self.store
            .close(&self.conversation_id, recorded, failed, now);
    }

    fn error_entry(&self, text: &str, now: u64) -> crate::conversations::model::Entry {
        entry(
            &self.request_id,
            Performative::Failure.as_str(),
            &self.receiver,
            &self.sender,
            text,
            now,
        )
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            let now = now_ms();
            let recorded = self.error_entry("the sender stopped waiting for the reply", now);
            self.store.close(&self.conversation_id, recorded, true, now);
        }
    }
}
