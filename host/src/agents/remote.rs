//! Agents on other servers, spoken to over A2A 1.0 (`a2a_agents:` in
//! `caxton.yaml`). Each is in the registry like a local agent — messaged
//! by name, found by capability (its card's skills) for requests,
//! broadcasts and contract nets, asked by config agents through
//! `ask_agent` — but its mailbox is read by [`RemoteActor`], which sends
//! each message as an A2A `SendMessage` (JSON-RPC binding) and turns the
//! task that comes back into a FIPA reply: completed → `inform` with the
//! artifacts' text, failed → `failure`, rejected → `refuse`.
//!
//! The card is fetched at start and again with backoff until it is had;
//! until then the configured URL is the endpoint and the configured
//! capabilities are the agent's. The card is another server's word: its
//! endpoint is used only on the configured URL's origin, and everything it
//! or an answer says is capped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::actor::Envelope;
use super::record::{AgentKind, AgentRecord};
use super::registry::{AgentHandle, Registry, lock};
use crate::messaging::acl::{self, AclMessage, Performative};
use crate::messaging::{Delivered, DeliveryError, ExecutionFailure};
use crate::runtime::guest_log::AgentLog;
use crate::runtime::limits::ResourceLimits;

/// One entry of `a2a_agents:`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAgentConfig {
    /// The agent's A2A URL (`https://host/a2a/weather`); its card is at
    /// `URL/.well-known/agent-card.json`.
    pub url: String,
    /// The environment variable holding a bearer token to send.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Longest wait for one answer (each attempt).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Further attempts when the server cannot be reached or answers 502,
    /// 503 or 504 (a message it received is never sent twice).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Capabilities to route by; empty: the card's skill ids.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// What the agent does, until (or instead of) the card's description.
    #[serde(default)]
    pub description: Option<String>,
}

fn default_timeout() -> u64 {
    60
}

fn default_retries() -> u32 {
    2
}

/// Longest answer or card read from a remote server.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Messages in flight to one remote agent at once.
const MAX_IN_FLIGHT: usize = 16;
/// Skills taken from a card, and the longest skill id kept.
const MAX_SKILLS: usize = 64;
const MAX_SKILL_ID: usize = 128;
/// The longest description kept from a card.
const MAX_DESCRIPTION: usize = 2048;

