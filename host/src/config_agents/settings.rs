//! `agents:` in `caxton.yaml`: where config agents are read from.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `agents:` — config agents.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Directory of `*.md` / `*.toml` agent definitions (relative paths are
    /// relative to the working directory).
    pub dir: PathBuf,
    /// Watch the directory and reload changed agents.
    pub hot_reload: bool,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            dir: PathBuf::from("agents"),
            hot_reload: true,
        }
    }
}
