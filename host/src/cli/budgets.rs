//! `caxton budgets list|show|set|reset`: what agents, principals and the
//! server may spend on models, and what they spent.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;
use super::output::{self, Table, cell};

#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Every budget, and every agent or principal that spent something.
    List,
    /// One budget: its limits, the current window's spend, when it resets.
    Show {
        /// agent:NAME, principal:NAME (a token's name) or server.
        subject: String,
    },
    /// Sets a budget (kept across restarts; comes before the agent's file
    /// and caxton.yaml). Give at least one of --tokens, --tokens-in,
    /// --tokens-out, --cost.
    Set {
        /// agent:NAME, principal:NAME (a token's name) or server.
        subject: String,
        /// The window: hour, day, month, or a duration such as 10m.
        #[arg(long, default_value = "day")]
        per: String,
        /// Tokens (prompt and completion together) per window.
        #[arg(long)]
        tokens: Option<u64>,
        /// Prompt tokens per window.
        #[arg(long)]
        tokens_in: Option<u64>,
        /// Completion tokens per window.
        #[arg(long)]
        tokens_out: Option<u64>,
        /// Cost per window, in the currency of budgets.prices.
        #[arg(long)]
        cost: Option<f64>,
    },
    /// Removes a budget set with `budgets set` (the agent's file or
    /// caxton.yaml applies again).
    Reset {
        /// agent:NAME, principal:NAME (a token's name) or server.
        subject: String,
    },
}

/// The subject's route, every byte but `A-Za-z0-9-._~:` percent-encoded.
fn path(subject: &str) -> String {
    let encoded: String = subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("/api/v1/budgets/{encoded}")
}

/// "1,234 / 10,000 tokens per hour (12.3 %), resets 2026-…".
fn describe(status: &Value) -> Vec<String> {
    status["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let limit = &l["limit"];
            let spent_tokens =
                l["tokens_in"].as_u64().unwrap_or(0) + l["tokens_out"].as_u64().unwrap_or(0);
            let mut parts = Vec::new();
            if let Some(max) = limit["tokens"].as_u64() {
                parts.push(format!("{spent_tokens}/{max} tokens"));
            }
            if let Some(max) = limit["tokens_in"].as_u64() {
                parts.push(format!("{}/{max} prompt tokens", cell(&l["tokens_in"])));
            }
            if let Some(max) = limit["tokens_out"].as_u64() {
                parts.push(format!(
                    "{}/{max} completion tokens",
                    cell(&l["tokens_out"])
                ));
            }
            if let Some(max) = limit["cost"].as_f64() {
                parts.push(format!(
                    "{:.4}/{max} cost",
                    l["cost"].as_f64().unwrap_or(0.0)
                ));
            }
            format!(
                "{} per {} ({} %), resets {}",
                parts.join(", "),
                cell(&limit["per"]),
                cell(&l["percent"]),
                cell(&l["resets_at"])
            )
        })
        .collect()
}

fn print_one(status: &Value) {
    println!(
        "{} (budget from: {})",
        cell(&status["subject"]),
        cell(&status["source"])
    );
    let limits = describe(status);
    if limits.is_empty() {
        println!("  no budget");
    }
    for line in limits {
        println!("  {line}");
    }
    for window in ["hour", "day", "month"] {
        let spent = &status["spent"][window];
        println!(
            "  this {window}: {} in, {} out, cost {:.4}",
            cell(&spent["tokens_in"]),
            cell(&spent["tokens_out"]),
            spent["cost"].as_f64().unwrap_or(0.0)
        );
    }
}

pub async fn run(client: &Client, command: BudgetsCommand) -> anyhow::Result<ExitCode> {
    match command {
        BudgetsCommand::List => {
            let all = client.get("/api/v1/budgets").await?;
            if output::emit_json(&all) {
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["BUDGET", "FROM", "LIMITS", "TOKENS TODAY"]);
            for status in all["budgets"].as_array().into_iter().flatten() {
                let today = &status["spent"]["day"];
                let limits = describe(status);
                table.row(vec![
                    cell(&status["subject"]),
                    cell(&status["source"]),
                    if limits.is_empty() {
                        "-".into()
                    } else {
                        limits.join("; ")
                    },
                    (today["tokens_in"].as_u64().unwrap_or(0)
                        + today["tokens_out"].as_u64().unwrap_or(0))
                    .to_string(),
                ]);
            }
            table.print();
        }
        BudgetsCommand::Show { subject } => {
            let status = client.get(&path(&subject)).await?;
            if !output::emit_json(&status) {
                print_one(&status);
            }
        }
        BudgetsCommand::Set {
            subject,
            per,
            tokens,
            tokens_in,
            tokens_out,
            cost,
        } => {
            let mut limit = json!({ "per": per });
            for (key, value) in [
                ("tokens", tokens.map(Value::from)),
                ("tokens_in", tokens_in.map(Value::from)),
                ("tokens_out", tokens_out.map(Value::from)),
                ("cost", cost.map(Value::from)),
            ] {
                if let Some(value) = value {
                    limit[key] = value;
                }
            }
            let status = client
                .put_json(&path(&subject), &json!({ "limits": [limit] }))
                .await?;
            if !output::emit_json(&status) {
                print_one(&status);
            }
        }
        BudgetsCommand::Reset { subject } => {
            let status = client.delete(&path(&subject)).await?;
            if !output::emit_json(&status) {
                print_one(&status);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
