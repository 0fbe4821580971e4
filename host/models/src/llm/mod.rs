//! A local chat model: a quantized GGUF LLM run in-process with candle.
//!
//! - [`files`]: fetching and verifying the default model
//!   (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) into the model cache;
//! - [`generator`]: loading a GGUF and generating text, streaming pieces;
//! - [`template`]: the prompt format the model's own GGUF chat template
//!   describes (Jinja, rendered as Hugging Face renders it);
//! - [`chatml`]: the conversation types, and ChatML with Qwen's tool
//!   section for a GGUF that carries no template;
//! - [`tool_calls`]: lenient extraction of tool calls from the model's text.

pub mod chatml;
pub mod files;
pub mod generator;
pub mod template;
pub mod tool_calls;

pub use chatml::{Speaker, ToolDecl, Turn, render};
pub use files::{LLM_MODEL_NAME, LlmModelStatus, llm_model_path, llm_model_status, pull_llm};
pub use generator::{GenerateParams, Generation, LlmError, LocalLlm, StopReason};
pub use template::{ChatTemplate, TemplateError};
pub use tool_calls::{ParsedReply, ParsedToolCall, parse_reply};
