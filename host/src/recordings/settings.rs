//! `recordings:` in `caxton.yaml`.

use serde::{Deserialize, Serialize};

/// Whose conversations are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordWhich {
    /// Config agents' (the default: their model calls are the ones worth
    /// replaying).
    Config,
    /// Every agent's.
    All,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingSettings {
    pub record: RecordWhich,
    /// Recordings older than this are deleted.
    pub retention_hours: u64,
    /// All recordings together; the oldest conversations go first.
    pub max_bytes: u64,
    /// One conversation; events past it are counted, not kept.
    pub max_conversation_bytes: u64,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            record: RecordWhich::Config,
            retention_hours: 24 * 7,
            max_bytes: 256 * 1024 * 1024,
            max_conversation_bytes: 4 * 1024 * 1024,
        }
    }
}

impl RecordingSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_conversation_bytes == 0 || self.max_conversation_bytes > self.max_bytes {
            return Err(format!(
                "recordings.max_conversation_bytes ({}) must be between 1 and recordings.max_bytes ({})",
                self.max_conversation_bytes, self.max_bytes
            ));
        }
        if self.retention_hours == 0 {
            return Err(
                "recordings.retention_hours must be at least 1 (or set record: none)".into(),
            );
        }
        Ok(())
    }
}
