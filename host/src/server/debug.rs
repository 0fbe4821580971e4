//! `GET /api/v1/debug/state` (admin): what `caxton debug dump` needs that
//! no other route answers — version, uptime, starts, safe mode, the
//! effective configuration with its secrets redacted, and the tail of the
//! server's log file when it writes one.

use std::io::{Read, Seek, SeekFrom};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The most of the log file a dump carries (its end).
const LOG_TAIL_BYTES: u64 = 256 * 1024;

/// What `caxton debug dump` needs that no other route answers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DebugState {
    /// The server's version.
    pub version: String,
    pub uptime_secs: u64,
    /// Servers started on this data directory, this one included.
    pub starts: u64,
    pub safe_mode: bool,
    /// The effective configuration; every secret reads `[redacted]`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// The end of `logging.file`, when the server writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    /// Spans kept for `caxton trace`.
    pub trace_spans: usize,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(state))
}

/// The server's state, for `caxton debug dump`.
///
/// Version, uptime, starts, safe mode, the effective configuration
/// (secrets redacted) and the tail of the server's log file.
#[utoipa::path(
    get,
    path = "/api/v1/debug/state",
    tag = "debug",
    operation_id = "debug_state",
    responses(
        (status = 200, description = "The server's state", body = DebugState),
    )
)]
async fn state(State(state): State<AppState>) -> Json<DebugState> {
    let log_file = state
        .config_snapshot
        .pointer("/logging/file")
        .and_then(|f| f.as_str())
        .map(std::path::PathBuf::from);
    let log_tail = match log_file {
        Some(path) => tokio::task::spawn_blocking(move || tail(&path).ok())
            .await
            .ok()
            .flatten(),
        None => None,
    };
    Json(DebugState {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: state.started.elapsed().as_secs(),
        starts: state.starts,
        safe_mode: state
            .gate
            .safe_mode
            .load(std::sync::atomic::Ordering::Relaxed),
        config: (*state.config_snapshot).clone(),
        log_tail,
        trace_spans: state.trace.len(),
    })
}

/// The last [`LOG_TAIL_BYTES`] of `path`, from a line start.
fn tail(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let from = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
    // Lines written before redaction covered everything still show none.
    let text = crate::redact::text(&String::from_utf8_lossy(&bytes)).into_owned();
    Ok(if from > 0 {
        text.split_once('\n')
            .map_or(text.clone(), |(_, rest)| rest.to_string())
    } else {
        text
    })
}

/// Replaces the value of every key that names a secret (`api_key`,
/// `token`, `password`, `secret`, as [`crate::redact::is_secret_name`]
/// decides) with `[redacted]`, hides the credentials of every URL
/// (`https://user:pass@host`, `?api_key=…`) and of an MCP server's command
/// line (`args`); numbers and booleans (`max_tokens`) stay.
pub fn redact(value: &mut serde_json::Value) {
    use crate::redact::REDACTED;
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if crate::redact::is_secret_name(key) && inner.is_string() {
                    *inner = serde_json::Value::String(REDACTED.into());
                } else if key == "env"
                    && let serde_json::Value::Object(vars) = inner
                {
                    // An MCP server's environment is where its keys live.
                    for value in vars.values_mut() {
                        *value = serde_json::Value::String(REDACTED.into());
                    }
                } else if key == "args"
                    && let Some(args) = string_list(inner)
                {
                    *inner = crate::redact::command_line(&args).into();
                } else {
                    redact(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(clean) = crate::redact::text(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// `value` as a list of strings, when it is one.
fn string_list(value: &serde_json::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_numbers_kept() {
        let mut config = serde_json::json!({
            "llm": {"openai": {"api_key": "sk-live", "max_tokens": 512}},
            "auth": {"token": "t", "required": true},
            "list": [{"password": "p"}],
            "headers": {"Authorization": "Bearer x"},
            "base_url": "https://me:hunter2@example.com/v1",
            "mcp_servers": {"gh": {"url": "https://h/mcp?api_key=k-live",
                                   "args": ["--token", "tok-live", "--port", "1"]}}
        });
        redact(&mut config);
        let text = config.to_string();
        for secret in [
            "sk-live", "\"t\"", "\"p\"", "Bearer x", "hunter2", "k-live", "tok-live",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(config["llm"]["openai"]["max_tokens"], 512);
        assert_eq!(config["auth"]["required"], true);
        assert_eq!(config["base_url"], "https://[redacted]@example.com/v1");
        assert_eq!(
            config["mcp_servers"]["gh"]["args"],
            serde_json::json!(["--token", "[redacted]", "--port", "1"])
        );
    }
}
