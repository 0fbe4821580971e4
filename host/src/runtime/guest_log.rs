//! Each agent's own log: what it logged through the `logging` import, what
//! it printed, and what the host recorded about it (traps, limit hits).
//! A bounded ring in memory; `caxton agents logs NAME` reads it.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Lines kept per agent.
pub const CAPACITY: usize = 1000;

/// Longest line kept, in bytes: what an agent logs, prints or fails with
/// is its own text, and a ring of [`CAPACITY`] lines must stay small
/// (16 MiB per agent at most) whatever the agent writes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// `text` cut to at most `max` bytes (on a character boundary), with a
/// marker saying how long it was, so a reader knows the line is not whole.
pub fn truncated(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let marker = format!(" … [truncated: {} bytes in all]", text.len());
    let mut cut = max.saturating_sub(marker.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{marker}", &text[..cut]).into()
}

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
    /// Appends a line, cut to [`MAX_LINE_BYTES`].
    pub fn push(&self, level: &str, message: &str) {
        let message = truncated(message, MAX_LINE_BYTES);
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
            message: message.into_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_with_a_marker_on_a_character_boundary() {
        assert_eq!(truncated("short", 100), "short");
        let long = "é".repeat(20_000);
        let cut = truncated(&long, MAX_LINE_BYTES);
        assert!(cut.len() <= MAX_LINE_BYTES, "{}", cut.len());
        assert!(cut.ends_with(" … [truncated: 40000 bytes in all]"), "{cut}");
        let log = AgentLog::default();
        log.push("info", &long);
        assert_eq!(log.tail(1)[0].message, cut);
    }
}
