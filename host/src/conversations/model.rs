//! What a conversation is: who started it, who took part, where it stands,
//! and a bounded history of its messages.

use serde::{Deserialize, Serialize};

/// Longest content a history entry keeps, in bytes (cut at a character
/// boundary; `content_bytes` says how long it was).
pub const ENTRY_CONTENT_BYTES: usize = 2048;

/// Longest outcome text kept, in bytes.
pub const OUTCOME_BYTES: usize = 300;

/// Most participants listed for one conversation.
pub const MAX_PARTICIPANTS: usize = 64;

/// Longest conversation id kept, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks a conversation id a caller chose: 1 to 256 bytes, no control
/// characters.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(format!(
            "conversation_id must be 1 to {MAX_ID_BYTES} bytes without control characters; it is {} bytes",
            id.len()
        ));
    }
    Ok(())
}

/// How the conversation's messages flow: `request` (a message and its
/// reply, agents asking agents included), `broadcast` and `contract-net`
/// (run by the host); `publish` and `a2a` are reserved for topics and A2A.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Request,
    Broadcast,
    ContractNet,
    Publish,
    A2a,
}

impl Protocol {
    /// Its name, as in JSON (`contract-net`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Request => "request",
            Protocol::Broadcast => "broadcast",
            Protocol::ContractNet => "contract-net",
            Protocol::Publish => "publish",
            Protocol::A2a => "a2a",
        }
    }

    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text {
            "request" => Ok(Protocol::Request),
            "broadcast" => Ok(Protocol::Broadcast),
            "contract-net" => Ok(Protocol::ContractNet),
            "publish" => Ok(Protocol::Publish),
            "a2a" => Ok(Protocol::A2a),
            other => Err(format!(
                "unknown protocol `{other}`; protocols are request, broadcast, contract-net, publish and a2a"
            )),
        }
    }
}

/// Where a conversation stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConversationState {
    /// A message is waiting for its reply.
    Active,
    /// The last reply came back (not a `failure`).
    Completed,
    /// The last reply was a `failure`, or no reply came (error, timeout).
    Failed,
    /// Cancelled by its initiator or an admin.
    Cancelled,
    /// Still waiting long after its deadline: nobody will answer.
    Expired,
}

impl ConversationState {
    /// Its name, as in JSON (`completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationState::Active => "active",
            ConversationState::Completed => "completed",
            ConversationState::Failed => "failed",
            ConversationState::Cancelled => "cancelled",
            ConversationState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Result<ConversationState, String> {
        match text {
            "active" => Ok(ConversationState::Active),
            "completed" => Ok(ConversationState::Completed),
            "failed" => Ok(ConversationState::Failed),
            "cancelled" => Ok(ConversationState::Cancelled),
            "expired" => Ok(ConversationState::Expired),
            other => Err(format!(
                "unknown state `{other}`; states are active, completed, failed, cancelled and expired"
            )),
        }
    }

    pub fn is_finished(self) -> bool {
        self != ConversationState::Active
    }
}

/// Who started a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InitiatorKind {
    /// A caller of the API (a token's name, or `user`).
    Principal,
    /// An agent, asking in a conversation of its own.
    Agent,
}

/// One message of a conversation, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// The message's id (for a delivery error: the id of the message that
    /// got no answer).
    pub id: String,
    /// `request`, `inform`, `failure`, …
    pub performative: String,
    pub sender: String,
    pub receiver: String,
    /// The content, cut to 2 KiB.
    pub content: String,
    /// The content's whole length in bytes.
    pub content_bytes: usize,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Entry {
    /// Bytes this entry counts against the caps.
    pub fn size(&self) -> usize {
        64 + self.id.len()
            + self.performative.len()
            + self.sender.len()
            + self.receiver.len()
            + self.content.len()
    }
}

/// A conversation, with its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversation {
    /// The messages' `conversation_id`; traces use the same id.
    pub id: String,
    pub protocol: Protocol,
    /// The principal (token name, `user`) or agent that started it.
    pub initiator: String,
    pub initiator_kind: InitiatorKind,
    /// Everyone who sent or received one of its messages, in order of
    /// appearance (at most 64).
    pub participants: Vec<String>,
    pub state: ConversationState,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, the last message or change.
    pub updated_at: String,
    /// RFC 3339: when the latest pending request stops waiting.
    pub deadline: Option<String>,
    /// Messages recorded, those dropped from the history included.
    pub messages: u64,
    /// Oldest messages dropped from the history by the caps.
    pub dropped: u64,
    /// The final reply's content (cut to 300 bytes), or why it failed.
    pub outcome: Option<String>,
    /// Oldest first; absent in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Entry>>,
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
