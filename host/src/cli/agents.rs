//! `caxton agents …`: the operator's view of agents.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use base64::Engine as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{self, Table, cell};

use super::client::Client;
use super::config_agents;
use crate::server::percent_encode;

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// List agents.
    List {
        /// Only agents of this type.
        #[arg(long = "type", value_parser = ["wasm", "config", "a2a"])]
        kind: Option<String>,
        /// Print only how many there are.
        #[arg(long)]
        count: bool,
    },
    /// Show one agent: status, capabilities, limits, counters.
    Show {
        /// The agent's name or id.
        name: String,
    },
    /// Deploy a WASM component, or a config agent definition (.md/.toml,
    /// validated, stored in the server's agents directory, hot-reloaded).
    Deploy {
        /// The .wasm component (built for wasm32-wasip2) or agent definition.
        file: PathBuf,
        /// Accepted for the runbook's scripts: config agents always hot-reload.
        #[arg(long)]
        hot_reload: bool,
        /// Agent name (default: the file name without .wasm).
        #[arg(long)]
        name: Option<String>,
        /// Linear memory limit in bytes (default: runtime.default_limits).
        #[arg(long)]
        max_memory_bytes: Option<u64>,
        /// Fuel per message (default: runtime.default_limits).
        #[arg(long)]
        max_fuel: Option<u64>,
        /// Wall-clock time per message in milliseconds (default: runtime.default_limits).
        #[arg(long)]
        max_execution_time_ms: Option<u64>,
        /// JSON object passed to the agent's init.
        #[arg(long)]
        config: Option<String>,
        /// Let the agent use the server's LLM (and spend its provider key).
        #[arg(long)]
        llm: bool,
        /// A tool the agent may call (repeat, or separate with commas).
        #[arg(long = "tool", value_delimiter = ',')]
        tools: Vec<String>,
        /// A shared memory scope to grant: `workspace` or `global`.
        #[arg(long = "memory-grant", value_delimiter = ',')]
        memory_grants: Vec<String>,
    },
    /// Remove an agent and its state.
    Remove {
        /// The agent's name or id.
        name: String,
    },
    /// Check that an agent is alive (exit code 1 if not).
    Ping {
        /// The agent's name or id.
        name: String,
    },
    /// Print an agent's capabilities, one per line.
    Capabilities {
        /// The agent's name or id.
        name: String,
    },
    /// Send a request and print the reply (exit code 1 on a `failure`
    /// reply).
    Message {
        /// The agent's name or id.
        name: String,
        /// The message content.
        text: String,
        /// Seconds to wait for the reply (the server waits 60 by default,
        /// at most 600).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
        timeout: Option<u64>,
    },
    /// Print an agent's recent log lines.
    Logs {
        /// The agent's name or id.
        name: String,
        /// How many of the latest lines; the server keeps 1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(0..=1000))]
        tail: u16,
    },
    /// Refuse messages until resumed: one agent, or every failing one.
    Suspend {
        /// The agent's name or id.
        #[arg(
            required_unless_present = "failing_only",
            conflicts_with = "failing_only"
        )]
        name: Option<String>,
        /// Every agent whose status is `failed`.
        #[arg(long)]
        failing_only: bool,
    },
    /// Accept messages again: one agent, or every suspended one.
    Resume {
        /// The agent's name or id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every suspended agent.
        #[arg(long)]
        all: bool,
    },
    /// Check agent definition files; every problem with line, field and fix.
    Validate {
        /// Definition files (`.md` or `.toml`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check every definition in the agents directory.
    ValidateAll {
        /// The agents directory.
        #[arg(long, default_value = "agents")]
        dir: PathBuf,
    },
    /// Reload a config agent from its file (the previous version keeps
    /// serving if the file is invalid).
    Reload {
        /// The config agent's name or id.
        name: Option<String>,
        /// Reload every config agent.
        #[arg(long)]
        all_config: bool,
        /// With --all-config: reload nothing unless every file is valid.
        /// With --gradual: each file is validated before its agent swaps
        /// (always so).
        #[arg(long)]
        validate_first: bool,
        /// Every config agent, one at a time: each must answer a ping
        /// before the next reloads; stops at the first failure.
        #[arg(long, conflicts_with_all = ["name", "all_config"])]
        gradual: bool,
    },
    /// Failing or suspended agents and rejected definitions, with their
    /// last error (exit code 1 when there is any).
    Diagnose {
        /// Whole errors and every problem of rejected files.
        #[arg(long)]
        show_errors: bool,
    },
    /// Agents' log lines matching a pattern within a window.
    Analyze {
        /// A regular expression (case-insensitive), e.g. "error|timeout".
        #[arg(long, default_value = "error|fail|timeout")]
        pattern: String,
        /// The window: `1h`, `30m`, `90s`.
        #[arg(long, default_value = "1h", value_parser = super::parse_duration_secs_arg)]
        last: u64,
    },
    /// State of a config agent's definition: version, last reload, problems.
    ReloadStatus {
        /// The config agent's name or id.
        name: String,
    },
    /// One agent's state, or a summary of all.
    Status {
        /// The agent's name or id (all agents when left out).
        name: Option<String>,
        /// One line of counts instead of every agent.
        #[arg(long)]
        summary: bool,
    },
    /// Deploy every agent definition in DIR to the running server; with
    /// `--auto-reload`, keep watching DIR and redeploy each file you save.
    Watch {
        /// The directory of definitions to deploy (and watch).
        dir: PathBuf,
        /// Keep watching and redeploy each saved file.
        #[arg(long)]
        auto_reload: bool,
    },
    /// Send a test input and print the answer and its time.
    Test {
        /// The agent's name or id.
        name: String,
        /// The message to send.
        #[arg(long)]
        input: String,
    },
    /// An agent's definition and counters; `--show-tools` lists its tools.
    Debug {
        /// The agent's name or id.
        name: String,
        /// List the tools it may call, with their schemas.
        #[arg(long)]
        show_tools: bool,
    },
    /// Which config agents use which tools.
    AuditTools {
        /// Only tools no agent lists.
        #[arg(long)]
        show_unused: bool,
    },
}

