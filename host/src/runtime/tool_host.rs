//! The seam between the `tools` import and the tool registry: the runtime
//! asks through [`ToolHost`] and never sees how tools are found or run
//! (the registry in `crate::tools` implements it).

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use super::AgentContext;

#[derive(Debug, Error)]
pub enum ToolError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Failed(String),
}

/// What a model is told about one tool.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

#[async_trait::async_trait]
pub trait ToolHost: Send + Sync {
    /// The tool named `name`, if there is one.
    fn spec(&self, name: &str) -> Option<ToolSpec>;

    /// Calls `name` for `caller`, which must list the tool.
    async fn invoke(
        &self,
        caller: &Arc<AgentContext>,
        name: &str,
        arguments_json: &str,
    ) -> Result<Value, ToolError>;
}
