//! `caxton:agent/tools`: no tools are registered in this host version, so
//! the list is empty and every invocation is refused with the reason.

use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent::tools::{self, ToolInfo};
use crate::runtime::bindings::caxton::agent::types::Error;

impl tools::Host for HostState {
    async fn list_tools(&mut self) -> Vec<ToolInfo> {
        Vec::new()
    }

    async fn invoke(&mut self, name: String, _arguments_json: String) -> Result<String, Error> {
        Err(Error::NotFound(format!(
            "tool `{name}` is not available to this agent; `caxton tools list` shows the registered tools"
        )))
    }
}
