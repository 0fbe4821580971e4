//! LLM providers behind one trait: what the `llm` import (and so every
//! config agent) talks to.
//!
//! - [`openai`]: OpenAI-compatible chat completions (OpenAI, Ollama, vLLM,
//!   llama.cpp server);
//! - [`anthropic`]: the Anthropic Messages API;
//! - [`local`]: an embedded GGUF model run in-process with candle — the
//!   default when no other provider is configured;
//! - [`scripted`]: deterministic answers from a fixture, recording every
//!   request — for tests of orchestration.
//!
//! [`LlmService`] picks the provider for a call (the agent's choice, else
//! the configured default) and bounds every call in time, so a provider that
//! hangs becomes a clear failure, never a hung request.

pub mod anthropic;
pub mod local;
pub mod openai;
pub mod retry;
pub mod scripted;
pub mod settings;
pub mod sse;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::llm::settings::LlmConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// A JSON object, as text.
    pub arguments_json: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments, as text.
    pub parameters_schema: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// `None`: the provider's configured model.
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Error)]
pub enum LlmError {
    /// No provider of that name is configured, or it cannot run.
    #[error("{0}")]
    Unavailable(String),
    #[error("the LLM provider `{provider}` did not answer within {seconds} s")]
    Timeout { provider: String, seconds: u64 },
    #[error("the LLM provider `{provider}` is rate limiting requests: {detail}")]
    RateLimited {
        provider: String,
        detail: String,
        /// How long the provider asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// A failure that may pass: HTTP 5xx, `overloaded`, a connection that
    /// could not be made or a stream that broke off.
    #[error("the LLM provider `{provider}` failed (temporarily, it seems): {detail}")]
    Transient {
        provider: String,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("the LLM provider `{provider}` refused the request: {detail}")]
    Provider { provider: String, detail: String },
    #[error("the request is not valid for the LLM: {0}")]
    Invalid(String),
}

/// Where the text of a reply goes as it is generated (to an HTTP client
/// reading server-sent events). Sending never blocks; a closed receiver is
/// ignored (the client left; the agent still finishes its reply).
pub type TextSink = tokio::sync::mpsc::UnboundedSender<String>;

/// Drives `call` to its end while handing each piece of text arriving on
/// `pieces` to `each`, then the pieces still queued when it ended: the loop
/// every streaming caller needs, so no text is lost whichever finishes
/// first.
pub async fn relay<T>(
    call: impl std::future::Future<Output = T>,
    pieces: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    mut each: impl FnMut(String),
) -> T {
    tokio::pin!(call);
    let result = loop {
        tokio::select! {
            Some(text) = pieces.recv() => each(text),
            result = &mut call => break result,
        }
    };
    while let Ok(text) = pieces.try_recv() {
        each(text);
    }
    result
}

/// One way of answering chat requests.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// Name used in configuration and errors (`openai`, `anthropic`, …).
    fn name(&self) -> &str;
    /// The model used when a request names none.
    fn default_model(&self) -> &str;
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Like [`LlmProvider::chat`], sending the reply's text to `sink` as it
    /// is generated. Providers that cannot stream send it once, at the end,
    /// and a tool-call turn sends nothing. Remote providers stream what the
    /// model writes as it arrives, so a remark the model makes before a
    /// tool call ("Let me look that up.") is streamed too.
    async fn chat_streaming(
        &self,
        request: ChatRequest,
        sink: TextSink,
    ) -> Result<ChatResponse, LlmError> {
        Ok(send_whole(self.chat(request).await?, &sink))
    }
}

/// Sends a whole answer's text to `sink` at once (a provider that cannot
/// stream); a tool-call turn sends nothing.
pub(crate) fn send_whole(response: ChatResponse, sink: &TextSink) -> ChatResponse {
    if response.tool_calls.is_empty()
        && let Some(text) = &response.content
    {
        let _ = sink.send(text.clone());
    }
    response
}

/// The configured providers and the default among them.
pub struct LlmService {
    providers: BTreeMap<String, Arc<dyn LlmProvider>>,
    default: Option<String>,
    timeout: Duration,
    /// How failures that may pass are retried.
    retry: retry::RetryPolicy,
    /// Why there is no default provider, for the error an agent gets.
    missing_reason: String,
}

