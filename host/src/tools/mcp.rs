//! Tools of external MCP servers (`mcp_servers:` in `caxton.yaml`): each
//! server is started as a child process speaking MCP over stdio, or reached
//! over Streamable HTTP at its `url` (with the `rmcp` client), and its
//! tools join the registry as `SERVER/TOOL` with
//! their own JSON Schemas. Agents may call only those they list, like any
//! tool.
//!
//! A server that exits or cannot start is restarted with exponential
//! backoff (1 s doubling to a minute) and reported by `/api/v1/health`
//! until it is back. A call that takes longer than `timeout_secs` is
//! cancelled, and an answer longer than `max_result_bytes` is refused,
//! each with an error that says so.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ServiceExt as _;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, JsonObject,
};
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt as _, StreamableHttpClientTransport, TokioChildProcess};
use serde::Serialize;
use serde_json::{Value, json};

use super::settings::McpServerConfig;
use super::{Tool, ToolError};
use crate::runtime::AgentContext;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long the server's start waits for each MCP server's first tool list.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// How one MCP server is doing, as health reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerHealth {
    Starting,
    Up { tools: usize },
    Down { reason: String, restarts: u64 },
}

struct Connected {
    peer: Peer<RoleClient>,
    tools: Vec<rmcp::model::Tool>,
}

/// Where a server is; its health is read from this.
enum State {
    Starting,
    Up(Connected),
    Down { reason: String, restarts: u64 },
}

/// One configured MCP server and its connection, when it has one.
pub struct McpServer {
    name: String,
    config: McpServerConfig,
    state: Mutex<State>,
    first_attempt: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl McpServer {
    fn set_down(&self, reason: String, restarts: u64) {
        // The reason may quote the server's URL, credentials and all, and
        // the unauthenticated `/api/v1/health` shows it.
        let reason = crate::redact::text(&reason).into_owned();
        tracing::warn!(mcp_server = %self.name, %reason, "MCP server is down; restarting it with backoff");
        *lock(&self.state) = State::Down { reason, restarts };
    }

    fn connected<T>(&self, read: impl FnOnce(&Connected) -> T) -> Option<T> {
        match &*lock(&self.state) {
            State::Up(connected) => Some(read(connected)),
            _ => None,
        }
    }

    fn health(&self) -> ServerHealth {
        match &*lock(&self.state) {
            State::Starting => ServerHealth::Starting,
            State::Up(connected) => ServerHealth::Up {
                tools: connected.tools.len(),
            },
            State::Down { reason, restarts } => ServerHealth::Down {
                reason: reason.clone(),
                restarts: *restarts,
            },
        }
    }

    /// Reaches the server (starting its process, or over HTTP) and reads
    /// its tool list.
    async fn connect(
        &self,
    ) -> anyhow::Result<rmcp::service::RunningService<RoleClient, ClientConfig>> {
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("caxton", env!("CARGO_PKG_VERSION")),
        );
        let started = match (&self.config.command, &self.config.url) {
            (Some(program), None) => {
                tokio::time::timeout(STARTUP_WAIT, client.serve(self.child(program)?)).await
            }
            (None, Some(url)) => {
                let transport = StreamableHttpClientTransport::from_config(self.http(url)?);
                tokio::time::timeout(STARTUP_WAIT, client.serve(transport)).await
            }
            _ => anyhow::bail!("give exactly one of `command` and `url`"),
        };
        let running = started
            .map_err(|_| {
                anyhow::anyhow!("it did not initialise within {} s", STARTUP_WAIT.as_secs())
            })?
            .map_err(|e| anyhow::anyhow!("initialisation failed: {e}"))?;
        let tools = tokio::time::timeout(STARTUP_WAIT, running.peer().list_all_tools())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "it did not list its tools within {} s",
                    STARTUP_WAIT.as_secs()
                )
            })?
            .map_err(|e| anyhow::anyhow!("listing its tools failed: {e}"))?;
        let count = tools.len();
        *lock(&self.state) = State::Up(Connected {
            peer: running.peer().clone(),
            tools,
        });
        tracing::info!(mcp_server = %self.name, tools = count, "MCP server connected");
        Ok(running)
    }

    /// How to reach `url` over Streamable HTTP, with the bearer token.
    fn http(&self, url: &str) -> anyhow::Result<StreamableHttpClientTransportConfig> {
        // rmcp's HTTP client uses the process's rustls provider: ring, as
        // everywhere else here (a no-op when one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
        if let Some(env) = &self.config.bearer_token_env {
            let token = std::env::var(env).map_err(|_| {
                anyhow::anyhow!("the environment variable {env} (bearer_token_env) is not set")
            })?;
            config = config.auth_header(token);
        }
        Ok(config)
    }

    /// The child process speaking MCP on stdio, with only `PATH`, `HOME`
    /// and its own `env`.
    fn child(&self, program: &str) -> anyhow::Result<TokioChildProcess> {
        let command = tokio::process::Command::new(program).configure(|c| {
            c.args(&self.config.args)
                .env_clear()
                .envs(
                    ["PATH", "HOME"]
                        .into_iter()
                        .filter_map(|k| std::env::var_os(k).map(|v| (k.to_string(), v))),
                )
                .envs(&self.config.env)
                .kill_on_drop(true);
        });
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start `{program}`: {e}"))?;
        Ok(transport)
    }

    /// Keeps the server running for as long as the process lives.
    async fn supervise(self: Arc<Self>) {
        let mut backoff = FIRST_BACKOFF;
        let mut restarts = 0u64;
        loop {
            match self.connect().await {
                Ok(running) => {
                    self.first_attempt.notify_waiters();
                    backoff = FIRST_BACKOFF;
                    let why = match running.waiting().await {
                        Ok(reason) => format!("it stopped ({reason:?})"),
                        Err(e) => format!("its connection task failed: {e}"),
                    };
                    self.set_down(why, restarts);
                }
                Err(e) => {
                    self.set_down(format!("{e:#}"), restarts);
                    self.first_attempt.notify_waiters();
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            restarts += 1;
        }
    }

    fn as_tool(self: &Arc<Self>, found: &rmcp::model::Tool) -> McpTool {
        McpTool {
            server: self.clone(),
            full_name: format!("{}/{}", self.name, found.name),
            tool: found.name.to_string(),
            description: found.description.as_deref().unwrap_or("").to_string(),
            schema: Value::Object((*found.input_schema).clone()),
        }
    }

    fn tool(self: &Arc<Self>, tool: &str) -> Option<McpTool> {
        self.connected(|c| {
            c.tools
                .iter()
                .find(|t| t.name == tool)
                .map(|t| self.as_tool(t))
        })
        .flatten()
    }

    fn tools(self: &Arc<Self>) -> Vec<McpTool> {
        self.connected(|c| c.tools.iter().map(|t| self.as_tool(t)).collect())
            .unwrap_or_default()
    }

    async fn call(&self, tool: &str, arguments: Value) -> Result<Value, ToolError> {
        let peer = self.connected(|c| c.peer.clone()).ok_or_else(|| {
            ToolError::Failed(format!(
                "the MCP server `{}` is down; it is being restarted (see /api/v1/health)",
                self.name
            ))
        })?;
        let arguments: JsonObject = match arguments {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        };
        let request = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let timeout = Duration::from_secs(self.config.timeout_secs.max(1));
        let result = tokio::time::timeout(timeout, peer.call_tool(request))
            .await
            .map_err(|_| {
                ToolError::Failed(format!(
                    "`{}/{tool}` did not answer within {} s (mcp_servers.{}.timeout_secs); the call was cancelled",
                    self.name,
                    timeout.as_secs(),
                    self.name
                ))
            })?
            .map_err(|e| {
                let e = e.to_string();
                ToolError::Failed(format!(
                    "`{}/{tool}` failed: {}",
                    self.name,
                    crate::redact::text(&e)
                ))
            })?;
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        let text = text.join("\n");
        let size = text.len()
            + result
                .structured_content
                .as_ref()
                .map_or(0, |v| v.to_string().len());
        if size > self.config.max_result_bytes {
            return Err(ToolError::Failed(format!(
                "`{}/{tool}` answered {size} bytes, more than mcp_servers.{}.max_result_bytes ({}); ask for less",
                self.name, self.name, self.config.max_result_bytes
            )));
        }
        if result.is_error == Some(true) {
            return Err(ToolError::Failed(format!("`{}/{tool}`: {text}", self.name)));
        }
        Ok(match result.structured_content {
            Some(value) => value,
            // Most servers answer JSON as text; hand it on as JSON.
            None => serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })),
        })
    }
}

