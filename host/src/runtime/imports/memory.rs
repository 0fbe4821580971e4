//! `caxton:agent/memory`: the knowledge graph, scoped to the calling agent.
//! `agent` scope is the agent's own; `workspace` and `global` need a grant
//! (`memory_grants` at deploy time).

use std::sync::Arc;

use serde_json::json;

use crate::memory::MemoryService;
use crate::memory::model::{self as m, MemoryError, ScopeKey};
use crate::runtime::bindings::caxton::agent0_1_0::memory::{
    self, Direction, Entity, Relation, Scope, SearchHit, Subgraph, TraverseOptions,
};
use crate::runtime::bindings::caxton::agent0_1_0::types::Error;
use crate::runtime::{AgentContext, HostState};
use crate::trace::SpanKind;

fn to_wit_error(e: MemoryError) -> Error {
    match e {
        MemoryError::Invalid(t) => Error::InvalidInput(t),
        MemoryError::NotFound(t) => Error::NotFound(t),
        MemoryError::Denied(t) => Error::Denied(t),
        MemoryError::Storage(t) => Error::Internal(t),
        MemoryError::Unavailable(t) => Error::Unavailable(t),
    }
}

pub(super) fn scope_key(agent: &AgentContext, scope: Scope) -> Result<ScopeKey, Error> {
    let (key, name) = match scope {
        Scope::Agent => return Ok(ScopeKey::agent(&agent.id)),
        Scope::Workspace => (ScopeKey::workspace(), "workspace"),
        Scope::Global => (ScopeKey::global(), "global"),
    };
    if agent.memory_grants.iter().any(|g| g == name) {
        Ok(key)
    } else {
        Err(Error::Denied(format!(
            "agent `{}` is not granted the `{name}` memory scope; redeploy it with \"memory_grants\": [\"{name}\"]",
            agent.name
        )))
    }
}

/// What a memory call takes from the message being handled: its span, the
/// recording it goes into, the replay that may answer it. (`HostState` is
/// not `Sync`: this is gathered before the call awaits.)
pub(super) struct Call {
    agent: Arc<AgentContext>,
    span: Option<crate::trace::Started>,
    recording: Option<(Arc<crate::recordings::Recorder>, String)>,
    replay: Option<Arc<crate::recordings::replay::ReplaySession>>,
}

impl HostState {
    pub(super) fn memory_call(&self) -> Call {
        let recording = self
            .recorded_in()
            .map(|(recorder, conversation)| (recorder.clone(), conversation.to_string()));
        Call {
            agent: self.agent.clone(),
            span: self.child_span(),
            recording,
            replay: self.replay(),
        }
    }
}

/// Whether `function` changes memory (a replay never applies a write the
/// recording does not answer).
fn writes(function: &str) -> bool {
    !matches!(
        function,
        "open-nodes" | "search" | "traverse" | "search-at" | "open-nodes-at" | "history"
    )
}

impl Call {
    /// Whether the call's arguments are wanted (to record or to match).
    pub(super) fn wants_arguments(&self) -> bool {
        self.recording.is_some() || self.replay.is_some()
    }

    /// Runs the memory call `function` on the blocking pool (redb commits
    /// fsync), as a span of the message being handled; recorded with
    /// `arguments`, or answered from the recording during a replay.
    pub(super) async fn run<T>(
        self,
        function: &str,
        arguments: Option<serde_json::Value>,
        f: impl FnOnce(&MemoryService) -> m::Result<T> + Send + 'static,
    ) -> Result<T, Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let arguments = arguments.unwrap_or_default();
        if let Some(replay) = &self.replay {
            match replay.memory_call(function, &arguments) {
                Some(answer) => return served(answer),
                None if writes(function) && !replay.is_live() => {
                    return Err(Error::Unavailable(format!(
                        "replay: this `{function}` differs from the recorded one, and a replay does not change memory"
                    )));
                }
                None => {}
            }
        }
        let memory = self.agent.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || f(&memory.memory))
            .await
            .unwrap_or_else(|e| Err(MemoryError::Storage(format!("memory task failed: {e}"))));
        if let Some((recorder, conversation)) = &self.recording {
            recorder.record(
                conversation,
                crate::recordings::Event::Memory {
                    agent: self.agent.name.clone(),
                    function: function.into(),
                    arguments,
                    result: result
                        .as_ref()
                        .ok()
                        .and_then(|r| serde_json::to_value(r).ok()),
                    error: result
                        .as_ref()
                        .err()
                        .and_then(|e| serde_json::to_value(e).ok()),
                    elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
                },
            );
        }
        let result = result.map_err(to_wit_error);
        if let Some(span) = self.span {
            let kind = SpanKind::Import {
                interface: "memory".into(),
                function: function.into(),
            };
            let error = result.as_ref().err().map(|e| format!("{e:?}"));
            self.agent.trace.finish(span, kind, error.as_deref());
        }
        result
    }
}

/// A recorded answer (JSON text of the result or of the memory error) as
/// the call's outcome.
fn served<T: serde::de::DeserializeOwned>(answer: Result<String, String>) -> Result<T, Error> {
    match answer {
        Ok(json) => serde_json::from_str(&json).map_err(|e| {
            Error::Internal(format!(
                "replay: the recorded memory answer does not fit: {e}"
            ))
        }),
        Err(json) => Err(to_wit_error(
            serde_json::from_str(&json).unwrap_or(MemoryError::Storage(json)),
        )),
    }
}

