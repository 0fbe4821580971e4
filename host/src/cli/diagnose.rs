//! The runbook's incident commands, over what the server already answers:
//! `agents diagnose` (who is failing and why), `agents analyze` (log lines
//! matching a pattern over a window), `agents reload --gradual` (one at a
//! time, stopping at the first that does not come back), `memory
//! emergency-diagnosis` (a verdict with the next step) and `memory
//! profile` (what memory did during a window).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, Table, cell};
use crate::memory::report::Diagnosis;

fn agents_of(list: &Value) -> Vec<&Value> {
    list["agents"].as_array().into_iter().flatten().collect()
}

/// `agents diagnose [--show-errors]`: every agent that is failing,
/// suspended, or whose definition file is rejected, with the last error.
/// Exit code 1 when any is found.
pub async fn diagnose(client: &Client, show_errors: bool) -> anyhow::Result<ExitCode> {
    let list = client.get("/api/v1/agents").await?;
    let files = client
        .get("/api/v1/config-agents")
        .await
        .unwrap_or(Value::Null);
    let mut found = 0;
    let mut table =
        Table::new(&["AGENT", "TYPE", "STATUS", "HANDLED", "FAILED", "LAST ERROR"]).right(&[3, 4]);
    let mut failing_agents = Vec::new();
    for agent in agents_of(&list) {
        let stats = &agent["stats"];
        let status = agent["status"].as_str().unwrap_or("?");
        let failing = status != "running" || stats["consecutive_failures"].as_u64() > Some(0);
        if failing {
            found += 1;
            failing_agents.push(agent.clone());
        }
        let error = stats["last_error"].as_str().unwrap_or("-");
        let error = if show_errors {
            match stats["last_error_at"].as_str() {
                Some(at) => format!(
                    "{error} (last error at {at}, {})",
                    stats["last_error_code"].as_str().unwrap_or("?")
                ),
                None => error.to_string(),
            }
        } else {
            error.chars().take(60).collect()
        };
        table.row(vec![
            cell(&agent["name"]),
            cell(&agent["type"]),
            status.to_string(),
            cell(&stats["messages_handled"]),
            cell(&stats["messages_failed"]),
            error,
        ]);
    }
    let rejected: Vec<Value> = files["files"]
        .as_array()
        .or(files.as_array())
        .into_iter()
        .flatten()
        .filter(|f| f["problems"].as_array().is_some_and(|p| !p.is_empty()))
        .cloned()
        .collect();
    let code = if found + rejected.len() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&json!({
        "failing_agents": failing_agents,
        "rejected_definitions": rejected,
    })) {
        return Ok(code);
    }
    table.print();
    for file in &rejected {
        let problems = file["problems"].as_array().map_or(0, Vec::len);
        found += 1;
        println!(
            "\n✗ {} ({problems} problem(s); the previous version, if any, keeps serving)",
            file["file"].as_str().unwrap_or("?")
        );
        if show_errors {
            super::config_agents::print_problems(
                file["problems"].as_array().map_or(&[][..], Vec::as_slice),
            );
        }
    }
    println!(
        "\n{}",
        if found == 0 {
            "No failing agents and no rejected definitions.".to_string()
        } else {
            format!(
                "{found} problem(s); `caxton agents suspend --failing-only` stops the failing agents"
            )
        }
    );
    Ok(code)
}

