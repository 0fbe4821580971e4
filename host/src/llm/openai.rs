//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`):
//! OpenAI itself, Ollama, vLLM, llama.cpp server, LM Studio.

use serde_json::{Value, json};

use super::sse::{Accumulator, PartialCalls, SseEvent, stream_chat};
use super::{
    ChatRequest, ChatResponse, FinishReason, LlmError, LlmProvider, Role, TextSink, ToolCall, http,
};
use crate::llm::settings::RemoteLlmConfig;

pub struct OpenAi {
    base_url: String,
    model: String,
    /// `None` for servers that need no key (local Ollama, vLLM).
    api_key_env: Option<String>,
    client: reqwest::Client,
}

impl OpenAi {
    pub fn new(config: &RemoteLlmConfig) -> Result<Self, LlmError> {
        Ok(OpenAi {
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| "https://api.openai.com/v1".into())
                .trim_end_matches('/')
                .to_string(),
            model: config.model.clone().unwrap_or_else(|| "gpt-4o-mini".into()),
            api_key_env: config.api_key_env.clone(),
            client: http::client()?,
        })
    }
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// The request body, in the chat-completions shape.
pub fn body(request: &ChatRequest, model: &str) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let mut out = json!({"role": role(m.role), "content": m.content});
            if !m.tool_calls.is_empty() {
                out["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments_json}})
                    })
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                out["tool_call_id"] = json!(id);
            }
            out
        })
        .collect();
    let mut body = json!({"model": model, "messages": messages});
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                let schema: Value = serde_json::from_str(&t.parameters_schema)
                    .unwrap_or_else(|_| json!({"type": "object"}));
                json!({"type": "function",
                       "function": {"name": t.name, "description": t.description, "parameters": schema}})
            })
            .collect();
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = request.max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

/// Reads a chat-completions answer.
pub fn parse(answer: &Value) -> Result<ChatResponse, LlmError> {
    let bad = |what: &str| LlmError::Provider {
        provider: "openai".into(),
        detail: format!(
            "unexpected answer ({what}): {}",
            answer.to_string().chars().take(300).collect::<String>()
        ),
    };
    let choice = answer["choices"].get(0).ok_or_else(|| bad("no choices"))?;
    let message = &choice["message"];
    let tool_calls: Vec<ToolCall> = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c["id"]
                .as_str()
                .map_or_else(|| format!("call_{i}"), str::to_string),
            name: c["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            arguments_json: match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                Value::Null => "{}".into(),
                other => other.to_string(),
            },
        })
        .collect();
    let finish_reason = match choice["finish_reason"].as_str() {
        Some("length") => FinishReason::Length,
        _ if !tool_calls.is_empty() => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    };
    Ok(ChatResponse {
        content: message["content"].as_str().map(str::to_string),
        tool_calls,
        finish_reason,
        prompt_tokens: answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as u32,
        completion_tokens: answer["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32,
    })
}

/// A streamed answer (`stream: true`) put back together: text deltas are
/// passed on as they come, tool-call pieces are joined by their index.
#[derive(Default)]
pub struct StreamedAnswer {
    content: String,
    calls: PartialCalls,
    finish_reason: Option<String>,
    prompt_tokens: u32,
    completion_tokens: u32,
}

