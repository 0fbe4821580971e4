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

/// Memory in time (`caxton:agent/memory-time@0.2.0`): facts that change.
///
/// The functions of [`memory`](crate::memory) answer what is current.
/// These say when a fact holds in the world, retire named facts, and read
/// what held (`as_of`) or what memory knew (`known_at`) at a time, or an
/// entity's whole history. A replaced fact is retired, never deleted: an
/// attribute observation `key: value` retires the entity's current one
/// with the same key. Times are RFC 3339 text or `YYYY-MM-DD`.
///
/// ```ignore
/// use caxton_guest_sdk::memory::{Scope, time};
///
/// time::add_observations_valid(Scope::Agent, "alice", &["employer: Globex".into()],
///     Some("2022-01-01"), None)?;
/// let then = time::open_nodes_at(Scope::Agent, &["alice".into()],
///     &time::At::as_of("2021-06-01"))?;
/// ```
pub mod time {
    pub use crate::bindings::caxton::agent0_2_0::memory_time::{
        At, FactVersion, add_observations_valid, create_relations_valid, history, open_nodes_at,
        search_at, supersede,
    };

    impl At {
        /// What held in the world at `time`.
        pub fn as_of(time: &str) -> Self {
            At {
                as_of: Some(time.to_string()),
                known_at: None,
            }
        }

        /// What memory held at `time`.
        pub fn known_at(time: &str) -> Self {
            At {
                as_of: None,
                known_at: Some(time.to_string()),
            }
        }
    }
}
