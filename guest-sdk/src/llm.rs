//! Chat completion through the host's configured LLM provider.

pub use crate::bindings::caxton::agent0_1_0::llm::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, Role, ToolCall, ToolDefinition, Usage,
    chat,
};

impl ChatMessage {
    /// A message with a role and text, no tool calls.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}
