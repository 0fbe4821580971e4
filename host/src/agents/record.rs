//! What is stored about a deployed agent: everything a restart needs to
//! bring it back exactly as it was.

use serde::{Deserialize, Serialize};

use crate::runtime::limits::ResourceLimits;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    /// UUID assigned at deployment.
    pub id: String,
    /// Unique, human-chosen name; lookups accept it wherever an id is accepted.
    pub name: String,
    /// sha256 (hex) of the component bytes, the key of the stored component.
    pub component_sha256: String,
    pub limits: ResourceLimits,
    /// Capabilities as the component described them at deployment.
    pub capabilities: Vec<String>,
    pub description: String,
    /// JSON object passed to the component's `init`.
    pub config_json: String,
    /// RFC 3339 time of deployment.
    pub created_at: String,
    /// An operator suspended the agent; it stays suspended across restarts.
    #[serde(default)]
    pub suspended: bool,
    /// Shared memory scopes granted besides the agent's own: `workspace`, `global`.
    #[serde(default)]
    pub memory_grants: Vec<String>,
    /// How the agent is defined.
    #[serde(default)]
    pub kind: AgentKind,
    /// Tools the agent's model may call (checked at every call).
    #[serde(default)]
    pub tools: Vec<String>,
    /// LLM provider for this agent; `None`: the server's default.
    #[serde(default)]
    pub llm_provider: Option<String>,
    /// A WASM agent may call the `llm` import only when granted at deploy
    /// (it spends the operator's provider key); config agents always may.
    #[serde(default)]
    pub llm_granted: bool,
    /// For config agents: the definition file it was loaded from.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// An uploaded WebAssembly component.
    #[default]
    Wasm,
    /// A markdown/TOML definition run by the built-in interpreter component.
    Config,
    /// An agent on another server, spoken to over A2A (`a2a_agents:` in
    /// `caxton.yaml`); nothing of it runs here.
    A2a,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Wasm => "wasm",
            AgentKind::Config => "config",
            AgentKind::A2a => "a2a",
        }
    }
}
