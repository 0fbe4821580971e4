//! Each agent's own log: what it logged through the `logging` import, what
//! it printed, and what the host recorded about it (traps, limit hits).
//! A bounded ring in memory; `caxton agents logs NAME` reads it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Lines kept per agent.
pub const CAPACITY: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Increasing sequence number, unique per agent log.
    pub seq: u64,
    /// RFC 3339 timestamp.
    pub at: String,
    /// `trace`..`error` from the logging import, `stdout`/`stderr` from
    /// the guest's output, `host` for what the runtime recorded.
    pub level: String,
    pub message: String,
}

#[derive(Default)]
pub struct AgentLog {
    inner: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    next_seq: u64,
    lines: VecDeque<LogLine>,
}

impl AgentLog {
    pub fn push(&self, level: &str, message: &str) {
        let mut ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == CAPACITY {
            ring.lines.pop_front();
        }
        ring.lines.push_back(LogLine {
            seq,
            at: crate::clock::now_rfc3339(),
            level: level.to_string(),
            message: message.to_string(),
        });
    }

    /// Sequence number the next line will get: a bookmark for [`Self::since`].
    pub fn bookmark(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_seq
    }

    /// Lines at or after `bookmark` with the given level.
    pub fn since(&self, bookmark: u64, level: &str) -> Vec<String> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        ring.lines
            .iter()
            .filter(|l| l.seq >= bookmark && l.level == level)
            .map(|l| l.message.clone())
            .collect()
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let ring = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let skip = ring.lines.len().saturating_sub(n);
        ring.lines.iter().skip(skip).cloned().collect()
    }
}
