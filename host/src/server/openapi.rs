//! `GET /api/v1/openapi.json`: the API described for clients and tools.
//!
//! Generated, not written: every route is registered through its
//! handler's `#[utoipa::path]` (see `server::router`), and request and
//! response bodies are the `ToSchema` derives of the types the handlers
//! read and write. Two things are added here by hand: `/mcp`, which is
//! rmcp's service rather than a handler, and the errors any operation can
//! answer (the auth gate's, the body limit's), in the one error shape.

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Caxton API",
        description = "Deploy agents, send them messages, give them memory, and operate the server. \
            Every error has the shape {\"error\": {\"code\", \"message\", \"details\"}}. \
            Off loopback every request needs `Authorization: Bearer TOKEN` (scopes read < message < admin)."
    ),
    modifiers(&BearerToken),
    security((), ("bearer" = [])),
    components(schemas(super::error::ErrorBody)),
    tags(
        (name = "agents", description = "Deploy, list, suspend and remove agents"),
        (name = "messages", description = "Messages to agents, by name or by capability; broadcast and contract net"),
        (name = "conversations", description = "Every message's conversation: list, show, cancel"),
        (name = "memory", description = "Entities, observations and relations; hybrid search and traversal"),
        (name = "config-agents", description = "Agents defined by markdown files"),
        (name = "tools", description = "The tool registry"),
        (name = "tokens", description = "Bearer tokens and their scopes"),
        (name = "operations", description = "Health, metrics, safe mode, shutdown, this document"),
        (name = "backup", description = "Backups of the running server"),
        (name = "budgets", description = "What agents, principals and the server may spend on models, and what they spent"),
        (name = "storage", description = "Verify, analyze, repair and compact the database"),
        (name = "traces", description = "Conversations' spans"),
        (name = "debug", description = "The server's state for a bug report"),
        (name = "openai", description = "The OpenAI-compatible API"),
        (name = "mcp", description = "Model Context Protocol"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme the operations refer to.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The finished document, serialised once when the router is built and
/// served as those bytes.
#[derive(Clone)]
pub struct ServedDocument(axum::body::Bytes);

impl ServedDocument {
    /// Adds what no handler describes (`/mcp`, the common errors) to the
    /// document the routes generated.
    pub fn finish(document: utoipa::openapi::OpenApi) -> ServedDocument {
        let mut doc = serde_json::to_value(&document).unwrap_or_else(|e| {
            // Serialising derived types cannot fail; say so if it ever does.
            json!({ "openapi": "3.1.0", "info": { "title": "Caxton API", "version": env!("CARGO_PKG_VERSION"),
                "description": format!("The API document could not be generated: {e}") }, "paths": {} })
        });
        if let Some(paths) = doc["paths"].as_object_mut() {
            paths.insert("/mcp".into(), mcp_path());
            add_common_errors(paths);
        }
        ServedDocument(axum::body::Bytes::from(doc.to_string()))
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "openapi_document",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn document(Extension(document): Extension<ServedDocument>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document.0)
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } })
}

/// `/mcp` is rmcp's Streamable HTTP service, mounted beside the handlers.
fn mcp_path() -> Value {
    json!({ "post": {
        "tags": ["mcp"],
        "operationId": "mcp",
        "summary": "Model Context Protocol over Streamable HTTP (stateless, JSON answers)",
        "description": "JSON-RPC 2.0: initialize, tools/list, tools/call. Tools: create_entities, create_relations, add_observations, delete_entities, delete_observations, delete_relations, read_graph, search_nodes, open_nodes (the MCP memory server's), search, traverse, list_agents, ask_agent. Each tool needs the scope its REST route needs. Send `Accept: application/json, text/event-stream`.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["jsonrpc", "method"],
            "properties": { "jsonrpc": { "const": "2.0" }, "method": { "type": "string" }, "id": {}, "params": { "type": "object" } } } } } },
        "responses": { "200": { "description": "A JSON-RPC answer", "content": { "application/json": { "schema": { "type": "object" } } } },
            "202": { "description": "A notification was accepted" },
            "406": error_response("The client does not accept both application/json and text/event-stream") } } })
}

/// Errors any operation can answer, in the one error shape: a request
/// that cannot be read (400), no or a wrong token (401), a token without
/// the scope (403), an unknown name (404), a body too slow (408) or too
/// big (413) or of the wrong type (415), refused input (422), no room
/// (429, 503), safe mode refusing a write (503), a server fault (500). Added where an operation does not
/// describe them itself.
fn add_common_errors(paths: &mut serde_json::Map<String, Value>) {
    const COMMON: [(&str, &str); 11] = [
        ("400", "The request cannot be read (query, path or body)"),
        ("401", "No token, or a token that is not valid here"),
        ("403", "The token's scope does not allow this"),
        ("404", "Nothing by that name"),
        ("408", "The body took too long to arrive"),
        ("413", "The body is larger than the server accepts"),
        (
            "415",
            "The body's content type is not one this operation reads",
        ),
        ("422", "The input is well-formed but refused"),
        ("429", "Too many requests or messages queued"),
        ("500", "A server fault (reported, nothing half-written)"),
        (
            "503",
            "The server is at capacity, shutting down, or in safe mode (writes refused)",
        ),
    ];
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, description) in COMMON {
                responses
                    .entry(status)
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}
