//! `caxton:agent/memory`: the knowledge graph. Not provided by this host
//! version yet; every call answers `unavailable` with the reason.

use super::not_available;
use crate::runtime::HostState;
use crate::runtime::bindings::caxton::agent::memory::{
    self, Entity, Relation, Scope, SearchHit, Subgraph, TraverseOptions,
};
use crate::runtime::bindings::caxton::agent::types::Error;

impl memory::Host for HostState {
    async fn create_entities(&mut self, _: Scope, _: Vec<Entity>) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn add_observations(
        &mut self,
        _: Scope,
        _: String,
        _: Vec<String>,
    ) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn create_relations(&mut self, _: Scope, _: Vec<Relation>) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn delete_entities(&mut self, _: Scope, _: Vec<String>) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn delete_observations(
        &mut self,
        _: Scope,
        _: String,
        _: Vec<String>,
    ) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn delete_relations(&mut self, _: Scope, _: Vec<Relation>) -> Result<u32, Error> {
        Err(not_available("memory"))
    }
    async fn open_nodes(&mut self, _: Scope, _: Vec<String>) -> Result<Vec<Entity>, Error> {
        Err(not_available("memory"))
    }
    async fn search(&mut self, _: Scope, _: String, _: u32) -> Result<Vec<SearchHit>, Error> {
        Err(not_available("memory"))
    }
    async fn traverse(
        &mut self,
        _: Scope,
        _: String,
        _: TraverseOptions,
    ) -> Result<Subgraph, Error> {
        Err(not_available("memory"))
    }
}
