//! `caxton debug dump --embedded --output F`: everything someone helping
//! with a problem asks for, in one `.tar.gz` — version, uptime and the
//! configuration with secrets redacted, health, metrics, every agent's
//! state and recent log lines, memory and storage statistics, recent
//! traces, and the end of the server's log file. A part the server cannot
//! give is listed in `errors.txt` instead of failing the dump: dumps are
//! taken from servers in trouble.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::client::Client;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Write the server's state into one archive.
    Dump {
        /// Accepted from the runbook (memory is always embedded).
        #[arg(long)]
        embedded: bool,
        /// Where to write it (default debug-YYYYMMDD-HHMMSS.tar.gz).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub async fn run(client: &Client, command: DebugCommand) -> anyhow::Result<ExitCode> {
    match command {
        DebugCommand::Dump {
            embedded: _,
            output,
        } => {
            let output = output.unwrap_or_else(|| {
                PathBuf::from(format!("debug-{}.tar.gz", crate::clock::compact_stamp()))
            });
            let summary = dump(client, &output).await?;
            if !super::output::emit_json(&serde_json::json!({ "file": output, "summary": summary }))
            {
                println!("{summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Collects the dump into `output`; answers a one-line summary.
pub async fn dump(client: &Client, output: &Path) -> anyhow::Result<String> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let json = |value: &Value| serde_json::to_vec_pretty(value).unwrap_or_default();
    let parts = [
        ("state.json", "/api/v1/debug/state"),
        ("health.json", "/api/v1/health"),
        ("agents.json", "/api/v1/agents"),
        ("config-agents.json", "/api/v1/config-agents"),
        ("tools.json", "/api/v1/tools"),
        ("memory-stats.json", "/api/v1/memory/stats"),
        ("storage.json", "/api/v1/storage/analyze"),
        ("traces.json", "/api/v1/traces?limit=100"),
    ];
    let mut state = Value::Null;
    let mut agents = Value::Null;
    for (name, path) in parts {
        match client.get(path).await {
            Ok(value) => {
                if name == "state.json" {
                    state = value.clone();
                }
                if name == "agents.json" {
                    agents = value.clone();
                }
                files.push((name.to_string(), json(&value)));
            }
            Err(e) => errors.push(format!("{path}: {e:#}")),
        }
    }
    if state == Value::Null && errors.iter().all(|e| e.contains("cannot reach")) {
        anyhow::bail!("no server answered at {}; nothing to dump", client.base());
    }
    match client.get_text("/metrics").await {
        Ok(text) => files.push(("metrics.txt".into(), text.into_bytes())),
        Err(e) => errors.push(format!("/metrics: {e:#}")),
    }
    let names: Vec<String> = agents["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["name"].as_str().map(str::to_string))
        .collect();
    for name in &names {
        let path = format!("/api/v1/agents/{name}/logs");
        match client.get(&path).await {
            Ok(value) => files.push((format!("logs/{}.json", safe_name(name)), json(&value))),
            Err(e) => errors.push(format!("{path}: {e:#}")),
        }
    }
    if let Some(tail) = state["log_tail"].as_str() {
        files.push(("server.log".into(), tail.as_bytes().to_vec()));
    }
    if !errors.is_empty() {
        files.push(("errors.txt".into(), errors.join("\n").into_bytes()));
    }
    let manifest = serde_json::json!({
        "format": "caxton-debug-dump",
        "cli_version": env!("CARGO_PKG_VERSION"),
        "server": client.base(),
        "created_at": crate::clock::now_rfc3339(),
        "files": files.iter().map(|(n, b)| serde_json::json!({"path": n, "bytes": b.len()})).collect::<Vec<_>>(),
    });
    files.insert(0, ("manifest.json".into(), json(&manifest)));
    let count = files.len();
    let out = output.to_path_buf();
    tokio::task::spawn_blocking(move || write_archive(&out, &files)).await??;
    Ok(format!(
        "Debug dump written to {} ({count} files, {} agents{})",
        output.display(),
        names.len(),
        if errors.is_empty() {
            String::new()
        } else {
            format!("; {} parts missing, see errors.txt", errors.len())
        }
    ))
}

/// An agent name as a file name: nothing that climbs out of `logs/`.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `files` as a gzip'd tar, owner-readable only (it holds logs and
/// configuration), through a partial file renamed when complete.
fn write_archive(output: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let partial = output.with_extension("partial");
    let file = crate::storage::open_private(&partial, false)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(now);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, bytes.as_slice())
            .with_context(|| format!("writing {path} into the dump"))?;
    }
    let mut gz = tar.into_inner().context("finishing the archive")?;
    gz.flush()?;
    gz.finish()?.sync_all()?;
    std::fs::rename(&partial, output)
        .with_context(|| format!("cannot move the dump to {}", output.display()))?;
    Ok(())
}
