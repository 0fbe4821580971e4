//! What `/metrics` counts as it happens: latency histograms of messages,
//! LLM calls, tool calls, memory searches and HTTP requests, and HTTP
//! requests by route, method and status class.
//!
//! Process-wide, like a Prometheus client's default registry: one server
//! runs per process, and the places that time things (the actor, the LLM
//! service, the tool registry, memory, the request middleware) need no
//! handle passed down to them. Recording is a few relaxed atomic adds;
//! nothing allocates after a route's first request. This module imports
//! nothing from the crate.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in seconds: from half a
/// millisecond (an echo agent, a cached search) to two minutes (a local
/// model's long answer).
pub const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    120.0,
];

/// A Prometheus histogram with [`BUCKETS`].
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when read).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// A histogram as read: cumulative bucket counts, count and sum (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Time an agent took to handle a message (from the mailbox to its reply).
pub static MESSAGE_SECONDS: Histogram = Histogram::new();
/// Time of one LLM call, whichever provider.
pub static LLM_CALL_SECONDS: Histogram = Histogram::new();
/// Time of one tool call, whichever kind of tool.
pub static TOOL_CALL_SECONDS: Histogram = Histogram::new();
/// Time of one memory search (query embedding included).
pub static MEMORY_SEARCH_SECONDS: Histogram = Histogram::new();
/// Time from a request's head to its response's head.
pub static HTTP_REQUEST_SECONDS: Histogram = Histogram::new();

/// The methods counted apart; the rest are `other`.
const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "HEAD", "other"];
/// Status classes.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Requests of one route, by method and status class.
struct RouteCounts([[AtomicU64; CLASSES.len()]; METHODS.len()]);

impl RouteCounts {
    fn new() -> RouteCounts {
        RouteCounts([const { [const { AtomicU64::new(0) }; CLASSES.len()] }; METHODS.len()])
    }
}

/// Routes are the router's matched paths (`/api/v1/agents/{agent}`), so
/// the map holds one entry per route the API has, whatever is requested.
static HTTP_REQUESTS: RwLock<Option<HashMap<Box<str>, RouteCounts>>> = RwLock::new(None);

/// Counts one request to `route` (a matched path, or a fixed name for
/// requests no route matched) answered with `status`.
pub fn count_request(route: &str, method: &str, status: u16) {
    let m = METHODS[..4]
        .iter()
        .position(|known| *known == method)
        .unwrap_or(4);
    let c = usize::from((status / 100).clamp(1, 5) - 1);
    let add = |counts: &RouteCounts| counts.0[m][c].fetch_add(1, Ordering::Relaxed);
    if let Some(counts) = HTTP_REQUESTS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|map| map.get(route))
    {
        add(counts);
        return;
    }
    let mut map = HTTP_REQUESTS.write().unwrap_or_else(|p| p.into_inner());
    add(map
        .get_or_insert_with(HashMap::new)
        .entry(Box::from(route))
        .or_insert_with(RouteCounts::new));
}

/// Every (route, method, status class, count) with a count, sorted.
pub fn requests() -> Vec<(String, &'static str, &'static str, u64)> {
    let map = HTTP_REQUESTS.read().unwrap_or_else(|p| p.into_inner());
    let mut rows = Vec::new();
    for (route, counts) in map.iter().flatten() {
        for (m, by_class) in counts.0.iter().enumerate() {
            for (c, count) in by_class.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    rows.push((route.to_string(), METHODS[m], CLASSES[c], count));
                }
            }
        }
    }
    rows.sort();
    rows
}

/// The standard `process_*` facts, from `/proc/self` (Linux); `None`
/// elsewhere or when unreadable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessFacts {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Reads [`ProcessFacts`] of this process.
pub fn process_facts() -> Option<ProcessFacts> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse_process(&stat, &boot, &limits, open_fds)
}

/// Clock ticks per second of `/proc` times: 100 on every Linux Caxton runs
/// on (USER_HZ is fixed by the kernel's ABI).
const TICKS: f64 = 100.0;
const PAGE: u64 = 4096;

fn parse_process(stat: &str, boot: &str, limits: &str, open_fds: u64) -> Option<ProcessFacts> {
    // The command name may hold spaces and parentheses: fields start after
    // the last `)`. Counting from there, utime is field 14 of the line.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let at = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let btime = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    Some(ProcessFacts {
        cpu_seconds: (at(14)? + at(15)?) as f64 / TICKS,
        start_time_seconds: btime as f64 + at(22)? as f64 / TICKS,
        virtual_bytes: at(23)?,
        resident_bytes: at(24)? * PAGE,
        open_fds,
        max_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(600));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1, "<= 0.5 ms");
        assert_eq!(s.cumulative[3], 2, "<= 5 ms");
        assert_eq!(
            *s.cumulative.last().expect("buckets"),
            2,
            "600 s is only in +Inf"
        );
        assert!((s.sum_seconds - 600.0033).abs() < 1e-6, "{}", s.sum_seconds);
    }

    #[test]
    fn requests_are_counted_by_route_method_and_class() {
        count_request("/test/route/{x}", "POST", 201);
        count_request("/test/route/{x}", "POST", 204);
        count_request("/test/route/{x}", "PATCH", 503);
        let rows: Vec<_> = requests()
            .into_iter()
            .filter(|r| r.0 == "/test/route/{x}")
            .collect();
        assert_eq!(
            rows,
            vec![
                ("/test/route/{x}".to_string(), "POST", "2xx", 2),
                ("/test/route/{x}".to_string(), "other", "5xx", 1),
            ]
        );
    }

    #[test]
    fn process_lines_parse_and_garbage_does_not() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 123456789 2000 18446744073709551615";
        let facts = parse_process(
            stat,
            "cpu 1 2\nbtime 1700000000\n",
            "Max open files            1024                 4096                 files\n",
            7,
        )
        .expect("parses");
        assert!((facts.cpu_seconds - 3.0).abs() < 1e-9);
        assert_eq!(facts.virtual_bytes, 123_456_789);
        assert_eq!(facts.resident_bytes, 2000 * 4096);
        assert!((facts.start_time_seconds - 1_700_000_010.0).abs() < 1e-6);
        assert_eq!(facts.max_fds, Some(1024));
        assert_eq!(parse_process("garbage", "", "", 0), None);
        assert_eq!(parse_process("1 (x) S", "btime 5", "", 0), None);
        assert!(process_facts().is_some_and(|f| f.open_fds > 0 && f.resident_bytes > 0));
    }
}
