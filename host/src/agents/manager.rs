//! The lifecycle of WASM agents: deploy (check, compile, start, store),
//! bring back stored agents at startup, suspend, resume, ping, remove.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::actor::{Actor, Envelope, Runner};
use super::deploy::{self, DeployError, DeployRequest};
use super::record::{AgentKind, AgentRecord};
use super::registry::{AgentHandle, Registry, lock};
use crate::llm::LlmService;
use crate::memory::MemoryService;
use crate::messaging::SubscribeError;
use crate::runtime::component_cache::ComponentCache;
use crate::runtime::guest_log::AgentLog;
use crate::runtime::limits::ResourceLimits;
use crate::runtime::settings::RuntimeConfig;
use crate::runtime::upload;
use crate::runtime::{
    AgentContext, AgentInstance, AgentProgram, ExecutionFailure, HostState, imports,
};
use crate::storage::Storage;
use crate::tools::ToolRegistry;

#[derive(Debug, Error)]
pub enum ManageError {
    #[error("no agent named `{0}`; list agents with `caxton agents list`")]
    NotFound(String),
    #[error("agent `{agent}` did not respond: {failure}")]
    Unresponsive {
        agent: String,
        failure: ExecutionFailure,
    },
    #[error("agent `{0}` did not answer the ping in time (its mailbox may be busy)")]
    PingTimeout(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error(
        "agent `{name}` is defined by {source_file}, not deployed; remove it there (delete or move a config agent's file, or its entry under a2a_agents)"
    )]
    DefinedByFile { name: String, source_file: String },
    /// The request itself is wrong; the text says how.
    #[error("{0}")]
    Invalid(String),
}

pub struct AgentManager {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Arc<ComponentCache>,
    storage: Arc<Storage>,
    registry: Arc<Registry>,
    memory: Arc<MemoryService>,
    llm: Arc<LlmService>,
    tools: Arc<ToolRegistry>,
    trace: Arc<crate::trace::TraceStore>,
    config: RuntimeConfig,
    /// Serialises changes to who is running. Held only for bookkeeping,
    /// never while guest code runs (a slow `init` must not stall a
    /// suspend of another agent): a deployment reserves its name under it,
    /// runs its trial without it, and takes it again to start.
    lifecycle: tokio::sync::Mutex<()>,
    /// Names and ids claimed by deployments still in their trial run.
    reserved: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The config-agent interpreter, compiled on first use.
    interpreter: tokio::sync::OnceCell<Arc<AgentProgram>>,
    /// Where agents' key-value state goes beyond this node, once set.
    shared_state: Arc<std::sync::OnceLock<Arc<dyn crate::runtime::state::SharedState>>>,
    /// LLM budgets, once set (every agent's context shares the cell).
    budgets: Arc<std::sync::OnceLock<Arc<crate::budgets::Budgets>>>,
    /// Conversation recordings, once set.
    recorder: Arc<std::sync::OnceLock<Arc<crate::recordings::Recorder>>>,
}

/// The built-in config-agent interpreter (`builtin-components/config-agent`),
/// built by `host/build.rs`.
pub const CONFIG_AGENT_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/config_agent.wasm"));

fn interpreter_sha256() -> String {
    hex::encode(Sha256::digest(CONFIG_AGENT_COMPONENT))
}

/// The `budget:` a config agent's definition declares (its parsed
/// definition is the interpreter's configuration); none when absent or
/// unreadable (the definition was checked when it was parsed).
fn declared_budget(config_json: &str) -> Vec<crate::budgets::Limit> {
    serde_json::from_str::<serde_json::Value>(config_json)
        .ok()
        .and_then(|v| v.get("budget").cloned())
        .and_then(|b| serde_json::from_value::<Vec<crate::budgets::Limit>>(b).ok())
        .unwrap_or_default()
}

/// What [`AgentManager::deploy_config`] needs to know about a config agent.
#[derive(Debug, Clone)]
pub struct ConfigAgentSpec {
    /// The definition file's stem (`data-analyzer`).
    pub id: String,
    /// The display name (`DataAnalyzer`).
    pub name: String,
    pub capabilities: Vec<String>,
    pub description: String,
    /// Topics it subscribes to at start (`subscriptions:`), checked.
    pub subscriptions: Vec<String>,
    /// The definition, for the interpreter's `init`.
    pub config_json: String,
    pub tools: Vec<String>,
    pub llm_provider: Option<String>,
    pub memory_grants: Vec<String>,
    /// The definition file.
    pub source: String,
}

