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
