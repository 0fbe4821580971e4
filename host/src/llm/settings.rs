//! `llm:` in `caxton.yaml`: which providers exist and how each is reached.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `llm:` — the providers config agents (and the `llm` import) can use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Default provider: `local`, `openai`, `anthropic` or `scripted`.
    /// When unset: the one remote/scripted provider configured, else `local`
    /// (the embedded model — no API key needed).
    pub provider: Option<String>,
    /// Longest wait for one model call.
    pub timeout_secs: u64,
    /// Retries of a call the provider refused for a while (429, 5xx,
    /// overloaded, no connection), with exponential backoff and jitter;
    /// a `Retry-After` the provider sends is honoured.
    pub max_retries: u32,
    /// First backoff; doubled at every retry, up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub openai: Option<RemoteLlmConfig>,
    pub anthropic: Option<RemoteLlmConfig>,
    pub scripted: Option<ScriptedLlmConfig>,
    pub local: LocalLlmConfig,
    /// More providers under names of your choosing, each of a `kind`
    /// (`openai`, `anthropic` or `scripted`): `ollama: {kind: openai,
    /// base_url: …}`. An agent picks one with `llm.provider: ollama` or
    /// `llm.model: ollama/qwen2.5:7b`.
    pub providers: std::collections::BTreeMap<String, NamedProviderConfig>,
}

/// What kind of provider a named entry of `llm.providers` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Scripted,
}

/// One entry of `llm.providers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedProviderConfig {
    pub kind: ProviderKind,
    /// `openai`, `anthropic`: where and which model.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `scripted`: the rules and where requests are recorded.
    #[serde(default)]
    pub script: Option<PathBuf>,
    #[serde(default)]
    pub record: Option<PathBuf>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: None,
            timeout_secs: 120,
            max_retries: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 20_000,
            openai: None,
            anthropic: None,
            scripted: None,
            local: LocalLlmConfig::default(),
            providers: Default::default(),
        }
    }
}

/// `llm.local:` — the embedded GGUF model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalLlmConfig {
    /// `false` removes the local provider entirely.
    pub enabled: bool,
    /// A `qwen2` or `llama` GGUF file; unset: the default model in the
    /// model cache (`caxton llm pull`).
    pub model_path: Option<PathBuf>,
    /// Most tokens generated per model call when the agent sets no
    /// `llm.max_tokens` (a 0.5B model on 2 cores writes ~25 tokens/s).
    pub max_tokens: u32,
}

impl Default for LocalLlmConfig {
    fn default() -> Self {
        LocalLlmConfig {
            enabled: true,
            model_path: None,
            max_tokens: 256,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteLlmConfig {
    /// e.g. `http://localhost:11434/v1` for Ollama.
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// Name of the environment variable holding the API key (never the key
    /// itself: config files end up in repositories).
    pub api_key_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedLlmConfig {
    /// YAML or JSON list of rules (see `llm::scripted`).
    pub script: PathBuf,
    /// Append every request as a JSON line here.
    #[serde(default)]
    pub record: Option<PathBuf>,
}
