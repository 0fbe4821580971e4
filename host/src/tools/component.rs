//! Tool components: tools deployed over REST (`POST /api/v1/tools`) as
//! WebAssembly components of the `tool` world, stored in redb and loaded
//! again at every start.
//!
//! The tool's name, description and JSON Schema come from its own
//! `describe` export, checked at deploy. Every call runs in a fresh sandbox
//! under the tool's limits, so tools keep no state and one call cannot
//! affect the next.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmtime::component::Linker;

use super::store::{self, ToolRecord};
use super::{Tool, ToolError};
use crate::runtime::bindings::caxton::agent0_1_0::types::Error as WitError;
use crate::runtime::component_cache::ComponentCache;
use crate::runtime::guest_log::AgentLog;
use crate::runtime::limits::RequestedLimits;
use crate::runtime::settings::RuntimeConfig;
use crate::runtime::tool::{self as tool_runtime, ToolProgram, ToolState};
use crate::runtime::upload::{self, DeployError};
use crate::runtime::{AgentContext, ExecutionFailure};
use crate::storage::Storage;

/// Longest tool name; OpenAI-style function names allow 64 characters.
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Error)]
pub enum ToolDeployError {
    #[error("{0}")]
    Component(#[from] DeployError),
    #[error("the tool failed while describing itself: {0}")]
    DescribeFailed(ExecutionFailure),
    #[error("the tool's name `{name}` is not usable: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "the tool's parameters schema is not usable: {0}; `describe` must return a JSON Schema object such as {{\"type\":\"object\",\"properties\":{{}}}}"
    )]
    InvalidSchema(String),
    #[error("`{0}` is a built-in tool; a tool component must describe itself with another name")]
    BuiltinName(String),
    #[error(
        "a tool named `{0}` is already deployed; replace it with `caxton tools deploy FILE --replace` (POST /api/v1/tools?replace=true, or \"replace\": true in a JSON upload) or remove it first"
    )]
    Exists(String),
    #[error("storage error, nothing was deployed: {0}")]
    Storage(String),
    #[error(
        "{0} tool components are deployed, the most runtime.max_tools allows; remove one first or raise the setting"
    )]
    Quota(usize),
}

impl ToolDeployError {
    pub fn code(&self) -> &'static str {
        match self {
            ToolDeployError::Component(e) => e.code(),
            ToolDeployError::DescribeFailed(_) => "tool_describe_failed",
            ToolDeployError::InvalidName { .. } => "invalid_tool_name",
            ToolDeployError::InvalidSchema(_) => "invalid_tool_schema",
            ToolDeployError::BuiltinName(_) | ToolDeployError::Exists(_) => "tool_name_conflict",
            ToolDeployError::Storage(_) => "storage_error",
            ToolDeployError::Quota(_) => "tool_quota_reached",
        }
    }
}

/// One deployed tool component, ready to call.
pub struct ComponentTool {
    record: ToolRecord,
    program: ToolProgram,
}

impl ComponentTool {
    pub fn record(&self) -> &ToolRecord {
        &self.record
    }
}

#[async_trait::async_trait]
impl Tool for ComponentTool {
    fn name(&self) -> &str {
        &self.record.name
    }

    fn description(&self) -> &str {
        &self.record.description
    }

    fn schema(&self) -> Value {
        self.record.parameters.clone()
    }

    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let name = &self.record.name;
        let outcome = self
            .program
            .invoke(
                caller.log.clone(),
                name,
                self.record.limits,
                args.to_string(),
            )
            .await
            .map_err(|failure| ToolError::Failed(format!("the tool `{name}` {failure}")))?;
        match outcome {
            // Tools answer JSON; text that is not JSON is passed on as a string.
            Ok(text) => Ok(serde_json::from_str(&text).unwrap_or(Value::String(text))),
            Err(WitError::InvalidInput(t)) => Err(ToolError::InvalidInput(t)),
            Err(WitError::NotFound(t)) => Err(ToolError::NotFound(t)),
            Err(WitError::Denied(t)) => Err(ToolError::Denied(t)),
            Err(WitError::Timeout(t) | WitError::Unavailable(t) | WitError::Internal(t)) => {
                Err(ToolError::Failed(t))
            }
        }
    }
}

/// The deployed tool components, and what deploying one needs.
pub struct ComponentTools {
    cache: Arc<ComponentCache>,
    linker: Linker<ToolState>,
    storage: Arc<Storage>,
    runtime: RuntimeConfig,
    loaded: RwLock<BTreeMap<String, Arc<ComponentTool>>>,
    /// Serialises deployments and removals of tools.
    lifecycle: tokio::sync::Mutex<()>,
}

