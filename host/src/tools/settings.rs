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

impl McpServerConfig {
    /// Exactly one of `command` and `url`, and a name `SERVER/TOOL` can use.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
            return Err(format!(
                "mcp_servers: `{name}` cannot name a server (its tools are called `{name}/TOOL`): \
                 use letters, digits, `-` or `_`"
            ));
        }
        match (&self.command, &self.url) {
            (Some(_), None) => Ok(()),
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(())
            }
            (None, Some(url)) => Err(format!(
                "mcp_servers.{name}.url must be an http:// or https:// URL, not `{}`",
                crate::redact::url(url)
            )),
            _ => Err(format!(
                "mcp_servers.{name}: give exactly one of `command` (a program speaking MCP on \
                 stdio) and `url` (a Streamable HTTP endpoint)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(command: Option<&str>, url: Option<&str>) -> McpServerConfig {
        McpServerConfig {
            command: command.map(str::to_string),
            args: Vec::new(),
            url: url.map(str::to_string),
            bearer_token_env: None,
            env: Default::default(),
            timeout_secs: 30,
            max_result_bytes: 1024,
        }
    }

    #[test]
    fn an_mcp_server_is_a_command_or_a_url() {
        assert!(server(Some("npx"), None).validate("memory").is_ok());
        assert!(
            server(None, Some("https://x/mcp"))
                .validate("search")
                .is_ok()
        );
        let both = server(Some("npx"), Some("https://x/mcp")).validate("m");
        assert!(both.is_err_and(|e| e.contains("exactly one")));
        assert!(server(None, None).validate("m").is_err());
        assert!(server(None, Some("ftp://x")).validate("m").is_err());
        assert!(server(Some("npx"), None).validate("a/b").is_err());
    }
}
