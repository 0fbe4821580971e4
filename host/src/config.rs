//! Server configuration: `caxton.yaml`, overridden by `CAXTON_*` environment
//! variables, overridden by command-line flags.
//!
//! Each section's type lives with the capability it configures (`llm::settings`,
//! `memory::settings`, …) and checks itself; this file only reads the file,
//! folds the runbook's spellings and composes the sections.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::auth::AuthSettings;
use crate::backup::BackupSettings;
use crate::config_agents::settings::AgentsConfig;
use crate::llm::settings::LlmConfig;
use crate::logging::LoggingConfig;
use crate::memory::settings::MemoryConfig;
use crate::runtime::settings::RuntimeConfig;
use crate::server::settings::{MonitoringConfig, ServerConfig};
use crate::tools::settings::ToolsConfig;

/// The whole configuration file. Every key is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Tokens and who may reach the server without one.
    pub auth: AuthSettings,
    /// Where the database, caches and logs live.
    pub data_dir: Option<PathBuf>,
    pub runtime: RuntimeConfig,
    pub memory: MemoryConfig,
    pub llm: LlmConfig,
    pub agents: AgentsConfig,
    pub tools: ToolsConfig,
    /// MCP servers whose tools agents may use, as `NAME/TOOL`.
    pub mcp_servers: std::collections::BTreeMap<String, crate::tools::settings::McpServerConfig>,
    /// How fire-and-forget messages are kept, retried and given up on.
    pub outbox: crate::outbox::OutboxConfig,
    /// Agents on other servers spoken to over A2A, messaged by these names.
    pub a2a_agents: std::collections::BTreeMap<String, crate::agents::remote::RemoteAgentConfig>,
    /// Accepted from the operator runbook's production file; see
    /// [`Config::notes`] for what each key does here.
    pub logging: LoggingConfig,
    pub monitoring: MonitoringConfig,
    /// Where spans are exported (OpenTelemetry).
    pub observability: crate::trace::otlp::ObservabilityConfig,
    /// Where backups go and how many are kept.
    pub backup: BackupSettings,
    /// How many conversations are kept, how much of each, for how long.
    pub conversations: crate::conversations::ConversationsConfig,
    /// Several nodes as one system over NATS (unset: this node alone).
    pub cluster: crate::cluster::ClusterConfig,
    /// What agents, principals and the server may spend on models, and
    /// what models cost.
    pub budgets: crate::budgets::BudgetSettings,
    /// Which conversations are recorded, for how long, in how many bytes.
    pub recordings: crate::recordings::RecordingSettings,
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
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.runtime.validate().map_err(ConfigError::Invalid)?;
        self.memory.validate().map_err(ConfigError::Invalid)?;
        self.conversations
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.observability
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.logging
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for (name, server) in &self.mcp_servers {
            server.validate(name).map_err(ConfigError::Invalid)?;
        }
        self.outbox.validate().map_err(ConfigError::Invalid)?;
        self.cluster.validate().map_err(ConfigError::Invalid)?;
        self.budgets.validate().map_err(ConfigError::Invalid)?;
        self.recordings.validate().map_err(ConfigError::Invalid)?;
        for (name, agent) in &self.a2a_agents {
            agent.validate(name).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"))
    }
}
