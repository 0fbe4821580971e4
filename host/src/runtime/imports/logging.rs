//! `caxton:agent/logging`: into the agent's own log (a tool's lines into
//! the log of the agent that called it), and into the server's
//! tracing output at debug level.

use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent0_1_0::logging::{self, Level};
use crate::runtime::guest_log::{MAX_LINE_BYTES, truncated};
use crate::runtime::tool::ToolState;

impl logging::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let (level, message) = prepare(level, message);
        // Debug-formatted: a guest's newlines and escapes cannot forge a
        // line of the server's text log.
        tracing::debug!(agent = %self.agent.name, level, guest = ?message, "agent log line");
        self.agent.log.push(level, &message);
    }
}

/// A tool logs into the log of the agent that called it, its lines
/// prefixed with the tool's name.
impl logging::Host for ToolState {
    async fn log(&mut self, level: Level, message: String) {
        let (level, message) = prepare(level, message);
        tracing::debug!(tool = %self.tool_name, level, guest = ?message, "tool log line");
        self.log
            .push(level, &format!("[{}] {message}", self.tool_name));
    }
}

/// The level's name, and the message cut to [`MAX_LINE_BYTES`] with a
/// marker (before it reaches the server's own log too).
fn prepare(level: Level, message: String) -> (&'static str, String) {
    let level = match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let message = match truncated(&message, MAX_LINE_BYTES) {
        std::borrow::Cow::Borrowed(_) => message,
        std::borrow::Cow::Owned(cut) => cut,
    };
    (level, message)
}
