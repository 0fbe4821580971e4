//! Conversations are first-class: every message belongs to one. The
//! registry records each request and its answer here (one hook around
//! every delivery: REST, streaming, OpenAI, MCP and agents asking agents),
//! the host protocols (broadcast, contract net) open and close theirs, and
//! the API lists, shows and cancels them (`/api/v1/conversations`).
//!
//! A conversation's id is the messages' `conversation_id`, the same id
//! traces use. Its initiator is whoever sent its first request (a
//! principal's name, or an agent's); only that principal and admins see
//! it. Kept in memory ([`store`]), bounded by `conversations:` in
//! `caxton.yaml` ([`settings`]); a restart forgets them.

pub mod model;
pub mod settings;
pub mod store;

pub use model::{Conversation, ConversationState, Protocol};
pub use settings::ConversationsConfig;
pub use store::{
    CancelError, Cancelled, ConversationStore, Filter, Page, Recorded, Started, Viewer, entry,
    now_ms,
};
