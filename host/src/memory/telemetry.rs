//! What memory measures about itself: latency per operation kind (recent
//! percentiles and lifetime averages) and the slowest recent queries, for
//! `memory stats`, `memory diagnose --show-slow-queries` and metrics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Latency samples kept per operation kind for percentiles.
const RECENT_SAMPLES: usize = 1024;
/// Slow queries remembered (the most recent ones).
const SLOW_QUERIES_KEPT: usize = 100;

#[derive(Default)]
struct OpStats {
    recent: VecDeque<f64>,
    count: u64,
    total_ms: f64,
}

/// Summary of one operation kind.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OpSummary {
    pub count: u64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How many recent samples the percentiles are computed over.
    pub samples: usize,
}

/// A query that took longer than the slow-query threshold.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SlowQuery {
    pub kind: std::borrow::Cow<'static, str>,
    /// The query text or start entity, cut to 120 characters.
    pub query: String,
    pub ms: f64,
    pub at: String,
}

pub struct Telemetry {
    slow_threshold: Duration,
    ops: Mutex<HashMap<&'static str, OpStats>>,
    slow: Mutex<VecDeque<SlowQuery>>,
}

impl Telemetry {
    pub fn new(slow_threshold: Duration) -> Self {
        Telemetry {
            slow_threshold,
            ops: Mutex::new(HashMap::new()),
            slow: Mutex::new(VecDeque::new()),
        }
    }

    pub fn slow_threshold(&self) -> Duration {
        self.slow_threshold
    }

    pub fn record(&self, kind: &'static str, query: &str, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let op = ops.entry(kind).or_default();
            if op.recent.len() == RECENT_SAMPLES {
                op.recent.pop_front();
            }
            op.recent.push_back(ms);
            op.count += 1;
            op.total_ms += ms;
        }
        if elapsed >= self.slow_threshold {
            let mut slow = self.slow.lock().unwrap_or_else(|p| p.into_inner());
            if slow.len() == SLOW_QUERIES_KEPT {
                slow.pop_front();
            }
            slow.push_back(SlowQuery {
                kind: kind.into(),
                query: query.chars().take(120).collect(),
                ms,
                at: crate::clock::now_rfc3339(),
            });
        }
    }

    /// Per operation kind, sorted by name so output is stable.
    pub fn summary(&self) -> BTreeMap<std::borrow::Cow<'static, str>, OpSummary> {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.iter()
            .map(|(kind, op)| {
                let mut sorted: Vec<f64> = op.recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let at = |p: f64| {
                    sorted
                        .get(((sorted.len().saturating_sub(1)) as f64 * p).round() as usize)
                        .copied()
                        .unwrap_or(0.0)
                };
                let summary = OpSummary {
                    count: op.count,
                    avg_ms: if op.count == 0 {
                        0.0
                    } else {
                        op.total_ms / op.count as f64
                    },
                    p50_ms: at(0.5),
                    p99_ms: at(0.99),
                    samples: sorted.len(),
                };
                (std::borrow::Cow::Borrowed(*kind), summary)
            })
            .collect()
    }

    /// Slow queries, slowest first.
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        let slow = self.slow.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<SlowQuery> = slow.iter().cloned().collect();
        out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_averages_and_slow_queries() {
        let t = Telemetry::new(Duration::from_millis(50));
        for ms in 1..=100u64 {
            t.record("semantic_search", "q", Duration::from_millis(ms));
        }
        let s = &t.summary()["semantic_search"];
        assert_eq!(s.count, 100);
        assert!((s.avg_ms - 50.5).abs() < 1e-9);
        assert!((s.p50_ms - 51.0).abs() < 1e-9 || (s.p50_ms - 50.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1e-9 || (s.p99_ms - 100.0).abs() < 1e-9);
        let slow = t.slow_queries();
        assert_eq!(slow.len(), 51, "50 ms and above");
        assert_eq!(slow[0].ms, 100.0);
    }
}
