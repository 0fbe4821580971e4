//! Tools built into the host: data handling (`json_processor`,
//! `csv_parser`), the web (`http_client`, allowed domains only), memory
//! (`memory_search`, `memory_store`, in the caller's own scope) and other
//! agents (`ask_agent`, by name or capability; `broadcast` to every agent
//! of a capability; `contract_net`, a call for proposals).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Tool, ToolError};
use crate::memory::model::{EntityInput, ScopeKey};
use crate::messaging::{AclMessage, Address, Performative, acl};
use crate::runtime::AgentContext;

pub fn all(http: &super::settings::ToolsConfig) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(JsonProcessor),
        Arc::new(CsvParser),
        Arc::new(HttpClient {
            allowed_domains: http.http_allowed_domains.clone(),
            allow_private: http.http_allow_private_addresses,
        }),
        Arc::new(MemorySearch),
        Arc::new(MemoryStore),
        Arc::new(AskAgent),
        Arc::new(Broadcast),
        Arc::new(ContractNet),
        Arc::new(AwardContract),
        Arc::new(Publish),
    ]
}

fn string_arg<'a>(args: &'a Value, key: &str, tool: &str) -> Result<&'a str, ToolError> {
    args[key]
        .as_str()
        .ok_or_else(|| ToolError::InvalidInput(format!("`{tool}` needs a string argument `{key}`")))
}

struct JsonProcessor;

/// Follows a dotted path (`orders.0.total`) into a JSON value.
fn select<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, part| match v {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?),
            Value::Object(map) => map.get(part),
            _ => None,
        })
}

#[async_trait::async_trait]
impl Tool for JsonProcessor {
    fn name(&self) -> &str {
        "json_processor"
    }
    fn description(&self) -> &str {
        "Parse JSON text and pick a value by dotted path (orders.0.total); also reports its type, keys and length."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["json"], "properties": {
            "json": {"description": "JSON text, or a JSON value"},
            "path": {"type": "string", "description": "dotted path; empty for the whole value"}}})
    }
    async fn invoke(&self, args: Value, _: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let data = match &args["json"] {
            Value::String(text) => serde_json::from_str(text)
                .map_err(|e| ToolError::InvalidInput(format!("`json` is not valid JSON: {e}")))?,
            Value::Null => {
                return Err(ToolError::InvalidInput(
                    "`json_processor` needs `json`".into(),
                ));
            }
            other => other.clone(),
        };
        let path = args["path"].as_str().unwrap_or("");
        let found = select(&data, path).ok_or_else(|| {
            ToolError::InvalidInput(format!("the path `{path}` does not exist in the JSON"))
        })?;
        let (kind, keys, length) = match found {
            Value::Object(m) => (
                "object",
                Some(m.keys().cloned().collect::<Vec<_>>()),
                Some(m.len()),
            ),
            Value::Array(a) => ("array", None, Some(a.len())),
            Value::String(s) => ("string", None, Some(s.chars().count())),
            Value::Number(_) => ("number", None, None),
            Value::Bool(_) => ("boolean", None, None),
            Value::Null => ("null", None, None),
        };
        Ok(json!({"value": found, "type": kind, "keys": keys, "length": length}))
    }
}

struct CsvParser;

/// Splits one CSV line, honouring double quotes ("a, b" and "" escapes).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

#[async_trait::async_trait]
impl Tool for CsvParser {
    fn name(&self) -> &str {
        "csv_parser"
    }
    fn description(&self) -> &str {
        "Parse CSV text into rows (objects keyed by the header), with column names and row count."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["csv"], "properties": {
            "csv": {"type": "string"},
            "has_header": {"type": "boolean", "default": true},
            "limit": {"type": "integer", "description": "most rows returned (default 100)"}}})
    }
    async fn invoke(&self, args: Value, _: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let text = string_arg(&args, "csv", "csv_parser")?;
        let has_header = args["has_header"].as_bool().unwrap_or(true);
        let limit = args["limit"].as_u64().unwrap_or(100) as usize;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let columns: Vec<String> = if has_header {
            lines.next().map(csv_fields).unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut rows = Vec::new();
        let mut count = 0;
        for line in lines {
            count += 1;
            if rows.len() < limit {
                let fields = csv_fields(line);
                rows.push(if has_header {
                    let mut row = serde_json::Map::new();
                    for (i, f) in fields.into_iter().enumerate() {
                        let key = columns
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("column_{}", i + 1));
                        row.insert(key, Value::String(f));
                    }
                    Value::Object(row)
                } else {
                    json!(fields)
                });
            }
        }
        Ok(
            json!({"columns": columns, "row_count": count, "rows": rows, "truncated": count > rows.len()}),
        )
    }
}