impl LlmService {
    /// `model_cache_dir` is where the local provider finds its default model.
    pub fn from_config(config: &LlmConfig, model_cache_dir: &Path) -> Result<Self, LlmError> {
        let mut providers: BTreeMap<String, Arc<dyn LlmProvider>> = BTreeMap::new();
        if let Some(c) = &config.openai {
            providers.insert("openai".into(), Arc::new(openai::OpenAi::new(c)?));
        }
        if let Some(c) = &config.anthropic {
            providers.insert("anthropic".into(), Arc::new(anthropic::Anthropic::new(c)?));
        }
        if let Some(c) = &config.scripted {
            providers.insert("scripted".into(), Arc::new(scripted::Scripted::load(c)?));
        }
        for (name, named) in &config.providers {
            if providers.contains_key(name) || name == "local" {
                return Err(LlmError::Invalid(format!(
                    "llm.providers.{name}: the name is taken by a built-in provider section; choose another"
                )));
            }
            if name.is_empty() || name.contains('/') {
                return Err(LlmError::Invalid(format!(
                    "llm.providers: `{name}` cannot name a provider (no `/`, not empty)"
                )));
            }
            providers.insert(name.clone(), named_provider(name, named)?);
        }
        let configured = providers.len();
        if config.local.enabled {
            providers.insert(
                "local".into(),
                Arc::new(local::Local::new(&config.local, model_cache_dir)),
            );
        }
        let default = match &config.provider {
            Some(name) if providers.contains_key(name) => Some(name.clone()),
            Some(name) => {
                return Err(LlmError::Invalid(format!(
                    "llm.provider is `{name}` but there is no `llm.{name}:` section configuring it"
                )));
            }
            // One provider configured: it is the default.
            None if configured == 1 => providers.keys().find(|k| *k != "local").cloned(),
            // None: the embedded model, which needs no key.
            None if configured == 0 && config.local.enabled => Some("local".into()),
            None => None,
        };
        Ok(LlmService {
            providers,
            default,
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            retry: retry::RetryPolicy::from_config(config),
            missing_reason: if configured > 1 {
                "several LLM providers are configured and none is the default: set `llm.provider` \
                 in caxton.yaml (or `llm.provider` in the agent's file)"
                    .into()
            } else {
                "no LLM provider is configured: add an `llm:` section to caxton.yaml \
                 (openai, anthropic or scripted), or enable the local model (llm.local.enabled)"
                    .into()
            },
        })
    }

