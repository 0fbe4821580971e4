//! Tools the agent is allowed to call.

pub use crate::bindings::caxton::agent0_1_0::tools::{ToolInfo, invoke, list_tools};
