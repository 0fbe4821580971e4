//! `caxton tokens create|list|revoke`: bearer tokens, through the API
//! (admin scope).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::client::Client;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once and never again.
    Create {
        /// `read` (status, lists, logs, metrics), `message` (also talk to
        /// agents) or `admin` (everything).
        #[arg(long)]
        scope: String,
        /// A name to know it by; messages sent with it carry this sender.
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List the live tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id or name; it is refused from the next request on.
    Revoke {
        /// The token's id or name (`caxton tokens list`).
        #[arg(value_name = "ID_OR_NAME")]
        which: String,
    },
}

pub async fn run(client: &Client, command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create { scope, name, json } => {
            let body = client
                .post_json("/api/v1/tokens", &json!({ "name": name, "scope": scope }))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!(
                    "Created token `{}` (scope {}, id {}):\n\n  {}\n\nKeep it now: it is not shown again. Use it as `--token`, CAXTON_TOKEN, or `Authorization: Bearer …`.",
                    body["name"].as_str().unwrap_or("?"),
                    body["scope"].as_str().unwrap_or("?"),
                    body["id"].as_str().unwrap_or("?"),
                    body["token"].as_str().unwrap_or("?"),
                );
            }
        }
        TokensCommand::List { json } => {
            let body = client.get("/api/v1/tokens").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(ExitCode::SUCCESS);
            }
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            let rows: Vec<[String; 4]> = tokens
                .iter()
                .map(|t| {
                    [
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["scope"].as_str().unwrap_or("").to_string(),
                        t["id"].as_str().unwrap_or("").to_string(),
                        t["created_at"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            let headers = ["NAME", "SCOPE", "ID", "CREATED"];
            let widths: Vec<usize> = (0..4)
                .map(|i| {
                    rows.iter()
                        .map(|r| r[i].chars().count())
                        .chain([headers[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: [&str; 4]| {
                let mut out = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
                println!("{}", out.trim_end());
            };
            line(headers);
            for row in &rows {
                line([&row[0], &row[1], &row[2], &row[3]]);
            }
        }
        TokensCommand::Revoke { which } => {
            let body = client.delete(&format!("/api/v1/tokens/{which}")).await?;
            println!(
                "Revoked token `{}` ({})",
                body["revoked"]["name"].as_str().unwrap_or("?"),
                body["revoked"]["id"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
