//! Counters kept per agent, reported by the API and the CLI.

use serde::Serialize;

use crate::runtime::ExecutionFailure;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStats {
    pub messages_handled: u64,
    pub messages_failed: u64,
    pub traps: u64,
    pub fuel_exhausted: u64,
    pub timeouts: u64,
    pub memory_limit_hits: u64,
    pub instances_created: u64,
    /// Failures since the last success; at the threshold the agent is `failed`.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_code: Option<String>,
    pub last_error_at: Option<String>,
    /// Sum of execution times, for the average.
    #[serde(skip)]
    pub total_execution_us: u64,
    pub avg_execution_ms: f64,
    /// Execution times of the most recent successful messages, µs.
    #[serde(skip)]
    pub recent_us: std::collections::VecDeque<u64>,
}

/// Recent execution times kept per agent for percentiles.
const RECENT: usize = 256;

impl AgentStats {
    pub fn record_success(&mut self, execution_us: u64) {
        self.messages_handled += 1;
        self.consecutive_failures = 0;
        self.total_execution_us += execution_us;
        self.avg_execution_ms =
            self.total_execution_us as f64 / self.messages_handled as f64 / 1000.0;
        if self.recent_us.len() == RECENT {
            self.recent_us.pop_front();
        }
        self.recent_us.push_back(execution_us);
    }

    pub fn record_failure(&mut self, failure: &ExecutionFailure) {
        self.messages_failed += 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match failure {
            ExecutionFailure::OutOfFuel { .. } => self.fuel_exhausted += 1,
            ExecutionFailure::Timeout { .. } => self.timeouts += 1,
            ExecutionFailure::MemoryLimit { .. } => self.memory_limit_hits += 1,
            ExecutionFailure::Trap(_)
            | ExecutionFailure::Instantiate(_)
            | ExecutionFailure::Init(_) => self.traps += 1,
            ExecutionFailure::Remote(_) => {}
        }
        self.last_error = Some(failure.to_string());
        self.last_error_code = Some(failure.code().to_string());
        self.last_error_at = Some(crate::clock::now_rfc3339());
    }
}
