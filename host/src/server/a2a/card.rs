//! An agent's A2A card: who it is, its skills (one per capability), where
//! its endpoints are (the JSON-RPC and HTTP+JSON bindings share one URL),
//! and that it takes a bearer token.

use serde_json::{Value, json};

use crate::agents::AgentHandle;
use crate::agents::record::AgentKind;

/// The A2A protocol version served.
pub const PROTOCOL_VERSION: &str = "1.0";

/// The agent's JSON-RPC endpoint under `base` (the public base URL).
pub fn endpoint(base: &str, agent: &str) -> String {
    format!(
        "{}/a2a/{}",
        base.trim_end_matches('/'),
        super::super::percent_encode(agent)
    )
}

/// The card of `handle`, its URLs under `base`.
pub fn card(handle: &AgentHandle, base: &str) -> Value {
    let record = handle.record();
    let description = if record.description.is_empty() {
        format!("The Caxton agent `{}`", record.name)
    } else {
        record.description.clone()
    };
    let version = if record.kind == AgentKind::Config {
        serde_json::from_str::<Value>(&record.config_json)
            .ok()
            .and_then(|d| d["version"].as_str().map(str::to_string))
    } else {
        None
    }
    .unwrap_or_else(|| {
        let short: String = record.component_sha256.chars().take(12).collect();
        format!("sha256:{short}")
    });
    let mut skills: Vec<Value> = record
        .capabilities
        .iter()
        .map(|capability| {
            json!({
                "id": capability,
                "name": capability,
                "description": format!("{description} (capability `{capability}`)"),
                "tags": [capability],
            })
        })
        .collect();
    if skills.is_empty() {
        skills.push(json!({
            "id": "message",
            "name": "message",
            "description": description,
            "tags": ["message"],
        }));
    }
    json!({
        "name": record.name,
        "description": description,
        "version": version,
        "supportedInterfaces": [
            {
                "url": endpoint(base, &record.name),
                "protocolBinding": "JSONRPC",
                "protocolVersion": PROTOCOL_VERSION,
            },
            {
                "url": endpoint(base, &record.name),
                "protocolBinding": "HTTP+JSON",
                "protocolVersion": PROTOCOL_VERSION,
            },
        ],
        "provider": { "organization": "Caxton", "url": base.trim_end_matches('/') },
        "capabilities": { "streaming": true, "pushNotifications": false },
        "securitySchemes": {
            "bearer": { "httpAuthSecurityScheme": {
                "scheme": "bearer",
                "description": "A Caxton API token (`caxton tokens create`): `message` scope to send, cancel and subscribe, `read` for this card and to read tasks",
            }},
        },
        "securityRequirements": [{ "schemes": { "bearer": { "list": [] } } }],
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": skills,
    })
}
