//! `caxton mcp serve`: the MCP server over stdio, for clients that launch
//! their servers as commands (Claude Desktop, Cursor). It serves the same
//! tools as `/mcp`, each sent to the running server's REST API with this
//! CLI's token (`--token`, `CAXTON_TOKEN`, or the admin token file), so
//! the server's auth decides what they may do.

use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::Method;
use axum::http::request::Parts;
use clap::Subcommand;
use rmcp::ServiceExt as _;
use serde_json::Value;

use super::client::Client;
use crate::server::mcp::{Api, ApiFailure, CaxtonMcp};

#[derive(Subcommand)]
pub enum McpCommand {
    /// Serve MCP on stdin/stdout until the client closes stdin. Logs, if
    /// any, go to stderr: stdout carries only the protocol.
    Serve,
}

/// The running server's REST API.
struct RemoteApi {
    client: Client,
}

#[async_trait::async_trait]
impl Api for RemoteApi {
    async fn call(
        &self,
        _request: Option<&Parts>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Bytes, ApiFailure> {
        self.client
            .send_raw(method, path, body.as_ref())
            .await
            .map_err(|e| ApiFailure {
                status: 0,
                message: format!("{e:#}"),
            })
    }
}

pub async fn run(client: Client, command: McpCommand) -> anyhow::Result<ExitCode> {
    match command {
        McpCommand::Serve => {
            let handler = CaxtonMcp::new(Arc::new(RemoteApi { client }));
            let running = handler
                .serve(rmcp::transport::stdio())
                .await
                .map_err(|e| anyhow::anyhow!("the MCP client did not initialise: {e}"))?;
            running
                .waiting()
                .await
                .map_err(|e| anyhow::anyhow!("the MCP server stopped abnormally: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