impl ComponentTools {
    pub fn new(
        cache: Arc<ComponentCache>,
        storage: Arc<Storage>,
        runtime: RuntimeConfig,
    ) -> anyhow::Result<Self> {
        store::create_tables(&storage)?;
        let linker = tool_runtime::linker(cache.engine())
            .map_err(|e| anyhow::anyhow!("building the tool linker: {e}"))?;
        Ok(ComponentTools {
            cache,
            linker,
            storage,
            runtime,
            loaded: RwLock::new(BTreeMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<ComponentTool>> {
        read(&self.loaded).get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ComponentTool>> {
        read(&self.loaded).values().cloned().collect()
    }

    /// Loads every stored tool. One that no longer loads is logged and
    /// skipped (it stays stored, so a fixed server can load it again).
    pub async fn load_stored(&self) -> anyhow::Result<usize> {
        let storage = self.storage.clone();
        let stored = tokio::task::spawn_blocking(move || store::all(&storage)).await??;
        let mut count = 0;
        for entry in stored {
            let (record, bytes) = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!("cannot load a stored tool: {e}");
                    continue;
                }
            };
            let cache = self.cache.clone();
            let sha = record.component_sha256.clone();
            let compiled =
                tokio::task::spawn_blocking(move || cache.load_or_compile(&sha, &bytes)).await?;
            let program = compiled
                .map_err(|e| format!("{e:#}"))
                .and_then(|c| ToolProgram::new(self.cache.engine(), &self.linker, &c));
            match program {
                Ok(program) => {
                    let name = record.name.clone();
                    write(&self.loaded).insert(name, Arc::new(ComponentTool { record, program }));
                    count += 1;
                }
                Err(e) => tracing::error!(tool = %record.name, "cannot load the stored tool: {e}"),
            }
        }
        Ok(count)
    }

    /// Checks, describes and stores a tool component. `builtin` says
    /// whether a name belongs to a built-in tool. Answers the tool and
    /// whether it replaced one of the same name.
    pub async fn deploy(
        &self,
        bytes: Vec<u8>,
        requested: RequestedLimits,
        replace: bool,
        builtin: impl Fn(&str) -> bool,
    ) -> Result<(Arc<ComponentTool>, bool), ToolDeployError> {
        upload::check_preamble(&bytes)?;
        upload::check_imports(&bytes)?;
        let limits = requested.resolve(&self.runtime.default_limits);
        limits
            .check_within(&self.runtime.max_limits)
            .map_err(DeployError::InvalidLimits)?;
        let cache = self.cache.clone();
        let to_compile = bytes.clone();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let sha = sha256.clone();
        let component =
            tokio::task::spawn_blocking(move || cache.compile_upload(&sha, &to_compile))
                .await
                .map_err(|e| DeployError::InvalidComponent(e.to_string()))?
                .map_err(|e| DeployError::InvalidComponent(format!("{e:#}")))?;
        let program = ToolProgram::new(self.cache.engine(), &self.linker, &component)
            .map_err(DeployError::WrongWorld)?;
        let description = program
            .describe(Arc::new(AgentLog::default()), limits)
            .await
            .map_err(ToolDeployError::DescribeFailed)?;
        check_name(&description.name)?;
        let parameters = check_schema(&description.parameters_schema)?;

        let _guard = self.lifecycle.lock().await;
        if builtin(&description.name) {
            return Err(ToolDeployError::BuiltinName(description.name));
        }
        let replaced = self.get(&description.name).is_some();
        if replaced && !replace {
            return Err(ToolDeployError::Exists(description.name));
        }
        if !replaced && read(&self.loaded).len() >= self.runtime.max_tools {
            return Err(ToolDeployError::Quota(self.runtime.max_tools));
        }
        let record = ToolRecord {
            name: description.name,
            description: description.description,
            parameters,
            component_sha256: sha256,
            size_bytes: bytes.len() as u64,
            limits,
            deployed_at: crate::clock::now_rfc3339(),
        };
        let storage = self.storage.clone();
        let cache = self.cache.clone();
        let to_store = record.clone();
        tokio::task::spawn_blocking(move || {
            store::put(&storage, &to_store, &bytes)?;
            cache.store(&to_store.component_sha256, &component);
            Ok::<_, crate::storage::StorageError>(())
        })
        .await
        .map_err(|e| ToolDeployError::Storage(e.to_string()))?
        .map_err(|e| ToolDeployError::Storage(e.to_string()))?;
        tracing::info!(tool = %record.name, replaced, "tool component deployed");
        let tool = Arc::new(ComponentTool { record, program });
        write(&self.loaded).insert(tool.record.name.clone(), tool.clone());
        Ok((tool, replaced))
    }

    /// Removes a deployed tool; `Ok(false)` when there was none.
    pub async fn remove(&self, name: &str) -> Result<bool, String> {
        let _guard = self.lifecycle.lock().await;
        let storage = self.storage.clone();
        let key = name.to_string();
        let existed = tokio::task::spawn_blocking(move || store::remove(&storage, &key))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if let Some(tool) = write(&self.loaded).remove(name) {
            self.cache.forget(&tool.record.component_sha256);
        }
        if existed {
            tracing::info!(tool = %name, "tool component removed");
        }
        Ok(existed)
    }
}

/// Names a model can call: a letter, then letters, digits, `_` or `-`.
fn check_name(name: &str) -> Result<(), ToolDeployError> {
    let reason = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("it is longer than {MAX_NAME_LEN} characters"))
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("it must start with a letter".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
            .map(|c| format!("`{c}` is not allowed (use letters, digits, `_` and `-`)"))
    };
    match reason {
        Some(reason) => Err(ToolDeployError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The schema must be a JSON object describing an object.
fn check_schema(text: &str) -> Result<Value, ToolDeployError> {
    let schema: Value = serde_json::from_str(text)
        .map_err(|e| ToolDeployError::InvalidSchema(format!("it is not JSON ({e})")))?;
    if !schema.is_object() {
        return Err(ToolDeployError::InvalidSchema(
            "it is not a JSON object".into(),
        ));
    }
    match schema.get("type") {
        None => Ok(schema),
        Some(Value::String(t)) if t == "object" => Ok(schema),
        Some(other) => Err(ToolDeployError::InvalidSchema(format!(
            "its `type` is {other}, but tool arguments are always an object"
        ))),
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_model_can_call() {
        assert!(check_name("word_stats").is_ok());
        assert!(check_name("fetch-v2").is_ok());
        for bad in ["", "2fast", "has space", "dot.name", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn schemas_must_describe_an_object() {
        assert!(check_schema(r#"{"type":"object","properties":{}}"#).is_ok());
        assert!(check_schema(r#"{"properties":{}}"#).is_ok());
        for bad in ["not json", "[]", r#"{"type":"string"}"#] {
            assert!(check_schema(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
