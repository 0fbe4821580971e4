//! The Anthropic Messages API (`POST {base_url}/v1/messages`).

use serde_json::{Value, json};

use super::{ChatRequest, ChatResponse, FinishReason, LlmError, LlmProvider, Role, ToolCall, http};
use crate::config::RemoteLlmConfig;

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

#[async_trait::async_trait]
impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let model = request.model.clone().unwrap_or_else(|| self.model.clone());
        let key = http::api_key("anthropic", &self.api_key_env)?;
        let response = self
            .client
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", key)
            .header("anthropic-version", API_VERSION)
            .json(&body(&request, &model))
            .send()
            .await
            .map_err(|e| http::unreachable("anthropic", e))?;
        parse(&http::check("anthropic", response).await?)
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
}
