//! What an agent deployment carries, and the checks only agents need
//! (memory grants); the checks every upload needs are in
//! `runtime::upload`.

use crate::runtime::limits::RequestedLimits;
pub use crate::runtime::upload::DeployError;

/// A deployment as the API or CLI hands it over.
#[derive(Debug)]
pub struct DeployRequest {
    pub name: String,
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