/// `agents analyze --pattern "error|timeout" --last 1h`: matching log
/// lines per agent within the window, with the most recent examples.
pub async fn analyze(client: &Client, pattern: &str, last_secs: u64) -> anyhow::Result<ExitCode> {
    let regex = regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| anyhow!("--pattern `{pattern}` is not a regular expression: {e}"))?;
    let since = crate::clock::rfc3339_from_millis(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64))
        .saturating_sub(last_secs.saturating_mul(1000)),
    );
    let list = client.get("/api/v1/agents").await?;
    let mut total = 0usize;
    let mut table = Table::new(&["AGENT", "MATCHES", "LATEST MATCH"]).right(&[1]);
    let mut report = Vec::new();
    for agent in agents_of(&list) {
        let name = agent["name"].as_str().unwrap_or("?");
        let logs = client
            .get(&format!("{}/logs", super::agents::agent_path(name)))
            .await?;
        let matches: Vec<&Value> = logs["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["at"].as_str().is_some_and(|at| at >= since.as_str()))
            .filter(|l| {
                regex.is_match(l["message"].as_str().unwrap_or(""))
                    || regex.is_match(l["level"].as_str().unwrap_or(""))
            })
            .collect();
        total += matches.len();
        if let Some(latest) = matches.last() {
            report.push(json!({ "agent": name, "matches": matches.len(), "latest": latest }));
            table.row(vec![
                name.to_string(),
                matches.len().to_string(),
                format!(
                    "{} {}",
                    latest["at"].as_str().unwrap_or(""),
                    latest["message"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(80)
                        .collect::<String>()
                ),
            ]);
        }
    }
    if output::emit_json(
        &json!({ "since": since, "pattern": pattern, "total": total, "agents": report }),
    ) {
        return Ok(ExitCode::SUCCESS);
    }
    table.print();
    println!("{total} matching line(s) since {since}");
    Ok(ExitCode::SUCCESS)
}

/// `agents reload --gradual`: every config agent in turn; each reload
/// validates its file before swapping (an invalid file keeps the previous
/// version), then the agent must answer a ping before the next one goes.
/// Stops at the first that fails.
pub async fn reload_gradually(client: &Client) -> anyhow::Result<ExitCode> {
    let list = client.get("/api/v1/agents?type=config").await?;
    let ids: Vec<String> = agents_of(&list)
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let (ok, answer) = client
            .post_json_raw(
                &format!("{}/reload", super::agents::agent_path(id)),
                &json!({}),
            )
            .await?;
        if !ok {
            println!(
                "✗ {id}: {} — stopped; {} not reloaded",
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or("reload failed"),
                ids.len() - i - 1
            );
            return Ok(ExitCode::FAILURE);
        }
        let (alive, ping) = client
            .post_json_raw(
                &format!("{}/ping", super::agents::agent_path(id)),
                &json!({}),
            )
            .await?;
        if !alive {
            println!(
                "✗ {id} reloaded but does not answer: {} — stopped; {} not reloaded",
                ping["error"]["message"].as_str().unwrap_or("?"),
                ids.len() - i - 1
            );
            return Ok(ExitCode::FAILURE);
        }
        println!("✓ {id} reloaded and answering ({}/{})", i + 1, ids.len());
    }
    println!("{} config agent(s) reloaded one at a time", ids.len());
    Ok(ExitCode::SUCCESS)
}

