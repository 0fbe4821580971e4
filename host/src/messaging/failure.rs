//! How a run of an agent failed. It lives with messaging because it is
//! what a sender is told ([`super::DeliveryError::AgentFailed`]); the
//! runtime produces it.

use thiserror::Error;

/// Why one message did not produce an answer from the agent. Each variant
/// discards the instance; the next message gets a fresh one.
#[derive(Debug, Clone, Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ExecutionFailure {
    #[error(
        "ran out of fuel (max_fuel = {max_fuel}); raise resource_limits.max_fuel or make the agent do less per message"
    )]
    OutOfFuel { max_fuel: u64 },
    #[error("exceeded its time limit (max_execution_time_ms = {limit_ms})")]
    Timeout { limit_ms: u64 },
    #[error(
        "exceeded its memory limit (max_memory_bytes = {max_memory_bytes}); raise \
         resource_limits.max_memory_bytes (a Rust agent starts in about 2 MiB, a JavaScript \
         (componentize-js) one needs at least 10 MiB, a Python (componentize-py) one at least \
         16 MiB; the default is 64 MiB)"
    )]
    MemoryLimit { max_memory_bytes: u64 },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("init failed: {0}")]
    Init(String),
    /// A remote (A2A) agent could not be reached, or answered with an
    /// error rather than a task.
    #[error("the remote agent did not answer: {0}")]
    Remote(String),
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
            ExecutionFailure::Remote(_) => "remote_agent_failed",
        }
    }
}
