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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    pub max_memory_bytes: Option<u64>,
    pub max_fuel: Option<u64>,
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

/// Enforces `max_memory_bytes` and remembers whether it was hit, because
/// wasmtime reports a refused growth as an ordinary trap (or a failed
/// allocation inside the guest) rather than as a distinct error.
#[derive(Debug)]
pub struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: u64) -> Self {
        MemoryLimiter {
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            hit: false,
        }
    }

    /// Whether a growth was refused since the last call; resets the flag.
    pub fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes && maximum.is_none_or(|m| desired <= m);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = desired.saturating_mul(std::mem::size_of::<usize>());
        let allowed = bytes <= self.max_bytes && maximum.is_none_or(|m| desired <= m);
        if !allowed {
            self.hit = true;
        }
        Ok(allowed)
    }
}
