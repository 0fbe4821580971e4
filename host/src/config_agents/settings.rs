//! `agents:` in `caxton.yaml`: where config agents are read from, and how
//! long what they remember of a conversation is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `agents:` — config agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Directory of `*.md` / `*.toml` agent definitions (relative paths are
    /// relative to the working directory).
    pub dir: PathBuf,
    /// Watch the directory and reload changed agents.
    pub hot_reload: bool,
    /// Limits on the conversation histories config agents keep.
    pub conversations: ConversationLimits,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            dir: PathBuf::from("agents"),
            hot_reload: true,
            conversations: ConversationLimits::default(),
        }
    }
}

/// `agents.conversations:` — a config agent keeps each caller's
/// conversation in its key-value store. Anyone with a `message` token can
/// start a new conversation with every message, so the histories expire
/// and are capped, or they would grow the database without limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationLimits {
    /// A conversation unused for this long is forgotten (7 days).
    pub ttl_secs: u64,
    /// Most conversations one agent keeps; past it, the least recently
    /// used go first.
    pub max_per_agent: u32,
    /// Largest stored history of one conversation, in bytes; the oldest
    /// turns are dropped to stay under it.
    pub max_bytes: u64,
}

impl Default for ConversationLimits {
    fn default() -> Self {
        ConversationLimits {
            ttl_secs: 7 * 24 * 3600,
            max_per_agent: 1000,
            max_bytes: 64 * 1024,
        }
    }
}
