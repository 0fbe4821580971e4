//! The MCP tools, each a translation to REST requests.
//!
//! The nine knowledge-graph tools keep the names, argument shapes and
//! answers of the reference MCP memory server
//! (`@modelcontextprotocol/server-memory`: `entityType`, `relationType`,
//! `entityName`, `contents`…), so a client configured for it works against
//! Caxton unchanged; each takes an optional `scope` (default `global`).
//! `search` and `traverse` add what the reference lacks: ranked hybrid
//! search and graph traversal. `list_agents` and `ask_agent` reach agents.

use axum::body::Bytes;
use axum::http::Method;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Api, ApiFailure};
use crate::server::percent_encode;

/// Most entities `read_graph` returns (it pages through the REST API).
const MAX_GRAPH_ENTITIES: usize = 10_000;

/// One tool as `tools/list` shows it.
pub struct ToolDef {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: Value,
}

/// A REST API and the request whose credentials its calls carry.
pub struct Rest<'a> {
    pub api: &'a dyn Api,
    pub request: Option<&'a Parts>,
}

impl Rest<'_> {
    /// The answer's body as the server wrote it.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Bytes, String> {
        self.api
            .call(self.request, method, path, body)
            .await
            .map_err(|ApiFailure { status, message }| match status {
                0 => message,
                status => format!("{message} (HTTP {status})"),
            })
    }

    /// The answer read into `T`: only what a tool uses is kept.
    async fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, String> {
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("the answer to {path} has an unexpected shape: {e}"))
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> Result<T, String> {
        self.call_as(Method::POST, path, Some(body)).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        self.call_as(Method::GET, path, None).await
    }
}

/// What a tool answers: its JSON, as text and (for an object) as MCP
/// structured content, which the spec asks servers to send together.
pub struct Output {
    pub text: String,
    pub structured: Option<Value>,
}

impl Output {
    fn value(value: Value) -> Self {
        let text = value.to_string();
        let structured = value.is_object().then_some(value);
        Output { text, structured }
    }

    /// A typed answer, written once as text and once as a tree (no
    /// round trip through text).
    fn of<T: Serialize>(answer: &T) -> Result<Self, String> {
        let unwritable = |e: serde_json::Error| format!("cannot write the answer: {e}");
        let text = serde_json::to_string(answer).map_err(unwritable)?;
        let structured = serde_json::to_value(answer).map_err(unwritable)?;
        Ok(Output {
            text,
            structured: structured.is_object().then_some(structured),
        })
    }

    /// A REST answer passed on as it is: its bytes are the text.
    fn verbatim(bytes: Bytes) -> Result<Self, String> {
        let structured: Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the server's answer is not JSON: {e}"))?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("the server's answer is not UTF-8: {e}"))?;
        Ok(Output {
            text,
            structured: structured.is_object().then_some(structured),
        })
    }
}

