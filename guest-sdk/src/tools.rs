//! Tools the agent is allowed to call.

pub use crate::bindings::caxton::agent::tools::{ToolInfo, invoke, list_tools};
