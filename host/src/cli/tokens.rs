//! `caxton tokens create|list|revoke`: bearer tokens, through the API
//! (admin scope).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::client::Client;
use super::output::{self, Table, cell};

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
    },
    /// List the live tokens (never their secrets).
    List,
    /// Revoke a token by id or name; it is refused from the next request on.
    Revoke {
        /// The token's id or name (`caxton tokens list`).
        #[arg(value_name = "ID_OR_NAME")]
        which: String,
    },
}

pub async fn run(client: &Client, command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create { scope, name } => {
            let body = client
                .post_json("/api/v1/tokens", &json!({ "name": name, "scope": scope }))
                .await?;
            if !output::emit_json(&body) {
                println!(
                    "Created token `{}` (scope {}, id {}):\n\n  {}\n\nKeep it now: it is not shown again. Use it as `--token`, CAXTON_TOKEN, or `Authorization: Bearer …`.",
                    body["name"].as_str().unwrap_or("?"),
                    body["scope"].as_str().unwrap_or("?"),
                    body["id"].as_str().unwrap_or("?"),
                    body["token"].as_str().unwrap_or("?"),
                );
            }
        }
        TokensCommand::List => {
            let body = client.get("/api/v1/tokens").await?;
            if output::emit_json(&body) {
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["NAME", "SCOPE", "ID", "CREATED"]);
            for t in body["tokens"].as_array().into_iter().flatten() {
                table.row(vec![
                    cell(&t["name"]),
                    cell(&t["scope"]),
                    cell(&t["id"]),
                    cell(&t["created_at"]),
                ]);
            }
            table.print();
        }
        TokensCommand::Revoke { which } => {
            let body = client.delete(&format!("/api/v1/tokens/{which}")).await?;
            if output::emit_json(&body) {
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "Revoked token `{}` ({})",
                body["revoked"]["name"].as_str().unwrap_or("?"),
                body["revoked"]["id"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
