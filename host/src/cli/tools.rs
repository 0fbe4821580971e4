//! `caxton tools …`: the tools agents can call — list them, show one,
//! deploy and remove tool components.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::client::Client;
use super::output;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Every tool (built-in and deployed components) with its description
    /// and JSON schema.
    List,
    /// One tool in full.
    Show {
        /// The tool's name.
        name: String,
    },
    /// Deploy a tool component (a .wasm built against the `tool` world);
    /// its name comes from the component's own `describe`.
    Deploy {
        /// The tool component (.wasm).
        file: PathBuf,
        /// Replace a deployed tool of the same name.
        #[arg(long)]
        replace: bool,
        /// Fuel per call (default: runtime.default_limits).
        #[arg(long)]
        max_fuel: Option<u64>,
        /// Wall-clock time per call in milliseconds.
        #[arg(long)]
        max_execution_time_ms: Option<u64>,
        /// Linear memory per call in bytes.
        #[arg(long)]
        max_memory_bytes: Option<u64>,
    },
    /// Remove a deployed tool component.
    Remove {
        /// The tool's name.
        name: String,
    },
    /// Call a tool directly with JSON arguments and print its result.
    Invoke {
        /// The tool's name.
        name: String,
        /// The arguments, a JSON object (default `{}`).
        #[arg(default_value = "{}")]
        arguments: String,
        /// Call it as this agent (its memory scope, its name on messages).
        #[arg(long = "as-agent")]
        as_agent: Option<String>,
    },
}

pub async fn run(client: &Client, command: ToolsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ToolsCommand::List => list(client).await,
        ToolsCommand::Show { name } => {
            let tool = client
                .get(&format!(
                    "/api/v1/tools/{}",
                    crate::server::percent_encode(&name)
                ))
                .await?;
            println!("{}", serde_json::to_string_pretty(&tool)?);
            Ok(ExitCode::SUCCESS)
        }
        ToolsCommand::Deploy {
            file,
            replace,
            max_fuel,
            max_execution_time_ms,
            max_memory_bytes,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let mut query = vec![format!("replace={replace}")];
            let limits = [
                ("max_fuel", max_fuel),
                ("max_execution_time_ms", max_execution_time_ms),
                ("max_memory_bytes", max_memory_bytes),
            ];
            for (key, value) in limits {
                if let Some(value) = value {
                    query.push(format!("{key}={value}"));
                }
            }
            let path = format!("/api/v1/tools?{}", query.join("&"));
            let what = format!("Deploying the tool in {}", file.display());
            let tool =
                output::with_progress(&what, client.post_body(&path, "application/wasm", bytes))
                    .await?;
            if output::emit_json(&tool) {
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if tool["replaced"] == true {
                "Replaced"
            } else {
                "Deployed"
            };
            println!(
                "{verb} tool {} ({} bytes, sha256 {})",
                tool["name"].as_str().unwrap_or("?"),
                tool["size_bytes"],
                tool["component_sha256"].as_str().unwrap_or("?"),
            );
            println!("  {}", tool["description"].as_str().unwrap_or(""));
            println!("  parameters: {}", tool["parameters"]);
            Ok(ExitCode::SUCCESS)
        }
        ToolsCommand::Invoke {
            name,
            arguments,
            as_agent,
        } => {
            let arguments: Value = serde_json::from_str(&arguments).with_context(|| {
                format!(
                    "the arguments are not JSON: {arguments} (quote them: '{{\"key\": \"value\"}}')"
                )
            })?;
            let mut path = format!(
                "/api/v1/tools/{}/invoke",
                crate::server::percent_encode(&name)
            );
            if let Some(agent) = as_agent {
                path.push_str(&format!("?agent={}", crate::server::percent_encode(&agent)));
            }
            let answer = client.post_json(&path, &arguments).await?;
            // The result is JSON either way; --json prints the whole answer.
            if !output::emit_json(&answer) {
                println!("{}", serde_json::to_string_pretty(&answer["result"])?);
            }
            Ok(ExitCode::SUCCESS)
        }
        ToolsCommand::Remove { name } => {
            let removed = client
                .delete(&format!(
                    "/api/v1/tools/{}",
                    crate::server::percent_encode(&name)
                ))
                .await?;
            if !output::emit_json(&removed) {
                println!("Removed tool {name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(client: &Client) -> anyhow::Result<ExitCode> {
    let tools = client.get("/api/v1/tools").await?;
    if output::emit_json(&tools) {
        return Ok(ExitCode::SUCCESS);
    }
    for t in tools["tools"].as_array().into_iter().flatten() {
        println!("{} ({})", text(&t["name"]), text(&t["kind"]));
        println!("  {}", text(&t["description"]));
        println!("  parameters: {}", t["parameters"]);
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}
