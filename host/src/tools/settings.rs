//! `tools:` in `caxton.yaml`: settings of the built-in tools.

use serde::{Deserialize, Serialize};

/// `tools:` — settings of the built-in tools.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Domains `http_client` may reach (subdomains included). Empty: none.
    pub http_allowed_domains: Vec<String>,
    /// Let `http_client` reach loopback, private and link-local addresses
    /// (an allowed domain that resolves there is refused otherwise).
    pub http_allow_private_addresses: bool,
}

/// One entry of `mcp_servers:` — an MCP server whose tools agents may
/// use, as `NAME/TOOL`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program to start (it speaks MCP on stdin/stdout); or `url`.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    /// An MCP server reached over Streamable HTTP instead of a command.
    #[serde(default)]
    pub url: Option<String>,
    /// For `url`: the environment variable holding a bearer token to send.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Its environment: only these variables and `PATH`/`HOME` (the
    /// server's own secrets are not handed on).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Longest wait for one tool call.
    #[serde(default = "default_mcp_timeout")]
    pub timeout_secs: u64,
    /// Largest answer handed to an agent; longer ones are refused.
    #[serde(default = "default_mcp_max_result")]
    pub max_result_bytes: usize,
}

fn default_mcp_timeout() -> u64 {
    30
}

fn default_mcp_max_result() -> usize {
    256 * 1024
}
