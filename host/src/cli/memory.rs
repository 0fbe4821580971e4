//! `caxton memory …`: the operator's view of embedded memory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::client::Client;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// One JSON array.
    Json,
    /// One record per line.
    Jsonl,
}

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Database, model and counts at a glance.
    Status,
    /// Counts, sizes and latency percentiles.
    Stats {
        #[arg(long)]
        detailed: bool,
        #[arg(long)]
        json: bool,
    },
    /// State of the embedding model.
    ModelStatus,
    /// Hybrid search (semantic + keyword).
    Search {
        query: String,
        /// global, workspace or agent:NAME
        #[arg(long, default_value = "global")]
        scope: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Write the whole graph to a file.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[arg(long)]
        output: PathBuf,
    },
    /// Load a file written by `export` (json or jsonl).
    Import { file: PathBuf },
}

fn human_bytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1.0 {
        format!("{mb:.1}MB")
    } else {
        format!("{:.1}KB", bytes as f64 / 1024.0)
    }
}

pub async fn run(client: &Client, command: MemoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        MemoryCommand::Status => {
            let stats = client.get("/api/v1/memory/stats").await?;
            let health = &stats["health"];
            let counts = &stats["counts"];
            println!(
                "Database: {} ({})",
                if health["sqlite_status"] == "ok" {
                    "healthy"
                } else {
                    "error"
                },
                human_bytes(stats["database_bytes"].as_u64().unwrap_or(0))
            );
            match health["embedding_model"].as_str() {
                Some("loaded") => println!("Embedding model: All-MiniLM-L6-v2 loaded"),
                _ => println!(
                    "Embedding model: not loaded ({}); search is keyword-only",
                    health["reason"].as_str().unwrap_or("unknown reason")
                ),
            }
            println!("Entities: {} stored", counts["entities"]);
            println!("Relations: {} connections", counts["relations"]);
            println!("Status: {}", health["status"].as_str().unwrap_or("unknown"));
        }
        MemoryCommand::Stats { detailed, json } => {
            let stats = client.get("/api/v1/memory/stats").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
                return Ok(ExitCode::SUCCESS);
            }
            let counts = &stats["counts"];
            println!("Entities:       {}", counts["entities"]);
            println!("Observations:   {}", counts["observations"]);
            println!("Relations:      {}", counts["relations"]);
            println!(
                "Embeddings:     {} ({} indexed)",
                counts["embeddings"], stats["indexed_vectors"]
            );
            println!(
                "Storage usage:  {}",
                human_bytes(stats["database_bytes"].as_u64().unwrap_or(0))
            );
            for (kind, label) in [
                ("semantic_search", "Semantic search"),
                ("graph_traversal", "Graph traversal"),
            ] {
                let l = &stats["latency"][kind];
                if l.is_null() {
                    println!("{label} latency: no queries yet");
                } else {
                    println!(
                        "{label} latency P50: {:.2}ms P99: {:.2}ms ({} samples)",
                        l["p50_ms"].as_f64().unwrap_or(0.0),
                        l["p99_ms"].as_f64().unwrap_or(0.0),
                        l["samples"]
                    );
                }
            }
            if detailed {
                println!("Documents:      {}", counts["documents"]);
                println!("Health:         {}", stats["health"]);
            }
        }
        MemoryCommand::ModelStatus => {
            let health = client.get("/api/v1/health/memory").await?;
            println!("MODEL: All-MiniLM-L6-v2");
            println!(
                "STATE: {}",
                health["embedding_model"].as_str().unwrap_or("unknown")
            );
            if let Some(reason) = health["reason"].as_str() {
                println!("REASON: {reason}");
            }
        }
        MemoryCommand::Search {
            query,
            scope,
            limit,
        } => {
            let body = client
                .post_json(
                    "/api/v1/memory/search",
                    &json!({"query": query, "scope": scope, "limit": limit}),
                )
                .await?;
            for hit in body["results"].as_array().into_iter().flatten() {
                println!(
                    "{:.4}  {:<24} {}",
                    hit["score"].as_f64().unwrap_or(0.0),
                    hit["entity"]["name"].as_str().unwrap_or("?"),
                    hit["matched"].as_str().unwrap_or("")
                );
            }
        }
        MemoryCommand::Export { format, output } => {
            let lines = client.get_text("/api/v1/memory/export").await?;
            let text = match format {
                ExportFormat::Jsonl => lines,
                ExportFormat::Json => {
                    let records: Vec<Value> = lines
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(serde_json::from_str)
                        .collect::<Result<_, _>>()
                        .context("the server's export is not JSON lines")?;
                    serde_json::to_string_pretty(&records)?
                }
            };
            let count = text.lines().count();
            std::fs::write(&output, text)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!("Exported memory to {} ({count} lines)", output.display());
        }
        MemoryCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let lines = if text.trim_start().starts_with('[') {
                let records: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
                    anyhow!("{} is not a JSON array of records: {e}", file.display())
                })?;
                records
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                text
            };
            let body = client.post_text("/api/v1/memory/import", lines).await?;
            println!(
                "Imported {} entities and {} relations",
                body["entities"], body["relations"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
