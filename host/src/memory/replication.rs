//! Memory writes as values, so a cluster can carry them to every node.
//!
//! Every write the service takes is checked and embedded where it
//! arrives, then becomes a [`ReplicatedWrite`]: the operation, the time it
//! is recorded under and the vectors already computed. Alone, a node
//! applies it at once. In a cluster, a [`Replicator`] (the cluster's
//! JetStream stream) carries it to every node, each applies the stream in
//! order with [`super::MemoryService::apply_replicated`], which stores the
//! stream sequence in the same transaction (so an apply happens exactly
//! once across crashes), and the writer is answered with what its own
//! node's apply answered: it reads its own writes.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::model::{
    EntityInput, MemoryError, Relation, RelationKey, Result, ScopeKey, WriteSummary,
};

/// One write, as every node applies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicatedWrite {
    /// Unique per write: the writer waits for this id's apply.
    pub id: String,
    /// The record time every node stores (not each node's own clock, so
    /// exports of all nodes agree).
    pub now: String,
    pub scope: String,
    pub op: WriteOp,
    /// Text → embedding (base64 of little-endian f16), for the texts the
    /// writer embedded; other nodes do not embed them again. Texts left
    /// out are embedded by each node's background embedder.
    #[serde(default)]
    pub embeddings: Vec<(String, String)>,
}

/// What a write does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    CreateEntities(Vec<EntityInput>),
    AddObservations {
        entity: String,
        observations: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_to: Option<String>,
        /// Observations of the entity retired in the same write.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        supersede: Vec<String>,
    },
    CreateRelations(Vec<Relation>),
    DeleteEntities(Vec<String>),
    DeleteObservations {
        entity: String,
        observations: Vec<String>,
    },
    DeleteRelations(Vec<RelationKey>),
    /// Retires named facts: (entity, observation text) pairs and
    /// relations, no longer valid from `valid_from` (default: now).
    Supersede {
        observations: Vec<(String, String)>,
        relations: Vec<RelationKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_from: Option<String>,
    },
    /// Drops the history retired before `before` (milliseconds since the
    /// Unix epoch).
    DropRetired {
        before: i64,
    },
    /// Declares (or undeclares) a relation type single-valued in the scope.
    SingleValued {
        relation_type: String,
        single: bool,
    },
    /// An imported entity's facts in time (see `transfer::Record::History`).
    Restore {
        entity: String,
        versions: Vec<super::temporal::FactVersion>,
    },
}

/// What applying a write answered.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WriteResult {
    Summary(WriteSummary),
    Count(u32),
}

impl WriteResult {
    pub fn summary(self) -> WriteSummary {
        match self {
            WriteResult::Summary(s) => s,
            WriteResult::Count(n) => WriteSummary {
                created: n,
                ..WriteSummary::default()
            },
        }
    }

    pub fn count(self) -> u32 {
        match self {
            WriteResult::Count(n) => n,
            WriteResult::Summary(s) => s.created,
        }
    }
}

/// Carries writes to every node of a cluster.
pub trait Replicator: Send + Sync {
    /// Sends `write` to every node and blocks until this node applied it;
    /// answers what that apply answered. Called from blocking threads.
    fn submit(&self, write: ReplicatedWrite) -> Result<WriteResult>;
}

impl ReplicatedWrite {
    pub fn scope(&self) -> ScopeKey {
        ScopeKey::from_stored(&self.scope)
    }

    /// The embeddings as the store takes them; an undecodable one is left
    /// out (that text is embedded again by the background embedder).
    pub fn embeddings(&self) -> std::collections::HashMap<String, Vec<f32>> {
        let engine = base64::engine::general_purpose::STANDARD;
        self.embeddings
            .iter()
            .filter_map(|(text, b64)| {
                let bytes = engine.decode(b64).ok()?;
                Some((text.clone(), super::store::decode(&bytes)))
            })
            .collect()
    }
}

/// `vectors` as a write carries them.
pub fn carried(vectors: &std::collections::HashMap<String, Vec<f32>>) -> Vec<(String, String)> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out: Vec<(String, String)> = vectors
        .iter()
        .map(|(text, v)| (text.clone(), engine.encode(super::store::encode(v))))
        .collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// An error as the writer sees it, whichever node's apply produced it.
pub fn unavailable(why: impl std::fmt::Display) -> MemoryError {
    MemoryError::Unavailable(format!(
        "{why}; the write was not acknowledged, retry it (`caxton cluster status` shows the cluster)"
    ))
}
