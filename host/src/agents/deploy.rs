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