/// `/api/v1/agents/NAME`, the name percent-encoded.
pub(super) fn agent_path(name: &str) -> String {
    format!("/api/v1/agents/{}", percent_encode(name))
}

pub async fn run(client: &Client, command: AgentsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AgentsCommand::List { kind, count } => {
            let path = match &kind {
                Some(k) => format!("/api/v1/agents?type={k}"),
                None => "/api/v1/agents".to_string(),
            };
            let body = client.get(&path).await?;
            let agents = body["agents"].as_array().cloned().unwrap_or_default();
            if count {
                if !output::emit_json(&json!({ "count": agents.len() })) {
                    println!("{}", agents.len());
                }
            } else if !output::emit_json(&body) {
                print_table(&agents);
            }
        }
        AgentsCommand::Show { name } => {
            let agent = client.get(&agent_path(&name)).await?;
            if !output::emit_json(&agent) {
                print_agent(&agent);
            }
        }
        AgentsCommand::Deploy { file, .. } if crate::config_agents::is_definition_file(&file) => {
            return config_agents::deploy_definition(client, &file).await;
        }
        AgentsCommand::Deploy {
            file,
            hot_reload: _,
            name,
            max_memory_bytes,
            max_fuel,
            max_execution_time_ms,
            config,
            llm,
            tools,
            memory_grants,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(|s| s.replace('_', "-"))
                    .ok_or_else(|| {
                        anyhow!("cannot derive a name from {}; pass --name", file.display())
                    })?,
            };
            let config: Option<Value> = match config {
                Some(text) => {
                    Some(serde_json::from_str(&text).context("--config is not valid JSON")?)
                }
                None => None,
            };
            let mut limits = serde_json::Map::new();
            for (key, value) in [
                ("max_memory_bytes", max_memory_bytes),
                ("max_fuel", max_fuel),
                ("max_execution_time_ms", max_execution_time_ms),
            ] {
                if let Some(v) = value {
                    limits.insert(key.to_string(), json!(v));
                }
            }
            let mut body = json!({
                "name": name,
                "wasm_module": base64::engine::general_purpose::STANDARD.encode(&bytes),
                "resource_limits": limits,
                "llm": llm,
                "tools": tools,
                "memory_grants": memory_grants,
            });
            if let Some(config) = config {
                body["config"] = config;
            }
            let agent = output::with_progress(
                &format!("Deploying {name} ({})", megabytes(bytes.len())),
                client.post_json("/api/v1/agents", &body),
            )
            .await?;
            if output::emit_json(&agent) {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Deployed agent {} (id {}), capabilities: {}",
                agent["name"].as_str().unwrap_or("?"),
                agent["id"].as_str().unwrap_or("?"),
                join(&agent["capabilities"])
            );
            if !tools.is_empty() {
                println!("  tools: {}", join(&agent["tools"]));
            }
        }
        AgentsCommand::Remove { name } => {
            let removed = client.delete(&agent_path(&name)).await?;
            if !output::emit_json(&removed) {
                println!("Removed agent {name}");
            }
        }
        AgentsCommand::Ping { name } => {
            let answer = client
                .post_json(&format!("{}/ping", agent_path(&name)), &json!({}))
                .await;
            match answer {
                Ok(body) => {
                    if !output::emit_json(&body) {
                        println!(
                            "{name}: alive ({:.2} ms)",
                            body["latency_ms"].as_f64().unwrap_or(0.0)
                        );
                    }
                }
                Err(e) => {
                    eprintln!("{name}: not responding: {e:#}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        AgentsCommand::Capabilities { name } => {
            let agent = client.get(&agent_path(&name)).await?;
            if output::emit_json(&json!({ "capabilities": agent["capabilities"] })) {
                return Ok(ExitCode::SUCCESS);
            }
            for capability in agent["capabilities"].as_array().into_iter().flatten() {
                println!("{}", capability.as_str().unwrap_or_default());
            }
        }
        AgentsCommand::Message {
            name,
            text,
            timeout,
        } => {
            let mut request = json!({ "message": text });
            if let Some(seconds) = timeout {
                request["timeout_ms"] = json!(seconds * 1000);
            }
            let waiting = Waiting::show(&name, timeout.unwrap_or(60));
            let body = client
                .post_json(&format!("{}/message", agent_path(&name)), &request)
                .await;
            drop(waiting);
            let body = body?;
            let failed = body["reply"]["performative"] == "failure";
            let code = if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            if output::emit_json(&body) {
                return Ok(code);
            }
            if body["reply"].is_null() {
                println!("(no reply)");
            } else {
                println!(
                    "[{}] {}",
                    body["reply"]["performative"].as_str().unwrap_or("?"),
                    body["reply"]["content"].as_str().unwrap_or_default()
                );
            }
            return Ok(code);
        }
        AgentsCommand::Logs { name, tail } => {
            let body = client
                .get(&format!("{}/logs?tail={tail}", agent_path(&name)))
                .await?;
            if output::emit_json(&body) {
                return Ok(ExitCode::SUCCESS);
            }
            for line in body["lines"].as_array().into_iter().flatten() {
                println!(
                    "{} {:6} {}",
                    line["at"].as_str().unwrap_or_default(),
                    line["level"].as_str().unwrap_or_default(),
                    line["message"].as_str().unwrap_or_default()
                );
            }
        }
        AgentsCommand::Suspend { name, .. } => {
            set_suspended(client, name, "failed", "suspend", "Suspended", "is failing").await?;
        }
        AgentsCommand::Validate { files } => {
            return config_agents::validate_files(client, &files).await;
        }
        AgentsCommand::ValidateAll { dir } => {
            let files = config_agents::definition_files(&dir)?;
            return config_agents::validate_files(client, &files).await;
        }
        AgentsCommand::Reload { gradual: true, .. } => {
            return super::diagnose::reload_gradually(client).await;
        }
        AgentsCommand::Reload {
            name,
            all_config,
            validate_first,
            gradual: false,
        } => return config_agents::reload(client, name, all_config, validate_first).await,
        AgentsCommand::Diagnose { show_errors } => {
            return super::diagnose::diagnose(client, show_errors).await;
        }
        AgentsCommand::Analyze { pattern, last } => {
            return super::diagnose::analyze(client, &pattern, last).await;
        }
        AgentsCommand::ReloadStatus { name } => {
            return config_agents::reload_status(client, &name).await;
        }
        AgentsCommand::Status { name, summary } => {
            return config_agents::status(client, name, summary).await;
        }
        AgentsCommand::Test { name, input } => {
            return config_agents::test(client, &name, &input).await;
        }
        AgentsCommand::Watch { dir, auto_reload } => {
            return config_agents::watch(client, &dir, auto_reload).await;
        }
        AgentsCommand::Debug { name, show_tools } => {
            return config_agents::debug(client, &name, show_tools).await;
        }
        AgentsCommand::AuditTools { show_unused } => {
            return config_agents::audit_tools(client, show_unused).await;
        }
        AgentsCommand::Resume { name, .. } => {
            set_suspended(
                client,
                name,
                "suspended",
                "resume",
                "Resumed",
                "is suspended",
            )
            .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn join(list: &Value) -> String {
    let items: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(",")
    }
}

fn print_table(agents: &[Value]) {
    let mut table = Table::new(&[
        "NAME",
        "TYPE",
        "STATUS",
        "HANDLED",
        "FAILED",
        "CAPABILITIES",
    ])
    .right(&[3, 4]);
    for a in agents {
        table.row(vec![
            cell(&a["name"]),
            cell(&a["type"]),
            cell(&a["status"]),
            cell(&a["stats"]["messages_handled"]),
            cell(&a["stats"]["messages_failed"]),
            join(&a["capabilities"]),
        ]);
    }
    table.print();
}

fn print_agent(a: &Value) {
    let limits = &a["resource_limits"];
    let stats = &a["stats"];
    println!("Name:          {}", a["name"].as_str().unwrap_or("?"));
    println!("Id:            {}", a["id"].as_str().unwrap_or("?"));
    println!("Type:          {}", a["type"].as_str().unwrap_or("?"));
    println!("Status:        {}", a["status"].as_str().unwrap_or("?"));
    println!("Description:   {}", a["description"].as_str().unwrap_or(""));
    println!("Capabilities:  {}", join(&a["capabilities"]));
    println!(
        "Limits:        memory {} bytes, fuel {}, time {} ms",
        limits["max_memory_bytes"], limits["max_fuel"], limits["max_execution_time_ms"]
    );
    println!("Deployed:      {}", a["created_at"].as_str().unwrap_or("?"));
    println!(
        "Messages:      {} handled, {} failed ({} traps, {} out of fuel, {} timeouts, {} memory limit)",
        stats["messages_handled"],
        stats["messages_failed"],
        stats["traps"],
        stats["fuel_exhausted"],
        stats["timeouts"],
        stats["memory_limit_hits"]
    );
    if let Some(err) = stats["last_error"].as_str() {
        println!(
            "Last error:    {err} ({})",
            stats["last_error_at"].as_str().unwrap_or("?")
        );
    }
}

/// Suspends or resumes (`action`) the agent `name`, or, without one, every
/// agent whose status is `status`.
async fn set_suspended(
    client: &Client,
    name: Option<String>,
    status: &str,
    action: &str,
    done: &str,
    none_is: &str,
) -> anyhow::Result<()> {
    let names = match name {
        Some(name) => vec![name],
        None => with_status(client, status).await?,
    };
    for name in &names {
        client
            .post_json(&format!("{}/{action}", agent_path(name)), &json!({}))
            .await?;
        if !output::json() {
            println!("{done} agent {name}");
        }
    }
    if output::emit_json(&json!({ done.to_lowercase(): names })) {
        return Ok(());
    }
    if names.is_empty() {
        println!("No agent {none_is}; nothing to {action}");
    }
    Ok(())
}

/// Names of the agents whose status is `status` (`failed`, `suspended`).
async fn with_status(client: &Client, status: &str) -> anyhow::Result<Vec<String>> {
    let list = client.get("/api/v1/agents").await?;
    Ok(list["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["status"] == status)
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect())
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// "waiting for AGENT…" on stderr while a reply is awaited, when stderr is
/// a terminal; erased when dropped, so the reply (or the error) stands
/// alone and piped output never holds it.
struct Waiting {
    shown: bool,
}

impl Waiting {
    fn show(agent: &str, seconds: u64) -> Waiting {
        use std::io::{IsTerminal, Write};
        let mut stderr = std::io::stderr();
        let shown = stderr.is_terminal();
        if shown {
            let _ = write!(
                stderr,
                "waiting for `{agent}` (up to {seconds} s; --timeout to change)…"
            );
            let _ = stderr.flush();
        }
        Waiting { shown }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        use std::io::Write;
        if self.shown {
            // Back to the line's start, and clear it.
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
