//! The tool registry: what an agent's model can call through the `tools`
//! import. Built-in tools live in the host ([`builtin`]); tool components
//! are deployed over REST ([`component`]). An agent may only call the tools
//! its definition lists, checked at every call.

pub mod builtin;
pub mod component;
pub mod mcp;
pub mod settings;
pub mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

pub use crate::runtime::ToolError;
use crate::runtime::{AgentContext, ToolHost, ToolSpec};

/// One callable tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
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
    /// `builtin`, `component` or `mcp`.
    pub kind: &'static str,
    /// For tool components: what was deployed, and when.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<ToolRecordView>,
}

/// The deployment facts of a tool component shown next to its schema.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRecordView {
    pub component_sha256: String,
    pub size_bytes: u64,
    pub resource_limits: crate::runtime::limits::ResourceLimits,
    pub deployed_at: String,
}

pub struct ToolRegistry {
    builtins: BTreeMap<String, Arc<dyn Tool>>,
    /// Absent when the registry only serves offline validation.
    components: Option<component::ComponentTools>,
    /// Tools of the configured MCP servers, as `SERVER/TOOL`.
    mcp: mcp::McpServers,
}

impl ToolRegistry {
    /// Every built-in tool; `settings` bound `http_client`.
    pub fn with_builtins(settings: &settings::ToolsConfig) -> Self {
        let builtins = builtin::all(settings)
            .into_iter()
            .map(|tool| (tool.name().to_string(), tool))
            .collect();
        ToolRegistry {
            builtins,
            components: None,
            mcp: mcp::McpServers::default(),
        }
    }

    /// Adds the tools of running MCP servers.
    pub fn with_mcp(mut self, servers: mcp::McpServers) -> Self {
        self.mcp = servers;
        self
    }

    /// How each configured MCP server is doing.
    pub fn mcp_health(&self) -> BTreeMap<String, mcp::ServerHealth> {
        self.mcp.health()
    }

    /// Adds deployable tool components (the server has them; offline
    /// validation does not).
    pub fn with_components(mut self, components: component::ComponentTools) -> Self {
        self.components = Some(components);
        self
    }

    /// The tool components, when this registry has them.
    pub fn components(&self) -> Option<&component::ComponentTools> {
        self.components.as_ref()
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtins.contains_key(name)
    }

    fn component_tools(&self) -> Vec<Arc<component::ComponentTool>> {
        self.components
            .as_ref()
            .map(|c| c.all())
            .unwrap_or_default()
    }

    /// Every tool's name: built-in ones first, then components.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.builtins.keys().cloned().collect();
        names.extend(self.component_tools().iter().map(|t| t.name().to_string()));
        names.extend(self.mcp.all().iter().map(|t| t.name().to_string()));
        names
    }

    /// [`ToolRegistry::names`], plus `SERVER/*` for each MCP server that
    /// is not connected (its tools cannot be checked now).
    pub fn names_to_validate(&self) -> Vec<String> {
        let mut names = self.names();
        names.extend(
            self.mcp
                .disconnected()
                .into_iter()
                .map(|s| format!("{s}/*")),
        );
        names
    }

    /// Whether `name` is a tool — or may be one: a tool of a configured
    /// MCP server that is not connected right now cannot be checked.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some() || self.mcp.may_exist(name)
    }

    fn find(&self, name: &str) -> Option<Arc<dyn Tool>> {
        if let Some(tool) = self.builtins.get(name) {
            return Some(tool.clone());
        }
        if let Some(component) = self.components.as_ref().and_then(|c| c.get(name)) {
            return Some(component as Arc<dyn Tool>);
        }
        self.mcp.get(name)
    }

    fn mcp_info(tool: &Arc<dyn Tool>) -> ToolInfo {
        ToolInfo {
            name: tool.name().to_string(),
            description: tool.description().to_string(),
            parameters: tool.schema(),
            kind: "mcp",
            deployment: None,
        }
    }

    pub fn info(&self, name: &str) -> Option<ToolInfo> {
        if let Some(tool) = self.builtins.get(name) {
            return Some(ToolInfo {
                name: tool.name().to_string(),
                description: tool.description().to_string(),
                parameters: tool.schema(),
                kind: "builtin",
                deployment: None,
            });
        }
        if let Some(tool) = self.components.as_ref().and_then(|c| c.get(name)) {
            return Some(component_info(&tool));
        }
        self.mcp.get(name).map(|t| Self::mcp_info(&t))
    }

    pub fn list(&self) -> Vec<ToolInfo> {
        let mut list: Vec<ToolInfo> = self.builtins.keys().filter_map(|n| self.info(n)).collect();
        list.extend(self.component_tools().iter().map(|t| component_info(t)));
        list.extend(self.mcp.all().iter().map(Self::mcp_info));
        list
    }
}

#[async_trait::async_trait]
impl ToolHost for ToolRegistry {
    fn spec(&self, name: &str) -> Option<ToolSpec> {
        self.info(name).map(|t| ToolSpec {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
        })
    }

    async fn invoke(
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
        let tool = self.find(name).ok_or_else(|| {
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
        check_arguments(name, &tool.schema(), &args)?;
        let started = std::time::Instant::now();
        let result = tool.invoke(args, caller).await;
        crate::observe::TOOL_CALL_SECONDS.observe(started.elapsed());
        result
    }
}

/// Most schema violations listed in one error.
const MAX_ARGUMENT_PROBLEMS: usize = 5;

/// Checks `args` against the tool's JSON Schema before the call, so a
/// model that got them wrong is told what and where (the error goes back
/// to it as the tool's answer) instead of the tool guessing. A schema the
/// validator cannot compile (an MCP server's, say, with a `$ref` it cannot
/// resolve) is the tool's own business: the call goes ahead.
fn check_arguments(name: &str, schema: &Value, args: &Value) -> Result<(), ToolError> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => {
            tracing::debug!(tool = name, error = %e, "tool schema not checkable; calling without checking");
            return Ok(());
        }
    };
    let problems: Vec<String> = validator
        .iter_errors(args)
        .take(MAX_ARGUMENT_PROBLEMS)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(ToolError::InvalidInput(format!(
        "the arguments for `{name}` do not match its schema: {}; correct them and call it again",
        problems.join("; ")
    )))
}

/// What `caxton tools list` shows about a tool component.
pub fn component_info(tool: &component::ComponentTool) -> ToolInfo {
    let record = tool.record();
    ToolInfo {
        name: record.name.clone(),
        description: record.description.clone(),
        parameters: record.parameters.clone(),
        kind: "component",
        deployment: Some(ToolRecordView {
            component_sha256: record.component_sha256.clone(),
            size_bytes: record.size_bytes,
            resource_limits: record.limits,
            deployed_at: record.deployed_at.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = json!({"type": "object", "required": ["csv"],
            "properties": {"csv": {"type": "string"}, "limit": {"type": "integer"}}});
        assert!(check_arguments("csv_parser", &schema, &json!({"csv": "a"})).is_ok());
        let Err(ToolError::InvalidInput(message)) =
            check_arguments("csv_parser", &schema, &json!({"csv": "a", "limit": "ten"}))
        else {
            panic!("a string limit must be refused");
        };
        assert!(
            message.contains("/limit") && message.contains("integer"),
            "{message}"
        );
        let Err(ToolError::InvalidInput(message)) =
            check_arguments("csv_parser", &schema, &json!({}))
        else {
            panic!("a missing field must be refused");
        };
        assert!(message.contains("csv"), "{message}");
        // An uncompilable schema does not block the call.
        assert!(check_arguments("x", &json!({"type": 5}), &json!({})).is_ok());
    }
}
