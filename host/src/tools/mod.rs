//! The tool registry: what an agent's model can call through the `tools`
//! import. Built-in tools live in the host ([`builtin`]); an agent may only
//! call the tools its definition lists, checked at every call.

pub mod builtin;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::runtime::AgentContext;

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

/// One callable tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments object.
    fn schema(&self) -> Value;
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError>;
}

/// What `caxton tools list` shows about a tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub kind: &'static str,
}

pub struct ToolRegistry {
    tools: BTreeMap<&'static str, Arc<dyn Tool>>,
}

impl ToolRegistry {
    /// Every built-in tool; `http_allowed_domains` bounds `http_client`.
    pub fn with_builtins(http_allowed_domains: Vec<String>) -> Self {
        let mut tools: BTreeMap<&'static str, Arc<dyn Tool>> = BTreeMap::new();
        for tool in builtin::all(http_allowed_domains) {
            tools.insert(tool.name(), tool);
        }
        ToolRegistry { tools }
    }

    pub fn names(&self) -> Vec<String> {
        self.tools.keys().map(|n| n.to_string()).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    pub fn info(&self, name: &str) -> Option<ToolInfo> {
        self.tools.get(name).map(|t| ToolInfo {
            name: t.name().to_string(),
            description: t.description().to_string(),
            parameters: t.schema(),
            kind: "builtin",
        })
    }

    pub fn list(&self) -> Vec<ToolInfo> {
        self.tools.keys().filter_map(|n| self.info(n)).collect()
    }

    /// Calls `name` for `caller`, which must list the tool.
    pub async fn invoke(
        &self,
        caller: &Arc<AgentContext>,
        name: &str,
        arguments_json: &str,
    ) -> Result<Value, ToolError> {
        if !caller.tools.iter().any(|t| t == name) {
            return Err(ToolError::Denied(format!(
                "agent `{}` may not call the tool `{name}`: it is not in the agent's `tools` list ({})",
                caller.name,
                if caller.tools.is_empty() {
                    "empty".to_string()
                } else {
                    caller.tools.join(", ")
                }
            )));
        }
        let tool = self.tools.get(name).ok_or_else(|| {
            ToolError::NotFound(format!(
                "no tool named `{name}`; `caxton tools list` shows the available tools"
            ))
        })?;
        let args: Value = if arguments_json.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(arguments_json).map_err(|e| {
                ToolError::InvalidInput(format!(
                    "the arguments for `{name}` are not JSON ({e}); expected an object matching its schema"
                ))
            })?
        };
        if !args.is_object() {
            return Err(ToolError::InvalidInput(format!(
                "the arguments for `{name}` must be a JSON object"
            )));
        }
        tool.invoke(args, caller).await
    }
}
