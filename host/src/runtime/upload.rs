//! What any uploaded component must satisfy before anything is stored,
//! shared by agents and tool components: a valid name, a JSON object as
//! config, and bytes that are a WebAssembly component.

use thiserror::Error;

use super::ExecutionFailure;

#[derive(Debug, Error)]
pub enum DeployError {
    #[error("invalid agent name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "an agent named `{0}` already exists; remove it first (`caxton agents remove {0}`) or choose another name"
    )]
    NameTaken(String),
    #[error("invalid resource_limits: {0}")]
    InvalidLimits(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    NotWasm(String),
    #[error(
        "the upload is a core WebAssembly module, not a component; build for the \
         `wasm32-wasip2` target (`cargo build --target wasm32-wasip2`) or wrap it with \
         `wasm-tools component new`"
    )]
    CoreModule,
    #[error("the component is invalid and cannot be compiled: {0}")]
    InvalidComponent(String),
    #[error("{0}")]
    WrongWorld(String),
    #[error("the agent failed to start: {0}")]
    StartFailed(ExecutionFailure),
    #[error("the agent's description of itself is refused: {0}")]
    InvalidDescription(String),
    #[error("storage error, nothing was deployed: {0}")]
    Storage(String),
    #[error(
        "the server already runs {0} agents, the most runtime.max_agents allows; remove one first or raise the setting"
    )]
    Quota(usize),
}

impl DeployError {
    pub fn code(&self) -> &'static str {
        match self {
            DeployError::InvalidName { .. } => "invalid_name",
            DeployError::NameTaken(_) => "name_conflict",
            DeployError::InvalidLimits(_) => "invalid_resource_limits",
            DeployError::InvalidConfig(_) => "invalid_config",
            DeployError::NotWasm(_) => "not_wasm",
            DeployError::CoreModule => "core_module_not_component",
            DeployError::InvalidComponent(_) => "invalid_component",
            DeployError::WrongWorld(_) => "wrong_world",
            DeployError::StartFailed(_) => "agent_start_failed",
            DeployError::InvalidDescription(_) => "invalid_description",
            DeployError::Storage(_) => "storage_error",
            DeployError::Quota(_) => "agent_quota_reached",
        }
    }
}

/// Longest agent name.
pub const MAX_NAME_LEN: usize = 64;

/// Names are what operators type: letters, digits, `-`, `_`, `.`, starting
/// with a letter or digit, and never shaped like a UUID (ids are UUIDs, and
/// a lookup must not be ambiguous).
pub fn check_name(name: &str) -> Result<(), DeployError> {
    let invalid = |reason: &str| DeployError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("names are at most 64 characters"));
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid("names start with a letter or a digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(&format!(
            "`{bad}` is not allowed; use letters, digits, `-`, `_` and `.`"
        )));
    }
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(invalid("a name cannot look like a UUID (ids are UUIDs)"));
    }
    // The agent's name is the sender of what it sends: it must not pass
    // for the operator.
    if let Some(reason) = crate::messaging::names::reserved_reason(name) {
        return Err(invalid(&reason));
    }
    Ok(())
}

