//! The embedded local model: a GGUF chat model run in-process with candle
//! (`caxton_models::llm`). The zero-config default: with no remote provider
//! configured, config agents answer through it, no API key needed.
//!
//! The model is loaded on first use (about 1.5 s, 1 GiB) and kept. It owns
//! its KV cache, so requests take turns; each runs on a blocking thread and
//! stops at the next token once its caller has given up (timeout, client
//! gone), so an abandoned request does not hold the model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use caxton_models::llm::{
    GenerateParams, LocalLlm, ParsedReply, Speaker, StopReason, ToolDecl, Turn, parse_reply,
};
use serde_json::Value;

use super::{
    ChatRequest, ChatResponse, FinishReason, LlmError, LlmProvider, Role, TextSink, ToolCall,
};
use crate::llm::settings::LocalLlmConfig;

pub struct Local {
    /// The GGUF file: the configured one, else the default model in the cache.
    model_path: PathBuf,
    /// The model cache, when the default model is used (for the hint a
    /// user gets when it is missing).
    cache_dir: Option<PathBuf>,
    max_tokens: u32,
    model: Arc<Mutex<Option<LocalLlm>>>,
}

impl Local {
    pub fn new(config: &LocalLlmConfig, cache_dir: &std::path::Path) -> Self {
        let (model_path, cache_dir) = match &config.model_path {
            Some(path) => (path.clone(), None),
            None => (
                caxton_models::llm_model_path(cache_dir),
                Some(cache_dir.to_path_buf()),
            ),
        };
        Local {
            model_path,
            cache_dir,
            max_tokens: config.max_tokens.max(1),
            model: Arc::new(Mutex::new(None)),
        }
    }

    pub fn model_path(&self) -> &std::path::Path {
        &self.model_path
    }

    /// The model's name once loaded.
    pub fn loaded_name(&self) -> Option<String> {
        self.model
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.name().to_string()))
    }
}

/// Sets the flag when dropped: the request's future went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn unavailable(e: impl std::fmt::Display) -> LlmError {
    LlmError::Unavailable(format!("the local model cannot run: {e}"))
}

fn turns(request: &ChatRequest) -> Vec<Turn> {
    request
        .messages
        .iter()
        .map(|m| Turn {
            speaker: match m.role {
                Role::System => Speaker::System,
                Role::User => Speaker::User,
                Role::Assistant => Speaker::Assistant,
                Role::Tool => Speaker::Tool,
            },
            content: m.content.clone(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| {
                    let arguments = serde_json::from_str(&c.arguments_json)
                        .unwrap_or(Value::Object(Default::default()));
                    (c.name.clone(), arguments)
                })
                .collect(),
        })
        .collect()
}

fn tools(request: &ChatRequest) -> Vec<ToolDecl> {
    request
        .tools
        .iter()
        .map(|t| ToolDecl {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: serde_json::from_str(&t.parameters_schema)
                .unwrap_or_else(|_| serde_json::json!({"type": "object"})),
        })
        .collect()
}

#[async_trait::async_trait]
impl LlmProvider for Local {
    fn name(&self) -> &str {
        "local"
    }

    fn default_model(&self) -> &str {
        caxton_models::LLM_MODEL_NAME
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.answer(request, None).await
    }

    async fn chat_streaming(
        &self,
        request: ChatRequest,
        sink: TextSink,
    ) -> Result<ChatResponse, LlmError> {
        self.answer(request, Some(sink)).await
    }
}

/// Decides, from the first visible characters, whether generated text is
/// an answer (streamed on) or, with tools offered, probably a tool call
/// (held back: JSON is not something to show a user).
struct StreamGate {
    sink: Option<TextSink>,
    tools_offered: bool,
    held: String,
    /// `None` until the first non-blank text arrives.
    streaming: Option<bool>,
}