/// `memory emergency-diagnosis`: health, the database's own check,
/// capacity and memory use, then a verdict and the next command to run.
pub async fn memory_emergency(client: &Client) -> anyhow::Result<ExitCode> {
    let health = client.get("/api/v1/health/memory").await?;
    let verify = client.get("/api/v1/storage/verify?level=quick").await?;
    let capacity = client.get("/api/v1/memory/capacity").await?;
    let usage = client.get("/api/v1/memory/usage").await?;
    let storage_ok = verify["ok"] == true;
    let percent_used = usage["percent"].as_f64();
    let capacity_percent = capacity["percent"].as_f64().unwrap_or(0.0);
    let text = !output::json();
    if text {
        println!(
            "MEMORY HEALTH:   {}",
            health["status"].as_str().unwrap_or("?")
        );
        println!(
            "DATABASE:        {}",
            if storage_ok { "answers" } else { "FAILING" }
        );
        println!(
            "EMBEDDING MODEL: {}{}",
            health["embedding_model"].as_str().unwrap_or("?"),
            health["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        println!("CAPACITY:        {capacity_percent:.0}% of the recommended entity count");
        match percent_used {
            Some(p) => println!("PROCESS MEMORY:  {p:.0}% of the budget"),
            None => println!("PROCESS MEMORY:  not measurable on this platform"),
        }
    }
    let (verdict, next) = if !storage_ok {
        (
            "CRITICAL: the database fails its checks",
            "caxton storage verify --full, then caxton storage repair --auto (or caxton restore --latest-backup)",
        )
    } else if percent_used.is_some_and(|p| p >= 95.0) {
        (
            "CRITICAL: memory use at the budget",
            "caxton memory cache-clear --all; caxton memory cleanup --aggressive --dry-run",
        )
    } else if health["status"] != "healthy" {
        (
            "DEGRADED: search is keyword-only",
            "caxton memory model status; caxton memory model pull",
        )
    } else if capacity_percent >= 90.0 {
        (
            "WARNING: near the recommended entity count",
            "caxton memory cleanup --remove-orphaned --older-than 30d",
        )
    } else {
        (
            "OK: nothing urgent",
            "caxton memory diagnose --show-slow-queries for latency",
        )
    };
    if !output::emit_json(&json!({
        "memory_health": health,
        "database_ok": storage_ok,
        "capacity_percent": capacity_percent,
        "process_memory_percent": percent_used,
        "verdict": verdict,
        "next": next,
    })) {
        println!("\nVERDICT: {verdict}\nNEXT:    {next}");
    }
    Ok(if verdict.starts_with("OK") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `memory profile --duration 60s [--include-queries]`: the operations
/// memory served during the window, with their latencies, and the slow
/// queries that fell in it.
pub async fn memory_profile(
    client: &Client,
    duration: Duration,
    include_queries: bool,
) -> anyhow::Result<ExitCode> {
    let before: Diagnosis = client.get_as("/api/v1/memory/diagnose").await?;
    let started = crate::clock::now_rfc3339();
    eprintln!("profiling memory for {} s…", duration.as_secs());
    tokio::time::sleep(duration).await;
    let after: Diagnosis = client
        .get_as("/api/v1/memory/diagnose")
        .await
        .context("the server stopped answering during the profile")?;
    let mut table = Table::new(&["OPERATION", "COUNT", "AVG", "P99 (RECENT)"]).right(&[1, 2, 3]);
    let mut operations = Vec::new();
    let mut any = false;
    for (kind, op) in &after.operations {
        let (count_before, total_before) = before
            .operations
            .get(kind)
            .map_or((0, 0.0), |b| (b.count, b.avg_ms * b.count as f64));
        let count = op.count.saturating_sub(count_before);
        if count == 0 {
            continue;
        }
        any = true;
        let avg = (op.avg_ms * op.count as f64 - total_before) / count as f64;
        operations
            .push(json!({ "operation": kind, "count": count, "avg_ms": avg, "p99_ms": op.p99_ms }));
        table.row(vec![
            kind.to_string(),
            count.to_string(),
            format!("{avg:.2}ms"),
            format!("{:.2}ms", op.p99_ms),
        ]);
    }
    let slow: Vec<_> = after
        .slow_queries
        .iter()
        .filter(|q| q.at.as_str() >= started.as_str())
        .collect();
    if output::emit_json(&json!({
        "since": started,
        "operations": operations,
        "slow_queries": if include_queries { json!(slow) } else { Value::Null },
    })) {
        return Ok(ExitCode::SUCCESS);
    }
    if any {
        table.print();
    } else {
        println!("(no memory operations during the window)");
    }
    if include_queries {
        println!(
            "\nSlow queries in the window (over {} ms): {}",
            after.slow_query_threshold_ms,
            slow.len()
        );
        for q in slow {
            println!("{:>8.1}ms  {:<16} {}", q.ms, q.kind, q.query);
        }
    }
    Ok(ExitCode::SUCCESS)
}
