//! Config-agent commands: validate (works without a server), reload,
//! reload status, status, test, debug, tool audit; and `caxton tools list`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use super::client::Client;
use crate::config_agents::{definition, validate};
use crate::tools::ToolRegistry;

use super::agents::agent_path;
use super::output;

pub(super) fn print_problems(problems: &[Value]) {
    for p in problems {
        let mut at = p["file"].as_str().unwrap_or("?").to_string();
        if let Some(line) = p["line"].as_u64() {
            at.push_str(&format!(":{line}"));
            if let Some(column) = p["column"].as_u64() {
                at.push_str(&format!(":{column}"));
            }
        }
        let field = p["field"]
            .as_str()
            .map(|f| format!(" field `{f}`:"))
            .unwrap_or_default();
        println!("  {at}:{field} {}", p["message"].as_str().unwrap_or(""));
        println!("      fix: {}", p["fix"].as_str().unwrap_or(""));
    }
}

/// Validates files against the running server (its tools and agents), or
/// offline against the built-in tools when no server answers. Exit code 1
/// when any file has a problem.
pub async fn validate_files(client: &Client, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    if files.is_empty() {
        return Err(anyhow!("no agent definition files to validate"));
    }
    let mut bad = 0;
    let mut offline_noted = false;
    let mut report = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let problems: Vec<Value> = match std::fs::read_to_string(file) {
            Err(e) => vec![json!({
                "file": name,
                "message": if e.kind() == std::io::ErrorKind::NotFound { "file not found".to_string() } else { format!("cannot read: {e}") },
                "fix": "check the path (agents live in the agents directory, e.g. agents/my-agent.md)",
            })],
            Ok(source) => {
                let body = json!({"file": name, "source": source});
                match client
                    .post_json("/api/v1/config-agents/validate", &body)
                    .await
                {
                    Ok(answer) => answer["problems"].as_array().cloned().unwrap_or_default(),
                    Err(_) => {
                        if !offline_noted {
                            eprintln!(
                                "note: no server at {}; checking tools against the built-in ones and skipping conflict checks",
                                client.base()
                            );
                            offline_noted = true;
                        }
                        offline_problems(file, &source)
                    }
                }
            }
        };
        bad += usize::from(!problems.is_empty());
        if output::json() {
            report
                .push(json!({ "file": name, "valid": problems.is_empty(), "problems": problems }));
        } else if problems.is_empty() {
            println!("✓ {name}: valid");
        } else {
            println!("✗ {name}: {} problem(s)", problems.len());
            print_problems(&problems);
        }
    }
    output::emit_json(&json!({ "files": report }));
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn offline_problems(file: &Path, source: &str) -> Vec<Value> {
    let name = file.display().to_string();
    let id = match definition::agent_id_from_path(file) {
        Ok(id) => id,
        Err(p) => return vec![json!(*p)],
    };
    let Some(format) = definition::format_for_path(file) else {
        return vec![
            json!({"file": name, "message": "not an agent definition file", "fix": "name it <id>.md or <id>.toml"}),
        ];
    };
    let mut tools = ToolRegistry::with_builtins(&Default::default()).names();
    // Offline, an MCP server's tools cannot be asked: any tool of a
    // configured one is accepted.
    let config = std::env::var_os("CAXTON_CONFIG").map(std::path::PathBuf::from);
    if let Ok(config) = crate::config::Config::load(config.as_deref()) {
        tools.extend(config.mcp_servers.keys().map(|s| format!("{s}/*")));
    }
    let ctx = validate::ValidationContext {
        known_tools: &tools,
        loaded: &[],
    };
    match validate::check(&id, &name, source, format, &ctx) {
        Ok((_, problems)) | Err(problems) => problems.into_iter().map(|p| json!(p)).collect(),
    }
}

/// Definition files of a directory.
pub fn definition_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the agents directory {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| definition::format_for_path(p).is_some())
        .collect();
    files.sort();
    Ok(files)
}