const NAMES: [&str; 13] = [
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
    "search",
    "traverse",
    "list_agents",
    "ask_agent",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn scope_property() -> Value {
    json!({
        "type": "string",
        "description": "Memory scope: `global` (default), `workspace` or `agent:NAME`"
    })
}

fn relation_items() -> Value {
    json!({
        "type": "object",
        "properties": {
            "from": { "type": "string", "description": "The name of the entity where the relation starts" },
            "to": { "type": "string", "description": "The name of the entity where the relation ends" },
            "relationType": { "type": "string", "description": "The type of the relation, in active voice" },
            "validFrom": { "type": "string", "description": "Optional: when the relation became true in the world (RFC 3339 or YYYY-MM-DD)" }
        },
        "required": ["from", "to", "relationType"]
    })
}

fn object(properties: Value, required: &[&str]) -> Value {
    let mut properties = properties;
    properties["scope"] = scope_property();
    json!({ "type": "object", "properties": properties, "required": required })
}

/// Every tool, in `tools/list` order.
pub fn all() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "create_entities",
            description: "Create multiple new entities in the knowledge graph (an existing name gets the new observations merged in)",
            schema: object(
                json!({ "entities": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string", "description": "The name of the entity" },
                        "entityType": { "type": "string", "description": "The type of the entity" },
                        "observations": { "type": "array", "items": { "type": "string" },
                            "description": "Observations about the entity" }
                    },
                    "required": ["name", "entityType", "observations"]
                }}}),
                &["entities"],
            ),
        },
        ToolDef {
            name: "create_relations",
            description: "Create multiple new relations between entities in the knowledge graph. Relations should be in active voice",
            schema: object(
                json!({ "relations": { "type": "array", "items": relation_items() } }),
                &["relations"],
            ),
        },
        ToolDef {
            name: "add_observations",
            description: "Add new observations to existing entities in the knowledge graph",
            schema: object(
                json!({ "observations": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "entityName": { "type": "string", "description": "The name of the entity to add the observations to" },
                        "contents": { "type": "array", "items": { "type": "string" }, "description": "The observations to add" },
                        "validFrom": { "type": "string", "description": "Optional: when they became true in the world (RFC 3339 or YYYY-MM-DD)" },
                        "supersedes": { "type": "array", "items": { "type": "string" }, "description": "Optional: observations of the entity these replace (retired, kept in history)" }
                    },
                    "required": ["entityName", "contents"]
                }}}),
                &["observations"],
            ),
        },
        ToolDef {
            name: "delete_entities",
            description: "Delete multiple entities and their associated relations from the knowledge graph",
            schema: object(
                json!({ "entityNames": { "type": "array", "items": { "type": "string" },
                    "description": "The names of the entities to delete" } }),
                &["entityNames"],
            ),
        },
        ToolDef {
            name: "delete_observations",
            description: "Delete specific observations from entities in the knowledge graph",
            schema: object(
                json!({ "deletions": { "type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "entityName": { "type": "string", "description": "The name of the entity holding the observations" },
                        "observations": { "type": "array", "items": { "type": "string" }, "description": "The observations to delete" }
                    },
                    "required": ["entityName", "observations"]
                }}}),
                &["deletions"],
            ),
        },
        ToolDef {
            name: "delete_relations",
            description: "Delete multiple relations from the knowledge graph",
            schema: object(
                json!({ "relations": { "type": "array", "items": relation_items(),
                "description": "The relations to delete" } }),
                &["relations"],
            ),
        },
        ToolDef {
            name: "read_graph",
            description: "Read the entire knowledge graph",
            schema: object(json!({}), &[]),
        },
        ToolDef {
            name: "search_nodes",
            description: "Search for nodes in the knowledge graph based on a query (hybrid: meaning and keywords)",
            schema: object(
                at_properties(
                    json!({ "query": { "type": "string", "description": "The search query to match against entity names, types, and observation content" } }),
                ),
                &["query"],
            ),
        },
        ToolDef {
            name: "open_nodes",
            description: "Open specific nodes in the knowledge graph by their names",
            schema: object(
                at_properties(
                    json!({ "names": { "type": "array", "items": { "type": "string" }, "description": "An array of entity names to retrieve" } }),
                ),
                &["names"],
            ),
        },
        ToolDef {
            name: "search",
            description: "Ranked hybrid search (semantic + keyword) over the knowledge graph, with scores and the text that matched",
            schema: object(
                at_properties(json!({
                    "query": { "type": "string" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "description": "Most results (default 10)" }
                })),
                &["query"],
            ),
        },
        ToolDef {
            name: "traverse",
            description: "Walk the knowledge graph from an entity, breadth first, and return what is reached with its distance",
            schema: object(
                json!({
                    "start": { "type": "string", "description": "Name of the entity to start from" },
                    "max_depth": { "type": "integer", "minimum": 0, "description": "How many hops (default 2)" },
                    "relation_types": { "type": "array", "items": { "type": "string" }, "description": "Follow only these (default: all)" },
                    "direction": { "type": "string", "enum": ["outgoing", "incoming", "both"] },
                    "min_strength": { "type": "number" }
                }),
                &["start"],
            ),
        },
        ToolDef {
            name: "list_agents",
            description: "The agents running on this Caxton server, with what each can do",
            schema: json!({ "type": "object", "properties": {} }),
        },
        ToolDef {
            name: "ask_agent",
            description: "Send a message to a Caxton agent (by name; list_agents shows them) and return its answer",
            schema: json!({
                "type": "object",
                "properties": {
                    "agent": { "type": "string", "description": "The agent's name" },
                    "message": { "type": "string", "description": "What to ask" },
                    "conversation_id": { "type": "string", "description": "Continue this conversation (config agents remember it)" }
                },
                "required": ["agent", "message"]
            }),
        },
    ]
}

