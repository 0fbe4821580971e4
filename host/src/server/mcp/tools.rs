//! The MCP tools, each a translation to REST requests.
//!
//! The nine knowledge-graph tools keep the names, argument shapes and
//! answers of the reference MCP memory server
//! (`@modelcontextprotocol/server-memory`: `entityType`, `relationType`,
//! `entityName`, `contents`…), so a client configured for it works against
//! Caxton unchanged; each takes an optional `scope` (default `global`).
//! `search` and `traverse` add what the reference lacks: ranked hybrid
//! search and graph traversal. `list_agents` and `ask_agent` reach agents.

use axum::http::Method;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
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
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.api
            .call(self.request, method, path, body)
            .await
            .map_err(|ApiFailure { status, message }| match status {
                0 => message,
                status => format!("{message} (HTTP {status})"),
            })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(Method::GET, path, None).await
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
            "relationType": { "type": "string", "description": "The type of the relation, in active voice" }
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
                        "contents": { "type": "array", "items": { "type": "string" }, "description": "The observations to add" }
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
                json!({ "query": { "type": "string", "description": "The search query to match against entity names, types, and observation content" } }),
                &["query"],
            ),
        },
        ToolDef {
            name: "open_nodes",
            description: "Open specific nodes in the knowledge graph by their names",
            schema: object(
                json!({ "names": { "type": "array", "items": { "type": "string" }, "description": "An array of entity names to retrieve" } }),
                &["names"],
            ),
        },
        ToolDef {
            name: "search",
            description: "Ranked hybrid search (semantic + keyword) over the knowledge graph, with scores and the text that matched",
            schema: object(
                json!({
                    "query": { "type": "string" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "description": "Most results (default 10)" }
                }),
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
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ObservationsIn {
    entity_name: String,
    #[serde(alias = "observations")]
    contents: Vec<String>,
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
}
#[derive(Deserialize)]
struct Query {
    query: String,
}
#[derive(Deserialize)]
struct Nothing {}

/// Relations as the REST API takes them.
fn relations_in(relations: &[RelationIn]) -> Vec<Value> {
    relations
        .iter()
        .map(|r| json!({ "from": r.from, "to": r.to, "relation_type": r.relation_type }))
        .collect()
}

/// The reference server's answer to a deletion.
fn deleted(what: &str) -> Value {
    json!({ "success": true, "message": format!("{what} deleted successfully") })
}

fn scope_json(scope: &Option<String>) -> Value {
    json!(scope.as_deref().unwrap_or("global"))
}

/// An entity as the reference memory server writes it.
fn entity_out(entity: &Value) -> Value {
    json!({
        "type": "entity",
        "name": entity["name"],
        "entityType": entity["entity_type"],
        "observations": entity["observations"],
    })
}

fn relation_out(relation: &Value) -> Value {
    json!({
        "type": "relation",
        "from": relation["from"],
        "to": relation["to"],
        "relationType": relation["relation_type"],
    })
}

/// `{entities, relations}` of a REST subgraph, in the reference's shape.
fn graph_out(entities: &[Value], relations: &[Value]) -> Value {
    json!({
        "entities": entities.iter().map(entity_out).collect::<Vec<_>>(),
        "relations": relations.iter().map(relation_out).collect::<Vec<_>>(),
    })
}

fn subgraph_out(graph: &Value) -> Value {
    graph_out(&array(graph, "entities"), &array(graph, "relations"))
}

fn array(value: &Value, key: &str) -> Vec<Value> {
    value[key].as_array().cloned().unwrap_or_default()
}

/// Runs tool `name`; `Err` is a message for the model (a failed tool,
/// not a protocol error).
pub async fn run(rest: &Rest<'_>, name: &str, arguments: Value) -> Result<Value, String> {
    match name {
        "create_entities" => {
            let a: Args<Entities> = parse(name, arguments)?;
            let entities: Vec<Value> = a
                .rest
                .entities
                .iter()
                .map(|e| json!({ "name": e.name, "entity_type": e.entity_type, "observations": e.observations }))
                .collect();
            let summary = rest
                .post(
                    "/api/v1/memory/entities",
                    json!({ "scope": scope_json(&a.scope), "entities": entities }),
                )
                .await?;
            Ok(json!({
                "entities": entities.iter().map(entity_out).collect::<Vec<_>>(),
                "created": summary["created"],
                "updated": summary["updated"],
            }))
        }
        "create_relations" => {
            let a: Args<Relations> = parse(name, arguments)?;
            let relations = relations_in(&a.rest.relations);
            let summary = rest
                .post(
                    "/api/v1/memory/relations",
                    json!({ "scope": scope_json(&a.scope), "relations": relations }),
                )
                .await?;
            Ok(json!({
                "relations": relations.iter().map(relation_out).collect::<Vec<_>>(),
                "created": summary["created"],
            }))
        }
        "add_observations" => {
            let a: Args<Observations> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            let mut results = Vec::new();
            for item in a.rest.observations {
                // The reference answers with the observations that were new.
                let known = rest
                    .post(
                        "/api/v1/memory/nodes",
                        json!({ "scope": scope, "names": [item.entity_name] }),
                    )
                    .await?;
                let Some(entity) = array(&known, "entities").into_iter().next() else {
                    return Err(format!(
                        "Entity with name {} not found (create it with create_entities)",
                        item.entity_name
                    ));
                };
                let existing = array(&entity, "observations");
                rest.post(
                    "/api/v1/memory/observations",
                    json!({ "scope": scope, "entity": item.entity_name, "observations": item.contents }),
                )
                .await?;
                let added: Vec<&String> = item
                    .contents
                    .iter()
                    .filter(|c| !existing.iter().any(|e| e.as_str() == Some(c.as_str())))
                    .collect();
                results.push(json!({ "entityName": item.entity_name, "addedObservations": added }));
            }
            Ok(json!({ "results": results }))
        }
        "delete_entities" => {
            let a: Args<EntityNames> = parse(name, arguments)?;
            rest.post(
                "/api/v1/memory/entities/delete",
                json!({ "scope": scope_json(&a.scope), "names": a.rest.entity_names }),
            )
            .await?;
            Ok(deleted("Entities"))
        }
        "delete_observations" => {
            let a: Args<Deletions> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            for item in a.rest.deletions {
                rest.post(
                    "/api/v1/memory/observations/delete",
                    json!({ "scope": scope, "entity": item.entity_name, "observations": item.contents }),
                )
                .await?;
            }
            Ok(deleted("Observations"))
        }
        "delete_relations" => {
            let a: Args<Relations> = parse(name, arguments)?;
            let relations = relations_in(&a.rest.relations);
            rest.post(
                "/api/v1/memory/relations/delete",
                json!({ "scope": scope_json(&a.scope), "relations": relations }),
            )
            .await?;
            Ok(deleted("Relations"))
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
                let page = rest.get(&path).await?;
                entities.extend(array(&page, "entities"));
                relations.extend(array(&page, "relations"));
                cursor = page["next_cursor"].as_str().map(str::to_string);
                if cursor.is_none() || entities.len() >= MAX_GRAPH_ENTITIES {
                    break;
                }
            }
            Ok(graph_out(&entities, &relations))
        }
        "search_nodes" => {
            let a: Args<Query> = parse(name, arguments)?;
            let scope = scope_json(&a.scope);
            let hits = rest
                .post(
                    "/api/v1/memory/search",
                    json!({ "scope": scope, "query": a.rest.query, "limit": 20 }),
                )
                .await?;
            let names: Vec<Value> = array(&hits, "results")
                .iter()
                .map(|h| h["entity"]["name"].clone())
                .collect();
            if names.is_empty() {
                return Ok(graph_out(&[], &[]));
            }
            // The matches, and the relations among them.
            let graph = rest
                .post(
                    "/api/v1/memory/nodes",
                    json!({ "scope": scope, "names": names }),
                )
                .await?;
            Ok(subgraph_out(&graph))
        }
        "open_nodes" => {
            let a: Args<Names> = parse(name, arguments)?;
            let graph = rest
                .post(
                    "/api/v1/memory/nodes",
                    json!({ "scope": scope_json(&a.scope), "names": a.rest.names }),
                )
                .await?;
            Ok(subgraph_out(&graph))
        }
        // The REST request is the arguments, with the default scope.
        "search" | "traverse" => {
            let mut arguments = arguments;
            if let Some(map) = arguments.as_object_mut() {
                map.entry("scope").or_insert(json!("global"));
            }
            rest.post(&format!("/api/v1/memory/{name}"), arguments)
                .await
        }
        "list_agents" => {
            let list = rest.get("/api/v1/agents").await?;
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
            Ok(json!({ "agents": agents }))
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
            let answer = rest
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
            Ok(json!({
                "agent": answer["agent"]["name"],
                "answer": content,
                "conversation_id": answer["conversation_id"],
            }))
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
}