impl AgentManager {
    pub fn new(
        config: RuntimeConfig,
        storage: Arc<Storage>,
        registry: Arc<Registry>,
        memory: Arc<MemoryService>,
        llm: Arc<LlmService>,
        tools: Arc<ToolRegistry>,
        cache: Arc<ComponentCache>,
    ) -> anyhow::Result<Self> {
        super::store::create_tables(&storage)?;
        let engine = cache.engine().clone();
        let linker = imports::linker(&engine)
            .map_err(|e| anyhow::anyhow!("building the host linker: {e}"))?;
        Ok(AgentManager {
            engine,
            linker,
            cache,
            storage,
            registry,
            memory,
            llm,
            tools,
            trace: Arc::new(crate::trace::TraceStore::new(crate::trace::DEFAULT_SPANS)),
            config,
            lifecycle: tokio::sync::Mutex::new(()),
            reserved: Default::default(),
            interpreter: tokio::sync::OnceCell::new(),
            shared_state: Arc::default(),
            budgets: Arc::default(),
            recorder: Arc::default(),
        })
    }

    /// Records into `trace` instead of a store of its own (the server
    /// shares one with its API).
    /// Components compiled since the start, agents and tools alike.
    pub fn component_compiles(&self) -> u64 {
        self.cache.compiles()
    }