pub async fn reload(
    client: &Client,
    name: Option<String>,
    all_config: bool,
    validate_first: bool,
) -> anyhow::Result<ExitCode> {
    if all_config {
        let body = client
            .post_json(
                "/api/v1/config-agents/reload",
                &json!({"validate_first": validate_first}),
            )
            .await?;
        let failed = body["failed"] != 0;
        if output::emit_json(&body) {
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        for r in body["results"].as_array().into_iter().flatten() {
            let file = r["file"].as_str().unwrap_or("?");
            if r["reloaded"] == true {
                println!("✓ reloaded {file}");
            } else {
                println!("✗ {file} kept its previous version:");
                print_problems(r["problems"].as_array().map_or(&[][..], Vec::as_slice));
            }
        }
        println!("{} reloaded, {} failed", body["reloaded"], body["failed"]);
        return Ok(if body["failed"] == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let name = name.ok_or_else(|| anyhow!("name the agent to reload, or pass --all-config"))?;
    match client
        .post_json_raw(&format!("{}/reload", agent_path(&name)), &json!({}))
        .await?
    {
        (true, status) if output::emit_json(&status) => Ok(ExitCode::SUCCESS),
        (false, error) if output::emit_json(&error) => Ok(ExitCode::FAILURE),
        (true, status) => {
            println!(
                "Reloaded {} ({} v{}) in {:.1} ms",
                status["id"].as_str().unwrap_or(&name),
                status["name"].as_str().unwrap_or("?"),
                status["version"].as_str().unwrap_or("?"),
                status["last_reload_ms"].as_f64().unwrap_or(0.0)
            );
            Ok(ExitCode::SUCCESS)
        }
        (false, error) => {
            println!(
                "✗ {}",
                error["error"]["message"]
                    .as_str()
                    .map(|m| m.split(": ").next().unwrap_or(m))
                    .unwrap_or("reload failed")
            );
            match error["error"]["details"]["problems"].as_array() {
                Some(problems) => {
                    print_problems(problems);
                    println!("The previous version (if any) keeps serving.");
                }
                None => println!("  {}", error["error"]["message"].as_str().unwrap_or("")),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn reload_status(client: &Client, name: &str) -> anyhow::Result<ExitCode> {
    let s = client
        .get(&format!("{}/reload-status", agent_path(name)))
        .await?;
    let code = if s["state"] == "active" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&s) {
        return Ok(code);
    }
    println!(
        "AGENT:        {} ({})",
        s["id"].as_str().unwrap_or("?"),
        s["name"].as_str().unwrap_or("-")
    );
    println!("FILE:         {}", s["file"].as_str().unwrap_or("?"));
    println!("STATE:        {}", s["state"].as_str().unwrap_or("?"));
    println!("VERSION:      {}", s["version"].as_str().unwrap_or("-"));
    println!("LOADED AT:    {}", s["loaded_at"].as_str().unwrap_or("-"));
    println!(
        "LAST ATTEMPT: {}",
        s["last_attempt_at"].as_str().unwrap_or("-")
    );
    println!("RELOADS:      {}", s["reloads"]);
    if let Some(ms) = s["last_reload_ms"].as_f64() {
        println!("LAST RELOAD:  {ms:.1} ms");
    }
    let problems = s["problems"].as_array().cloned().unwrap_or_default();
    if !problems.is_empty() {
        println!("PROBLEMS (the last good version keeps serving):");
        print_problems(&problems);
    }
    Ok(if s["state"] == "active" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn status(
    client: &Client,
    name: Option<String>,
    summary: bool,
) -> anyhow::Result<ExitCode> {
    if summary || name.is_none() {
        let list = client.get("/api/v1/agents").await?;
        let agents = list["agents"].as_array().cloned().unwrap_or_default();
        let count = |f: &dyn Fn(&Value) -> bool| agents.iter().filter(|a| f(a)).count();
        if output::json() {
            let files = client.get("/api/v1/config-agents").await?;
            let mut states = serde_json::Map::new();
            for state in ["running", "suspended", "failed"] {
                states.insert(state.into(), json!(count(&|a| a["status"] == state)));
            }
            output::emit_json(&json!({
                "agents": agents.len(),
                "config": count(&|a| a["type"] == "config"),
                "wasm": count(&|a| a["type"] == "wasm"),
                "states": states,
                "files_with_problems": files["files"].as_array().into_iter().flatten()
                    .filter(|f| f["state"] != "active").cloned().collect::<Vec<Value>>(),
            }));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "Agents: {} ({} config, {} wasm)",
            agents.len(),
            count(&|a| a["type"] == "config"),
            count(&|a| a["type"] == "wasm")
        );
        for state in ["running", "suspended", "failed"] {
            println!("  {state}: {}", count(&|a| a["status"] == state));
        }
        let files = client.get("/api/v1/config-agents").await?;
        let failing: Vec<&Value> = files["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["state"] != "active")
            .collect();
        if !failing.is_empty() {
            println!("Config files with problems:");
            for f in failing {
                println!(
                    "  {} ({})",
                    f["file"].as_str().unwrap_or("?"),
                    f["state"].as_str().unwrap_or("?")
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = name.unwrap_or_default();
    let agent = client.get(&agent_path(&name)).await?;
    if output::json() {
        let definition = if agent["type"] == "config" {
            client
                .get(&format!("{}/reload-status", agent_path(&name)))
                .await
                .ok()
        } else {
            None
        };
        output::emit_json(&json!({ "agent": agent, "definition": definition }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}): {}",
        agent["name"].as_str().unwrap_or("?"),
        agent["type"].as_str().unwrap_or("?"),
        agent["status"].as_str().unwrap_or("?")
    );
    let stats = &agent["stats"];
    println!(
        "  handled {} failed {} queued {}",
        stats["messages_handled"], stats["messages_failed"], agent["queued_messages"]
    );
    if agent["type"] == "config"
        && let Ok(s) = client
            .get(&format!("{}/reload-status", agent_path(&name)))
            .await
    {
        println!(
            "  definition {} v{} ({})",
            s["file"].as_str().unwrap_or("?"),
            s["version"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?")
        );
        // `stale`: why the edit was rejected, where, and how to fix it.
        let problems = s["problems"].as_array().cloned().unwrap_or_default();
        if !problems.is_empty() {
            println!(
                "  last edit rejected at {}; the version above keeps serving:",
                s["last_attempt_at"].as_str().unwrap_or("?")
            );
            print_problems(&problems);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn debug(client: &Client, name: &str, show_tools: bool) -> anyhow::Result<ExitCode> {
    let agent = client.get(&agent_path(name)).await?;
    let mut summary = json!({
        "name": agent["name"], "type": agent["type"], "status": agent["status"],
        "source": agent["source"], "version": agent["version"], "llm": agent["llm"],
        "stats": agent["stats"],
    });
    let tools = if show_tools {
        client.get("/api/v1/tools").await?["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let allowed: Vec<&str> = agent["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if output::json() {
        if show_tools {
            summary["tools"] = json!(
                tools
                    .iter()
                    .map(|t| json!({
                        "name": t["name"],
                        "allowed": allowed.iter().any(|a| t["name"] == *a),
                        "description": t["description"],
                    }))
                    .collect::<Vec<Value>>()
            );
        }
        output::emit_json(&summary);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if show_tools {
        println!("TOOLS ({} allowed):", allowed.len());
        let mut table = output::Table::new(&["  TOOL", "ALLOWED", "DESCRIPTION"]);
        for t in &tools {
            let name = t["name"].as_str().unwrap_or("?");
            let mark = if allowed.contains(&name) {
                "allowed"
            } else {
                "-"
            };
            table.row(vec![
                format!("  {name}"),
                mark.to_string(),
                output::cell(&t["description"]),
            ]);
        }
        table.print();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn audit_tools(client: &Client, show_unused: bool) -> anyhow::Result<ExitCode> {
    let tools = client.get("/api/v1/tools").await?;
    let agents = client.get("/api/v1/agents?type=config").await?;
    let mut table = output::Table::new(&["TOOL", "AGENTS"]);
    let mut report = Vec::new();
    for t in tools["tools"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        let users: Vec<&str> = agents["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["tools"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|x| x == name))
            })
            .filter_map(|a| a["name"].as_str())
            .collect();
        if users.is_empty() {
            table.row(vec![name.to_string(), "(unused)".to_string()]);
        } else if !show_unused {
            table.row(vec![name.to_string(), users.join(", ")]);
        }
        if users.is_empty() || !show_unused {
            report.push(json!({ "tool": name, "agents": users }));
        }
    }
    if !output::emit_json(&json!({ "tools": report })) {
        table.print();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn test(client: &Client, name: &str, input: &str) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let body = client
        .post_json(
            &format!("{}/message", agent_path(name)),
            &json!({"message": input}),
        )
        .await?;
    let performative = body["reply"]["performative"].as_str().unwrap_or("?");
    let code = if performative == "inform" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if output::emit_json(&body) {
        return Ok(code);
    }
    println!(
        "[{performative}] {}",
        body["reply"]["content"].as_str().unwrap_or("")
    );
    println!("({:.0} ms)", started.elapsed().as_secs_f64() * 1000.0);
    Ok(if performative == "inform" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `agents watch DIR [--auto-reload]`: deploys every definition in DIR,
/// then (with `--auto-reload`) redeploys each file when it is saved, until
/// interrupted. The server validates each version; a broken one is reported
/// and the last good version keeps serving.
pub async fn watch(client: &Client, dir: &Path, auto_reload: bool) -> anyhow::Result<ExitCode> {
    use notify::Watcher as _;

    let mut failed = false;
    for file in definition_files(dir)? {
        failed |= deploy_definition(client, &file).await? != ExitCode::SUCCESS;
    }
    if !auto_reload {
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && (event.kind.is_create() || event.kind.is_modify())
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })
    .context("cannot start a file watcher")?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    println!(
        "Watching {} (Ctrl-C to stop); saved files are redeployed",
        dir.display()
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            Some(path) = rx.recv() => {
                // Editors save in several writes: wait for them to settle,
                // then deploy each changed file once.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut changed = std::collections::BTreeSet::from([path]);
                while let Ok(more) = rx.try_recv() {
                    changed.insert(more);
                }
                for file in changed {
                    if crate::config_agents::is_definition_file(&file) && file.is_file() {
                        deploy_definition(client, &file).await?;
                    }
                }
            }
        }
    }
}

/// `agents deploy FILE.md`: the server validates, stores it in its agents
/// directory and starts it.
pub async fn deploy_definition(client: &Client, file: &Path) -> anyhow::Result<ExitCode> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let file_name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match client
        .post_json_raw(
            "/api/v1/config-agents",
            &json!({"file": file_name, "source": source}),
        )
        .await?
    {
        (true, agent) => {
            println!(
                "Deployed config agent {} ({}), capabilities: {}",
                agent["name"].as_str().unwrap_or("?"),
                agent["id"].as_str().unwrap_or("?"),
                agent["capabilities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        (false, error) => {
            println!("✗ {file_name} was not deployed:");
            match error["error"]["details"]["problems"].as_array() {
                Some(problems) => print_problems(problems),
                None => println!("  {}", error["error"]["message"].as_str().unwrap_or("")),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
