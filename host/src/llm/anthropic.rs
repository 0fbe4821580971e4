//! The Anthropic Messages API (`POST {base_url}/v1/messages`).

use serde_json::{Value, json};

use super::sse::{Accumulator, PartialCalls, SseEvent, stream_chat};
use super::{
    ChatRequest, ChatResponse, FinishReason, LlmError, LlmProvider, Role, TextSink, ToolCall, http,
};
use crate::llm::settings::RemoteLlmConfig;

const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    base_url: String,
    model: String,
    api_key_env: String,
    client: reqwest::Client,
}

impl Anthropic {
    pub fn new(config: &RemoteLlmConfig) -> Result<Self, LlmError> {
        Ok(Anthropic {
            base_url: config
                .base_url
                .clone()
                .unwrap_or_else(|| "https://api.anthropic.com".into())
                .trim_end_matches('/')
                .to_string(),
            model: config
                .model
                .clone()
                .unwrap_or_else(|| "claude-3-5-haiku-latest".into()),
            api_key_env: config
                .api_key_env
                .clone()
                .unwrap_or_else(|| "ANTHROPIC_API_KEY".into()),
            client: http::client()?,
        })
    }
}

/// Messages API body: the system prompt apart, tool results as `user`
/// turns holding `tool_result` blocks, tool calls as `tool_use` blocks.
pub fn body(request: &ChatRequest, model: &str) -> Value {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut messages: Vec<Value> = Vec::new();
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, content) = match m.role {
            Role::Tool => (
                "user",
                json!([{"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}]),
            ),
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input: Value =
                        serde_json::from_str(&c.arguments_json).unwrap_or_else(|_| json!({}));
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                ("assistant", Value::Array(blocks))
            }
            Role::Assistant => ("assistant", json!(m.content)),
            _ => ("user", json!(m.content)),
        };
        messages.push(json!({"role": role, "content": content}));
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens.unwrap_or(1024),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                let schema: Value = serde_json::from_str(&t.parameters_schema)
                    .unwrap_or_else(|_| json!({"type": "object"}));
                json!({"name": t.name, "description": t.description, "input_schema": schema})
            })
            .collect();
    }
    body
}

pub fn parse(answer: &Value) -> Result<ChatResponse, LlmError> {
    let blocks = answer["content"]
        .as_array()
        .ok_or_else(|| LlmError::Provider {
            provider: "anthropic".into(),
            detail: format!(
                "unexpected answer: {}",
                answer.to_string().chars().take(300).collect::<String>()
            ),
        })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"].as_str().unwrap_or_default().to_string(),
                name: block["name"].as_str().unwrap_or_default().to_string(),
                arguments_json: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    let finish_reason = match answer["stop_reason"].as_str() {
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    };
    Ok(ChatResponse {
        content: (!text.is_empty()).then_some(text),
        tool_calls,
        finish_reason,
        prompt_tokens: answer["usage"]["input_tokens"].as_u64().unwrap_or(0) as u32,
        completion_tokens: answer["usage"]["output_tokens"].as_u64().unwrap_or(0) as u32,
    })
}

/// A streamed Messages answer put back together from its events:
/// `content_block_start` opens a text or `tool_use` block,
/// `content_block_delta` adds text (passed on at once) or a piece of a
/// tool's input JSON, `message_delta` carries the stop reason.
#[derive(Default)]
pub struct StreamedAnswer {
    text: String,
    tool_uses: PartialCalls,
    stop_reason: Option<String>,
    input_tokens: u32,
    output_tokens: u32,
}