    pub fn with_trace(mut self, trace: Arc<crate::trace::TraceStore>) -> Self {
        self.trace = trace;
        self
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Starts every stored agent. An agent that cannot be loaded is
    /// reported and skipped; the others still start.
    pub async fn start_stored(&self) -> anyhow::Result<usize> {
        let storage = self.storage.clone();
        let records = tokio::task::spawn_blocking(move || super::store::all(&storage)).await??;
        let mut started = 0;
        for record in records {
            match self.start_stored_one(record.clone()).await {
                Ok(()) => started += 1,
                Err(e) => tracing::error!(agent = %record.name, "cannot start stored agent: {e:#}"),
            }
        }
        Ok(started)
    }

    async fn start_stored_one(&self, record: AgentRecord) -> anyhow::Result<()> {
        let storage = self.storage.clone();
        let sha = record.component_sha256.clone();
        let bytes =
            tokio::task::spawn_blocking(move || super::store::component(&storage, &sha)).await??;
        let component = self.compile(&record.component_sha256, bytes).await?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(anyhow::Error::msg)?;
        self.start(
            record,
            Arc::new(program),
            Arc::new(AgentLog::default()),
            None,
            None,
        );
        Ok(())
    }

    async fn compile(&self, sha256: &str, bytes: Vec<u8>) -> anyhow::Result<Component> {
        let cache = self.cache.clone();
        let sha = sha256.to_string();
        tokio::task::spawn_blocking(move || cache.load_or_compile(&sha, &bytes))
            .await?
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    fn context(&self, record: &AgentRecord, log: Arc<AgentLog>) -> Arc<AgentContext> {
        Arc::new(AgentContext {
            id: record.id.clone(),
            name: record.name.clone(),
            storage: self.storage.clone(),
            bus: self.registry.clone(),
            log,
            memory: self.memory.clone(),
            memory_grants: record.memory_grants.clone(),
            tools: record.tools.clone(),
            tool_host: self.tools.clone(),
            llm: self.llm.clone(),
            llm_provider: record.llm_provider.clone(),
            llm_granted: record.llm_granted || record.kind == AgentKind::Config,
            trace: self.trace.clone(),
            shared_state: self.shared_state.clone(),
            budgets: self.budgets.clone(),
            recorder: self.recorder.clone(),
            config_agent: record.kind == AgentKind::Config,
        })
    }

    /// Records agents' conversations in `recorder` from now on. Once.
    pub fn use_recorder(&self, recorder: Arc<crate::recordings::Recorder>) {
        let _ = self.recorder.set(recorder);
    }

    /// The conversation recorder, once set.
    pub fn recorder(&self) -> Option<&Arc<crate::recordings::Recorder>> {
        self.recorder.get()
    }

    /// Enforces `budgets` on every agent's model calls from now on. Once.
    pub fn use_budgets(&self, budgets: Arc<crate::budgets::Budgets>) {
        let _ = self.budgets.set(budgets);
    }

    /// The LLM budgets, once set.
    pub fn budgets(&self) -> Option<&Arc<crate::budgets::Budgets>> {
        self.budgets.get()
    }

    /// Keeps agents' key-value state in `state` from now on (a cluster's,
    /// so agents can move between nodes); agents already running switch
    /// too. Once only.
    pub fn share_state(&self, state: Arc<dyn crate::runtime::state::SharedState>) {
        let _ = self.shared_state.set(state);
    }

    fn start(
        &self,
        record: AgentRecord,
        program: Arc<AgentProgram>,
        log: Arc<AgentLog>,
        live: Option<AgentInstance>,
        replacing: Option<&Arc<AgentHandle>>,
    ) -> Arc<AgentHandle> {
        let capacity = self.config.mailbox_capacity;
        let (tx, rx) = mpsc::channel(capacity);
        // A trial instance made at deploy brings its context; the actor's
        // later instances reuse it.
        let context = match &live {
            Some(instance) => instance.context(),
            None => self.context(&record, log.clone()),
        };
        let created = live.is_some();
        let runner = Arc::new(tokio::sync::Mutex::new(Runner {
            program,
            context,
            live,
            stopped: false,
        }));
        // Only WASM agents' messages are run inline by their requests: a
        // config agent's run is abandoned when its sender goes, which the
        // actor watches for.
        let inline = (record.kind == super::record::AgentKind::Wasm).then(|| runner.clone());
        let handle = Arc::new(
            AgentHandle::new(record, log, tx, capacity, self.config.failure_threshold)
                .with_runner(inline),
        );
        if created {
            lock(&handle.stats).instances_created += 1;
        }
        let actor = Actor {
            handle: handle.clone(),
            runner,
        };
        // Every caller checked the name under the lifecycle lock; a refusal
        // here would be a bug, and the newcomer (not the running agent) pays.
        let inserted = match replacing {
            // One step: no lookup in between finds neither version.
            Some(previous) => self.registry.swap(previous, handle.clone()),
            None => self.registry.insert(handle.clone()),
        };
        if let Err(refused) = inserted {
            tracing::error!(agent = %refused.name, id = %refused.id, "name or id already running; not started");
            refused.stop();
        }
        tokio::spawn(actor.run(rx));
        handle
    }

    /// Checks everything, then stores and starts the agent. On any error
    /// nothing has been stored or started.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Arc<AgentHandle>, DeployError> {
        upload::check_name(&request.name)?;
        let _reservation = self.reserve(&[&request.name], None).await?;
        let limits = request.limits.resolve(&self.config.default_limits);
        limits
            .check_within(&self.config.max_limits)
            .map_err(DeployError::InvalidLimits)?;
        let config_json = upload::config_json(&request.config)?;
        deploy::check_grants(&request.memory_grants)?;
        deploy::check_tools(&request.tools, |name| self.tools.contains(name))?;
        upload::check_preamble(&request.component)?;
        upload::check_imports(&request.component)?;

        let sha256 = hex::encode(Sha256::digest(&request.component));
        let cache = self.cache.clone();
        let bytes = request.component.clone();
        let sha = sha256.clone();
        let component = tokio::task::spawn_blocking(move || cache.compile_upload(&sha, &bytes))
            .await
            .map_err(|e| DeployError::InvalidComponent(e.to_string()))?
            .map_err(|e| DeployError::InvalidComponent(format!("{e:#}")))?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(DeployError::WrongWorld)?;

        let id = match request.id {
            Some(id) if uuid::Uuid::parse_str(&id).is_ok() => id,
            Some(id) => {
                return Err(DeployError::InvalidName {
                    name: id,
                    reason: "an agent id is a UUID".into(),
                });
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let record = AgentRecord {
            id,
            name: request.name,
            component_sha256: sha256,
            limits,
            capabilities: Vec::new(),
            description: String::new(),
            config_json,
            created_at: crate::clock::now_rfc3339(),
            suspended: false,
            memory_grants: request.memory_grants,
            kind: AgentKind::Wasm,
            tools: request.tools,
            llm_provider: None,
            llm_granted: request.llm,
            source: None,
        };
        // A trial run: the agent must instantiate, init and describe itself
        // within its own limits before it is accepted.
        let log = Arc::new(AgentLog::default());
        let mut instance = program
            .instantiate(
                self.context(&record, log.clone()),
                limits,
                &record.config_json,
            )
            .await
            .map_err(DeployError::StartFailed)?;
        let info = instance
            .describe()
            .await
            .map_err(DeployError::StartFailed)?;
        super::deploy::check_described(&info.description, &info.capabilities)?;
        super::deploy::check_subscriptions(&info.subscriptions)?;
        let record = AgentRecord {
            capabilities: info.capabilities,
            description: info.description,
            ..record
        };

        let storage = self.storage.clone();
        let cache = self.cache.clone();
        let to_store = record.clone();
        let bytes = request.component;
        tokio::task::spawn_blocking(move || {
            super::store::insert(&storage, &to_store, &bytes)?;
            cache.store(&to_store.component_sha256, &component);
            Ok::<_, crate::storage::StorageError>(())
        })
        .await
        .map_err(|e| DeployError::Storage(e.to_string()))?
        .map_err(|e| DeployError::Storage(e.to_string()))?;
        log.push("host", "deployed");
        tracing::info!(agent = %record.name, id = %record.id, "agent deployed");
        let _guard = self.lifecycle.lock().await;
        let handle = self.start(record, Arc::new(program), log, Some(instance), None);
        self.subscribe_declared(&handle, &info.subscriptions).await;
        Ok(handle)
    }

    /// Subscribes a just-started agent to the topics it declares (its
    /// `describe`, or a config agent's `subscriptions:`), already checked.
    /// A subscription that cannot be stored is logged, not fatal: the
    /// agent runs, and the operator can subscribe it by hand.
    async fn subscribe_declared(&self, handle: &AgentHandle, topics: &[String]) {
        for topic in topics {
            if let Err(e) = self.registry.subscribe(&handle.id, topic, true).await {
                handle
                    .log
                    .push("host", &format!("cannot subscribe to topic {topic}: {e}"));
                tracing::warn!(agent = %handle.name, topic, error = %e, "declared subscription not stored");
            }
        }
    }

    /// Claims `names` for a deployment in its trial run; `replacing` is
    /// the config agent (by id) the deployment will replace, whose own
    /// name and id do not count as taken. Released when the guard drops.
    async fn reserve(
        &self,
        names: &[&str],
        replacing: Option<&str>,
    ) -> Result<Reservation<'_>, DeployError> {
        let _guard = self.lifecycle.lock().await;
        let mut reserved = lock(&self.reserved);
        // Deployments in their trial count too (a config agent's reserves
        // its name and id: counting names errs on the side of refusing).
        let running = self.registry.len() + reserved.len();
        if replacing.is_none() && running >= self.config.max_agents {
            return Err(DeployError::Quota(self.config.max_agents));
        }
        for name in names {
            let held = self
                .registry
                .get(name)
                .filter(|h| Some(h.id.as_str()) != replacing);
            if let Some(other) = held {
                return Err(DeployError::NameTaken(other.name.clone()));
            }
            if reserved.contains(*name) {
                return Err(DeployError::NameTaken((*name).to_string()));
            }
        }
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        reserved.extend(names.iter().cloned());
        Ok(Reservation {
            set: &self.reserved,
            names,
        })
    }

    /// Starts (or hot-swaps) a config agent: the built-in interpreter
    /// component with the agent's definition as its config. The previous
    /// version, if any, finishes the messages already queued for it; new
    /// messages go to the new version. Nothing is stored: the definition
    /// file is the source of truth and is read again at every start.
    pub async fn deploy_config(
        &self,
        spec: ConfigAgentSpec,
    ) -> Result<Arc<AgentHandle>, DeployError> {
        // The id (the file's stem) must not be another agent's name, nor
        // the name another's id: lookups by either would reach the wrong
        // one. Only the config agent this file already runs may be replaced.
        let previous = match self.registry.get(&spec.id) {
            Some(h) if h.id == spec.id && h.record().kind == AgentKind::Config => Some(h),
            Some(other) => return Err(DeployError::NameTaken(other.name.clone())),
            None => None,
        };
        let replacing = previous.as_ref().map(|p| p.id.clone());
        let _reservation = self
            .reserve(&[&spec.name, &spec.id], replacing.as_deref())
            .await?;
        let program = self.interpreter().await?;
        let record = AgentRecord {
            id: spec.id,
            name: spec.name,
            component_sha256: interpreter_sha256(),
            // A config agent's time goes to waiting for its model (each call
            // bounded by llm.timeout_secs, at most max_tool_steps of them),
            // so it gets the wall-time ceiling rather than the default.
            limits: ResourceLimits {
                max_execution_time_ms: self
                    .config
                    .max_limits
                    .max_execution_time_ms
                    .max(self.config.default_limits.max_execution_time_ms),
                ..self.config.default_limits
            },
            capabilities: spec.capabilities,
            description: spec.description,
            config_json: spec.config_json,
            created_at: crate::clock::now_rfc3339(),
            suspended: previous.as_ref().is_some_and(|p| p.record().suspended),
            memory_grants: spec.memory_grants,
            kind: AgentKind::Config,
            tools: spec.tools,
            llm_provider: spec.llm_provider,
            llm_granted: true,
            source: Some(spec.source),
        };
        let log = previous.as_ref().map(|p| p.log.clone()).unwrap_or_default();
        let instance = program
            .instantiate(
                self.context(&record, log.clone()),
                record.limits,
                &record.config_json,
            )
            .await
            .map_err(DeployError::StartFailed)?;
        let _guard = self.lifecycle.lock().await;

        log.push(
            "host",
            if previous.is_some() {
                "reloaded from its definition"
            } else {
                "loaded from its definition"
            },
        );
        // The old version handles what is already queued for it.
        if let Some(budgets) = self.budgets.get() {
            budgets.declare(&record.name, declared_budget(&record.config_json));
        }
        let handle = self.start(record, program, log, Some(instance), previous.as_ref());
        self.subscribe_declared(&handle, &spec.subscriptions).await;
        Ok(handle)
    }

    /// Stops a config agent whose definition file is gone.
    pub async fn unload_config(&self, id: &str) -> bool {
        let _guard = self.lifecycle.lock().await;
        match self
            .registry
            .get(id)
            .filter(|h| h.record().kind == AgentKind::Config)
        {
            // Its queued messages still finish.
            Some(handle) => {
                if let Some(budgets) = self.budgets.get() {
                    budgets.declare(&handle.name, Vec::new());
                }
                self.registry.retire(&handle.name).is_some()
            }
            None => false,
        }
    }

    /// Compiles the config-agent interpreter now rather than at the first
    /// config agent (a cluster node may have to start one at any moment,
    /// when another node dies).
    pub async fn warm_interpreter(&self) {
        if let Err(e) = self.interpreter().await {
            tracing::warn!(error = %e, "cannot prepare the config-agent interpreter");
        }
    }

    /// The interpreter component, compiled once (and cached on disk).
    async fn interpreter(&self) -> Result<Arc<AgentProgram>, DeployError> {
        self.interpreter
            .get_or_try_init(|| async {
                let component = self
                    .compile(&interpreter_sha256(), CONFIG_AGENT_COMPONENT.to_vec())
                    .await
                    .map_err(|e| {
                        DeployError::InvalidComponent(format!("built-in interpreter: {e:#}"))
                    })?;
                AgentProgram::new(&self.engine, &self.linker, &component)
                    .map(Arc::new)
                    .map_err(DeployError::WrongWorld)
            })
            .await
            .cloned()
    }

    /// Stops and deletes an agent with its state. Messages already queued
    /// are still handled; new ones are refused.
    pub async fn remove(&self, name_or_id: &str) -> Result<AgentRecord, ManageError> {
        let record = self.remove_with(name_or_id, true).await?;
        // Its budget goes with it; a new agent of the name starts afresh.
        if let Some(budgets) = self.budgets.get() {
            let subject = crate::budgets::Subject::Agent(record.name.clone());
            if let Err(e) = budgets.set(&subject, None) {
                tracing::warn!(agent = %record.name, error = %e, "could not remove the agent's budget");
            }
        }
        Ok(record)
    }

    /// Stops and deletes this node's copy of an agent that lives on
    /// elsewhere in the cluster: its memory (the cluster's) is kept.
    pub async fn remove_here(&self, name_or_id: &str) -> Result<AgentRecord, ManageError> {
        self.remove_with(name_or_id, false).await
    }

    async fn remove_with(
        &self,
        name_or_id: &str,
        forget_memory: bool,
    ) -> Result<AgentRecord, ManageError> {
        let _guard = self.lifecycle.lock().await;
        let handle = self
            .registry
            .get(name_or_id)
            .ok_or_else(|| ManageError::NotFound(name_or_id.to_string()))?;
        let record = handle.record();
        if record.kind != AgentKind::Wasm {
            return Err(ManageError::DefinedByFile {
                name: record.name,
                source_file: record.source.unwrap_or_default(),
            });
        }
        let storage = self.storage.clone();
        let id = handle.id.clone();
        let removed = tokio::task::spawn_blocking(move || super::store::remove(&storage, &id))
            .await
            .map_err(|e| ManageError::Storage(e.to_string()))?
            .map_err(|e| ManageError::Storage(e.to_string()))?;
        self.registry.remove(&handle.name);
        let topics = self.registry.topics().of_agent(&handle.name);
        if !topics.is_empty() {
            let storage = self.storage.clone();
            let name = handle.name.clone();
            let forgotten = tokio::task::spawn_blocking(move || {
                super::topics::forget(&storage, &name, &topics)
            })
            .await;
            if !matches!(forgotten, Ok(Ok(()))) {
                tracing::error!(agent = %handle.name, "cannot delete the agent's topic subscriptions");
            }
            self.registry.topics().forget_agent(&handle.name);
        }
        if forget_memory {
            self.forget_memory(&handle.name, &handle.id).await;
        }
        if let Some(sha) = removed.orphaned_component {
            self.cache.forget(&sha);
        }
        tracing::info!(agent = %handle.name, "agent removed");
        Ok(handle.record())
    }

    /// Deletes the private memory of the agent `id` (named `name`).
    pub async fn forget_memory(&self, name: &str, id: &str) {
        let memory = self.memory.clone();
        let scope = crate::memory::model::ScopeKey::agent(id);
        match tokio::task::spawn_blocking(move || memory.delete_scope(&scope)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(agent = %name, "cannot delete the agent's memory: {e}"),
            Err(e) => tracing::error!(agent = %name, "memory cleanup task failed: {e}"),
        }
    }

    /// Suspends (messages refused) or resumes an agent; the flag is stored.
    pub async fn set_suspended(
        &self,
        name_or_id: &str,
        suspended: bool,
    ) -> Result<Arc<AgentHandle>, ManageError> {
        let _guard = self.lifecycle.lock().await;
        let handle = self
            .registry
            .get(name_or_id)
            .ok_or_else(|| ManageError::NotFound(name_or_id.to_string()))?;
        let mut record = handle.record();
        record.suspended = suspended;
        // Config agents live in their files, not in the database.
        if record.kind == AgentKind::Wasm {
            let storage = self.storage.clone();
            let to_store = record.clone();
            tokio::task::spawn_blocking(move || super::store::update(&storage, &to_store))
                .await
                .map_err(|e| ManageError::Storage(e.to_string()))?
                .map_err(|e| ManageError::Storage(e.to_string()))?;
        }
        *lock(&handle.record) = record;
        if !suspended {
            lock(&handle.stats).consecutive_failures = 0;
        }
        handle
            .log
            .push("host", if suspended { "suspended" } else { "resumed" });
        Ok(handle)
    }

    /// Loads the stored topic subscriptions (at start).
    pub async fn load_subscriptions(&self) -> Result<usize, ManageError> {
        let storage = self.storage.clone();
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || registry.topics().load(&storage))
            .await
            .map_err(|e| ManageError::Storage(e.to_string()))?
            .map_err(|e| ManageError::Storage(e.to_string()))
    }

    /// Subscribes an agent to a topic, or ends its subscription; stored,
    /// so it outlives reloads and restarts. Answers the agent's topics.
    pub async fn subscribe(
        &self,
        name_or_id: &str,
        topic: &str,
        subscribed: bool,
    ) -> Result<Vec<String>, ManageError> {
        // Under the lifecycle lock: not while the agent is being removed.
        let _guard = self.lifecycle.lock().await;
        self.registry
            .subscribe(name_or_id, topic, subscribed)
            .await
            .map_err(|e| match e {
                SubscribeError::Invalid(why) => ManageError::Invalid(why),
                SubscribeError::UnknownAgent(name) => ManageError::NotFound(name),
                SubscribeError::Storage(why) => ManageError::Storage(why),
            })
    }

    /// Round trip through the agent's mailbox, making sure it can be
    /// instantiated; answers the time it took.
    pub async fn ping(&self, name_or_id: &str, timeout: Duration) -> Result<Duration, ManageError> {
        let handle = self
            .registry
            .get(name_or_id)
            .ok_or_else(|| ManageError::NotFound(name_or_id.to_string()))?;
        let (tx, rx) = oneshot::channel();
        handle
            .post(Envelope::Ping { reply: tx })
            .map_err(|_| ManageError::PingTimeout(handle.name.clone()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(elapsed))) => Ok(elapsed),
            Ok(Ok(Err(failure))) => Err(ManageError::Unresponsive {
                agent: handle.name.clone(),
                failure,
            }),
            Ok(Err(_)) | Err(_) => Err(ManageError::PingTimeout(handle.name.clone())),
        }
    }

