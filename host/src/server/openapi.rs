//! `GET /api/v1/openapi.json`: the API described for clients and tools.
//! Written by hand next to the routes; the integration tests check that
//! every route the server answers is listed here.

use axum::Json;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn agent_param() -> Value {
    json!({ "name": "agent", "in": "path", "required": true, "description": "Agent name or id", "schema": { "type": "string" } })
}

/// A memory write or query: a JSON body with an optional `scope`
/// (`global` by default, `workspace`, or `agent:NAME`).
fn memory_post(summary: &str, fields: &str) -> Value {
    json!({ "post": {
        "summary": summary,
        "description": format!("Body fields: {fields}. `scope` is global (default), workspace or agent:NAME."),
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
        "responses": {
            "200": { "description": "Done" },
            "201": { "description": "Written" },
            "400": error_response("Invalid input (nothing written)"),
            "404": error_response("Unknown entity or agent")
        }
    }})
}

fn memory_paths() -> Value {
    json!({
        "/api/v1/health/memory": { "get": { "summary": "Memory health: status, sqlite_status, embedding_model (and reason when degraded)",
            "responses": { "200": { "description": "Health" } } } },
        "/api/v1/memory/stats": { "get": { "summary": "Counts, sizes, latency percentiles", "responses": { "200": { "description": "Stats" } } } },
        "/api/v1/memory/entities": memory_post("Create entities (merging into existing names)", "entities: [{name, entity_type, observations, metadata}]"),
        "/api/v1/memory/entities/delete": memory_post("Delete entities with their observations and relations", "names"),
        "/api/v1/memory/observations": memory_post("Add observations to an entity", "entity, observations"),
        "/api/v1/memory/observations/delete": memory_post("Delete observations", "entity, observations"),
        "/api/v1/memory/relations": memory_post("Create or update relations", "relations: [{from, to, relation_type, strength, confidence}]"),
        "/api/v1/memory/relations/delete": memory_post("Delete relations", "relations: [{from, to, relation_type}]"),
        "/api/v1/memory/nodes": memory_post("Open entities by name, with the relations between them", "names"),
        "/api/v1/memory/search": memory_post("Hybrid search", "query, limit, scope or scopes"),
        "/api/v1/memory/traverse": memory_post("Breadth-first traversal", "start, max_depth, relation_types, direction, min_strength"),
        "/api/v1/memory/graph": { "get": { "summary": "Read the graph one page at a time",
            "parameters": [
                { "name": "scope", "in": "query", "schema": { "type": "string" } },
                { "name": "cursor", "in": "query", "schema": { "type": "string" } },
                { "name": "limit", "in": "query", "schema": { "type": "integer" } }
            ],
            "responses": { "200": { "description": "entities, relations, next_cursor" } } } },
        "/api/v1/memory/export": { "get": { "summary": "Every entity and relation as JSON lines",
            "responses": { "200": { "description": "application/x-ndjson" } } } },
        "/api/v1/memory/import": { "post": { "summary": "Load JSON lines written by export (checked before writing)",
            "requestBody": { "required": true, "content": { "application/x-ndjson": { "schema": { "type": "string" } } } },
            "responses": { "200": { "description": "Counts" }, "400": error_response("A line is invalid (nothing written)") } } }
    })
}