impl Accumulator for StreamedAnswer {
    /// Takes one event; `false` once the stream says it is done.
    fn apply(&mut self, event: &SseEvent, sink: &TextSink) -> Result<bool, LlmError> {
        if event.data.trim() == "[DONE]" {
            return Ok(false);
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Provider {
            provider: "openai".into(),
            detail: format!("a streamed chunk is not JSON ({e}): {}", event.data),
        })?;
        if !chunk["error"].is_null() {
            return Err(LlmError::Provider {
                provider: "openai".into(),
                detail: format!("the stream reported an error: {}", chunk["error"]),
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0) as u32;
            self.completion_tokens = usage["completion_tokens"].as_u64().unwrap_or(0) as u32;
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(true);
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.content.push_str(text);
            let _ = sink.send(text.to_string());
        }
        for (position, call) in delta["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = call["index"].as_u64().unwrap_or(position as u64);
            self.calls.add(
                index,
                call["id"].as_str(),
                call["function"]["name"].as_str(),
                call["function"]["arguments"].as_str(),
            );
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        Ok(true)
    }

    fn finish(self) -> ChatResponse {
        let tool_calls = self.calls.finish();
        let finish_reason = match self.finish_reason.as_deref() {
            Some("length") => FinishReason::Length,
            _ if !tool_calls.is_empty() => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        ChatResponse {
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls,
            finish_reason,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
    }
}

impl OpenAi {
    fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let model = request.model.clone().unwrap_or_else(|| self.model.clone());
        let mut body = body(request, &model);
        if stream {
            body["stream"] = json!(true);
        }
        let mut post = self
            .client
            .post(format!("{}/chat/completions", self.base_url))
            .json(&body);
        if let Some(env) = &self.api_key_env {
            post = post.bearer_auth(http::api_key("openai", env)?);
        }
        Ok(post)
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAi {
    fn name(&self) -> &str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let response = self
            .post(&request, false)?
            .send()
            .await
            .map_err(|e| http::unreachable("openai", e))?;
        parse(&http::check("openai", response).await?)
    }

    /// Streams with `stream: true`: each content delta goes to `sink` as it
    /// arrives; tool calls are assembled from their pieces.
    async fn chat_streaming(
        &self,
        request: ChatRequest,
        sink: TextSink,
    ) -> Result<ChatResponse, LlmError> {
        stream_chat::<StreamedAnswer>("openai", self.post(&request, true)?, sink, parse).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, ToolSpec};

    #[test]
    fn request_and_answer_shapes() {
        let request = ChatRequest {
            model: None,
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hi".into(),
                tool_calls: vec![],
                tool_call_id: None,
            }],
            tools: vec![ToolSpec {
                name: "csv_parser".into(),
                description: "parse".into(),
                parameters_schema: r#"{"type":"object"}"#.into(),
            }],
            temperature: Some(0.2),
            max_tokens: None,
        };
        let body = body(&request, "m");
        assert_eq!(body["tools"][0]["function"]["name"], "csv_parser");
        assert_eq!(body["messages"][0]["role"], "user");
        let answer = json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "csv_parser", "arguments": "{\"a\":1}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2}});
        let parsed = parse(&answer).unwrap();
        assert_eq!(parsed.finish_reason, FinishReason::ToolCalls);
        assert_eq!(parsed.tool_calls[0].arguments_json, "{\"a\":1}");
        assert_eq!(parsed.prompt_tokens, 5);
        assert!(parse(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn streamed_chunks_are_joined() {
        let (sink, mut pieces) = tokio::sync::mpsc::unbounded_channel();
        let mut answer = StreamedAnswer::default();
        let chunks = [
            json!({"choices": [{"delta": {"role": "assistant", "content": "Two"}}]}),
            json!({"choices": [{"delta": {"content": " rows."}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "csv_parser", "arguments": "{\"csv\":"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"a,b\"}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}),
        ];
        for chunk in chunks {
            let event = SseEvent {
                event: None,
                data: chunk.to_string(),
            };
            assert!(answer.apply(&event, &sink).unwrap());
        }
        let done = SseEvent {
            event: None,
            data: "[DONE]".into(),
        };
        assert!(!answer.apply(&done, &sink).unwrap());
        let response = answer.finish();
        assert_eq!(response.content.as_deref(), Some("Two rows."));
        assert_eq!(response.tool_calls.len(), 1);
        assert_eq!(response.tool_calls[0].arguments_json, "{\"csv\":\"a,b\"}");
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(response.prompt_tokens, 7);
        assert_eq!(pieces.try_recv().unwrap(), "Two");
        assert_eq!(pieces.try_recv().unwrap(), " rows.");
        let broken = SseEvent {
            event: None,
            data: r#"{"error": {"message": "overloaded"}}"#.into(),
        };
        assert!(StreamedAnswer::default().apply(&broken, &sink).is_err());
    }
}