struct HttpClient {
    allowed_domains: Vec<String>,
    /// Loopback, private, link-local and similar addresses are refused
    /// unless the operator allows them (`tools.http_allow_private_addresses`).
    allow_private: bool,
}

/// Sent with every request `http_client` makes, so a Caxton server that
/// receives one never takes it for its local operator (an agent's
/// request to `127.0.0.1` comes from the server's own user).
pub const AGENT_REQUEST_HEADER: &str = "caxton-agent-request";

/// The addresses this process serves its API and metrics on. `http_client`
/// never reaches them, whatever `tools.http_allow_private_addresses` says.
static OWN_ADDRESSES: std::sync::RwLock<Vec<std::net::SocketAddr>> =
    std::sync::RwLock::new(Vec::new());

/// Records a listening address of this process (see [`OWN_ADDRESSES`]).
pub fn exclude_own_address(address: std::net::SocketAddr) {
    let mut own = OWN_ADDRESSES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !own.contains(&address) {
        own.push(address);
    }
}

/// Whether `target` is one of this process's listening addresses: the same
/// port on the listening address, or on loopback when it listens on all
/// addresses (its other interface addresses are refused by the gate, which
/// knows [`AGENT_REQUEST_HEADER`]).
fn is_own_address(target: std::net::SocketAddr) -> bool {
    let ip = target.ip().to_canonical();
    OWN_ADDRESSES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .any(|own| {
            own.port() == target.port()
                && (own.ip().to_canonical() == ip
                    || (own.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())))
        })
}

const HTTP_MAX_BODY: usize = 64 * 1024;
/// Redirects followed, each one checked like the first request.
const HTTP_MAX_REDIRECTS: usize = 5;
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Addresses no agent may reach unless the operator allows private ones:
/// this machine, private networks, link-local (cloud metadata at
/// 169.254.169.254 among them), multicast and unspecified.
pub fn is_private_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || a == 0
                || (a == 100 && (64..=127).contains(&b)) // carrier-grade NAT
                || (a == 192 && b == 0) // IETF protocol assignments
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

impl HttpClient {
    fn check_host(&self, url: &reqwest::Url) -> Result<String, ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::Denied(format!(
                "`{}` is not an http(s) URL; http_client reaches the web only",
                crate::redact::url(url.as_str())
            )));
        }
        let host = url.host_str().unwrap_or_default().to_lowercase();
        let host = host.trim_end_matches('.').to_string();
        let allowed = self
            .allowed_domains
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")));
        if !allowed {
            return Err(ToolError::Denied(format!(
                "`{host}` is not an allowed domain for http_client (allowed: {}); add it to tools.http_allowed_domains in caxton.yaml",
                if self.allowed_domains.is_empty() {
                    "none".to_string()
                } else {
                    self.allowed_domains.join(", ")
                }
            )));
        }
        Ok(host)
    }

    /// Resolves `host` once and checks every address, so the request goes
    /// to exactly the addresses checked (no second lookup to rebind).
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, ToolError> {
        let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ToolError::Failed(format!("cannot resolve `{host}`: {e}")))?
            .collect();
        if addresses.is_empty() {
            return Err(ToolError::Failed(format!("`{host}` has no address")));
        }
        if let Some(own) = addresses.iter().find(|a| is_own_address(**a)) {
            return Err(ToolError::Denied(format!(
                "`{host}` resolves to {own}, where this Caxton server itself listens; \
                 http_client never reaches its own server"
            )));
        }
        if !self.allow_private
            && let Some(bad) = addresses.iter().find(|a| is_private_address(a.ip()))
        {
            return Err(ToolError::Denied(format!(
                "`{host}` resolves to {}, a loopback, private, link-local or multicast address; \
                 http_client does not reach those unless tools.http_allow_private_addresses is true",
                bad.ip()
            )));
        }
        Ok(addresses)
    }

    /// One request to one checked URL, without following redirects.
    async fn send_once(
        &self,
        url: reqwest::Url,
        method: &str,
        body: &str,
    ) -> Result<reqwest::Response, ToolError> {
        let host = self.check_host(&url)?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addresses = self.resolve(&host, port).await?;
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addresses)
            .build()
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let request = match method {
            "GET" => client.get(url).header(AGENT_REQUEST_HEADER, "1"),
            "POST" => client
                .post(url)
                .header(AGENT_REQUEST_HEADER, "1")
                .body(body.to_string()),
            other => {
                return Err(ToolError::InvalidInput(format!(
                    "method `{other}` is not supported; use GET or POST"
                )));
            }
        };
        request.send().await.map_err(|e| {
            let e = e.to_string();
            ToolError::Failed(format!(
                "request to {host} failed: {}",
                crate::redact::text(&e)
            ))
        })
    }
}