impl StreamGate {
    fn push(&mut self, piece: &str) {
        let Some(sink) = &self.sink else { return };
        match self.streaming {
            Some(true) => {
                let _ = sink.send(piece.to_string());
            }
            Some(false) => {}
            None => {
                self.held.push_str(piece);
                let visible = self.held.trim_start();
                if visible.is_empty() {
                    return;
                }
                let looks_like_call = visible.starts_with(['{', '[', '<', '`']);
                let stream = !(self.tools_offered && looks_like_call);
                self.streaming = Some(stream);
                if stream {
                    let _ = sink.send(visible.to_string());
                }
            }
        }
    }
}

impl Local {
    async fn answer(
        &self,
        request: ChatRequest,
        sink: Option<TextSink>,
    ) -> Result<ChatResponse, LlmError> {
        if !self.model_path.exists() {
            let missing = match &self.cache_dir {
                Some(cache_dir) => caxton_models::llm_model_status(cache_dir).detail,
                None => format!(
                    "the local model file {} (llm.local.model_path) does not exist",
                    self.model_path.display()
                ),
            };
            return Err(LlmError::Unavailable(format!(
                "{missing}; or configure a remote provider (llm.openai / llm.anthropic) in caxton.yaml"
            )));
        }
        let prompt_turns = turns(&request);
        let declared = tools(&request);
        let params = GenerateParams {
            max_tokens: request.max_tokens.unwrap_or(self.max_tokens).max(1) as usize,
            temperature: request.temperature.map(f64::from),
            ..GenerateParams::default()
        };
        let mut gate = StreamGate {
            sink,
            tools_offered: !request.tools.is_empty(),
            held: String::new(),
            streaming: None,
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_guard = CancelOnDrop(cancelled.clone());
        let model = self.model.clone();
        let path = self.model_path.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut slot = model
                .lock()
                .map_err(|_| unavailable("a previous request panicked"))?;
            if slot.is_none() {
                let started = std::time::Instant::now();
                let loaded = LocalLlm::load(&path).map_err(unavailable)?;
                let (prompt_format, template_problem) = loaded.prompt_format();
                tracing::info!(model = loaded.name(), path = %path.display(),
                    load_ms = started.elapsed().as_millis() as u64, prompt_format,
                    template_problem, simd = caxton_models::cpu::simd_kernels(),
                    "local LLM loaded");
                *slot = Some(loaded);
            }
            let Some(llm) = slot.as_mut() else {
                return Err(unavailable("the model did not load"));
            };
            let prompt = llm
                .prompt(&prompt_turns, &declared)
                .map_err(|e| LlmError::Invalid(e.to_string()))?;
            let generation = llm
                .generate(&prompt, params, &mut |piece| {
                    gate.push(piece);
                    !cancelled.load(Ordering::Relaxed)
                })
                .map_err(|e| LlmError::Invalid(e.to_string()))?;
            tracing::debug!(
                prompt_tokens = generation.prompt_tokens,
                completion_tokens = generation.completion_tokens,
                prefill_tok_s = generation.prefill_tokens_per_second(),
                decode_tok_s = generation.decode_tokens_per_second(),
                "local LLM answered"
            );
            Ok(generation)
        });
        let generation = work
            .await
            .map_err(|e| unavailable(format!("the inference thread failed: {e}")))??;
        let names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        let ParsedReply { text, tool_calls } = parse_reply(&generation.text, &names);
        let tool_calls: Vec<ToolCall> = tool_calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: format!("call_{i}"),
                name: c.name,
                arguments_json: c.arguments.to_string(),
            })
            .collect();
        let finish_reason = if !tool_calls.is_empty() {
            FinishReason::ToolCalls
        } else if generation.stop == StopReason::Length {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        Ok(ChatResponse {
            content: (!text.is_empty()).then_some(text),
            tool_calls,
            finish_reason,
            prompt_tokens: generation.prompt_tokens as u32,
            completion_tokens: generation.completion_tokens as u32,
        })
    }
}