fn from_wit_entity(e: Entity) -> Result<m::EntityInput, Error> {
    let metadata = match e.metadata_json {
        Some(text) => Some(serde_json::from_str(&text).map_err(|err| {
            Error::InvalidInput(format!("metadata-json of `{}` is not JSON: {err}", e.name))
        })?),
        None => None,
    };
    Ok(m::EntityInput {
        name: e.name,
        entity_type: e.entity_type,
        observations: e.observations,
        metadata,
        valid_from: None,
        valid_to: None,
    })
}

pub(super) fn to_wit_hit(h: m::SearchHit) -> SearchHit {
    SearchHit {
        entity: to_wit_entity(h.entity),
        score: h.score,
        matched: Some(h.matched),
    }
}

/// A WIT relation named for deletion or retirement: its triple.
pub(super) fn to_relation_key(r: Relation) -> m::RelationKey {
    m::RelationKey {
        from: r.source,
        to: r.target,
        relation_type: r.relation_type,
    }
}

pub(super) fn to_wit_entity(e: m::Entity) -> Entity {
    Entity {
        name: e.name,
        entity_type: e.entity_type,
        observations: e.observations,
        metadata_json: e.metadata.map(|v| v.to_string()),
    }
}

pub(super) fn from_wit_relation(r: Relation) -> m::Relation {
    m::Relation {
        from: r.source,
        to: r.target,
        relation_type: r.relation_type,
        strength: r.strength,
        confidence: r.confidence,
        valid_from: None,
        valid_to: None,
    }
}

fn to_wit_relation(r: m::Relation) -> Relation {
    Relation {
        source: r.from,
        target: r.to,
        relation_type: r.relation_type,
        strength: r.strength,
        confidence: r.confidence,
    }
}

impl memory::Host for HostState {
    async fn create_entities(&mut self, scope: Scope, entities: Vec<Entity>) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let inputs = entities
            .into_iter()
            .map(from_wit_entity)
            .collect::<Result<Vec<_>, _>>()?;
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "entities": inputs}));
        call.run("create-entities", arguments, move |mem| {
            mem.create_entities(&scope, &inputs).map(|s| s.created)
        })
        .await
    }

    async fn add_observations(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(
            || json!({"scope": scope.as_str(), "entity": entity, "observations": observations}),
        );
        call.run("add-observations", arguments, move |mem| {
            mem.add_observations(&scope, &entity, &observations)
        })
        .await
    }

    async fn create_relations(
        &mut self,
        scope: Scope,
        relations: Vec<Relation>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let relations: Vec<m::Relation> = relations.into_iter().map(from_wit_relation).collect();
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "relations": relations}));
        call.run("create-relations", arguments, move |mem| {
            mem.create_relations(&scope, &relations).map(|s| s.created)
        })
        .await
    }

    async fn delete_entities(&mut self, scope: Scope, names: Vec<String>) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "names": names}));
        call.run("delete-entities", arguments, move |mem| {
            mem.delete_entities(&scope, &names)
        })
        .await
    }

    async fn delete_observations(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(
            || json!({"scope": scope.as_str(), "entity": entity, "observations": observations}),
        );
        call.run("delete-observations", arguments, move |mem| {
            mem.delete_observations(&scope, &entity, &observations)
        })
        .await
    }

    async fn delete_relations(
        &mut self,
        scope: Scope,
        relations: Vec<Relation>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let keys: Vec<m::RelationKey> = relations.into_iter().map(to_relation_key).collect();
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "relations": keys}));
        call.run("delete-relations", arguments, move |mem| {
            mem.delete_relations(&scope, &keys)
        })
        .await
    }

    async fn open_nodes(&mut self, scope: Scope, names: Vec<String>) -> Result<Vec<Entity>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "names": names}));
        let graph = call
            .run("open-nodes", arguments, move |mem| {
                mem.open_nodes(&scope, &names)
            })
            .await?;
        Ok(graph.entities.into_iter().map(to_wit_entity).collect())
    }

    async fn search(
        &mut self,
        scope: Scope,
        query: String,
        limit: u32,
    ) -> Result<Vec<SearchHit>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "query": query, "limit": limit}));
        let hits = call
            .run("search", arguments, move |mem| {
                mem.search(&[scope], &query, limit as usize)
            })
            .await?;
        Ok(hits.into_iter().map(to_wit_hit).collect())
    }

    async fn traverse(
        &mut self,
        scope: Scope,
        start: String,
        options: TraverseOptions,
    ) -> Result<Subgraph, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let options = m::TraverseOptions {
            max_depth: options.max_depth,
            relation_types: options.relation_types,
            direction: match options.direction {
                Direction::Outgoing => m::Direction::Outgoing,
                Direction::Incoming => m::Direction::Incoming,
                Direction::Both => m::Direction::Both,
            },
            min_strength: options.min_strength,
        };
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "start": start, "options": options}));
        let traversal = call
            .run("traverse", arguments, move |mem| {
                mem.traverse(&scope, &start, &options)
            })
            .await?;
        Ok(Subgraph {
            entities: traversal
                .nodes
                .into_iter()
                .map(|n| to_wit_entity(n.entity))
                .collect(),
            relations: traversal
                .relations
                .into_iter()
                .map(to_wit_relation)
                .collect(),
        })
    }
}
