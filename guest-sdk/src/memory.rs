//! The knowledge graph: entities, observations, relations, search and traversal.
//!
//! The types are the WIT records, re-exported; see `wit/caxton.wit` for the
//! meaning of each field.

pub use crate::bindings::caxton::agent0_1_0::memory::{
    Direction, Entity, Relation, Scope, SearchHit, Subgraph, TraverseOptions, add_observations,
    create_entities, create_relations, delete_entities, delete_observations, delete_relations,
    open_nodes, search, traverse,
};

impl Entity {
    /// An entity with a name, a type and some observations, without metadata.
    pub fn new(name: &str, entity_type: &str, observations: &[&str]) -> Self {
        Entity {
            name: name.to_string(),
            entity_type: entity_type.to_string(),
            observations: observations.iter().map(|o| o.to_string()).collect(),
            metadata_json: None,
        }
    }
}