    /// A service with no providers (tests of other parts, benchmarks).
    pub fn none() -> Self {
        LlmService {
            providers: BTreeMap::new(),
            default: None,
            timeout: Duration::from_secs(60),
            retry: retry::RetryPolicy::default(),
            missing_reason: "no LLM provider is configured".into(),
        }
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    pub fn default_provider(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Sends `request` to `provider` (or the default), bounded in time.
    pub async fn chat(
        &self,
        provider: Option<&str>,
        request: ChatRequest,
    ) -> Result<ChatResponse, LlmError> {
        self.chat_with(provider, request, None).await
    }

    /// [`LlmService::chat`], streaming the reply's text to `sink` if given.
    /// The provider (configuration name) and model a request would use:
    /// for traces, which name what answered rather than "default".
    pub fn resolve(&self, provider: Option<&str>, model: Option<&str>) -> (String, String) {
        let (provider, model) = self.route(provider, model);
        let name = provider.or(self.default.as_deref()).unwrap_or("none");
        let model = match (model, self.providers.get(name)) {
            (Some(model), _) => model.to_string(),
            (None, Some(chosen)) => chosen.default_model().to_string(),
            (None, None) => "none".to_string(),
        };
        (name.to_string(), model)
    }

    /// `model: NAME/MODEL` with a configured provider `NAME` picks that
    /// provider (and that model), whatever the agent's provider says.
    fn route<'a>(
        &self,
        provider: Option<&'a str>,
        model: Option<&'a str>,
    ) -> (Option<&'a str>, Option<&'a str>) {
        if let Some((name, rest)) = model.and_then(|m| m.split_once('/'))
            && self.providers.contains_key(name)
        {
            return (Some(name), Some(rest));
        }
        (provider, model)
    }

    pub async fn chat_with(
        &self,
        provider: Option<&str>,
        mut request: ChatRequest,
        sink: Option<TextSink>,
    ) -> Result<ChatResponse, LlmError> {
        let model = request.model.take();
        let (provider, routed_model) = self.route(provider, model.as_deref());
        request.model = routed_model.map(str::to_string);
        let name = match provider.or(self.default.as_deref()) {
            Some(name) => name,
            None => return Err(LlmError::Unavailable(self.missing_reason.clone())),
        };
        let Some(chosen) = self.providers.get(name) else {
            return Err(LlmError::Unavailable(format!(
                "the LLM provider `{name}` is not configured (configured: {}); add `llm.{name}:` to caxton.yaml",
                if self.providers.is_empty() {
                    "none".to_string()
                } else {
                    self.provider_names().join(", ")
                }
            )));
        };
        if request.messages.is_empty() {
            return Err(LlmError::Invalid(
                "a chat request needs at least one message".into(),
            ));
        }
        let (request, renamed) = wire_names(request);
        let attempt = |sink: Option<TextSink>| {
            let request = request.clone();
            let chosen = chosen.clone();
            async move {
                let call = async {
                    match sink {
                        Some(sink) => chosen.chat_streaming(request, sink).await,
                        None => chosen.chat(request).await,
                    }
                };
                match tokio::time::timeout(self.timeout, call).await {
                    Ok(result) => result,
                    Err(_) => Err(LlmError::Timeout {
                        provider: name.to_string(),
                        seconds: self.timeout.as_secs(),
                    }),
                }
            }
        };
        let started = std::time::Instant::now();
        let response = self.retry.run(name, sink, attempt).await;
        crate::observe::LLM_CALL_SECONDS.observe(started.elapsed());
        let mut response = response?;
        for call in &mut response.tool_calls {
            if let Some(original) = renamed.get(&call.name) {
                call.name = original.clone();
            }
        }
        Ok(response)
    }
}

/// A provider of `llm.providers`, built by its kind.
fn named_provider(
    name: &str,
    config: &settings::NamedProviderConfig,
) -> Result<Arc<dyn LlmProvider>, LlmError> {
    use settings::ProviderKind;
    let remote = || settings::RemoteLlmConfig {
        base_url: config.base_url.clone(),
        model: config.model.clone(),
        api_key_env: config.api_key_env.clone(),
    };
    Ok(match config.kind {
        ProviderKind::Openai => Arc::new(openai::OpenAi::new(&remote())?),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(&remote())?),
        ProviderKind::Scripted => {
            let script = config.script.clone().ok_or_else(|| {
                LlmError::Invalid(format!(
                    "llm.providers.{name}: a scripted provider needs `script`"
                ))
            })?;
            Arc::new(scripted::Scripted::load(&settings::ScriptedLlmConfig {
                script,
                record: config.record.clone(),
            })?)
        }
    })
}

/// Providers accept tool names of `[A-Za-z0-9_-]` only; an MCP server's
/// tool is `SERVER/TOOL`. Such names go out with `/` spelled `__`, and the
/// map brings the model's calls back to the registry's names.
fn wire_names(mut request: ChatRequest) -> (ChatRequest, BTreeMap<String, String>) {
    let mut renamed = BTreeMap::new();
    let mut rename = |name: &mut String| {
        if name.contains('/') {
            let wire = name.replace('/', "__");
            renamed.insert(wire.clone(), std::mem::replace(name, wire));
        }
    };
    for tool in &mut request.tools {
        rename(&mut tool.name);
    }
    for message in &mut request.messages {
        for call in &mut message.tool_calls {
            rename(&mut call.name);
        }
    }
    (request, renamed)
}

/// Shared HTTP plumbing of the remote providers: the key from the named
/// environment variable, and status codes mapped to clear errors.
pub(crate) mod http {
    use super::LlmError;

    pub fn api_key(provider: &str, env_var: &str) -> Result<String, LlmError> {
        match std::env::var(env_var) {
            Ok(key) if !key.trim().is_empty() => Ok(key),
            _ => Err(LlmError::Unavailable(format!(
                "the {provider} provider needs an API key in the environment variable {env_var} \
                 (named by llm.{provider}.api_key_env); set it and restart"
            ))),
        }
    }

