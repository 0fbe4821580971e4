//! Server configuration: `caxton.yaml`, overridden by `CAXTON_*` environment
//! variables, overridden by command-line flags.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::runtime::limits::ResourceLimits;

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Where the database, caches and logs live.
    pub data_dir: Option<PathBuf>,
    pub runtime: RuntimeConfig,
    pub memory: MemoryConfig,
    pub llm: LlmConfig,
    pub agents: AgentsConfig,
    pub tools: ToolsConfig,
    /// Accepted from the operator runbook's production file; see
    /// [`Config::notes`] for what each key does here.
    pub logging: LoggingConfig,
    pub monitoring: MonitoringConfig,
}

/// `logging:` — from the runbook's production file. Logs always go to
/// stderr (the journal under systemd) and, with `file`, are appended there
/// too; `level` is a level name or a filter, overridden by `CAXTON_LOG`
/// (see [`crate::logging`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub level: Option<String>,
    pub file: Option<PathBuf>,
}

/// `monitoring:` — `metrics_port` serves `GET /metrics` on its own port
/// (it is always on the API port too).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    pub metrics_port: Option<u16>,
    pub health_check_interval: Option<String>,
}

/// `tools:` — settings of the built-in tools.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Domains `http_client` may reach (subdomains included). Empty: none.
    pub http_allowed_domains: Vec<String>,
}

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
    pub openai: Option<RemoteLlmConfig>,
    pub anthropic: Option<RemoteLlmConfig>,
    pub scripted: Option<ScriptedLlmConfig>,
    pub local: LocalLlmConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: None,
            timeout_secs: 120,
            openai: None,
            anthropic: None,
            scripted: None,
            local: LocalLlmConfig::default(),
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

/// `agents:` — config agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Directory of `*.md` / `*.toml` agent definitions (relative paths are
    /// relative to the working directory).
    pub dir: PathBuf,
    /// Watch the directory and reload changed agents.
    pub hot_reload: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            dir: PathBuf::from("agents"),
            hot_reload: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Semantic search with the embedded model. `false` keeps memory
    /// keyword-only and never downloads the model.
    pub semantic_search: bool,
    /// Download the embedding model at start when it is not cached.
    pub auto_pull: bool,
    /// Model cache shared by every data dir; default `$CAXTON_MODEL_CACHE`
    /// or `~/.cache/caxton/models`.
    pub model_cache_dir: Option<PathBuf>,
    /// Seconds between saves of the vector index (when it changed).
    pub index_save_interval_secs: u64,
    /// Searches and traversals slower than this are logged as slow queries.
    pub slow_query_ms: u64,
    /// Entity count this embedded store is sized for; `limits-check` and
    /// `capacity-check` report against it.
    pub recommended_max_entities: u64,
    /// Memory the server may use (bytes); `usage --percentage` reports
    /// resident memory against it.
    pub memory_budget_bytes: u64,
    /// redb's page cache in MiB. The default keeps a 100K-entity server
    /// under 400 MB resident; a larger store traverses and searches faster
    /// with a larger cache (each page it misses is a read from the file).
    pub database_cache_mb: u64,
    /// The runbook's keys. `backend` must be `embedded` and
    /// `embedding_model` all-MiniLM-L6-v2 (the only ones this build has);
    /// `sqlite_path` and `cleanup_interval` are accepted and noted.
    pub backend: Option<String>,
    pub sqlite_path: Option<PathBuf>,
    pub embedding_model: Option<String>,
    pub cleanup_interval: Option<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            semantic_search: true,
            auto_pull: true,
            model_cache_dir: None,
            index_save_interval_secs: 60,
            slow_query_ms: 50,
            recommended_max_entities: 100_000,
            memory_budget_bytes: 2 * 1024 * 1024 * 1024,
            database_cache_mb: crate::storage::DEFAULT_CACHE_MB,
            backend: None,
            sqlite_path: None,
            embedding_model: None,
            cleanup_interval: None,
        }
    }
}

