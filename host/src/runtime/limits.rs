//! Per-agent resource limits and the wasmtime limiter that enforces memory.

use serde::{Deserialize, Serialize};

/// The limits an agent runs under (names as in the operator runbook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Most linear memory (and table) bytes one instance may hold.
    pub max_memory_bytes: u64,
    /// Fuel per message: roughly one unit per WebAssembly instruction.
    pub max_fuel: u64,
    /// Wall-clock time per message, host calls included.
    pub max_execution_time_ms: u64,
}

/// Limits as a deployment may give them: any subset, the rest defaulted.
/// None may be 0 or above the server's ceiling (`runtime.max_limits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    #[schema(minimum = 1)]
    pub max_memory_bytes: Option<u64>,
    #[schema(minimum = 1)]
    pub max_fuel: Option<u64>,
    #[schema(minimum = 1)]
    pub max_execution_time_ms: Option<u64>,
}

impl RequestedLimits {
    pub fn resolve(&self, defaults: &ResourceLimits) -> ResourceLimits {
        ResourceLimits {
            max_memory_bytes: self.max_memory_bytes.unwrap_or(defaults.max_memory_bytes),
            max_fuel: self.max_fuel.unwrap_or(defaults.max_fuel),
            max_execution_time_ms: self
                .max_execution_time_ms
                .unwrap_or(defaults.max_execution_time_ms),
        }
    }
}

impl ResourceLimits {
    /// Checks every limit is positive and at most the ceiling; the error
    /// names the first offending limit, its value and the allowed range.
    pub fn check_within(&self, ceiling: &ResourceLimits) -> Result<(), String> {
        let checks = [
            (
                "max_memory_bytes",
                self.max_memory_bytes,
                ceiling.max_memory_bytes,
            ),
            ("max_fuel", self.max_fuel, ceiling.max_fuel),
            (
                "max_execution_time_ms",
                self.max_execution_time_ms,
                ceiling.max_execution_time_ms,
            ),
        ];
        for (name, value, max) in checks {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
            if value > max {
                return Err(format!(
                    "{name} = {value} is above the server's ceiling of {max} \
                     (runtime.max_limits.{name} in caxton.yaml)"
                ));
            }
        }
        Ok(())
    }
}

/// Enforces `max_memory_bytes` over every linear memory and table of one
/// instance together (a component may have several of each; counting them
/// one by one would let eight memories use eight times the limit), and
/// remembers whether it was hit, because wasmtime reports a refused growth
/// as an ordinary trap (or a failed allocation inside the guest) rather
/// than as a distinct error. One limiter per store, so per instance.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    /// Bytes granted so far to all memories and tables of the instance.
    used: usize,
    hit: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: u64) -> Self {
        MemoryLimiter {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            used: 0,
            hit: false,
        }
    }

    /// Whether a growth was refused since the last call; resets the flag.
    pub fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }

    /// Grants growing one memory or table from `current` to `desired`
    /// bytes when the instance's total stays within the limit.
    fn grow(&mut self, current: usize, desired: usize, within_own_maximum: bool) -> bool {
        let extra = desired.saturating_sub(current);
        let total = self.used.saturating_add(extra);
        let allowed = within_own_maximum && total <= self.max_bytes;
        if allowed {
            self.used = total;
        } else {
            self.hit = true;
        }
        allowed
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired, maximum.is_none_or(|m| desired <= m)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let element = std::mem::size_of::<usize>();
        Ok(self.grow(
            current.saturating_mul(element),
            desired.saturating_mul(element),
            maximum.is_none_or(|m| desired <= m),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryLimiter;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memories_share_one_budget() -> wasmtime::Result<()> {
        let mut limiter = MemoryLimiter::new(10 * 65536);
        for _ in 0..2 {
            assert!(limiter.memory_growing(0, 4 * 65536, None)?);
        }
        // A third memory of the same size would make 12 pages of 10.
        assert!(!limiter.memory_growing(0, 4 * 65536, None)?);
        assert!(limiter.take_hit());
        // Growing an existing memory counts only the growth.
        assert!(limiter.memory_growing(4 * 65536, 6 * 65536, None)?);
        assert!(!limiter.memory_growing(6 * 65536, 7 * 65536, None)?);
        Ok(())
    }
}