    pub fn client() -> Result<reqwest::Client, LlmError> {
        reqwest::Client::builder()
            .build()
            .map_err(|e| LlmError::Unavailable(format!("cannot create an HTTP client: {e}")))
    }

    /// Turns a non-success response into the matching error.
    pub async fn check(
        provider: &str,
        response: reqwest::Response,
    ) -> Result<serde_json::Value, LlmError> {
        let status = response.status();
        let retry_after = super::retry::retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        let detail = || {
            let start: String = body.chars().take(500).collect();
            // Some providers quote the request's URL in their error.
            format!("HTTP {status}: {}", crate::redact::text(&start))
        };
        if status.as_u16() == 429 {
            return Err(LlmError::RateLimited {
                provider: provider.into(),
                detail: detail(),
                retry_after,
            });
        }
        // 5xx, and Anthropic's 529 "overloaded".
        if status.is_server_error() {
            return Err(LlmError::Transient {
                provider: provider.into(),
                detail: detail(),
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(LlmError::Provider {
                provider: provider.into(),
                detail: detail(),
            });
        }
        serde_json::from_str(&body).map_err(|e| LlmError::Provider {
            provider: provider.into(),
            detail: format!(
                "the answer is not JSON ({e}): {}",
                body.chars().take(200).collect::<String>()
            ),
        })
    }

    pub fn unreachable(provider: &str, e: reqwest::Error) -> LlmError {
        LlmError::Transient {
            provider: provider.into(),
            detail: format!("cannot reach it: {}", shown(&e)),
            retry_after: None,
        }
    }

    /// `e` as text, without the credentials of the URL it quotes (a
    /// `base_url` may carry them): it goes into error replies, traces and
    /// logs.
    pub fn shown(e: &reqwest::Error) -> String {
        crate::redact::text(&e.to_string()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::settings::{NamedProviderConfig, ProviderKind};

    fn scripted(dir: &Path, name: &str, answer: &str) -> NamedProviderConfig {
        let script = dir.join(format!("{name}.yaml"));
        std::fs::write(&script, format!("- content: \"{answer}\"\n")).expect("script");
        NamedProviderConfig {
            kind: ProviderKind::Scripted,
            base_url: None,
            model: None,
            api_key_env: None,
            script: Some(script),
            record: None,
        }
    }

    fn ask(model: Option<&str>) -> ChatRequest {
        ChatRequest {
            model: model.map(str::to_string),
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hi".into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
        }
    }

    #[tokio::test]
    async fn named_providers_are_picked_by_name_or_model_prefix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = LlmConfig::default();
        config.local.enabled = false;
        config.provider = Some("fast".into());
        config
            .providers
            .insert("fast".into(), scripted(dir.path(), "fast", "from fast"));
        config
            .providers
            .insert("smart".into(), scripted(dir.path(), "smart", "from smart"));
        let service = LlmService::from_config(&config, dir.path()).expect("config");
        let answer = |r: ChatResponse| r.content.unwrap_or_default();

        let by_default = service
            .chat_with(None, ask(None), None)
            .await
            .expect("chat");
        assert_eq!(answer(by_default), "from fast");
        let by_name = service
            .chat_with(Some("smart"), ask(None), None)
            .await
            .expect("chat");
        assert_eq!(answer(by_name), "from smart");
        let by_model = service
            .chat_with(Some("fast"), ask(Some("smart/big-model")), None)
            .await
            .expect("chat");
        assert_eq!(answer(by_model), "from smart", "the model's prefix wins");
        assert_eq!(
            service.resolve(None, Some("smart/big-model")),
            ("smart".to_string(), "big-model".to_string())
        );
        // A slash that names no provider is part of the model's name.
        assert_eq!(
            service.resolve(None, Some("Qwen/Qwen2.5-7B")),
            ("fast".to_string(), "Qwen/Qwen2.5-7B".to_string())
        );

        config
            .providers
            .insert("openai".into(), scripted(dir.path(), "x", "x"));
        config.openai = Some(Default::default());
        assert!(
            LlmService::from_config(&config, dir.path()).is_err(),
            "a taken name"
        );
    }
}
