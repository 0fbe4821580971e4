//! Caxton as an MCP server (Model Context Protocol, with the `rmcp` SDK):
//! Streamable HTTP at `/mcp`, and stdio through `caxton mcp serve`.
//!
//! Every tool is a translation to the REST API ([`tools`]): a call becomes
//! one or more REST requests, sent through [`Api`]. Over HTTP they go
//! through this server's own router ([`RouterApi`]) with the caller's
//! credentials, so the auth gate decides what each tool may do exactly as
//! it decides for REST (memory reads need `read`, writes `admin`, talking
//! to agents `message`; safe mode refuses writes). Over stdio they go to
//! a running server over HTTP with the CLI's token.
//!
//! The HTTP transport is stateless: no sessions to hijack or leak, one
//! JSON answer per POST.

pub mod tools;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{Method, Request, header};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

/// Largest REST answer a tool reads (a whole graph page is far smaller).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A REST request that failed: the status and the server's message.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// HTTP status; 0 when the server could not be reached.
    pub status: u16,
    pub message: String,
}

/// Where the tools' REST requests go.
#[async_trait::async_trait]
pub trait Api: Send + Sync + 'static {
    /// Sends one request; `request` is the HTTP request that carried the
    /// MCP call, when there is one (its credentials are reused). A
    /// success answers the body as the server wrote it: a tool reads
    /// only what it needs of it, or passes it on untouched.
    async fn call(
        &self,
        request: Option<&Parts>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Bytes, ApiFailure>;
}

/// The MCP server: the tool list and the dispatch of calls.
#[derive(Clone)]
pub struct CaxtonMcp {
    api: Arc<dyn Api>,
}

impl CaxtonMcp {
    pub fn new(api: Arc<dyn Api>) -> Self {
        CaxtonMcp { api }
    }
}

impl ServerHandler for CaxtonMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("caxton", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Caxton's knowledge graph (the MCP memory server's tools, plus hybrid `search` \
                 and `traverse`) and its agents (`list_agents`, `ask_agent`).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let list = tools::all()
            .into_iter()
            .map(|t| {
                let schema: JsonObject = match t.schema {
                    Value::Object(map) => map,
                    _ => JsonObject::new(),
                };
                Tool::new(t.name, t.description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(list))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !tools::exists(&request.name) {
            return Err(ErrorData::invalid_params(
                format!("no tool named `{}`; tools/list shows them", request.name),
                None,
            ));
        }
        let parts = context.extensions.get::<Parts>();
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let rest = tools::Rest {
            api: self.api.as_ref(),
            request: parts,
        };
        let outcome = tokio::select! {
            _ = context.ct.cancelled() => Err("the call was cancelled".to_string()),
            outcome = tools::run(&rest, &request.name, arguments) => outcome,
        };
        let result = match outcome {
            Ok(output) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(output.text)]);
                result.structured_content = output.structured;
                result
            }
            Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

/// The REST API of this very server, reached through its router: a
/// tool's request passes the same gate as any other.
pub struct RouterApi {
    router: Arc<OnceLock<Router>>,
}

#[async_trait::async_trait]
impl Api for RouterApi {
    async fn call(
        &self,
        request: Option<&Parts>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Bytes, ApiFailure> {
        use tower::ServiceExt as _;

        let internal = |message: String| ApiFailure {
            status: 500,
            message,
        };
        let router = self
            .router
            .get()
            .cloned()
            .ok_or_else(|| internal("the server is still starting".into()))?;
        let parts = request.ok_or_else(|| internal("no HTTP request carried this call".into()))?;
        let mut builder = Request::builder().method(method).uri(path);
        for name in [
            header::AUTHORIZATION,
            header::HOST,
            header::ORIGIN,
            header::HeaderName::from_static("sec-fetch-site"),
        ] {
            if let Some(value) = parts.headers.get(&name) {
                builder = builder.header(name, value.clone());
            }
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                body.to_string()
            }
            None => String::new(),
        };
        let mut inner = builder
            .body(Body::from(bytes))
            .map_err(|e| internal(format!("cannot build the request: {e}")))?;
        if let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            inner.extensions_mut().insert(*peer);
        }
        if let Some(owner) = parts.extensions.get::<crate::server::peer::PeerOwner>() {
            inner.extensions_mut().insert(*owner);
        }
        // The same request, for logs and traces.
        if let Some(context) = parts
            .extensions
            .get::<crate::server::request_context::RequestContext>()
        {
            inner.extensions_mut().insert(context.clone());
        }
        let response = match router.oneshot(inner).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| internal(format!("cannot read the answer: {e}")))?;
        if status.is_success() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let message = match value["error"]["message"].as_str() {
            Some(message) => message.to_string(),
            None => String::from_utf8_lossy(&bytes).into_owned(),
        };
        Err(ApiFailure {
            status: status.as_u16(),
            message,
        })
    }
}

