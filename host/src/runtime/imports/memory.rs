//! `caxton:agent/memory`: the knowledge graph, scoped to the calling agent.
//! `agent` scope is the agent's own; `workspace` and `global` need a grant
//! (`memory_grants` at deploy time).

use std::sync::Arc;

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

fn scope_key(agent: &AgentContext, scope: Scope) -> Result<ScopeKey, Error> {
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

/// Runs the memory call `function` on the blocking pool (redb commits
/// fsync), as a span of the message being handled.
/// (`HostState` is not `Sync`: the caller starts the span and hands over
/// what the call needs.)
async fn run<T: Send + 'static>(
    agent: &Arc<AgentContext>,
    span: Option<crate::trace::Started>,
    function: &str,
    f: impl FnOnce(&MemoryService) -> m::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let memory = agent.clone();
    let result = tokio::task::spawn_blocking(move || f(&memory.memory))
        .await
        .map_err(|e| Error::Internal(format!("memory task failed: {e}")))
        .and_then(|r| r.map_err(to_wit_error));
    if let Some(span) = span {
        let kind = SpanKind::Import {
            interface: "memory".into(),
            function: function.into(),
        };
        let error = result.as_ref().err().map(|e| format!("{e:?}"));
        agent.trace.finish(span, kind, error.as_deref());
    }
    result
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
    })
}

fn to_wit_entity(e: m::Entity) -> Entity {
    Entity {
        name: e.name,
        entity_type: e.entity_type,
        observations: e.observations,
        metadata_json: e.metadata.map(|v| v.to_string()),
    }
}

fn from_wit_relation(r: Relation) -> m::Relation {
    m::Relation {
        from: r.source,
        to: r.target,
        relation_type: r.relation_type,
        strength: r.strength,
        confidence: r.confidence,
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
        run(
            &self.agent,
            self.child_span(),
            "create-entities",
            move |mem| mem.create_entities(&scope, &inputs).map(|s| s.created),
        )
        .await
    }

    async fn add_observations(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        run(
            &self.agent,
            self.child_span(),
            "add-observations",
            move |mem| mem.add_observations(&scope, &entity, &observations),
        )
        .await
    }

    async fn create_relations(
        &mut self,
        scope: Scope,
        relations: Vec<Relation>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let relations: Vec<m::Relation> = relations.into_iter().map(from_wit_relation).collect();
        run(
            &self.agent,
            self.child_span(),
            "create-relations",
            move |mem| mem.create_relations(&scope, &relations).map(|s| s.created),
        )
        .await
    }

    async fn delete_entities(&mut self, scope: Scope, names: Vec<String>) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        run(
            &self.agent,
            self.child_span(),
            "delete-entities",
            move |mem| mem.delete_entities(&scope, &names),
        )
        .await
    }

    async fn delete_observations(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        run(
            &self.agent,
            self.child_span(),
            "delete-observations",
            move |mem| mem.delete_observations(&scope, &entity, &observations),
        )
        .await
    }

    async fn delete_relations(
        &mut self,
        scope: Scope,
        relations: Vec<Relation>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let keys: Vec<m::RelationKey> = relations
            .into_iter()
            .map(|r| m::RelationKey {
                from: r.source,
                to: r.target,
                relation_type: r.relation_type,
            })
            .collect();
        run(
            &self.agent,
            self.child_span(),
            "delete-relations",
            move |mem| mem.delete_relations(&scope, &keys),
        )
        .await
    }

    async fn open_nodes(&mut self, scope: Scope, names: Vec<String>) -> Result<Vec<Entity>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let graph = run(&self.agent, self.child_span(), "open-nodes", move |mem| {
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
        let hits = run(&self.agent, self.child_span(), "search", move |mem| {
            mem.search(&[scope], &query, limit as usize)
        })
        .await?;
        Ok(hits
            .into_iter()
            .map(|h| SearchHit {
                entity: to_wit_entity(h.entity),
                score: h.score,
                matched: Some(h.matched),
            })
            .collect())
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
        let traversal = run(&self.agent, self.child_span(), "traverse", move |mem| {
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
