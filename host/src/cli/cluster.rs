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
    /// This node, its NATS connection and the live nodes.
    Status,
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
            let mut table = Table::new(&["NODE", "API", "VERSION", "LAST HEARTBEAT", "AGENTS"]);
            for node in status["nodes"].as_array().into_iter().flatten() {
                let beat = node["heartbeat_unix_ms"].as_u64().unwrap_or(0);
                table.row(vec![
                    cell(&node["node"]),
                    cell(&node["api_url"]),
                    cell(&node["version"]),
                    format!("{:.1} s ago", now.saturating_sub(beat) as f64 / 1000.0),
                    agents(node),
                ]);
            }
            table.print();
            Ok(ExitCode::SUCCESS)
        }
    }
}