fn parse<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, String> {
    serde_json::from_value(arguments)
        .map_err(|e| format!("invalid arguments for `{tool}`: {e}; tools/list shows its schema"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EntityIn {
    name: String,
    entity_type: String,
    #[serde(default)]
    observations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RelationIn {
    from: String,
    to: String,
    relation_type: String,
    /// Optional: when the relation became true in the world.
    #[serde(default)]
    valid_from: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ObservationsIn {
    entity_name: String,
    #[serde(alias = "observations")]
    contents: Vec<String>,
    /// Optional: when the observations became true in the world.
    #[serde(default)]
    valid_from: Option<String>,
    /// Optional: observations of the entity these replace (retired, kept
    /// in history).
    #[serde(default)]
    supersedes: Vec<String>,
}

/// A tool's arguments with the `scope` every memory tool takes.
#[derive(Deserialize)]
struct Args<T> {
    #[serde(default)]
    scope: Option<String>,
    #[serde(flatten)]
    rest: T,
}

#[derive(Deserialize)]
struct Entities {
    entities: Vec<EntityIn>,
}
#[derive(Deserialize)]
struct Relations {
    relations: Vec<RelationIn>,
}
#[derive(Deserialize)]
struct Observations {
    observations: Vec<ObservationsIn>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityNames {
    entity_names: Vec<String>,
}
#[derive(Deserialize)]
struct Deletions {
    deletions: Vec<ObservationsIn>,
}
#[derive(Deserialize)]
struct Names {
    names: Vec<String>,
    #[serde(flatten)]
    at: AtIn,
}
#[derive(Deserialize)]
struct Query {
    query: String,
    #[serde(flatten)]
    at: AtIn,
}
/// The optional point in time of a read (absent: current facts, as the
/// reference server answers).
#[derive(Deserialize, Clone)]
struct AtIn {
    #[serde(default)]
    as_of: Option<String>,
    #[serde(default)]
    known_at: Option<String>,
}

impl AtIn {
    /// Adds the point in time to a REST body, when one was given.
    fn into_body(self, mut body: Value) -> Value {
        if let Some(t) = self.as_of {
            body["as_of"] = json!(t);
        }
        if let Some(t) = self.known_at {
            body["known_at"] = json!(t);
        }
        body
    }
}

/// The properties of a read's point in time, in a tool's schema.
fn at_properties(mut properties: Value) -> Value {
    properties["as_of"] = json!({ "type": "string", "description": "Optional: what was true in the world at this time (RFC 3339 or YYYY-MM-DD), replaced facts included" });
    properties["known_at"] =
        json!({ "type": "string", "description": "Optional: what memory held at this time" });
    properties
}
#[derive(Deserialize)]
struct Nothing {}

/// Relations as the REST API takes them.
fn relations_in(relations: &[RelationIn]) -> Vec<Value> {
    relations
        .iter()
        .map(|r| {
            let mut relation =
                json!({ "from": r.from, "to": r.to, "relation_type": r.relation_type });
            if let Some(t) = &r.valid_from {
                relation["valid_from"] = json!(t);
            }
            relation
        })
        .collect()
}

/// The reference server's answer to a deletion.
fn deleted(what: &str) -> Value {
    json!({ "success": true, "message": format!("{what} deleted successfully") })
}

fn scope_json(scope: &Option<String>) -> Value {
    json!(scope.as_deref().unwrap_or("global"))
}

/// An entity in a REST answer: what the reference shape needs of it.
#[derive(Deserialize)]
struct EntityRest {
    name: String,
    entity_type: String,
    #[serde(default)]
    observations: Vec<String>,
}

#[derive(Deserialize)]
struct RelationRest {
    from: String,
    to: String,
    relation_type: String,
}

/// A REST subgraph (`/memory/nodes`), or a page of the graph.
#[derive(Deserialize)]
struct GraphRest {
    #[serde(default)]
    entities: Vec<EntityRest>,
    #[serde(default)]
    relations: Vec<RelationRest>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A search answer, read for its entities' names only.
#[derive(Deserialize)]
struct HitsRest {
    results: Vec<HitRest>,
}

#[derive(Deserialize)]
struct HitRest {
    entity: NamedRest,
}

#[derive(Deserialize)]
struct NamedRest {
    name: String,
}

/// An entity as the reference memory server writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EntityOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    entity_type: &'a str,
    observations: &'a [String],
}

impl<'a> EntityOut<'a> {
    fn new(name: &'a str, entity_type: &'a str, observations: &'a [String]) -> Self {
        EntityOut {
            kind: "entity",
            name,
            entity_type,
            observations,
        }
    }
}

/// A relation as the reference memory server writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RelationOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    from: &'a str,
    to: &'a str,
    relation_type: &'a str,
}

impl<'a> RelationOut<'a> {
    fn new(from: &'a str, to: &'a str, relation_type: &'a str) -> Self {
        RelationOut {
            kind: "relation",
            from,
            to,
            relation_type,
        }
    }
}

/// `{entities, relations}` in the reference's shape.
#[derive(Serialize)]
struct GraphOut<'a> {
    entities: Vec<EntityOut<'a>>,
    relations: Vec<RelationOut<'a>>,
}

fn graph_out<'a>(entities: &'a [EntityRest], relations: &'a [RelationRest]) -> GraphOut<'a> {
    GraphOut {
        entities: entities
            .iter()
            .map(|e| EntityOut::new(&e.name, &e.entity_type, &e.observations))
            .collect(),
        relations: relations
            .iter()
            .map(|r| RelationOut::new(&r.from, &r.to, &r.relation_type))
            .collect(),
    }
}

fn array(value: &Value, key: &str) -> Vec<Value> {
    value[key].as_array().cloned().unwrap_or_default()
}

/// Runs tool `name`; `Err` is a message for the model (a failed tool,
/// not a protocol error).
pub async fn run(rest: &Rest<'_>, name: &str, arguments: Value) -> Result<Output, String> {
    match name {
        "create_entities" => {
            let a: Args<Entities> = parse(name, arguments)?;
            let entities = &a.rest.entities;
            let body: Vec<Value> = entities
                .iter()
                .map(|e| json!({ "name": e.name, "entity_type": e.entity_type, "observations": e.observations }))
                .collect();
            let summary: Value = rest
                .post(
                    "/api/v1/memory/entities",
                    json!({ "scope": scope_json(&a.scope), "entities": body }),
                )
                .await?;
            let out: Vec<EntityOut> = entities
                .iter()
                .map(|e| EntityOut::new(&e.name, &e.entity_type, &e.observations))
                .collect();
            Ok(Output::value(json!({
                "entities": out,
                "created": summary["created"],
                "updated": summary["updated"],
            })))
        }
        "create_relations" => {
            let a: Args<Relations> = parse(name, arguments)?;
            let summary: Value = rest
                .post(
                    "/api/v1/memory/relations",
                    json!({ "scope": scope_json(&a.scope), "relations": relations_in(&a.rest.relations) }),
                )
                .await?;
            let out: Vec<RelationOut> = a
                .rest
                .relations
                .iter()
                .map(|r| RelationOut::new(&r.from, &r.to, &r.relation_type))
                .collect();
            Ok(Output::value(
                json!({ "relations": out, "created": summary["created"] }),
            ))
        }
        "add_observations" => {
            let a: Args<Observations> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            let mut results = Vec::new();
            for item in a.rest.observations {
                // The reference answers with the observations that were new.
                let known: GraphRest = rest
                    .post(
                        "/api/v1/memory/nodes",
                        json!({ "scope": scope, "names": [item.entity_name] }),
                    )
                    .await?;
                let Some(entity) = known.entities.into_iter().next() else {
                    return Err(format!(
                        "Entity with name {} not found (create it with create_entities)",
                        item.entity_name
                    ));
                };
                let mut body = json!({ "scope": scope, "entity": item.entity_name, "observations": item.contents });
                if let Some(t) = &item.valid_from {
                    body["valid_from"] = json!(t);
                }
                if !item.supersedes.is_empty() {
                    body["supersede"] = json!(item.supersedes);
                }
                let _: IgnoredAny = rest.post("/api/v1/memory/observations", body).await?;
                let added: Vec<&String> = item
                    .contents
                    .iter()
                    .filter(|c| !entity.observations.contains(c))
                    .collect();
                results.push(json!({ "entityName": item.entity_name, "addedObservations": added }));
            }
            Ok(Output::value(json!({ "results": results })))
        }
        "delete_entities" => {
            let a: Args<EntityNames> = parse(name, arguments)?;
            let _: IgnoredAny = rest
                .post(
                    "/api/v1/memory/entities/delete",
                    json!({ "scope": scope_json(&a.scope), "names": a.rest.entity_names }),
                )
                .await?;
            Ok(Output::value(deleted("Entities")))
        }
        "delete_observations" => {
            let a: Args<Deletions> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            for item in a.rest.deletions {
                let _: IgnoredAny = rest
                    .post(
                        "/api/v1/memory/observations/delete",
                        json!({ "scope": scope, "entity": item.entity_name, "observations": item.contents }),
                    )
                    .await?;
            }
            Ok(Output::value(deleted("Observations")))
        }
        "delete_relations" => {
            let a: Args<Relations> = parse(name, arguments)?;
            let _: IgnoredAny = rest
                .post(
                    "/api/v1/memory/relations/delete",
                    json!({ "scope": scope_json(&a.scope), "relations": relations_in(&a.rest.relations) }),
                )
                .await?;
            Ok(Output::value(deleted("Relations")))
        }
        "read_graph" => {
            let a: Args<Nothing> = parse(name, arguments)?;
            let scope = percent_encode(a.scope.as_deref().unwrap_or("global"));
            let (mut entities, mut relations) = (Vec::new(), Vec::new());
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/api/v1/memory/graph?scope={scope}&limit=500");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={}", percent_encode(c)));
                }
                let page: GraphRest = rest.get(&path).await?;
                entities.extend(page.entities);
                relations.extend(page.relations);
                cursor = page.next_cursor;
                if cursor.is_none() || entities.len() >= MAX_GRAPH_ENTITIES {
                    break;
                }
            }
            Output::of(&graph_out(&entities, &relations))
        }
        "search_nodes" => {
            let a: Args<Query> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            let at = a.rest.at;
            let body = json!({ "scope": scope, "query": a.rest.query, "limit": 20 });
            let hits: HitsRest = rest
                .post("/api/v1/memory/search", at.clone().into_body(body))
                .await?;
            if hits.results.is_empty() {
                return Output::of(&graph_out(&[], &[]));
            }
            let names: Vec<String> = hits.results.into_iter().map(|h| h.entity.name).collect();
            // The matches, and the relations among them.
            let nodes = at.into_body(json!({ "scope": scope, "names": names }));
            let graph: GraphRest = rest.post("/api/v1/memory/nodes", nodes).await?;
            Output::of(&graph_out(&graph.entities, &graph.relations))
        }
        "open_nodes" => {
            let a: Args<Names> = parse(name, arguments)?;
            let body = a
                .rest
                .at
                .into_body(json!({ "scope": scope_json(&a.scope), "names": a.rest.names }));
            let graph: GraphRest = rest.post("/api/v1/memory/nodes", body).await?;
            Output::of(&graph_out(&graph.entities, &graph.relations))
        }
        // The REST request is the arguments, with the default scope, and
        // its answer is the tool's.
        "search" | "traverse" => {
            let mut arguments = arguments;
            if let Some(map) = arguments.as_object_mut() {
                map.entry("scope").or_insert(json!("global"));
            }
            let path = format!("/api/v1/memory/{name}");
            Output::verbatim(rest.call(Method::POST, &path, Some(arguments)).await?)
        }
        "list_agents" => {
            let list: Value = rest.get("/api/v1/agents").await?;
            let agents: Vec<Value> = array(&list, "agents")
                .iter()
                .map(|a| {
                    json!({
                        "name": a["name"],
                        "type": a["type"],
                        "status": a["status"],
                        "description": a["description"],
                        "capabilities": a["capabilities"],
                    })
                })
                .collect();
            Ok(Output::value(json!({ "agents": agents })))
        }
        "ask_agent" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Ask {
                agent: String,
                message: String,
                #[serde(default)]
                conversation_id: Option<String>,
            }
            let a: Ask = parse(name, arguments)?;
            let mut body = json!({ "message": a.message });
            if let Some(id) = a.conversation_id {
                body["conversation_id"] = json!(id);
            }
            let answer: Value = rest
                .post(
                    &format!("/api/v1/agents/{}/message", percent_encode(&a.agent)),
                    body,
                )
                .await?;
            let reply = &answer["reply"];
            let performative = reply["performative"].as_str().unwrap_or("inform");
            let content = reply["content"].as_str().unwrap_or("").to_string();
            if matches!(performative, "failure" | "refuse" | "not-understood") {
                return Err(format!(
                    "agent `{}` answered {performative}: {content}",
                    a.agent
                ));
            }
            Ok(Output::value(json!({
                "agent": answer["agent"]["name"],
                "answer": content,
                "conversation_id": answer["conversation_id"],
            })))
        }
        other => Err(format!("no tool named `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_tool_is_dispatched_and_has_an_object_schema() {
        let defs = all();
        assert_eq!(defs.len(), NAMES.len());
        for def in defs {
            assert!(exists(def.name), "{} is listed but not known", def.name);
            assert_eq!(def.schema["type"], "object", "{}", def.name);
        }
    }

    #[test]
    fn reference_shapes_are_parsed_and_unknown_fields_refused() {
        let a: Args<Observations> = parse(
            "add_observations",
            json!({"observations": [{"entityName": "a", "contents": ["x"]}]}),
        )
        .expect("parses");
        assert_eq!(a.rest.observations[0].entity_name, "a");
        let e = parse::<Args<EntityNames>>("delete_entities", json!({"names": ["a"]}))
            .err()
            .expect("refused");
        assert!(e.contains("entityNames"), "{e}");
    }

    #[test]
    fn answers_take_the_reference_shape_and_rest_text_passes_through() {
        let graph: GraphRest = serde_json::from_value(json!({
            "entities": [{"name": "Ada", "entity_type": "person", "observations": ["wrote notes"],
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}],
            "relations": [{"from": "Ada", "to": "Ada", "relation_type": "knows", "strength": 1.0}]
        }))
        .expect("a REST subgraph");
        let out = Output::of(&graph_out(&graph.entities, &graph.relations)).expect("writes");
        let expected = json!({
            "entities": [{"type": "entity", "name": "Ada", "entityType": "person",
                "observations": ["wrote notes"]}],
            "relations": [{"type": "relation", "from": "Ada", "to": "Ada", "relationType": "knows"}]
        });
        assert_eq!(out.structured.as_ref(), Some(&expected));
        let text: Value = serde_json::from_str(&out.text).expect("the text is JSON");
        assert_eq!(text, expected);

        let rest = Bytes::from_static(br#"{"results": [ {"score": 0.5} ]}"#);
        let out = Output::verbatim(rest).expect("JSON");
        assert_eq!(out.text, r#"{"results": [ {"score": 0.5} ]}"#);
        assert_eq!(out.structured, Some(json!({"results": [{"score": 0.5}]})));
        let refused = Output::verbatim(Bytes::from_static(b"<html>")).err();
        assert!(refused.is_some_and(|e| e.contains("not JSON")));
    }
}
