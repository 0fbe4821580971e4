//! `runtime:` in `caxton.yaml`: the limits every sandbox runs under.

use serde::{Deserialize, Serialize};

use super::limits::ResourceLimits;

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
    /// Agents (WASM and config) that may run at once. The instance pool has
    /// 1,000 slots; the rest stay free for tool calls, trial instances at
    /// deploy and the fresh instance of an agent that trapped.
    pub max_agents: usize,
    /// Tool components that may be deployed at once (each keeps its
    /// compiled code in memory).
    pub max_tools: usize,
    /// Keep instances in a pool reserved at start (on by default: an
    /// instance then costs no mmap). The pool reserves address space for
    /// every slot up front, terabytes of it though none is resident, which
    /// an address-space limit (`ulimit -v`), strict overcommit or an
    /// emulator cannot give; `false` reserves each instance's memory when
    /// it is created instead.
    pub instance_pool: bool,
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
            max_agents: 800,
            max_tools: 200,
            instance_pool: true,
        }
    }
}

impl RuntimeConfig {
    /// Defaults within the ceiling, and room for at least one message.
    pub fn validate(&self) -> Result<(), String> {
        if let Err(e) = self.default_limits.check_within(&self.max_limits) {
            return Err(format!(
                "runtime.default_limits exceed runtime.max_limits: {e}"
            ));
        }
        if self.max_agents == 0 || self.max_agents > 900 {
            return Err(format!(
                "runtime.max_agents is {}; it must be between 1 and 900 (the instance pool has \
                 1,000 slots and keeps some for tools and fresh instances)",
                self.max_agents
            ));
        }
        if self.mailbox_capacity == 0 {
            return Err("runtime.mailbox_capacity must be at least 1".into());
        }
        Ok(())
    }
}
