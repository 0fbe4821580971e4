//! Logging into the agent's own log (`caxton agents logs NAME`).

use crate::bindings::caxton::agent0_1_0::logging::{self, Level};

/// Logs at debug level.
pub fn debug(message: &str) {
    logging::log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    logging::log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    logging::log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    logging::log(Level::Error, message);
}
