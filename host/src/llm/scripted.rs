//! A scripted provider for tests: answers from a fixture of rules and
//! records every request it receives (JSON lines), so a test can check
//! both what the agent did and what it asked.
//!
//! A script is a list of rules; the first rule whose `when` occurs in the
//! content of the request's last message answers (a rule without `when`
//! matches anything). Being stateless, a script that answers a tool result
//! with another tool call loops for ever — exactly what a test of the
//! interpreter's step limit needs.
//!
//! ```yaml
//! - when: "weather"
//!   tool_calls: [{name: http_client, arguments: {url: "https://example.com"}}]
//! - when: "\"status\""
//!   content: "It is sunny."
//! - content: "I do not know."
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

use super::{ChatRequest, ChatResponse, FinishReason, LlmError, LlmProvider, ToolCall};
use crate::llm::settings::ScriptedLlmConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ScriptedCall>,
    /// Answer with this provider error instead.
    #[serde(default)]
    error: Option<String>,
    /// Wait this long first (for timeout tests).
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedCall {
    name: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

pub struct Scripted {
    rules: Vec<Rule>,
    record: Option<Mutex<std::fs::File>>,
    record_path: Option<PathBuf>,
}

impl Scripted {
    pub fn load(config: &ScriptedLlmConfig) -> Result<Self, LlmError> {
        let text = std::fs::read_to_string(&config.script).map_err(|e| {
            LlmError::Invalid(format!(
                "cannot read the LLM script {}: {e}",
                config.script.display()
            ))
        })?;
        let rules: Vec<Rule> = serde_saphyr::from_str(&text).map_err(|e| {
            LlmError::Invalid(format!(
                "the LLM script {} is not a list of rules: {e}",
                config.script.display()
            ))
        })?;
        let record = match &config.record {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        LlmError::Invalid(format!(
                            "cannot open {} for recording: {e}",
                            path.display()
                        ))
                    })?,
            )),
            None => None,
        };
        Ok(Scripted {
            rules,
            record,
            record_path: config.record.clone(),
        })
    }
}

#[async_trait::async_trait]
impl LlmProvider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn default_model(&self) -> &str {
        "scripted"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        if let Some(file) = &self.record {
            let line = serde_json::to_string(&request).unwrap_or_default();
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = writeln!(file, "{line}") {
                tracing::warn!(path = ?self.record_path, error = %e, "cannot record an LLM request");
            }
        }
        let last = request
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        let rule = self
            .rules
            .iter()
            .find(|r| r.when.as_deref().is_none_or(|w| last.contains(w)))
            .ok_or_else(|| LlmError::Provider {
                provider: "scripted".into(),
                detail: format!("no rule of the script matches the last message: {last:?}"),
            })?;
        if rule.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(rule.delay_ms)).await;
        }
        if let Some(error) = &rule.error {
            return Err(LlmError::Provider {
                provider: "scripted".into(),
                detail: error.clone(),
            });
        }
        let tool_calls: Vec<ToolCall> = rule
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: format!("call_{i}"),
                name: c.name.clone(),
                arguments_json: c.arguments.to_string(),
            })
            .collect();
        Ok(ChatResponse {
            content: rule.content.clone(),
            finish_reason: if tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            tool_calls,
            // Words stand in for tokens: deterministic, and not zero, so
            // usage accounting can be checked end to end.
            prompt_tokens: words(request.messages.iter().map(|m| m.content.as_str())),
            completion_tokens: words(rule.content.as_deref()),
        })
    }
}

fn words<'a>(texts: impl IntoIterator<Item = &'a str>) -> u32 {
    let count: usize = texts
        .into_iter()
        .map(|t| t.split_whitespace().count())
        .sum();
    u32::try_from(count).unwrap_or(u32::MAX)
}
