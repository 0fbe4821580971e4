//! Config agents: markdown (or TOML) files in the agents directory, each
//! run by the built-in interpreter component.
//!
//! - [`definition`]: the file format and its parsing;
//! - `positions`: where each field sits in the file, from the parsers;
//! - [`validate`]: every problem of a file at once, with line, field and fix;
//! - [`watcher`]: hot reload when a file is saved or deleted;
//! - this module: the files' lifecycle — load, reload (an invalid edit keeps
//!   the last good version serving and records the problems), unload.

pub mod definition;
mod positions;
pub mod problem;
#[cfg(test)]
mod schema_tie;
pub mod settings;
pub mod validate;
mod watcher;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::agents::AgentManager;
use crate::agents::manager::ConfigAgentSpec;
use crate::agents::record::AgentKind;
use crate::agents::registry::AgentHandle;
use crate::tools::ToolRegistry;
use definition::{AgentDefinition, SourceFormat};
use validate::{LoadedAgentInfo, Problem, ValidationContext};

pub use watcher::watch;

/// What the server knows about one definition file.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// The file stem: the agent's id.
    pub id: String,
    pub file: String,
    /// `active` (the file's current content is serving), `stale` (an edit
    /// was rejected; the last good version keeps serving), `error` (never
    /// loaded), `removed` (the file is gone).
    pub state: &'static str,
    /// Display name and version of the version serving, if any.
    pub name: Option<String>,
    pub version: Option<String>,
    pub loaded_at: Option<String>,
    pub last_attempt_at: String,
    pub reloads: u64,
    pub last_reload_ms: Option<f64>,
    /// Problems found by the last attempt (empty when it succeeded).
    pub problems: Vec<Problem>,
}

pub struct ConfigAgents {
    dir: PathBuf,
    manager: Arc<AgentManager>,
    tools: Arc<ToolRegistry>,
    statuses: Mutex<BTreeMap<String, FileStatus>>,
    /// One load or unload at a time: the watcher and `agents reload` may
    /// act on the same file at once, and each must see the other's result
    /// (not its name half-reserved) when it checks for name clashes.
    loading: tokio::sync::Mutex<()>,
    /// Loads and reloads that went live / were rejected, for metrics.
    reload_successes: std::sync::atomic::AtomicU64,
    reload_failures: std::sync::atomic::AtomicU64,
    /// Handed to every agent's interpreter with its definition.
    conversations: settings::ConversationLimits,
}

/// Why a reload could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "no config agent `{0}`: no agents/{0}.md or agents/{0}.toml in the agents directory and no loaded agent of that name"
    )]
    NotFound(String),
    #[error("{} problem(s) in {file}", problems.len())]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

impl ConfigAgents {
    pub fn new(dir: PathBuf, manager: Arc<AgentManager>, tools: Arc<ToolRegistry>) -> Self {
        ConfigAgents {
            dir,
            manager,
            tools,
            statuses: Mutex::new(BTreeMap::new()),
            loading: tokio::sync::Mutex::new(()),
            reload_successes: Default::default(),
            reload_failures: Default::default(),
            conversations: settings::ConversationLimits::default(),
        }
    }

    /// How long and how much conversation history each agent keeps
    /// (`agents.conversations`); the defaults otherwise.
    pub fn with_conversation_limits(mut self, limits: settings::ConversationLimits) -> Self {
        self.conversations = limits;
        self
    }

    /// Loads and reloads so far: `(went live, rejected)`.
    pub fn reload_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.reload_successes.load(Relaxed),
            self.reload_failures.load(Relaxed),
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FileStatus>> {
        self.statuses.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Definition files in the directory, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && definition::format_for_path(p).is_some())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Loads every file, oldest first; answers (loaded, failed). When two
    /// files declare one name, the one that was there first keeps it at
    /// every start, and the newcomer is refused with the reason: a file
    /// dropped in later can never displace the agent that was running.
    pub async fn load_all(&self) -> (usize, usize) {
        let (mut ok, mut failed) = (0, 0);
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = self
            .files()
            .into_iter()
            .map(|f| {
                let modified = std::fs::metadata(&f)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                (modified, f)
            })
            .collect();
        files.sort();
        for (_, file) in files {
            match self.load_file(&file).await {
                Ok(_) => ok += 1,
                Err(problems) => {
                    failed += 1;
                    for p in &problems {
                        tracing::warn!("{p}");
                    }
                }
            }
        }
        (ok, failed)
    }

    /// What validation checks against: the registry's tools and every other
    /// loaded agent.
    fn context_parts(&self, except_id: &str) -> (Vec<String>, Vec<LoadedAgentInfo>) {
        let loaded = self
            .manager
            .registry()
            .all()
            .into_iter()
            .filter(|h| h.id != except_id)
            .map(|h| LoadedAgentInfo {
                id: h.id.clone(),
                name: h.name.clone(),
                capabilities: h.capabilities(),
            })
            .collect();
        (self.tools.names_to_validate(), loaded)
    }

