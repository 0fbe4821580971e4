//! The lifecycle of WASM agents: deploy (check, compile, start, store),
//! bring back stored agents at startup, suspend, resume, ping, remove.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::actor::{Actor, Envelope};
use super::deploy::{self, DeployError, DeployRequest};
use super::log::AgentLog;
use super::record::AgentRecord;
use super::registry::{AgentHandle, Registry, lock};
use crate::config::RuntimeConfig;
use crate::memory::MemoryService;
use crate::runtime::component_cache::ComponentCache;
use crate::runtime::{
    AgentContext, AgentInstance, AgentProgram, ExecutionFailure, HostState, engine, imports,
};
use crate::storage::Storage;

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
}

pub struct AgentManager {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Arc<ComponentCache>,
    storage: Arc<Storage>,
    registry: Arc<Registry>,
    memory: Arc<MemoryService>,
    config: RuntimeConfig,
    /// Serialises deployments and removals, so two uploads cannot both
    /// claim one name.
    lifecycle: tokio::sync::Mutex<()>,
}

impl AgentManager {
    pub fn new(
        config: RuntimeConfig,
        storage: Arc<Storage>,
        registry: Arc<Registry>,
        memory: Arc<MemoryService>,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let engine = engine::new_engine(config.max_limits.max_memory_bytes)?;
        let linker = imports::linker(&engine)
            .map_err(|e| anyhow::anyhow!("building the host linker: {e}"))?;
        let cache = ComponentCache::new(engine.clone(), data_dir.join("cache").join("components"))?;
        Ok(AgentManager {
            engine,
            linker,
            cache: Arc::new(cache),
            storage,
            registry,
            memory,
            config,
            lifecycle: tokio::sync::Mutex::new(()),
        })
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
        let records = tokio::task::spawn_blocking(move || storage.agents()).await??;
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
        let bytes = tokio::task::spawn_blocking(move || storage.component(&sha)).await??;
        let component = self.compile(&record.component_sha256, bytes).await?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(anyhow::Error::msg)?;
        self.start(
            record,
            Arc::new(program),
            Arc::new(AgentLog::default()),
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
            registry: self.registry.clone(),
            log,
            memory: self.memory.clone(),
            memory_grants: record.memory_grants.clone(),
        })
    }

    fn start(
        &self,
        record: AgentRecord,
        program: Arc<AgentProgram>,
        log: Arc<AgentLog>,
        live: Option<AgentInstance>,
    ) -> Arc<AgentHandle> {
        let capacity = self.config.mailbox_capacity;
        let (tx, rx) = mpsc::channel(capacity);
        let context = self.context(&record, log.clone());
        let handle = Arc::new(AgentHandle::new(
            record,
            log,
            tx,
            capacity,
            self.config.failure_threshold,
        ));
        if live.is_some() {
            lock(&handle.stats).instances_created += 1;
        }
        let actor = Actor {
            handle: handle.clone(),
            program,
            context,
            live,
        };
        tokio::spawn(actor.run(rx));
        self.registry.insert(handle.clone());
        handle
    }

    /// Checks everything, then stores and starts the agent. On any error
    /// nothing has been stored or started.
    pub async fn deploy(&self, request: DeployRequest) -> Result<Arc<AgentHandle>, DeployError> {
        let _guard = self.lifecycle.lock().await;
        deploy::check_name(&request.name)?;
        if self.registry.contains_name(&request.name) {
            return Err(DeployError::NameTaken(request.name));
        }
        let limits = request.limits.resolve(&self.config.default_limits);
        limits
            .check_within(&self.config.max_limits)
            .map_err(DeployError::InvalidLimits)?;
        let config_json = deploy::config_json(&request.config)?;
        deploy::check_grants(&request.memory_grants)?;
        deploy::check_preamble(&request.component)?;

        let sha256 = hex::encode(Sha256::digest(&request.component));
        let cache = self.cache.clone();
        let bytes = request.component.clone();
        let component = tokio::task::spawn_blocking(move || cache.compile_uncached(&bytes))
            .await
            .map_err(|e| DeployError::InvalidComponent(e.to_string()))?
            .map_err(|e| DeployError::InvalidComponent(format!("{e:#}")))?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(DeployError::WrongWorld)?;

        let record = AgentRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name: request.name,
            component_sha256: sha256,
            limits,
            capabilities: Vec::new(),
            description: String::new(),
            config_json,
            created_at: crate::clock::now_rfc3339(),
            suspended: false,
            memory_grants: request.memory_grants,
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
            storage.insert_agent(&to_store, &bytes)?;
            cache.store(&to_store.component_sha256, &component);
            Ok::<_, crate::storage::StorageError>(())
        })
        .await
        .map_err(|e| DeployError::Storage(e.to_string()))?
        .map_err(|e| DeployError::Storage(e.to_string()))?;
        log.push("host", "deployed");
        tracing::info!(agent = %record.name, id = %record.id, "agent deployed");
        Ok(self.start(record, Arc::new(program), log, Some(instance)))
    }

    /// Stops and deletes an agent with its state. Messages already queued
    /// are still handled; new ones are refused.
    pub async fn remove(&self, name_or_id: &str) -> Result<AgentRecord, ManageError> {
        let _guard = self.lifecycle.lock().await;
        let handle = self
            .registry
            .get(name_or_id)
            .ok_or_else(|| ManageError::NotFound(name_or_id.to_string()))?;
        let storage = self.storage.clone();
        let id = handle.id.clone();
        let removed = tokio::task::spawn_blocking(move || storage.remove_agent(&id))
            .await
            .map_err(|e| ManageError::Storage(e.to_string()))?
            .map_err(|e| ManageError::Storage(e.to_string()))?;
        self.registry.remove(&handle.name);
        let memory = self.memory.clone();
        let scope = crate::memory::model::ScopeKey::agent(&handle.id);
        match tokio::task::spawn_blocking(move || memory.delete_scope(&scope)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(agent = %handle.name, "cannot delete the agent's memory: {e}")
            }
            Err(e) => tracing::error!(agent = %handle.name, "memory cleanup task failed: {e}"),
        }
        if let Some(sha) = removed.orphaned_component {
            self.cache.forget(&sha);
        }
        tracing::info!(agent = %handle.name, "agent removed");
        Ok(handle.record())
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
        let storage = self.storage.clone();
        let to_store = record.clone();
        tokio::task::spawn_blocking(move || storage.update_agent(&to_store))
            .await
            .map_err(|e| ManageError::Storage(e.to_string()))?
            .map_err(|e| ManageError::Storage(e.to_string()))?;
        *lock(&handle.record) = record;
        if !suspended {
            lock(&handle.stats).consecutive_failures = 0;
        }
        handle
            .log
            .push("host", if suspended { "suspended" } else { "resumed" });
        Ok(handle)
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
        let bytes = tokio::task::spawn_blocking(move || storage.component(&sha)).await??;
        let component = self.compile(&record.component_sha256, bytes).await?;
        let program = AgentProgram::new(&self.engine, &self.linker, &component)
            .map_err(anyhow::Error::msg)?;
        Ok((Arc::new(program), record))
    }

    /// A context for instances made outside an actor (benchmarks).
    pub fn detached_context(&self, record: &AgentRecord) -> Arc<AgentContext> {
        self.context(record, Arc::new(AgentLog::default()))
    }
}