impl RemoteAgentConfig {
    pub fn validate(&self, name: &str) -> Result<(), String> {
        crate::runtime::upload::check_name(name).map_err(|e| format!("a2a_agents: {e}"))?;
        let origin = origin_of(&self.url).ok_or_else(|| {
            format!(
                "a2a_agents.{name}.url must be an http:// or https:// URL with a host, not `{}`",
                crate::redact::url(&self.url)
            )
        })?;
        if origin.contains('@') {
            return Err(format!(
                "a2a_agents.{name}.url carries credentials; put the token in an environment variable named by bearer_token_env"
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return Err(format!(
                "a2a_agents.{name}.timeout_secs is {}; it must be between 1 and 600",
                self.timeout_secs
            ));
        }
        if self.retries > 10 {
            return Err(format!(
                "a2a_agents.{name}.retries is {}; at most 10",
                self.retries
            ));
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Whether a remote agent can be reached, as `/api/v1/health` shows it
/// (the shape of an MCP server's health).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RemoteHealth {
    /// Its card has not been read yet, and nothing was sent.
    Starting,
    /// The last card read or call reached it.
    Up,
    /// The last card read or call could not reach it (no connection,
    /// HTTP 502–504, a timeout, a card that is not one); `reason` says.
    Down { reason: String },
}

/// The remote agents started by [`start_all`], for their health.
#[derive(Default)]
pub struct RemoteAgents(Vec<Arc<RemoteActor>>);

impl RemoteAgents {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each remote agent's health, by name.
    pub fn health(&self) -> std::collections::BTreeMap<String, RemoteHealth> {
        self.0
            .iter()
            .map(|a| (a.handle.name.clone(), lock(&a.health).clone()))
            .collect()
    }
}

/// Registers every configured remote agent and starts its actor. A name
/// already taken (by a deployed or config agent) is reported and skipped.
pub fn start_all(
    configs: &std::collections::BTreeMap<String, RemoteAgentConfig>,
    registry: &Arc<Registry>,
    mailbox_capacity: usize,
    failure_threshold: u32,
) -> RemoteAgents {
    let mut started = Vec::new();
    for (name, config) in configs {
        let record = AgentRecord {
            id: format!("a2a:{name}"),
            name: name.clone(),
            component_sha256: String::new(),
            // Nothing runs here: no memory or fuel of ours; the wait is
            // the remote agent's time limit.
            limits: ResourceLimits {
                max_memory_bytes: 0,
                max_fuel: 0,
                max_execution_time_ms: config.timeout_secs.saturating_mul(1000),
            },
            capabilities: config.capabilities.clone(),
            description: config
                .description
                .clone()
                .unwrap_or_else(|| format!("A2A agent at {}", crate::redact::url(&config.url))),
            config_json: "{}".into(),
            created_at: crate::clock::now_rfc3339(),
            suspended: false,
            memory_grants: Vec::new(),
            kind: AgentKind::A2a,
            tools: Vec::new(),
            llm_provider: None,
            llm_granted: false,
            source: Some(format!("caxton.yaml a2a_agents.{name}")),
        };
        let (tx, rx) = mpsc::channel(mailbox_capacity);
        let handle = Arc::new(AgentHandle::new(
            record,
            Arc::new(AgentLog::default()),
            tx,
            mailbox_capacity,
            failure_threshold,
        ));
        if registry.insert(handle.clone()).is_err() {
            tracing::error!(agent = %name, "a2a_agents: the name is already an agent here; this remote agent is not registered");
            continue;
        }
        let token = config
            .bearer_token_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok());
        let actor = Arc::new(RemoteActor {
            handle,
            config: config.clone(),
            endpoint: std::sync::Mutex::new(config.url.trim_end_matches('/').to_string()),
            token,
            health: std::sync::Mutex::new(RemoteHealth::Starting),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        });
        tokio::spawn(actor.clone().learn_card());
        tokio::spawn(actor.clone().run(rx));
        started.push(actor);
    }
    RemoteAgents(started)
}

/// Reads a remote agent's mailbox and speaks A2A for it.
pub struct RemoteActor {
    handle: Arc<AgentHandle>,
    config: RemoteAgentConfig,
    /// The JSON-RPC endpoint: the configured URL, or the card's.
    endpoint: std::sync::Mutex<String>,
    token: Option<String>,
    health: std::sync::Mutex<RemoteHealth>,
    http: reqwest::Client,
}

impl RemoteActor {
    async fn run(self: Arc<Self>, mut mailbox: mpsc::Receiver<Envelope>) {
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        loop {
            let envelope = tokio::select! {
                () = self.handle.stopped() => break,
                next = mailbox.recv() => match next {
                    Some(envelope) => envelope,
                    None => break,
                },
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match envelope {
                    Envelope::Deliver {
                        message,
                        enqueued,
                        mut reply,
                        ..
                    } => {
                        if reply.is_closed() {
                            return;
                        }
                        let queued = enqueued.elapsed();
                        let started = Instant::now();
                        let answer = tokio::select! {
                            answer = me.send(*message) => answer,
                            () = reply.closed() => return,
                        };
                        let executed = started.elapsed();
                        let result = match answer {
                            Ok(answer) => {
                                lock(&me.handle.stats).record_success(
                                    u64::try_from(executed.as_micros()).unwrap_or(u64::MAX),
                                );
                                Ok(Delivered {
                                    agent_id: me.handle.id.clone(),
                                    agent_name: me.handle.name.clone(),
                                    reply: Some(answer),
                                    queued,
                                    executed,
                                })
                            }
                            Err(failure) => Err(me.failed(failure)),
                        };
                        let _ = reply.send(result);
                    }
                    Envelope::Ping { reply } => {
                        let started = Instant::now();
                        let result = me.fetch_card().await.map(|_| started.elapsed());
                        let _ = reply.send(result);
                    }
                }
            });
        }
    }

    fn failed(&self, failure: ExecutionFailure) -> DeliveryError {
        lock(&self.handle.stats).record_failure(&failure);
        self.handle.log.push("host", &failure.to_string());
        tracing::warn!(agent = %self.handle.name, code = failure.code(), "{failure}");
        DeliveryError::AgentFailed {
            agent: self.handle.name.clone(),
            failure,
        }
    }

    /// Notes whether the remote side was reached: `Err` only for failures
    /// of reaching it, not for answers it gave.
    fn reached(&self, outcome: Result<(), &ExecutionFailure>) {
        *lock(&self.health) = match outcome {
            Ok(()) => RemoteHealth::Up,
            Err(failure) => RemoteHealth::Down {
                reason: failure.to_string(),
            },
        };
    }

    fn card_url(&self) -> String {
        format!(
            "{}/.well-known/agent-card.json",
            self.config.url.trim_end_matches('/')
        )
    }

    /// Fetches the card until it is had (backoff up to a minute), then
    /// takes its endpoint, description and skills.
    async fn learn_card(self: Arc<Self>) {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.fetch_card().await {
                Ok(card) => {
                    self.reached(Ok(()));
                    self.take_card(&card);
                    return;
                }
                Err(e) => {
                    self.reached(Err(&e));
                    tracing::warn!(agent = %self.handle.name, url = %crate::redact::url(&self.card_url()),
                        "cannot read the A2A agent card; retrying in {} s: {e}", wait.as_secs());
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.handle.stopped() => return,
            }
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    }

    async fn fetch_card(&self) -> Result<Value, ExecutionFailure> {
        let mut request = self
            .http
            .get(self.card_url())
            .timeout(Duration::from_secs(self.config.timeout_secs))
            .header(crate::tools::builtin::AGENT_REQUEST_HEADER, "1");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(remote_error)?;
        let status = response.status();
        let body = read_capped(response).await?;
        if !status.is_success() {
            return Err(ExecutionFailure::Remote(format!(
                "the card answered HTTP {status}"
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ExecutionFailure::Remote(format!("the card is not JSON: {e}")))
    }

    /// Takes what the card says, as far as it may be believed.
    fn take_card(&self, card: &Value) {
        let origin = origin_of(&self.config.url);
        let endpoint = card["supportedInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["protocolBinding"] == "JSONRPC")
            .filter(|i| {
                i["protocolVersion"]
                    .as_str()
                    .is_some_and(|v| v == "1" || v.starts_with("1."))
            })
            .filter_map(|i| i["url"].as_str())
            .find(|url| origin_of(url) == origin);
        match endpoint {
            Some(url) => *lock(&self.endpoint) = url.trim_end_matches('/').to_string(),
            None => tracing::warn!(agent = %self.handle.name,
                "the card lists no A2A 1.0 JSON-RPC interface on {}; sending to the configured URL",
                origin.as_deref().unwrap_or("?")),
        }
        let mut record = lock(&self.handle.record);
        if self.config.capabilities.is_empty() {
            record.capabilities = card["skills"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_str())
                .filter(|id| !id.is_empty() && id.len() <= MAX_SKILL_ID)
                .take(MAX_SKILLS)
                .map(str::to_string)
                .collect();
        }
        if self.config.description.is_none()
            && let Some(description) = card["description"].as_str()
        {
            let cut: String = description.chars().take(MAX_DESCRIPTION).collect();
            record.description = cut.replace(['\n', '\r'], " ");
        }
        tracing::info!(agent = %self.handle.name, capabilities = ?record.capabilities, "A2A agent card read");
    }

    /// One JSON-RPC call, retried when the server could not take it.
    async fn call(&self, method: &str, params: Value) -> Result<Value, ExecutionFailure> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": acl::new_message_id(),
            "method": method,
            "params": params,
        });
        let endpoint = lock(&self.endpoint).clone();
        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .post(&endpoint)
                .timeout(Duration::from_secs(self.config.timeout_secs))
                .header("a2a-version", "1.0")
                .header(crate::tools::builtin::AGENT_REQUEST_HEADER, "1")
                .json(&body);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let retryable = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let bytes = read_capped(response).await?;
                    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
                        ExecutionFailure::Remote(format!("the answer is not JSON: {e}"))
                    })?;
                    self.reached(Ok(()));
                    if let Some(error) = answer.get("error") {
                        return Err(ExecutionFailure::Remote(format!(
                            "A2A error {}: {}",
                            error["code"],
                            cut(error["message"].as_str().unwrap_or(""), 500)
                        )));
                    }
                    return Ok(answer["result"].clone());
                }
                Ok(response) => {
                    let status = response.status();
                    let e = ExecutionFailure::Remote(format!("{method} answered HTTP {status}"));
                    if !matches!(status.as_u16(), 502..=504) {
                        return Err(e);
                    }
                    e
                }
                // Not connected: the message never left.
                Err(e) if e.is_connect() => remote_error(e),
                Err(e) => {
                    let failure = remote_error(e);
                    self.reached(Err(&failure));
                    return Err(failure);
                }
            };
            if attempt >= self.config.retries {
                self.reached(Err(&retryable));
                return Err(retryable);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(200 << attempt.min(6))).await;
        }
    }

    /// Sends `message` as a task and waits for the task to end.
    async fn send(&self, message: AclMessage) -> Result<AclMessage, ExecutionFailure> {
        let context = message
            .conversation_id
            .clone()
            .unwrap_or_else(|| message.id.clone());
        let part = if message.content_type.starts_with("application/json")
            && let Ok(data) = serde_json::from_str::<Value>(&message.content)
        {
            json!({ "data": data })
        } else {
            json!({ "text": message.content })
        };
        let result = self
            .call(
                "SendMessage",
                json!({ "message": {
                    "messageId": message.id,
                    "contextId": context,
                    "role": "ROLE_USER",
                    "parts": [part],
                }}),
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(self.config.timeout_secs);
        let (performative, content) = if let Some(reply) = result.get("message") {
            (Performative::Inform, text_of(&reply["parts"]))
        } else if let Some(task) = result.get("task") {
            let mut task = task.clone();
            let mut wait = Duration::from_millis(100);
            while !is_terminal(&task) {
                if Instant::now() >= deadline {
                    return Err(ExecutionFailure::Remote(format!(
                        "the task is still {} after {} s",
                        task["status"]["state"].as_str().unwrap_or("?"),
                        self.config.timeout_secs
                    )));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
                let id = task["id"].clone();
                task = self.call("GetTask", json!({ "id": id })).await?;
            }
            reply_of(&task)
        } else {
            return Err(ExecutionFailure::Remote(
                "the answer holds neither a task nor a message".into(),
            ));
        };
        Ok(AclMessage {
            id: acl::new_message_id(),
            performative,
            sender: self.handle.name.clone(),
            receiver: Some(message.sender),
            capability: None,
            content,
            content_type: acl::TEXT_PLAIN.into(),
            conversation_id: message.conversation_id,
            reply_with: None,
            in_reply_to: Some(message.reply_with.unwrap_or(message.id)),
            trace_parent: None,
        })
    }
}

fn is_terminal(task: &Value) -> bool {
    matches!(
        task["status"]["state"].as_str(),
        Some(
            "TASK_STATE_COMPLETED"
                | "TASK_STATE_FAILED"
                | "TASK_STATE_CANCELED"
                | "TASK_STATE_REJECTED"
                | "TASK_STATE_INPUT_REQUIRED"
                | "TASK_STATE_AUTH_REQUIRED"
        )
    )
}

/// The FIPA reply a finished task stands for.
fn reply_of(task: &Value) -> (Performative, String) {
    let status_text = text_of(&task["status"]["message"]["parts"]);
    match task["status"]["state"].as_str().unwrap_or_default() {
        "TASK_STATE_COMPLETED" => {
            let artifacts: Vec<String> = task["artifacts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| text_of(&a["parts"]))
                .collect();
            let text = if artifacts.is_empty() {
                status_text
            } else {
                artifacts.join("\n")
            };
            (Performative::Inform, text)
        }
        "TASK_STATE_REJECTED" => (Performative::Refuse, status_text),
        "TASK_STATE_CANCELED" => (
            Performative::Failure,
            format!("the remote agent cancelled the task. {status_text}"),
        ),
        "TASK_STATE_INPUT_REQUIRED" | "TASK_STATE_AUTH_REQUIRED" => (
            Performative::Failure,
            format!("the remote agent asks for more input: {status_text}"),
        ),
        _ => (Performative::Failure, status_text),
    }
}

/// The text of A2A parts: text parts as they are, data parts as JSON.
fn text_of(parts: &Value) -> String {
    let texts: Vec<String> = parts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| match (part.get("text"), part.get("data")) {
            (Some(Value::String(text)), _) => Some(text.clone()),
            (_, Some(data)) => Some(data.to_string()),
            _ => None,
        })
        .collect();
    texts.join("\n")
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

fn remote_error(e: reqwest::Error) -> ExecutionFailure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let url = e
        .url()
        .map(|u| crate::redact::url(u.as_str()))
        .unwrap_or_default();
    ExecutionFailure::Remote(format!("{what}: {url}"))
}

/// Reads a response body, refusing one over [`MAX_ANSWER_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ExecutionFailure> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(remote_error)? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ExecutionFailure::Remote(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> RemoteAgentConfig {
        RemoteAgentConfig {
            url: url.into(),
            bearer_token_env: None,
            timeout_secs: 60,
            retries: 2,
            capabilities: Vec::new(),
            description: None,
        }
    }

    #[test]
    fn a_remote_agent_needs_an_http_url_without_credentials() {
        assert!(
            config("https://x.example/a2a/w")
                .validate("weather")
                .is_ok()
        );
        assert!(config("ftp://x").validate("weather").is_err());
        assert!(config("https://u:p@x/a2a").validate("weather").is_err());
        assert!(config("https://x/a2a").validate("bad name").is_err());
        let mut slow = config("https://x/a2a");
        slow.timeout_secs = 0;
        assert!(slow.validate("w").is_err());
    }

    #[test]
    fn finished_tasks_become_fipa_replies() {
        let done = json!({"status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"parts": [{"text": "sunny"}]}, {"parts": [{"data": {"t": 21}}]}]});
        assert_eq!(
            reply_of(&done),
            (Performative::Inform, "sunny\n{\"t\":21}".into())
        );
        let failed = json!({"status": {"state": "TASK_STATE_FAILED",
            "message": {"parts": [{"text": "no station"}]}}});
        assert_eq!(
            reply_of(&failed),
            (Performative::Failure, "no station".into())
        );
        let rejected = json!({"status": {"state": "TASK_STATE_REJECTED"}});
        assert_eq!(reply_of(&rejected).0, Performative::Refuse);
        assert!(!is_terminal(
            &json!({"status": {"state": "TASK_STATE_WORKING"}})
        ));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin_of("http://127.0.0.1:8080/a2a/echo").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_ne!(
            origin_of("http://127.0.0.1:8080/a"),
            origin_of("http://127.0.0.1:9090/a")
        );
        assert_eq!(origin_of("file:///etc/passwd"), None);
    }
}
