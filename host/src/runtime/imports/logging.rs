//! `caxton:agent/logging`: into the agent's own log, and into the server's
//! tracing output at debug level.

use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent::logging::{self, Level};

/// Longest message kept; longer ones are cut.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

impl logging::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let mut message = message;
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        tracing::debug!(agent = %self.agent.name, level, "{message}");
        self.agent.log.push(level, &message);
    }
}