/// The config must be a JSON object (or absent); answers its text.
pub fn config_json(config: &Option<serde_json::Value>) -> Result<String, DeployError> {
    match config {
        None => Ok("{}".to_string()),
        Some(value @ serde_json::Value::Object(_)) => Ok(value.to_string()),
        Some(other) => Err(DeployError::InvalidConfig(format!(
            "config must be a JSON object, got {}",
            json_kind(other)
        ))),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Looks at the 8-byte preamble: `\0asm`, then version and layer. Catches
/// the common mistakes (not wasm at all, a core module) with a message that
/// says how to fix them, before the compiler gives a less direct one.
pub fn check_preamble(bytes: &[u8]) -> Result<(), DeployError> {
    if bytes.is_empty() {
        return Err(DeployError::NotWasm(
            "the upload is empty; send the bytes of a .wasm component".into(),
        ));
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let head: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(DeployError::NotWasm(format!(
            "the upload is not a WebAssembly binary: it must start with the bytes 00 61 73 6d (\"\\0asm\"), \
             it starts with {head}; send the .wasm file produced by `cargo build --target wasm32-wasip2`"
        )));
    }
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(DeployError::CoreModule),
        [a, b, c, d] => Err(DeployError::NotWasm(format!(
            "unsupported WebAssembly version/layer {a:02x} {b:02x} {c:02x} {d:02x}; \
             expected a component (0d 00 01 00)"
        ))),
        _ => unreachable!("slice of length 4"),
    }
}

/// The interface packages this host links for every component: WASI 0.2
/// (`wasmtime_wasi::p2::add_to_linker_async`) and the Caxton contract.
/// `wasi:http`, `wasi:keyvalue` and other proposals are not among them.
pub const PROVIDED_PACKAGES: [&str; 7] = [
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
    "caxton:agent",
];

/// Reads the component's top-level imports (no compiling: a parse of the
/// import section, milliseconds even for a 40 MB JS or Python component)
/// and refuses one this host cannot satisfy, naming it and the build flag
/// that drops it. Imports of provided packages are left to the linker,
/// which checks them exactly after compiling.
pub fn check_imports(bytes: &[u8]) -> Result<(), DeployError> {
    for name in top_level_imports(bytes)? {
        let (package, version) = match name.split_once('@') {
            Some((path, version)) => (path.split('/').next().unwrap_or(path), Some(version)),
            None => (name.split('/').next().unwrap_or(&name), None),
        };
        let provided = PROVIDED_PACKAGES.contains(&package);
        let wasi_02 = version.is_none_or(|v| v.starts_with("0.2.") || package == "caxton:agent");
        if provided && wasi_02 {
            continue;
        }
        let hint = if package == "wasi:http" {
            " Built with jco: add `--disable http --disable fetch-event` (`-d http -d fetch-event`) \
             to `jco componentize`. Built with componentize-py: do not import the `wasi:http` \
             bindings. From Rust: drop the dependency that pulls `wasi:http` in (e.g. a `wasi` \
             HTTP client) and use the `tools` import's `http_client` instead."
        } else if provided {
            " This host provides WASI 0.2 (0.2.x versions); rebuild against WASI 0.2."
        } else {
            " Remove the dependency that imports it, or ask for it as a tool."
        };
        return Err(DeployError::WrongWorld(format!(
            "the component imports `{name}`, which this host does not provide; it provides {} \
             (WASI 0.2) and caxton:agent.{hint}",
            PROVIDED_PACKAGES[..6].join(", ")
        )));
    }
    Ok(())
}

/// The names the outermost component imports.
fn top_level_imports(bytes: &[u8]) -> Result<Vec<String>, DeployError> {
    use wasmparser::{Parser, Payload};

    let invalid = |e: wasmparser::BinaryReaderError| DeployError::InvalidComponent(e.to_string());
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    names.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("echo").is_ok());
        assert!(check_name("custom-algorithm-agent").is_ok());
        assert!(check_name("Data.Analyzer_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name("550e8400-e29b-41d4-a716-446655440000").is_err());
        // The operator's sender name, in any case, is nobody else's.
        assert!(check_name("user").is_err());
        assert!(check_name("System").is_err());
    }

    #[test]
    fn preambles() {
        assert!(matches!(check_preamble(b""), Err(DeployError::NotWasm(_))));
        assert!(matches!(
            check_preamble(b"hello world"),
            Err(DeployError::NotWasm(_))
        ));
        assert!(matches!(
            check_preamble(b"\0asm\x01\0\0\0"),
            Err(DeployError::CoreModule)
        ));
        assert!(check_preamble(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn configs() {
        assert_eq!(config_json(&None).ok().as_deref(), Some("{}"));
        assert!(config_json(&Some(serde_json::json!({"a": 1}))).is_ok());
        assert!(config_json(&Some(serde_json::json!([1]))).is_err());
    }
}