/// Config agents, the tool registry and metrics.
fn operations_paths() -> Value {
    let tool_param =
        json!({ "name": "tool", "in": "path", "required": true, "schema": { "type": "string" } });
    json!({
        "/api/v1/tools": {
            "get": { "summary": "Every tool agents can call (built-in and components) with its JSON Schema",
                "responses": { "200": { "description": "total, tools: [{name, description, parameters, kind}]" } } },
            "post": { "summary": "Deploy a tool component (the `tool` world); its name comes from its `describe`",
                "description": "Body: the component as application/wasm (query: replace, max_fuel, max_execution_time_ms, max_memory_bytes) or JSON {wasm_module (base64), resource_limits, replace}.",
                "requestBody": { "required": true, "content": {
                    "application/wasm": { "schema": { "type": "string", "format": "binary" } },
                    "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "201": { "description": "Deployed" }, "200": { "description": "Replaced (replace=true)" },
                    "400": error_response("Not a WebAssembly component"),
                    "409": error_response("Name taken by a built-in or deployed tool"),
                    "422": error_response("Wrong world, unusable name or schema, or describe failed within the limits") } }
        },
        "/api/v1/tools/{tool}": {
            "get": { "summary": "One tool", "parameters": [tool_param.clone()],
                "responses": { "200": { "description": "The tool" }, "404": error_response("Unknown tool") } },
            "delete": { "summary": "Remove a tool component", "parameters": [tool_param],
                "responses": { "200": { "description": "Removed" }, "404": error_response("Unknown tool"),
                    "409": error_response("Built-in tools cannot be removed") } }
        },
        "/api/v1/config-agents": {
            "get": { "summary": "Config agents and their reload state", "responses": { "200": { "description": "Config agents" } } },
            "post": { "summary": "Install a definition {file, source} into the agents directory",
                "responses": { "201": { "description": "Installed" }, "400": error_response("Invalid definition (every problem listed)") } }
        },
        "/api/v1/config-agents/validate": { "post": { "summary": "Validate a definition {file, source}",
            "responses": { "200": { "description": "problems: [{file, line, column, field, message, fix}]" } } } },
        "/api/v1/config-agents/reload": { "post": { "summary": "Reload every definition in the agents directory",
            "responses": { "200": { "description": "Per-file results" } } } },
        "/api/v1/agents/{agent}/reload": { "post": { "summary": "Reload one config agent from its file",
            "parameters": [agent_param()],
            "responses": { "200": { "description": "Reloaded" }, "400": error_response("Invalid definition; the last good version keeps serving") } } },
        "/api/v1/agents/{agent}/reload-status": { "get": { "summary": "Last reload of a config agent",
            "parameters": [agent_param()], "responses": { "200": { "description": "Reload state" } } } },
        "/metrics": { "get": { "summary": "Prometheus metrics (text exposition format)",
            "responses": { "200": { "description": "text/plain; version=0.0.4" } } } }
    })
}

/// The OpenAI-compatible API and MCP.
fn interop_paths() -> Value {
    json!({
        "/mcp": { "post": { "summary": "Model Context Protocol over Streamable HTTP (stateless, JSON answers)",
            "description": "JSON-RPC 2.0: initialize, tools/list, tools/call. Tools: create_entities, create_relations, add_observations, delete_entities, delete_observations, delete_relations, read_graph, search_nodes, open_nodes (the MCP memory server's), search, traverse, list_agents, ask_agent. Each tool needs the scope its REST route needs. Send `Accept: application/json, text/event-stream`.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["jsonrpc", "method"] } } } },
            "responses": { "200": { "description": "A JSON-RPC answer" }, "202": { "description": "A notification was accepted" },
                "406": error_response("The client does not accept both application/json and text/event-stream") } } },
        "/api/v1/tools/{tool}/invoke": { "post": { "summary": "Call a tool with the body as its arguments (admin)",
            "parameters": [{ "name": "tool", "in": "path", "required": true, "schema": { "type": "string" } },
                { "name": "agent", "in": "query", "schema": { "type": "string" }, "description": "Call as this agent" }],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
            "responses": { "200": { "description": "{tool, caller, result, duration_ms}" },
                "400": error_response("The arguments do not match the tool's schema"),
                "404": error_response("Unknown tool or agent"), "502": error_response("The tool failed") } } },
        "/v1/models": { "get": { "summary": "OpenAI-compatible: the running agents, as models",
            "responses": { "200": { "description": "{object: list, data: [{id, object: model, created, owned_by}]}" } } } },
        "/v1/models/{model}": { "get": { "summary": "OpenAI-compatible: one agent as a model",
            "parameters": [{ "name": "model", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": { "200": { "description": "The model" }, "404": error_response("No agent of that name") } } },
        "/v1/chat/completions": { "post": { "summary": "OpenAI-compatible chat completion; the model is the agent's name",
            "description": "Body: {model, messages: [{role, content}], stream, stream_options: {include_usage}}. A config agent answers from the whole conversation; a WASM agent receives the last user message. `stream: true` answers with OpenAI's SSE chunks ending in `data: [DONE]`. Errors have OpenAI's shape {error: {message, type, param, code}}.",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["model", "messages"] } } } },
            "responses": { "200": { "description": "chat.completion, or text/event-stream of chat.completion.chunk" },
                "400": error_response("Invalid messages"), "404": error_response("No agent of that name"),
                "502": error_response("The agent answered failure") } } }
    })
}

pub async fn document() -> Json<Value> {
    let message_body = json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/MessageRequest" } } }
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Caxton API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Deploy agents, send them messages, and operate the server. Every error has the shape {\"error\": {\"code\", \"message\", \"details\"}}."
        },
        "paths": {
            "/api/v1/health": { "get": {
                "summary": "Server health",
                "responses": { "200": ok("Healthy", "Health") }
            }},
            "/api/v1/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": { "description": "OpenAPI 3 document" } }
            }},
            "/api/v1/docs": { "get": {
                "summary": "This document as a page to browse",
                "responses": { "200": { "description": "An HTML page", "content": { "text/html": {} } } }
            }},
            "/api/v1/docs/app.js": { "get": {
                "summary": "The script of the docs page",
                "responses": { "200": { "description": "JavaScript", "content": { "text/javascript": {} } } }
            }},
            "/api/v1/shutdown": { "post": {
                "summary": "Graceful shutdown: in-flight requests finish, then the server exits",
                "responses": { "202": { "description": "Shutting down" } }
            }},
            "/api/v1/tokens": {
                "get": {
                    "summary": "List the live bearer tokens (never their secrets); admin scope",
                    "responses": { "200": { "description": "{\"tokens\": [{id, name, scope, created_at}]}" } }
                },
                "post": {
                    "summary": "Create a token: {\"name\", \"scope\": read|message|admin}; the answer carries the token, shown once",
                    "responses": { "201": { "description": "The token" }, "409": error_response("Name taken") }
                }
            },
            "/api/v1/tokens/{token}": { "delete": {
                "summary": "Revoke a token by id or name",
                "parameters": [{ "name": "token", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "Revoked" }, "404": error_response("No such token") }
            }},
            "/api/v1/backup": { "get": {
                "summary": "A consistent backup of the running server as a .tar.gz (database, admin token, agent definitions, configuration, manifest); admin scope",
                "responses": { "200": { "description": "application/gzip" } }
            }},
            "/api/v1/storage/analyze": { "get": {
                "summary": "Database analysis: per table entries, stored/metadata/fragmented bytes, tree height; file size and free space",
                "responses": { "200": { "description": "The analysis" } }
            }},
            "/api/v1/storage/repair": { "post": {
                "summary": "Repair what dangles or is derived; {\"apply\": false} (default) only reports. Lists what it cannot repair (admin; allowed in safe mode)",
                "responses": { "200": { "description": "{applied, memory, fixed, left}" } }
            }},
            "/api/v1/storage/compact": { "post": {
                "summary": "Schedule a compaction of the database file for the next start (admin; allowed in safe mode)",
                "responses": { "200": { "description": "{scheduled, database_bytes, detail}" } }
            }},
            "/api/v1/traces": { "get": {
                "summary": "A conversation's spans (message hops, LLM and tool calls, with parents and timings), or recent conversations when no conversation_id is given",
                "parameters": [
                    { "name": "agent", "in": "query", "description": "Only conversations this agent took part in", "schema": { "type": "string" } },
                    { "name": "conversation_id", "in": "query", "schema": { "type": "string" } },
                    { "name": "limit", "in": "query", "description": "Conversations listed (default 20, at most 1000)", "schema": { "type": "integer" } }
                ],
                "responses": { "200": { "description": "{conversation_id, spans} or {conversations, kept_spans}" }, "404": error_response("No such conversation in the kept spans") }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics (caxton_server_*, caxton_memory_*, caxton_agent_*); also at /api/v1/metrics and on monitoring.metrics_port",
                "responses": { "200": { "description": "Text exposition format 0.0.4" } }
            }},
            "/api/v1/agents": {
                "get": {
                    "summary": "List agents",
                    "parameters": [{ "name": "type", "in": "query", "schema": { "type": "string", "enum": ["wasm", "config"] } }],
                    "responses": { "200": ok("Agents", "AgentList"), "400": error_response("Unknown type") }
                },
                "post": {
                    "summary": "Deploy a WASM agent (base64 JSON, or a raw application/wasm body with ?name=)",
                    "parameters": [
                        { "name": "name", "in": "query", "description": "Agent name (raw uploads only)", "schema": { "type": "string" } },
                        { "name": "max_memory_bytes", "in": "query", "schema": { "type": "integer" } },
                        { "name": "max_fuel", "in": "query", "schema": { "type": "integer" } },
                        { "name": "max_execution_time_ms", "in": "query", "schema": { "type": "integer" } }
                    ],
                    "requestBody": { "required": true, "content": {
                        "application/json": { "schema": { "$ref": "#/components/schemas/DeployRequest" } },
                        "application/wasm": { "schema": { "type": "string", "format": "binary" } }
                    }},
                    "responses": {
                        "201": ok("Deployed", "Agent"),
                        "400": error_response("Invalid JSON, base64, name, config or component"),
                        "409": error_response("Name already taken"),
                        "413": error_response("Body too large"),
                        "422": error_response("Limits above the ceiling, wrong world, or the agent failed to start")
                    }
                }
            },
            "/api/v1/agents/{agent}": {
                "get": { "summary": "Show one agent", "parameters": [agent_param()],
                    "responses": { "200": ok("The agent", "Agent"), "404": error_response("Unknown agent") } },
                "delete": { "summary": "Remove an agent and its state", "parameters": [agent_param()],
                    "responses": { "200": { "description": "Removed" }, "404": error_response("Unknown agent") } }
            },
            "/api/v1/agents/{agent}/message": { "post": {
                "summary": "Send a message and wait for the reply",
                "description": "With `?stream=true` or `Accept: text/event-stream` the answer is server-sent events: `token` events ({\"text\": …}) as the agent's model writes, then one `reply` event with the usual response body (or one `error` event).",
                "parameters": [agent_param(), {
                    "name": "stream", "in": "query", "required": false,
                    "schema": {"type": "boolean"},
                    "description": "Answer with server-sent events"
                }],
                "requestBody": message_body.clone(),
                "responses": {
                    "200": ok("The reply", "MessageResponse"),
                    "400": error_response("Invalid message"),
                    "404": error_response("Unknown agent"),
                    "409": error_response("Agent suspended"),
                    "502": error_response("The agent trapped or hit its fuel or memory limit"),
                    "503": error_response("Mailbox full"),
                    "504": error_response("The agent exceeded its time limit, or no reply in timeout_ms")
                }
            }},
            "/api/v1/messages": { "post": {
                "summary": "Send a message routed by `receiver` or `capability`",
                "requestBody": message_body,
                "responses": { "200": ok("The reply", "MessageResponse"), "404": error_response("Nobody to deliver to") }
            }},
            "/api/v1/agents/{agent}/ping": { "post": {
                "summary": "Check the agent is alive and can be instantiated",
                "parameters": [agent_param()],
                "responses": { "200": { "description": "Alive" }, "404": error_response("Unknown agent"), "502": error_response("Cannot instantiate") }
            }},
            "/api/v1/agents/{agent}/suspend": { "post": {
                "summary": "Refuse messages until resumed", "parameters": [agent_param()],
                "responses": { "200": ok("The agent", "Agent"), "404": error_response("Unknown agent") }
            }},
            "/api/v1/agents/{agent}/resume": { "post": {
                "summary": "Accept messages again", "parameters": [agent_param()],
                "responses": { "200": ok("The agent", "Agent"), "404": error_response("Unknown agent") }
            }},
            "/api/v1/agents/{agent}/logs": { "get": {
                "summary": "The agent's recent log lines",
                "parameters": [agent_param(), { "name": "tail", "in": "query", "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "Log lines" }, "404": error_response("Unknown agent") }
            }}
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error"], "properties": { "error": {
                "type": "object", "required": ["code", "message"],
                "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "details": {} }
            }}},
            "Health": { "type": "object", "properties": {
                "status": { "type": "string" }, "memory_backend": { "type": "string" }, "agents": { "type": "integer" }
            }},
            "ResourceLimits": { "type": "object", "properties": {
                "max_memory_bytes": { "type": "integer" }, "max_fuel": { "type": "integer" }, "max_execution_time_ms": { "type": "integer" }
            }},
            "DeployRequest": { "type": "object", "required": ["name", "wasm_module"], "properties": {
                "name": { "type": "string" },
                "wasm_module": { "type": "string", "format": "byte", "description": "The component, base64" },
                "resource_limits": { "$ref": "#/components/schemas/ResourceLimits" },
                "config": { "type": "object", "description": "Passed to the agent's init" }
            }},
            "Agent": { "type": "object", "properties": {
                "id": { "type": "string", "format": "uuid" }, "name": { "type": "string" },
                "type": { "type": "string", "enum": ["wasm", "config"] },
                "status": { "type": "string", "enum": ["running", "failed", "suspended"] },
                "capabilities": { "type": "array", "items": { "type": "string" } },
                "description": { "type": "string" },
                "resource_limits": { "$ref": "#/components/schemas/ResourceLimits" },
                "created_at": { "type": "string", "format": "date-time" },
                "stats": { "type": "object" }
            }},
            "AgentList": { "type": "object", "properties": {
                "total": { "type": "integer" }, "agents": { "type": "array", "items": { "$ref": "#/components/schemas/Agent" } }
            }},
            "AclMessage": { "type": "object", "properties": {
                "id": { "type": "string" }, "performative": { "type": "string" }, "sender": { "type": "string" },
                "receiver": { "type": "string" }, "capability": { "type": "string" }, "content": { "type": "string" },
                "content_type": { "type": "string" }, "conversation_id": { "type": "string" },
                "reply_with": { "type": "string" }, "in_reply_to": { "type": "string" }
            }},
            "MessageRequest": { "type": "object", "properties": {
                "message": { "description": "Shorthand: the content of a `request`" },
                "content": {}, "performative": { "type": "string" }, "content_type": { "type": "string" },
                "conversation_id": { "type": "string" }, "reply_with": { "type": "string" }, "sender": { "type": "string" },
                "receiver": { "type": "string" }, "capability": { "type": "string" }, "timeout_ms": { "type": "integer" }
            }},
            "MessageResponse": { "type": "object", "properties": {
                "conversation_id": { "type": "string" },
                "agent": { "type": "object" },
                "reply": { "$ref": "#/components/schemas/AclMessage" },
                "timing": { "type": "object", "properties": {
                    "queue_ms": { "type": "number" }, "execution_ms": { "type": "number" }, "total_ms": { "type": "number" }
                }}
            }}
        }}
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for extra in [memory_paths(), operations_paths(), interop_paths()] {
            if let Value::Object(extra) = extra {
                paths.extend(extra);
            }
        }
        add_common_errors(paths);
    }
    Json(doc)
}

/// Errors any operation can answer, in the one error shape: a request
/// that cannot be read (400), no or a wrong token (401), a token without
/// the scope (403), an unknown name (404), a body too slow (408) or too
/// big (413) or of the wrong type (415), refused input (422), no room
/// (429, 503), a server fault (500). Added where an operation does not
/// describe them itself.
fn add_common_errors(paths: &mut serde_json::Map<String, Value>) {
    const COMMON: [(&str, &str); 11] = [
        ("400", "The request cannot be read (query, path or body)"),
        ("401", "No token, or a token that is not valid here"),
        (
            "403",
            "The token's scope does not allow this, or safe mode refuses writes",
        ),
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
        ("503", "The server is at capacity or shutting down"),
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