impl Accumulator for StreamedAnswer {
    /// Takes one event; `false` after `message_stop`.
    fn apply(&mut self, event: &SseEvent, sink: &TextSink) -> Result<bool, LlmError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Provider {
            provider: "anthropic".into(),
            detail: format!("a streamed event is not JSON ({e}): {}", event.data),
        })?;
        let kind = event
            .event
            .as_deref()
            .or_else(|| data["type"].as_str())
            .unwrap_or("");
        match kind {
            "message_start" => {
                let usage = &data["message"]["usage"];
                self.input_tokens = usage["input_tokens"].as_u64().unwrap_or(0) as u32;
            }
            "content_block_start" => {
                let block = &data["content_block"];
                if block["type"] == "tool_use" {
                    let index = data["index"].as_u64().unwrap_or(0);
                    self.tool_uses
                        .add(index, block["id"].as_str(), block["name"].as_str(), None);
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        if !text.is_empty() {
                            self.text.push_str(text);
                            let _ = sink.send(text.to_string());
                        }
                    }
                    Some("input_json_delta") => {
                        let index = data["index"].as_u64().unwrap_or(0);
                        self.tool_uses.extend_arguments(
                            index,
                            delta["partial_json"].as_str().unwrap_or_default(),
                        );
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(n) = data["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = n as u32;
                }
            }
            "message_stop" => return Ok(false),
            "error" => {
                let error = &data["error"];
                let detail = format!(
                    "{}: {}",
                    error["type"].as_str().unwrap_or("error"),
                    error["message"].as_str().unwrap_or(&event.data)
                );
                return Err(if error["type"] == "overloaded_error" {
                    LlmError::Transient {
                        provider: "anthropic".into(),
                        detail,
                        retry_after: None,
                    }
                } else {
                    LlmError::Provider {
                        provider: "anthropic".into(),
                        detail: format!("the stream reported an error: {detail}"),
                    }
                });
            }
            // `ping`, `content_block_stop`, and event types added later.
            _ => {}
        }
        Ok(true)
    }

    fn finish(self) -> ChatResponse {
        let tool_calls = self.tool_uses.finish();
        let finish_reason = match self.stop_reason.as_deref() {
            Some("max_tokens") => FinishReason::Length,
            Some("tool_use") => FinishReason::ToolCalls,
            _ if !tool_calls.is_empty() => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        };
        ChatResponse {
            content: (!self.text.is_empty()).then_some(self.text),
            tool_calls,
            finish_reason,
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
        }
    }
}

impl Anthropic {
    fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let model = request.model.clone().unwrap_or_else(|| self.model.clone());
        let key = http::api_key("anthropic", &self.api_key_env)?;
        let mut body = body(request, &model);
        if stream {
            body["stream"] = json!(true);
        }
        Ok(self
            .client
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", key)
            .header("anthropic-version", API_VERSION)
            .json(&body))
    }
}

#[async_trait::async_trait]
impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let response = self
            .post(&request, false)?
            .send()
            .await
            .map_err(|e| http::unreachable("anthropic", e))?;
        parse(&http::check("anthropic", response).await?)
    }

    /// Streams with `stream: true`: text deltas go to `sink` as they
    /// arrive; `tool_use` input is assembled from its JSON pieces.
    async fn chat_streaming(
        &self,
        request: ChatRequest,
        sink: TextSink,
    ) -> Result<ChatResponse, LlmError> {
        stream_chat::<StreamedAnswer>("anthropic", self.post(&request, true)?, sink, parse).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_use_round_trip_shapes() {
        let answer = json!({"content": [{"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "csv_parser", "input": {"csv": "a,b"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}});
        let parsed = parse(&answer).unwrap();
        assert_eq!(parsed.finish_reason, FinishReason::ToolCalls);
        assert_eq!(parsed.tool_calls[0].name, "csv_parser");
        assert_eq!(parsed.content.as_deref(), Some("Let me look."));
    }

    #[test]
    fn streamed_events_are_joined() {
        let (sink, mut pieces) = tokio::sync::mpsc::unbounded_channel();
        let mut answer = StreamedAnswer::default();
        let events = [
            (
                "message_start",
                json!({"message": {"usage": {"input_tokens": 9}}}),
            ),
            (
                "content_block_start",
                json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            ("ping", json!({})),
            (
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "text_delta", "text": "Let me"}}),
            ),
            (
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "text_delta", "text": " look."}}),
            ),
            (
                "content_block_start",
                json!({"index": 1, "content_block": {"type": "tool_use", "id": "t1", "name": "csv_parser", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"csv\": "}}),
            ),
            (
                "content_block_delta",
                json!({"index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"a,b\"}"}}),
            ),
            (
                "message_delta",
                json!({"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
            ),
        ];
        for (name, data) in events {
            let event = SseEvent {
                event: Some(name.into()),
                data: data.to_string(),
            };
            assert!(answer.apply(&event, &sink).unwrap(), "{name}");
        }
        let stop = SseEvent {
            event: Some("message_stop".into()),
            data: "{}".into(),
        };
        assert!(!answer.apply(&stop, &sink).unwrap());
        let response = answer.finish();
        assert_eq!(response.content.as_deref(), Some("Let me look."));
        assert_eq!(response.tool_calls[0].name, "csv_parser");
        assert_eq!(response.tool_calls[0].arguments_json, "{\"csv\": \"a,b\"}");
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            (response.prompt_tokens, response.completion_tokens),
            (9, 12)
        );
        assert_eq!(pieces.try_recv().unwrap(), "Let me");
        let overloaded = SseEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        assert!(matches!(
            StreamedAnswer::default().apply(&overloaded, &sink),
            Err(LlmError::Transient { .. })
        ));
    }
}