#[async_trait::async_trait]
impl Tool for HttpClient {
    fn name(&self) -> &str {
        "http_client"
    }
    fn description(&self) -> &str {
        "HTTP GET or POST to an allowed domain (tools.http_allowed_domains in caxton.yaml); answers status and body (first 64 KiB)."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["url"], "properties": {
            "url": {"type": "string"},
            "method": {"type": "string", "enum": ["GET", "POST"]},
            "body": {"type": "string"}}})
    }
    async fn invoke(&self, args: Value, _: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let url = string_arg(&args, "url", "http_client")?;
        let mut url = reqwest::Url::parse(url).map_err(|e| {
            let url = crate::redact::url(url);
            ToolError::InvalidInput(format!("`{url}` is not a URL: {e}"))
        })?;
        let mut method = args["method"].as_str().unwrap_or("GET").to_string();
        let body = args["body"].as_str().unwrap_or("");
        let mut hops = 0;
        let mut response = loop {
            let response = self.send_once(url.clone(), &method, body).await?;
            if !response.status().is_redirection() {
                break response;
            }
            let Some(location) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break response;
            };
            hops += 1;
            if hops > HTTP_MAX_REDIRECTS {
                return Err(ToolError::Failed(format!(
                    "more than {HTTP_MAX_REDIRECTS} redirects from {}",
                    crate::redact::url(url.as_str())
                )));
            }
            let next = url.join(location).map_err(|e| {
                ToolError::Failed(format!(
                    "{} redirects to `{}`, not a URL: {e}",
                    crate::redact::url(url.as_str()),
                    crate::redact::url(location)
                ))
            })?;
            // 303 (and, as browsers do, 301/302 after a POST) turn into GET.
            if matches!(response.status().as_u16(), 301..=303) {
                method = "GET".into();
            }
            url = next;
        };
        let status = response.status().as_u16();
        // Read no more than the cap, whatever the server sends.
        let mut bytes = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = HTTP_MAX_BODY - bytes.len();
                    if chunk.len() > room {
                        bytes.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(ToolError::Failed(format!(
                        "reading the answer from {} failed: {e}",
                        url.host_str().unwrap_or_default()
                    )));
                }
            }
        }
        Ok(
            json!({"status": status, "body": String::from_utf8_lossy(&bytes), "truncated": truncated, "url": url.as_str()}),
        )
    }
}

struct MemorySearch;

