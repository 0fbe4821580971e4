//! What an agent deployment carries, and the checks only agents need
//! (memory grants); the checks every upload needs are in
//! `runtime::upload`.

use crate::runtime::limits::RequestedLimits;
pub use crate::runtime::upload::DeployError;

/// A deployment as the API or CLI hands it over.
#[derive(Debug)]
pub struct DeployRequest {
    pub name: String,
    /// The agent's id; a new one when `None`. Given when a cluster node
    /// starts an agent deployed elsewhere, so it is the same agent.
    pub id: Option<String>,
    pub component: Vec<u8>,
    pub limits: RequestedLimits,
    /// JSON object passed to the agent's `init`; `None` means `{}`.
    pub config: Option<serde_json::Value>,
    /// Shared memory scopes to grant: `workspace`, `global`.
    pub memory_grants: Vec<String>,
    /// The agent may use the server's LLM providers.
    pub llm: bool,
    /// Tools the agent may call through the `tools` import.
    pub tools: Vec<String>,
}

/// Most tools one agent may be granted.
pub const MAX_TOOLS: usize = 64;

/// Most capabilities one agent may declare. Every capability is a routing
/// key kept in memory and listed in every agent view, so an agent cannot
/// declare an unbounded number of them.
pub const MAX_CAPABILITIES: usize = 256;
/// Longest capability a WASM agent's `describe` may declare, in bytes.
pub const MAX_CAPABILITY_BYTES: usize = 128;
/// Longest description a WASM agent's `describe` may give, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Checks what a WASM agent said about itself in `describe`: it is stored
/// with the agent and shown in every listing, so it must be of bounded
/// size. The error says which part is too large and what the cap is.
pub fn check_described(description: &str, capabilities: &[String]) -> Result<(), DeployError> {
    let refuse = |what: String| {
        DeployError::InvalidDescription(format!(
            "{what}; make the agent's `describe` answer smaller and rebuild it"
        ))
    };
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(refuse(format!(
            "its description is {} bytes, more than the {MAX_DESCRIPTION_BYTES} allowed",
            description.len()
        )));
    }
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(refuse(format!(
            "it declares {} capabilities, more than the {MAX_CAPABILITIES} allowed",
            capabilities.len()
        )));
    }
    if let Some(long) = capabilities.iter().find(|c| c.len() > MAX_CAPABILITY_BYTES) {
        let start: String = long.chars().take(32).collect();
        return Err(refuse(format!(
            "its capability `{start}…` is {} bytes, more than the {MAX_CAPABILITY_BYTES} allowed",
            long.len()
        )));
    }
    Ok(())
}

/// Checks the topics an agent's `describe` subscribes it to, as the REST
/// route would: each a valid topic name, at most the per-agent cap.
pub fn check_subscriptions(topics: &[String]) -> Result<(), DeployError> {
    let refuse = |what: String| {
        DeployError::InvalidDescription(format!(
            "{what}; fix the `subscriptions` of the agent's `describe` and rebuild it"
        ))
    };
    if topics.len() > super::topics::MAX_PER_AGENT {
        return Err(refuse(format!(
            "it subscribes to {} topics, more than the {} allowed",
            topics.len(),
            super::topics::MAX_PER_AGENT
        )));
    }
    for topic in topics {
        super::topics::check_topic(topic).map_err(refuse)?;
    }
    Ok(())
}

/// Checks every granted tool exists (`known`), once each.
pub fn check_tools(tools: &[String], known: impl Fn(&str) -> bool) -> Result<(), DeployError> {
    if tools.len() > MAX_TOOLS {
        return Err(DeployError::InvalidConfig(format!(
            "{} tools granted; an agent may be granted at most {MAX_TOOLS}",
            tools.len()
        )));
    }
    for (i, tool) in tools.iter().enumerate() {
        if tools[..i].contains(tool) {
            return Err(DeployError::InvalidConfig(format!(
                "the tool `{tool}` is granted twice; list it once"
            )));
        }
        if !known(tool) {
            return Err(DeployError::InvalidConfig(format!(
                "no tool named `{tool}`; `caxton tools list` shows the available tools (deploy a tool component first with `caxton tools deploy`)"
            )));
        }
    }
    Ok(())
}

/// Checks memory grants name shared scopes.
pub fn check_grants(grants: &[String]) -> Result<(), DeployError> {
    for grant in grants {
        if grant != "workspace" && grant != "global" {
            return Err(DeployError::InvalidConfig(format!(
                "memory_grants may contain `workspace` and `global`, not `{grant}` (an agent always has its own scope)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_of_itself_over_the_caps_is_refused() {
        let ok = vec!["chat".to_string(); MAX_CAPABILITIES];
        assert!(check_described(&"d".repeat(MAX_DESCRIPTION_BYTES), &ok).is_ok());
        let refused = |description: &str, capabilities: &[String]| {
            check_described(description, capabilities)
                .expect_err("refused")
                .to_string()
        };
        let long = refused(&"d".repeat(MAX_DESCRIPTION_BYTES + 1), &ok);
        assert!(long.contains("description is 4097 bytes"), "{long}");
        let many = refused("", &vec!["chat".to_string(); MAX_CAPABILITIES + 1]);
        assert!(many.contains("257 capabilities"), "{many}");
        let wide = refused("", &["c".repeat(MAX_CAPABILITY_BYTES + 1)]);
        assert!(
            wide.contains("129 bytes") && wide.contains("`describe`"),
            "{wide}"
        );
    }
}
