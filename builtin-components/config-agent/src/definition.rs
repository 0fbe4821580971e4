//! The part of a config agent's definition the interpreter needs. The host
//! parses and validates the markdown file and hands it over as JSON in
//! `init`; unknown fields are ignored so the host can add fields freely.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Topics the agent listens to from its start (`subscriptions:`).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub system_prompt: String,
    #[serde(default)]
    pub user_prompt_template: Option<String>,
    #[serde(default)]
    pub llm: Option<LlmSettings>,
    #[serde(default)]
    pub memory: MemorySettings,
    #[serde(default)]
    pub conversation: ConversationSettings,
    /// Most LLM calls per message (tool calls included), so a model that
    /// keeps calling tools is stopped.
    #[serde(default = "default_max_steps")]
    pub max_tool_steps: u32,
    /// The server's limits on kept conversations (`agents.conversations`),
    /// added by the host beside the definition.
    #[serde(default)]
    pub history_limits: HistoryLimits,
}

/// How long and how much conversation history is kept; see `history`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HistoryLimits {
    pub ttl_secs: u64,
    pub max_per_agent: u32,
    pub max_bytes: u64,
}

/// The host's defaults, for a host that sends no limits.
impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            ttl_secs: 7 * 24 * 3600,
            max_per_agent: 1000,
            max_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LlmSettings {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MemorySettings {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub auto_store: bool,
    /// `agent` (private), `workspace` or `global`.
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConversationSettings {
    #[serde(default = "default_turns")]
    pub max_turns: u32,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        ConversationSettings {
            max_turns: default_turns(),
        }
    }
}

fn default_turns() -> u32 {
    10
}

fn default_max_steps() -> u32 {
    8
}