#[async_trait::async_trait]
impl Tool for MemorySearch {
    fn name(&self) -> &str {
        "memory_search"
    }
    fn description(&self) -> &str {
        "Search the agent's memory by meaning and keywords; answers the best matching entities."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["query"], "properties": {
            "query": {"type": "string"}, "limit": {"type": "integer", "default": 5}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let query = string_arg(&args, "query", "memory_search")?.to_string();
        let limit = args["limit"].as_u64().unwrap_or(5).clamp(1, 50) as usize;
        let agent = caller.clone();
        let hits = tokio::task::spawn_blocking(move || {
            agent
                .memory
                .search(&[ScopeKey::agent(&agent.id)], &query, limit)
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(json!({"results": hits.iter().map(|h| json!({
            "name": h.entity.name, "type": h.entity.entity_type,
            "matched": h.matched, "observations": h.entity.observations, "score": h.score
        })).collect::<Vec<_>>()}))
    }
}

struct MemoryStore;

#[async_trait::async_trait]
impl Tool for MemoryStore {
    fn name(&self) -> &str {
        "memory_store"
    }
    fn description(&self) -> &str {
        "Remember a fact: an entity (name, type) with observations, in the agent's memory."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["name", "observations"], "properties": {
            "name": {"type": "string"}, "entity_type": {"type": "string", "default": "fact"},
            "observations": {"type": "array", "items": {"type": "string"}}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let input: EntityInput = serde_json::from_value(json!({
            "name": args["name"],
            "entity_type": args["entity_type"].as_str().unwrap_or("fact"),
            "observations": args["observations"],
        }))
        .map_err(|e| ToolError::InvalidInput(format!("memory_store arguments: {e}")))?;
        let agent = caller.clone();
        let summary = tokio::task::spawn_blocking(move || {
            agent
                .memory
                .create_entities(&ScopeKey::agent(&agent.id), std::slice::from_ref(&input))
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        Ok(json!(summary))
    }
}

struct AskAgent;

#[async_trait::async_trait]
impl Tool for AskAgent {
    fn name(&self) -> &str {
        "ask_agent"
    }
    fn description(&self) -> &str {
        "Ask another agent, by name (`agent`) or by capability (`capability`), and get its answer."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["message"], "properties": {
            "agent": {"type": "string"}, "capability": {"type": "string"},
            "message": {"type": "string"}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let content = string_arg(&args, "message", "ask_agent")?.to_string();
        let to = match (args["agent"].as_str(), args["capability"].as_str()) {
            (Some(a), None) => Address::Agent(a.to_string()),
            (None, Some(c)) => Address::Capability(c.to_string()),
            _ => {
                return Err(ToolError::InvalidInput(
                    "give exactly one of `agent` (a name) or `capability`".into(),
                ));
            }
        };
        let (receiver, capability) = match &to {
            Address::Agent(a) => (Some(a.clone()), None),
            Address::Capability(c) => (None, Some(c.clone())),
        };
        let message = AclMessage {
            id: acl::new_message_id(),
            performative: Performative::Request,
            sender: caller.name.clone(),
            receiver,
            capability,
            content,
            content_type: acl::TEXT_PLAIN.to_string(),
            conversation_id: Some(acl::new_message_id()),
            reply_with: None,
            in_reply_to: None,
            trace_parent: None,
        };
        let budgets = caller.budgets.get().cloned();
        let _on_behalf = match (&budgets, &message.conversation_id) {
            (Some(b), Some(c)) => Some(b.on_behalf_of(c, &caller.name)),
            _ => None,
        };
        let delivered = caller
            .bus
            .request(Some(&caller.id), to, message, Duration::from_secs(120))
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        let reply = delivered.reply.ok_or_else(|| {
            ToolError::Failed(format!("agent `{}` sent no reply", delivered.agent_name))
        })?;
        Ok(
            json!({"agent": delivered.agent_name, "performative": reply.performative, "answer": reply.content}),
        )
    }
}

/// `seconds` from the arguments, as a protocol deadline.
fn seconds_arg(args: &Value, key: &str, default: u64) -> Result<Duration, ToolError> {
    let seconds = match &args[key] {
        Value::Null => default,
        v => v.as_u64().ok_or_else(|| {
            ToolError::InvalidInput(format!("`{key}` must be a whole number of seconds"))
        })?,
    };
    crate::protocols::check_deadline(key, seconds.saturating_mul(1000))
        .map_err(ToolError::InvalidInput)
}

struct Broadcast;

#[async_trait::async_trait]
impl Tool for Broadcast {
    fn name(&self) -> &str {
        "broadcast"
    }
    fn description(&self) -> &str {
        "Send one message to every agent declaring a capability and get each one's answer (or why none came)."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["capability", "message"], "properties": {
            "capability": {"type": "string"},
            "message": {"type": "string"},
            "timeout_seconds": {"type": "integer", "description": "how long answers are gathered (default 10)"},
            "max_answers": {"type": "integer", "description": "stop once this many replied"}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let capability = string_arg(&args, "capability", "broadcast")?.to_string();
        let content = string_arg(&args, "message", "broadcast")?.to_string();
        let deadline = seconds_arg(&args, "timeout_seconds", 10)?;
        let max_answers = match &args["max_answers"] {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .filter(|n| *n > 0)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        ToolError::InvalidInput("`max_answers` must be a positive integer".into())
                    })?,
            ),
        };
        let gathered = crate::protocols::broadcast::run(
            caller.bus.as_ref(),
            &caller.initiator(None),
            crate::protocols::broadcast::Broadcast {
                capability,
                performative: Performative::Request,
                content,
                content_type: acl::TEXT_PLAIN.to_string(),
                deadline,
                max_answers,
                conversation_id: None,
            },
        )
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        serde_json::to_value(gathered).map_err(|e| ToolError::Failed(e.to_string()))
    }
}

struct Publish;

#[async_trait::async_trait]
impl Tool for Publish {
    fn name(&self) -> &str {
        "publish"
    }
    fn description(&self) -> &str {
        "Publish a message to every agent subscribed to a topic; each gets it once, durably, without anyone waiting for replies."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["topic", "message"], "properties": {
            "topic": {"type": "string"},
            "message": {"type": "string"}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        let topic = string_arg(&args, "topic", "publish")?.to_string();
        crate::protocols::publish::check_topic(&topic).map_err(ToolError::InvalidInput)?;
        let content = string_arg(&args, "message", "publish")?.to_string();
        let published = crate::protocols::publish::run(
            caller.bus.as_ref(),
            &caller.initiator(None),
            crate::protocols::publish::Publication {
                topic,
                content,
                content_type: acl::TEXT_PLAIN.to_string(),
                conversation_id: None,
            },
        )
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        serde_json::to_value(published).map_err(|e| ToolError::Failed(e.to_string()))
    }
}

struct ContractNet;

#[async_trait::async_trait]
impl Tool for ContractNet {
    fn name(&self) -> &str {
        "contract_net"
    }
    fn description(&self) -> &str {
        "Ask every agent declaring a capability to bid on a task; the best bid (lowest by default) is accepted and its result returned, falling back to the next bid if the winner fails. With award `initiator` you get the proposals (state awaiting-award) and choose with the tool award_contract."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["capability", "task"], "properties": {
            "capability": {"type": "string"},
            "task": {"type": "string"},
            "award": {"type": "string", "enum": ["lowest", "highest", "initiator"]},
            "timeout_seconds": {"type": "integer", "description": "how long bids are gathered (default 10)"},
            "result_timeout_seconds": {"type": "integer", "description": "how long the winner has (default 60)"},
            "award_timeout_seconds": {"type": "integer", "description": "with award `initiator`: how long you have to choose (default 60)"}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        use crate::protocols::contract_net::{self, Award};
        let capability = string_arg(&args, "capability", "contract_net")?.to_string();
        let task = string_arg(&args, "task", "contract_net")?.to_string();
        let award = match args["award"].as_str() {
            None | Some("lowest") => Award::Lowest,
            Some("highest") => Award::Highest,
            Some("initiator") => Award::Initiator,
            Some(other) => {
                return Err(ToolError::InvalidInput(format!(
                    "`award` is `{other}`; use `lowest`, `highest` or `initiator`"
                )));
            }
        };
        let outcome = contract_net::run(
            &caller.bus,
            &caller.initiator(None),
            contract_net::ContractNet {
                capability,
                task,
                content_type: acl::TEXT_PLAIN.to_string(),
                award,
                bid_deadline: seconds_arg(&args, "timeout_seconds", 10)?,
                result_deadline: seconds_arg(&args, "result_timeout_seconds", 60)?,
                fallback: true,
                award_deadline: seconds_arg(&args, "award_timeout_seconds", 60)?,
                conversation_id: None,
            },
        )
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        serde_json::to_value(outcome).map_err(|e| ToolError::Failed(e.to_string()))
    }
}

struct AwardContract;

#[async_trait::async_trait]
impl Tool for AwardContract {
    fn name(&self) -> &str {
        "award_contract"
    }
    fn description(&self) -> &str {
        "Choose the winner of your contract net that awaits your award (started with award `initiator`): name proposers best first; the first is accepted, the next if it fails, the rest are rejected. Returns the winner's result."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "required": ["conversation_id", "agents"], "properties": {
            "conversation_id": {"type": "string", "description": "from the contract_net answer"},
            "agents": {"type": "array", "items": {"type": "string"}, "description": "proposers, best first"}}})
    }
    async fn invoke(&self, args: Value, caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        use crate::protocols::contract_net::{self, AwardError};
        let id = string_arg(&args, "conversation_id", "award_contract")?;
        let agents: Vec<String> = match args["agents"].as_array() {
            Some(list) => list
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ToolError::InvalidInput("`agents` must be a list of agent names".into())
                })?,
            None => {
                return Err(ToolError::InvalidInput(
                    "give `agents`, the proposers to accept, best first".into(),
                ));
            }
        };
        let outcome = contract_net::award(&caller.bus, &caller.initiator(None), id, agents)
            .await
            .map_err(|e| match e {
                AwardError::NotFound(_) => ToolError::NotFound(e.to_string()),
                AwardError::Invalid(why) => ToolError::InvalidInput(why),
            })?;
        serde_json::to_value(outcome).map_err(|e| ToolError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_honour_quotes() {
        assert_eq!(
            csv_fields(r#"a, "b, c", "say ""hi""""#),
            vec!["a", "b, c", "say \"hi\""]
        );
    }

    #[test]
    fn json_paths() {
        let v = json!({"orders": [{"total": 5}]});
        assert_eq!(select(&v, "orders.0.total"), Some(&json!(5)));
        assert_eq!(select(&v, "orders.1"), None);
        assert_eq!(select(&v, ""), Some(&v));
    }
}