    /// Instantiates a compiled program straight from the cache, for the
    /// benchmark of instantiation cost.
    pub async fn program_for(
        &self,
        name_or_id: &str,
    ) -> anyhow::Result<(Arc<AgentProgram>, AgentRecord)> {
        let handle = self
            .registry
            .get(name_or_id)
            .ok_or_else(|| anyhow::anyhow!("no agent named `{name_or_id}`"))?;
        let record = handle.record();
        let storage = self.storage.clone();
        let sha = record.component_sha256.clone();
        let bytes =
            tokio::task::spawn_blocking(move || super::store::component(&storage, &sha)).await??;
        let component = self.compile(&record.component_sha256, bytes).await?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(anyhow::Error::msg)?;
        Ok((Arc::new(program), record))
    }

    /// The caller a tool sees when an operator invokes it directly
    /// (`caxton tools invoke`): the agent `as_agent` (its memory scope,
    /// its name on messages) or, without one, an operator named after the
    /// token. Either may call `tool` and nothing else.
    pub fn tool_caller(
        &self,
        operator: &str,
        as_agent: Option<&str>,
        tool: &str,
    ) -> Result<Arc<AgentContext>, ManageError> {
        let (mut record, log) = match as_agent {
            Some(name) => {
                let handle = self
                    .registry
                    .get(name)
                    .ok_or_else(|| ManageError::NotFound(name.to_string()))?;
                (handle.record(), handle.log.clone())
            }
            None => (
                AgentRecord {
                    id: format!("operator:{operator}"),
                    name: operator.to_string(),
                    component_sha256: String::new(),
                    limits: self.config.default_limits,
                    capabilities: Vec::new(),
                    description: String::new(),
                    config_json: "{}".into(),
                    created_at: crate::clock::now_rfc3339(),
                    suspended: false,
                    memory_grants: Vec::new(),
                    kind: AgentKind::Wasm,
                    tools: Vec::new(),
                    llm_provider: None,
                    llm_granted: false,
                    source: None,
                },
                Arc::new(AgentLog::default()),
            ),
        };
        record.tools = vec![tool.to_string()];
        Ok(self.context(&record, log))
    }

    /// A context for instances made outside an actor (benchmarks).
    pub fn detached_context(&self, record: &AgentRecord) -> Arc<AgentContext> {
        self.context(record, Arc::new(AgentLog::default()))
    }
}

/// Names held by a deployment in its trial run; released on drop, whether
/// the deployment started or failed.
struct Reservation<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<String>>,
    names: Vec<String>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut set = lock(self.set);
        for name in &self.names {
            set.remove(name);
        }
    }
}