/// The service mounted at `/mcp`, and the cell the finished router goes
/// into (the tools call it; it does not exist yet when this is built).
pub fn http_service(
    router: Arc<OnceLock<Router>>,
) -> StreamableHttpService<CaxtonMcp, NeverSessionManager> {
    let handler = CaxtonMcp::new(Arc::new(RouterApi { router }));
    // The auth gate already checked `Host` and `Origin` (DNS rebinding,
    // cross-site pages) before a request gets here, and a request with a
    // token may come from any name the server is reached by. Inline
    // handlers (the vendored rmcp's addition) answer each POST in its own
    // task: the tools send the client nothing but their answer.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_inline_handlers(true)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{
        NumberOrString, PingRequest, ProgressNotificationParam, ProgressToken, ServerRequest,
    };
    use tower::ServiceExt as _;

    /// A tool that tells the client how far it got and pings it before
    /// answering: what a handler may do that ours do not.
    #[derive(Clone)]
    struct Chatty;

    impl ServerHandler for Chatty {
        fn get_info(&self) -> ServerConfig {
            ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        }

        async fn call_tool(
            &self,
            _request: CallToolRequestParams,
            context: RequestContext<RoleServer>,
        ) -> Result<CallToolResponse, ErrorData> {
            let token = ProgressToken(NumberOrString::Number(7));
            context
                .peer
                .notify_progress(ProgressNotificationParam::new(token, 0.5))
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            let ping = context
                .peer
                .send_request(ServerRequest::PingRequest(PingRequest::default()))
                .await;
            let text = match ping {
                Ok(_) => "the client answered the ping".to_string(),
                Err(e) => format!("ping failed: {e}"),
            };
            Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
        }
    }

    /// The vendored rmcp's inline handlers (vendor/README.md): a
    /// notification sent before the answer still reaches the client, in
    /// order, and a request to the client fails at once instead of waiting
    /// for an answer no stateless POST can bring.
    #[tokio::test]
    async fn inline_handlers_deliver_notifications_and_refuse_requests_to_the_client() {
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_inline_handlers(true)
            .disable_allowed_hosts();
        let service = StreamableHttpService::new(
            || Ok(Chatty),
            Arc::new(NeverSessionManager::default()),
            config,
        );
        let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "anything", "arguments": {}}});
        let request = Request::post("/mcp")
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(Body::from(call.to_string()))
            .expect("request");
        let answered = async {
            let response = service.oneshot(request).await.expect("infallible");
            let status = response.status();
            let kind = response.headers()[header::CONTENT_TYPE].clone();
            let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20).await;
            (status, kind, body.expect("body"))
        };
        let (status, kind, bytes) =
            tokio::time::timeout(std::time::Duration::from_secs(10), answered)
                .await
                .expect("the call waited for an answer to its ping");
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(status, 200, "{text}");
        assert_eq!(kind, "text/event-stream", "a notification needs a stream");
        let progress = text.find("notifications/progress");
        let answer = text.find("ping failed: Transport closed");
        assert!(
            progress.is_some() && answer.is_some() && progress < answer,
            "{text}"
        );
    }
}
