//! Where agents (and tool components) run: the wasmtime engine, the compiled-component cache,
//! sandboxed instances with their limits, and the host side of every WIT
//! import (`imports/`, one file per interface).

pub mod component_cache;
pub mod engine;
pub mod imports;
pub mod instance;
pub mod limits;
pub mod state;
pub mod tool;

use thiserror::Error;

/// Host bindings generated from `wit/` — the contract is the single source
/// of truth; nothing here restates it by hand.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "agent",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use instance::{AgentInstance, AgentProgram};

/// The one engine agents and tools share, with its compiled-component
/// cache under `data_dir/cache/components`.
pub fn component_cache(
    data_dir: &std::path::Path,
    max_limits: &limits::ResourceLimits,
) -> anyhow::Result<std::sync::Arc<component_cache::ComponentCache>> {
    let engine = engine::new_engine(max_limits.max_memory_bytes)?;
    let cache =
        component_cache::ComponentCache::new(engine, data_dir.join("cache").join("components"))?;
    Ok(std::sync::Arc::new(cache))
}
pub use state::{AgentContext, HostState};

/// Why one message did not produce an answer from the agent. Each variant
/// discards the instance; the next message gets a fresh one.
#[derive(Debug, Clone, Error)]
pub enum ExecutionFailure {
    #[error(
        "ran out of fuel (max_fuel = {max_fuel}); raise resource_limits.max_fuel or make the agent do less per message"
    )]
    OutOfFuel { max_fuel: u64 },
    #[error("exceeded its time limit (max_execution_time_ms = {limit_ms})")]
    Timeout { limit_ms: u64 },
    #[error("exceeded its memory limit (max_memory_bytes = {max_memory_bytes})")]
    MemoryLimit { max_memory_bytes: u64 },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("init failed: {0}")]
    Init(String),
}

impl ExecutionFailure {
    /// A trap while instantiating is reported as a failed instantiation.
    pub fn at_instantiation(self) -> Self {
        match self {
            ExecutionFailure::Trap(text) => ExecutionFailure::Instantiate(text),
            other => other,
        }
    }

    /// Stable machine-readable code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ExecutionFailure::OutOfFuel { .. } => "agent_out_of_fuel",
            ExecutionFailure::Timeout { .. } => "agent_timeout",
            ExecutionFailure::MemoryLimit { .. } => "agent_memory_limit",
            ExecutionFailure::Trap(_) => "agent_trapped",
            ExecutionFailure::Instantiate(_) => "agent_instantiation_failed",
            ExecutionFailure::Init(_) => "agent_init_failed",
        }
    }
}
