//! `caxton:agent/memory-time` (0.2.0): when facts hold, retiring named
//! facts, reading the past. Recorded and replayed like `memory` (the same
//! [`Call`](super::memory::Call) path).

use serde_json::json;

use super::memory::{from_wit_relation, scope_key, to_relation_key, to_wit_entity, to_wit_hit};
use crate::memory::model as m;
use crate::memory::temporal::{self, At};
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent0_1_0::memory::{Entity, Relation, Scope, SearchHit};
use crate::runtime::bindings::caxton::agent0_1_0::types::Error;
use crate::runtime::bindings::caxton::agent0_2_0::memory_time::{self, FactVersion};

fn point(at: memory_time::At) -> Result<At, Error> {
    At::parse(at.as_of.as_deref(), at.known_at.as_deref())
        .map_err(|e| Error::InvalidInput(e.to_string()))
}

fn to_wit_version(v: temporal::FactVersion) -> FactVersion {
    FactVersion {
        kind: v.kind,
        fact: v.fact,
        valid_from: v.valid_from,
        valid_to: v.valid_to,
        recorded_at: v.recorded_at,
        retired_at: v.retired_at,
    }
}

impl memory_time::Host for HostState {
    async fn add_observations_valid(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
        valid_from: Option<String>,
        valid_to: Option<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(|| {
            json!({"scope": scope.as_str(), "entity": entity, "observations": observations,
                   "valid_from": valid_from, "valid_to": valid_to})
        });
        call.run("add-observations-valid", arguments, move |mem| {
            mem.add_observations_valid(
                &scope,
                &entity,
                &observations,
                valid_from.as_deref(),
                valid_to.as_deref(),
                &[],
            )
        })
        .await
    }

    async fn create_relations_valid(
        &mut self,
        scope: Scope,
        relations: Vec<Relation>,
        valid_from: Option<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let relations: Vec<m::Relation> = relations
            .into_iter()
            .map(|r| m::Relation {
                valid_from: valid_from.clone(),
                ..from_wit_relation(r)
            })
            .collect();
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "relations": relations}));
        call.run("create-relations-valid", arguments, move |mem| {
            mem.create_relations(&scope, &relations).map(|s| s.created)
        })
        .await
    }

    async fn supersede(
        &mut self,
        scope: Scope,
        entity: String,
        observations: Vec<String>,
        relations: Vec<Relation>,
        valid_from: Option<String>,
    ) -> Result<u32, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let observations: Vec<(String, String)> = observations
            .into_iter()
            .map(|o| (entity.clone(), o))
            .collect();
        let relations: Vec<m::RelationKey> = relations.into_iter().map(to_relation_key).collect();
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(|| {
            json!({"scope": scope.as_str(), "observations": observations,
                   "relations": relations, "valid_from": valid_from})
        });
        call.run("supersede", arguments, move |mem| {
            mem.supersede(&scope, &observations, &relations, valid_from.as_deref())
        })
        .await
    }

    async fn search_at(
        &mut self,
        scope: Scope,
        query: String,
        limit: u32,
        at: memory_time::At,
    ) -> Result<Vec<SearchHit>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let at = point(at)?;
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(|| {
            json!({"scope": scope.as_str(), "query": query, "limit": limit,
                   "as_of": at.as_of, "known_at": at.known_at})
        });
        let hits = call
            .run("search-at", arguments, move |mem| {
                mem.search_at(&[scope], &query, limit as usize, &at)
            })
            .await?;
        Ok(hits.into_iter().map(to_wit_hit).collect())
    }

    async fn open_nodes_at(
        &mut self,
        scope: Scope,
        names: Vec<String>,
        at: memory_time::At,
    ) -> Result<Vec<Entity>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let at = point(at)?;
        let call = self.memory_call();
        let arguments = call.wants_arguments().then(|| {
            json!({"scope": scope.as_str(), "names": names,
                   "as_of": at.as_of, "known_at": at.known_at})
        });
        let graph = call
            .run("open-nodes-at", arguments, move |mem| {
                mem.open_nodes_at(&scope, &names, &at)
            })
            .await?;
        Ok(graph.entities.into_iter().map(to_wit_entity).collect())
    }

    async fn history(&mut self, scope: Scope, name: String) -> Result<Vec<FactVersion>, Error> {
        let scope = scope_key(&self.agent, scope)?;
        let call = self.memory_call();
        let arguments = call
            .wants_arguments()
            .then(|| json!({"scope": scope.as_str(), "name": name}));
        let versions = call
            .run("history", arguments, move |mem| mem.history(&scope, &name))
            .await?;
        Ok(versions.into_iter().map(to_wit_version).collect())
    }
}
