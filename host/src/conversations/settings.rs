//! `conversations:` in `caxton.yaml`: how many conversations are kept, how
//! much of each, and for how long once finished.

use serde::{Deserialize, Serialize};

/// `conversations:` — the server's record of every conversation (kept in
/// memory; a restart forgets them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationsConfig {
    /// A finished conversation (completed, failed, cancelled, expired) is
    /// forgotten this long after its last message (1 day).
    pub ttl_secs: u64,
    /// Most conversations kept; past it, the oldest finished go first.
    pub max_conversations: usize,
    /// Most messages kept in one conversation's history; the oldest go.
    pub max_history: usize,
    /// Largest history of one conversation, in bytes; the oldest messages go.
    pub max_bytes: usize,
    /// Largest total of all histories, in bytes; the oldest finished
    /// conversations go.
    pub max_total_bytes: usize,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        ConversationsConfig {
            ttl_secs: 86_400,
            max_conversations: 10_000,
            max_history: 100,
            max_bytes: 65_536,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ConversationsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_conversations == 0 || self.max_history == 0 {
            return Err(
                "conversations.max_conversations and conversations.max_history must be at least 1"
                    .into(),
            );
        }
        if self.max_bytes < 1024 || self.max_total_bytes < self.max_bytes {
            return Err(format!(
                "conversations.max_bytes must be at least 1024 and at most conversations.max_total_bytes ({}); it is {}",
                self.max_total_bytes, self.max_bytes
            ));
        }
        Ok(())
    }
}