    /// Every problem of a definition given as text (`file` names it in
    /// messages and gives the id and format).
    pub fn validate_source(&self, file: &str, source: &str) -> Vec<Problem> {
        let path = Path::new(file);
        let id = match definition::agent_id_from_path(path) {
            Ok(id) => id,
            Err(p) => return vec![*p],
        };
        let Some(format) = definition::format_for_path(path) else {
            return vec![Problem {
                file: file.to_string(),
                line: None,
                column: None,
                field: None,
                message: "not an agent definition file".into(),
                fix: "name it <id>.md (YAML frontmatter + markdown) or <id>.toml".into(),
            }];
        };
        let (tools, loaded) = self.context_parts(&id);
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &loaded,
        };
        match validate::check(&id, file, source, format, &ctx) {
            Ok((_, problems)) | Err(problems) => problems,
        }
    }

    /// Reads, validates and (re)starts the agent of one file. On failure the
    /// previous version, if any, keeps serving.
    pub async fn load_file(&self, path: &Path) -> Result<Arc<AgentHandle>, Vec<Problem>> {
        let _one_at_a_time = self.loading.lock().await;
        let started = Instant::now();
        let file = path.display().to_string();
        let id = definition::agent_id_from_path(path).map_err(|p| vec![*p])?;
        let (tools, loaded) = self.context_parts(&id);
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &loaded,
        };
        let result = match validate::load_file(path, &ctx) {
            Ok(def) => self.start(def, &file, None).await,
            Err(problems) => Err(problems),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record(&id, &file, &result, elapsed_ms);
        result
    }

    /// Starts another version of a config agent from a definition's text,
    /// for a replay (`caxton replay --agent-version FILE`): as agent
    /// `as_id` (its id and name), with no capabilities and no topic
    /// subscriptions, so nothing but the replay's messages reaches it. The
    /// caller removes it with [`AgentManager::unload_config`].
    pub async fn start_version(
        &self,
        as_id: &str,
        source: &str,
    ) -> Result<Arc<AgentHandle>, Vec<Problem>> {
        let (format, file) = if source.trim_start().starts_with("---") {
            (definition::SourceFormat::Markdown, "agent-version.md")
        } else {
            (definition::SourceFormat::Toml, "agent-version.toml")
        };
        let tools = self.tools.names_to_validate();
        let ctx = ValidationContext {
            known_tools: &tools,
            loaded: &[],
        };
        let (def, problems) = validate::check(as_id, file, source, format, &ctx)?;
        if !problems.is_empty() {
            return Err(problems);
        }
        self.start(def, file, Some(as_id)).await
    }

    /// Starts (or reloads) the agent `def` describes; `replay_as` starts a
    /// version for a replay instead (see [`ConfigAgents::start_version`]).
    async fn start(
        &self,
        def: AgentDefinition,
        file: &str,
        replay_as: Option<&str>,
    ) -> Result<Arc<AgentHandle>, Vec<Problem>> {
        // The definition, and beside it the server's limits on history:
        // the interpreter keeps the conversations, so it applies them.
        let config_json = serde_json::to_value(&def)
            .and_then(|mut config| {
                if let Some(fields) = config.as_object_mut() {
                    let limits = serde_json::to_value(&self.conversations)?;
                    fields.insert("history_limits".into(), limits);
                }
                serde_json::to_string(&config)
            })
            .map_err(|e| {
                vec![problem(
                    file,
                    format!("cannot encode the definition: {e}"),
                    "report this as a bug",
                )]
            })?;
        let memory_grants = match def.memory.scope.as_str() {
            "workspace" | "global" if def.memory.enabled => vec![def.memory.scope.clone()],
            _ => Vec::new(),
        };
        let (name, capabilities, subscriptions) = match replay_as {
            Some(name) => (name.to_string(), Vec::new(), Vec::new()),
            None => (
                def.name.clone(),
                def.capabilities.clone(),
                def.subscriptions.clone(),
            ),
        };
        let spec = ConfigAgentSpec {
            id: def.id.clone(),
            name,
            capabilities,
            subscriptions,
            description: def
                .description
                .clone()
                .unwrap_or_else(|| format!("Config agent {}", def.name)),
            config_json,
            tools: def.tools.clone(),
            llm_provider: def.llm.as_ref().and_then(|l| l.provider.clone()),
            memory_grants,
            source: file.to_string(),
        };
        self.manager.deploy_config(spec).await.map_err(|e| {
            vec![problem(
                file,
                e.to_string(),
                "fix the definition; the previous version (if any) keeps serving",
            )]
        })
    }

    fn record(
        &self,
        id: &str,
        file: &str,
        result: &Result<Arc<AgentHandle>, Vec<Problem>>,
        elapsed_ms: f64,
    ) {
        let counter = if result.is_ok() {
            &self.reload_successes
        } else {
            &self.reload_failures
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = crate::clock::now_rfc3339();
        let mut statuses = self.lock();
        let status = statuses
            .entry(id.to_string())
            .or_insert_with(|| FileStatus {
                id: id.to_string(),
                file: file.to_string(),
                state: "error",
                name: None,
                version: None,
                loaded_at: None,
                last_attempt_at: now.clone(),
                reloads: 0,
                last_reload_ms: None,
                problems: Vec::new(),
            });
        status.file = file.to_string();
        status.last_attempt_at = now.clone();
        match result {
            Ok(handle) => {
                let record = handle.record();
                status.state = "active";
                status.name = Some(record.name.clone());
                status.version = serde_json::from_str::<serde_json::Value>(&record.config_json)
                    .ok()
                    .and_then(|v| v["version"].as_str().map(str::to_string));
                status.loaded_at = Some(now);
                status.reloads += 1;
                status.last_reload_ms = Some(elapsed_ms);
                status.problems.clear();
            }
            Err(problems) => {
                let serving = self
                    .manager
                    .registry()
                    .get(id)
                    .is_some_and(|h| h.record().kind == AgentKind::Config);
                status.state = if serving { "stale" } else { "error" };
                status.problems = problems.clone();
            }
        }
    }

    /// The file of a config agent named by id or display name.
    pub fn file_for(&self, name_or_id: &str) -> Option<PathBuf> {
        let id = match self.manager.registry().get(name_or_id) {
            Some(h) if h.record().kind == AgentKind::Config => h.id.clone(),
            _ => name_or_id.to_string(),
        };
        ["md", "markdown", "toml"]
            .iter()
            .map(|ext| self.dir.join(format!("{id}.{ext}")))
            .find(|p| p.is_file())
    }

    /// `agents reload NAME`.
    pub async fn reload(&self, name_or_id: &str) -> Result<FileStatus, ReloadError> {
        let path = self
            .file_for(name_or_id)
            .ok_or_else(|| ReloadError::NotFound(name_or_id.to_string()))?;
        let id = definition::agent_id_from_path(&path).map_err(|p| ReloadError::Invalid {
            file: path.display().to_string(),
            problems: vec![*p],
        })?;
        match self.load_file(&path).await {
            Ok(_) => Ok(self
                .status(&id)
                .ok_or_else(|| ReloadError::NotFound(id.clone()))?),
            Err(problems) => Err(ReloadError::Invalid {
                file: path.display().to_string(),
                problems,
            }),
        }
    }

    /// A file was deleted: its agent stops (queued messages still finish).
    pub async fn unload(&self, path: &Path) {
        let Ok(id) = definition::agent_id_from_path(path) else {
            return;
        };
        let _one_at_a_time = self.loading.lock().await;
        if self.manager.unload_config(&id).await {
            tracing::info!(agent = %id, "config agent unloaded: its file was removed");
        }
        if let Some(status) = self.lock().get_mut(&id) {
            status.state = "removed";
        }
    }

    pub fn status(&self, name_or_id: &str) -> Option<FileStatus> {
        let statuses = self.lock();
        statuses.get(name_or_id).cloned().or_else(|| {
            statuses
                .values()
                .find(|s| s.name.as_deref() == Some(name_or_id))
                .cloned()
        })
    }

    pub fn statuses(&self) -> Vec<FileStatus> {
        self.lock().values().cloned().collect()
    }

    /// Writes a definition into the agents directory (after validating it)
    /// and loads it: `agents deploy FILE.md` from another machine.
    pub async fn install(
        &self,
        file_name: &str,
        source: &str,
    ) -> Result<Arc<AgentHandle>, Vec<Problem>> {
        let problems = self.validate_source(file_name, source);
        if !problems.is_empty() {
            return Err(problems);
        }
        let name = Path::new(file_name)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let path = self.dir.join(&name);
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| std::fs::write(&path, source))
            .map_err(|e| {
                vec![problem(
                    &path.display().to_string(),
                    format!("cannot write the definition: {e}"),
                    "check the agents directory's permissions",
                )]
            })?;
        self.load_file(&path).await
    }
}

fn problem(file: &str, message: String, fix: &str) -> Problem {
    Problem {
        file: file.to_string(),
        line: None,
        column: None,
        field: None,
        message,
        fix: fix.to_string(),
    }
}

/// Format of a file by extension, for callers outside this module.
pub fn is_definition_file(path: &Path) -> bool {
    matches!(
        definition::format_for_path(path),
        Some(SourceFormat::Markdown | SourceFormat::Toml)
    )
}
