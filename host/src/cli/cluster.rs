//! `caxton cluster status`: the cluster as the server's node sees it.

use std::process::ExitCode;

use clap::Subcommand;

use super::client::Client;
use super::output::{self, Table, cell};

/// "3: echo, memo, x" (the count, then the names the record lists).
fn agents(node: &serde_json::Value) -> String {
    let names: Vec<&str> = node["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    let count = node["agent_count"].as_u64().unwrap_or(names.len() as u64);
    if names.is_empty() {
        return count.to_string();
    }
    let more = if (names.len() as u64) < count {
        ", …"
    } else {
        ""
    };
    format!("{count}: {}{more}", names.join(", "))
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// This node, its NATS connection, the live nodes, their agents and
    /// how far each applied the memory stream.
    Status,
    /// Moves a node's agents to the other nodes before maintenance; no
    /// agent is placed on it until `cluster resume`.
    Drain {
        /// The node (`caxton cluster status` lists them).
        node: String,
        /// Wait until the node runs no agent placed by the cluster (at
        /// most this many seconds).
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Ends a drain: agents may be placed on the node again.
    Resume {
        /// The node being drained.
        node: String,
    },
}

pub async fn run(client: &Client, command: ClusterCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Status => {
            let status = client.get("/api/v1/cluster").await?;
            if output::emit_json(&status) {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "cluster {}, node {}, NATS {}",
                cell(&status["cluster"]),
                cell(&status["node"]),
                cell(&status["nats"])
            );
            if let Some(problem) = status["problem"].as_str() {
                println!("warning: {problem}");
            }
            let now = crate::clock::now_unix_ms();
            let nodes: Vec<&serde_json::Value> =
                status["nodes"].as_array().into_iter().flatten().collect();
            let newest = nodes
                .iter()
                .filter_map(|n| n["memory_applied"].as_u64())
                .max()
                .unwrap_or(0);
            let draining: Vec<&str> = status["draining"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .collect();
            let mut table = Table::new(&[
                "NODE",
                "API",
                "VERSION",
                "LAST HEARTBEAT",
                "MEMORY (BEHIND)",
                "AGENTS",
            ]);
            for node in nodes {
                let beat = node["heartbeat_unix_ms"].as_u64().unwrap_or(0);
                let applied = node["memory_applied"].as_u64().unwrap_or(0);
                let name = cell(&node["node"]);
                let shown = if draining.contains(&name.as_str()) {
                    format!("{name} (draining)")
                } else {
                    name
                };
                table.row(vec![
                    shown,
                    cell(&node["api_url"]),
                    cell(&node["version"]),
                    format!("{:.1} s ago", now.saturating_sub(beat) as f64 / 1000.0),
                    format!("{applied} ({})", newest.saturating_sub(applied)),
                    agents(node),
                ]);
            }
            table.print();
            Ok(ExitCode::SUCCESS)
        }
        ClusterCommand::Drain { node, wait } => {
            let answer = client
                .post_json(
                    "/api/v1/cluster/drain",
                    &serde_json::json!({ "node": node }),
                )
                .await?;
            if output::emit_json(&answer) && wait.is_none() {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "draining {node}: its agents move to the other nodes; `caxton cluster resume {node}` ends it"
            );
            let Some(seconds) = wait else {
                return Ok(ExitCode::SUCCESS);
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
            loop {
                let status = client.get("/api/v1/cluster").await?;
                let left = status["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|n| n["node"] == node.as_str())
                    .and_then(|n| n["agent_count"].as_u64())
                    .unwrap_or(0);
                if left == 0 {
                    println!("{node} runs no agent now");
                    return Ok(ExitCode::SUCCESS);
                }
                if std::time::Instant::now() > deadline {
                    eprintln!(
                        "{node} still runs {left} agent(s) after {seconds} s (no other node may be open to take them, or they are not the cluster's: deployed while NATS was away)"
                    );
                    return Ok(ExitCode::FAILURE);
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
        ClusterCommand::Resume { node } => {
            let answer = client
                .post_json(
                    "/api/v1/cluster/resume",
                    &serde_json::json!({ "node": node }),
                )
                .await?;
            if !output::emit_json(&answer) {
                println!("{node} takes agents again");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