impl MemoryConfig {
    pub fn model_cache_dir(&self) -> PathBuf {
        self.model_cache_dir
            .clone()
            .unwrap_or_else(caxton_models::default_cache_dir)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes. Uploads are base64 JSON, so
    /// this bounds the component size at about three quarters of it.
    pub max_body_bytes: usize,
    /// The runbook writes these under `server:`; they mean the top-level
    /// `data_dir` and `agents.dir`.
    pub data_dir: Option<PathBuf>,
    pub agents_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 64 * 1024 * 1024,
            data_dir: None,
            agents_dir: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Limits an agent gets when its deployment does not name them.
    pub default_limits: ResourceLimits,
    /// The most any agent may ask for.
    pub max_limits: ResourceLimits,
    /// Messages that may wait for one agent before senders are told it is busy.
    pub mailbox_capacity: usize,
    /// Consecutive failed messages after which an agent is marked `failed`.
    pub failure_threshold: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            default_limits: ResourceLimits {
                max_memory_bytes: 64 * 1024 * 1024,
                max_fuel: 1_000_000_000,
                max_execution_time_ms: 30_000,
            },
            max_limits: ResourceLimits {
                max_memory_bytes: 1024 * 1024 * 1024,
                max_fuel: 100_000_000_000,
                max_execution_time_ms: 300_000,
            },
            mailbox_capacity: 256,
            failure_threshold: 5,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path`, or `./caxton.yaml` when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("caxton.yaml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut config: Config = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.apply_aliases()?;
        config.validate()?;
        Ok(config)
    }

    /// Folds the runbook's spellings (`server.data_dir`, `server.agents_dir`)
    /// into the canonical keys; two different values for one setting are an
    /// error rather than a silent choice.
    fn apply_aliases(&mut self) -> Result<(), ConfigError> {
        if let Some(dir) = self.server.data_dir.take() {
            match &self.data_dir {
                Some(other) if *other != dir => {
                    return Err(ConfigError::Invalid(format!(
                        "data_dir is {} but server.data_dir is {}: keep one",
                        other.display(),
                        dir.display()
                    )));
                }
                _ => self.data_dir = Some(dir),
            }
        }
        if let Some(dir) = self.server.agents_dir.take() {
            let default = AgentsConfig::default().dir;
            if self.agents.dir != default && self.agents.dir != dir {
                return Err(ConfigError::Invalid(format!(
                    "agents.dir is {} but server.agents_dir is {}: keep one",
                    self.agents.dir.display(),
                    dir.display()
                )));
            }
            self.agents.dir = dir;
        }
        Ok(())
    }

    /// What the runbook keys this build accepts but does not act on mean
    /// here; logged at start so nobody is surprised.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(path) = &self.memory.sqlite_path {
            notes.push(format!(
                "memory.sqlite_path ({}) is not used: memory lives in the redb database \
                 {}/caxton.redb",
                path.display(),
                self.data_dir().display()
            ));
        }
        if let Some(interval) = &self.memory.cleanup_interval {
            notes.push(format!(
                "memory.cleanup_interval ({interval}) is not scheduled: run \
                 `caxton memory cleanup --remove-orphaned` (e.g. from a timer)"
            ));
        }
        if let Some(interval) = &self.monitoring.health_check_interval {
            notes.push(format!(
                "monitoring.health_check_interval ({interval}) is not used: health is computed \
                 on each GET /api/v1/health"
            ));
        }
        notes
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.runtime.default_limits;
        if let Err(e) = d.check_within(&self.runtime.max_limits) {
            return Err(ConfigError::Invalid(format!(
                "runtime.default_limits exceed runtime.max_limits: {e}"
            )));
        }
        if let Some(backend) = &self.memory.backend
            && !backend.eq_ignore_ascii_case("embedded")
        {
            return Err(ConfigError::Invalid(format!(
                "memory.backend `{backend}` is not available: this build has the embedded \
                 backend only (remove the key or set it to \"embedded\")"
            )));
        }
        if let Some(model) = &self.memory.embedding_model {
            let name = model.rsplit('/').next().unwrap_or(model);
            if !name.eq_ignore_ascii_case(caxton_models::MODEL_NAME) {
                return Err(ConfigError::Invalid(format!(
                    "memory.embedding_model `{model}` is not available: the embedded model is \
                     {} (remove the key or set it to that)",
                    caxton_models::MODEL_NAME
                )));
            }
        }
        if self.runtime.mailbox_capacity == 0 {
            return Err(ConfigError::Invalid(
                "runtime.mailbox_capacity must be at least 1".into(),
            ));
        }
        if let Some(level) = &self.logging.level
            && let Err(e) = crate::logging::level_filter(level)
        {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"))
    }
}
