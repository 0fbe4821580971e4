//! `outbox:` in `caxton.yaml`: how fire-and-forget messages are retried
//! and how many may wait.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Deliveries tried before a message goes to the dead letters.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled at each retry.
    pub retry_initial_ms: u64,
    /// Longest wait between retries.
    pub retry_max_ms: u64,
    /// Messages that may wait for delivery; a send beyond it is refused
    /// (503) until some are delivered.
    pub max_queued: usize,
    /// Dead letters kept; past it the oldest go.
    pub max_dead_letters: usize,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long one delivery waits for the receiver to handle it.
    pub delivery_timeout_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 5,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            max_queued: 100_000,
            max_dead_letters: 10_000,
            concurrency: 64,
            delivery_timeout_ms: 300_000,
        }
    }
}

impl OutboxConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("outbox.max_attempts", u64::from(self.max_attempts)),
            ("outbox.retry_initial_ms", self.retry_initial_ms),
            ("outbox.max_queued", self.max_queued as u64),
            ("outbox.concurrency", self.concurrency as u64),
            ("outbox.delivery_timeout_ms", self.delivery_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("{name} is 0; it must be at least 1"));
            }
        }
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(format!(
                "outbox.retry_max_ms ({}) is below outbox.retry_initial_ms ({})",
                self.retry_max_ms, self.retry_initial_ms
            ));
        }
        Ok(())
    }

    /// The wait before retry number `attempts` (1 after the first failure).
    pub fn backoff_ms(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(32);
        self.retry_initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }
}
