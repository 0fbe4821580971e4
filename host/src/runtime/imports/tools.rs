//! `caxton:agent/tools`: the tools the calling agent lists, through the
//! [`ToolHost`](crate::runtime::ToolHost) seam (the registry in `crate::tools`). The allow-list is checked on every call, not
//! only when the agent is validated.

use crate::runtime::HostState;
use crate::runtime::ToolError;
use crate::runtime::bindings::caxton::agent0_1_0::tools::{self, ToolInfo};
use crate::runtime::bindings::caxton::agent0_1_0::types::Error;
use crate::trace::SpanKind;

impl tools::Host for HostState {
    async fn list_tools(&mut self) -> Vec<ToolInfo> {
        let tools = &self.agent.tool_host;
        self.agent
            .tools
            .iter()
            .filter_map(|name| tools.spec(name))
            .map(|t| ToolInfo {
                name: t.name,
                description: t.description,
                parameters_schema: t.parameters.to_string(),
            })
            .collect()
    }

    async fn invoke(&mut self, name: String, arguments_json: String) -> Result<String, Error> {
        let agent = self.agent.clone();
        self.agent.log.push("tool", &format!("call {name}"));
        if let Some(answer) = self
            .replay()
            .and_then(|replay| replay.tool_call(&name, &arguments_json))
        {
            return answer.map_err(Error::Internal);
        }
        let span = self.child_span();
        let started = std::time::Instant::now();
        let result = agent.tool_host.invoke(&agent, &name, &arguments_json).await;
        self.record(|| crate::recordings::Event::Tool {
            agent: agent.name.clone(),
            tool: name.clone(),
            arguments: arguments_json.clone(),
            result: result.as_ref().ok().map(ToString::to_string),
            error: result.as_ref().err().map(ToString::to_string),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        if let Some(span) = span {
            let error = result.as_ref().err().map(ToString::to_string);
            let kind = SpanKind::Tool { tool: name.clone() };
            agent.trace.finish(span, kind, error.as_deref());
        }
        match result {
            Ok(value) => Ok(value.to_string()),
            Err(e) => {
                self.agent.log.push("tool", &format!("{name} failed: {e}"));
                Err(match e {
                    ToolError::NotFound(t) => Error::NotFound(t),
                    ToolError::Denied(t) => Error::Denied(t),
                    ToolError::InvalidInput(t) => Error::InvalidInput(t),
                    ToolError::Failed(t) => Error::Internal(t),
                })
            }
        }
    }
}