/// A tool of an MCP server, as the registry hands it out.
pub struct McpTool {
    server: Arc<McpServer>,
    full_name: String,
    tool: String,
    description: String,
    schema: Value,
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.full_name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn schema(&self) -> Value {
        self.schema.clone()
    }

    async fn invoke(&self, args: Value, _caller: &Arc<AgentContext>) -> Result<Value, ToolError> {
        self.server.call(&self.tool, args).await
    }
}

/// Every configured MCP server.
#[derive(Default)]
pub struct McpServers {
    servers: BTreeMap<String, Arc<McpServer>>,
}

impl McpServers {
    /// Starts each server's supervisor, then waits (at most
    /// [`STARTUP_WAIT`]) for each first attempt, so agents that list
    /// their tools find them at start.
    pub async fn start(configs: &BTreeMap<String, McpServerConfig>) -> Self {
        let mut servers = BTreeMap::new();
        for (name, config) in configs {
            let server = Arc::new(McpServer {
                name: name.clone(),
                config: config.clone(),
                state: Mutex::new(State::Starting),
                first_attempt: tokio::sync::Notify::new(),
            });
            let watched = server.clone();
            let waiting = watched.first_attempt.notified();
            tokio::pin!(waiting);
            waiting.as_mut().enable();
            tokio::spawn(server.clone().supervise());
            servers.insert(name.clone(), server);
            if tokio::time::timeout(STARTUP_WAIT, waiting).await.is_err() {
                tracing::warn!(mcp_server = %name, "MCP server not ready at start; agents listing its tools wait for it");
            }
        }
        McpServers { servers }
    }

    /// Splits `SERVER/TOOL` for a configured server.
    fn split<'a>(&self, name: &'a str) -> Option<(&Arc<McpServer>, &'a str)> {
        let (server, tool) = name.split_once('/')?;
        Some((self.servers.get(server)?, tool))
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        let (server, tool) = self.split(name)?;
        server.tool(tool).map(|t| Arc::new(t) as Arc<dyn Tool>)
    }

    /// Whether `name` may be a tool of a configured server that is not
    /// connected now (so a definition listing it is not refused).
    pub fn may_exist(&self, name: &str) -> bool {
        self.split(name)
            .is_some_and(|(server, _)| server.connected(|_| ()).is_none())
    }

    /// Servers that are configured and not connected now.
    pub fn disconnected(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|(_, s)| s.connected(|_| ()).is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<dyn Tool>> {
        self.servers
            .values()
            .flat_map(|s| s.tools())
            .map(|t| Arc::new(t) as Arc<dyn Tool>)
            .collect()
    }

    pub fn health(&self) -> BTreeMap<String, ServerHealth> {
        self.servers
            .iter()
            .map(|(name, s)| (name.clone(), s.health()))
            .collect()
    }
}
