//! The knowledge-graph vocabulary shared by the REST API, the WIT import
//! and the store: entities with observations, relations, scopes, and the
//! shapes of search and traversal answers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest entity name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest entity type, in bytes.
pub const MAX_TYPE_BYTES: usize = 64;
/// Longest single observation, in bytes.
pub const MAX_OBSERVATION_BYTES: usize = 4096;
/// Most items in one write call.
pub const MAX_BATCH: usize = 1000;
/// Largest page of `read_graph`.
pub const MAX_PAGE: usize = 1000;
/// Most results of one search.
pub const MAX_SEARCH_LIMIT: usize = 100;
/// Deepest traversal.
pub const MAX_DEPTH: u32 = 6;
/// Observations one entity may hold: its record carries a copy of them,
/// so every change rewrites them all.
pub const MAX_OBSERVATIONS_PER_ENTITY: usize = 1000;
/// Longest search query; the embedding model reads its first 256 tokens.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Entities one traversal may reach before it is refused.
pub const MAX_TRAVERSAL_NODES: usize = 10_000;

/// Who can see a piece of memory. Stored as a key: `global`, `workspace`,
/// or `agent:<agent id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey(String);

impl ScopeKey {
    pub fn global() -> Self {
        ScopeKey("global".into())
    }

    pub fn workspace() -> Self {
        ScopeKey("workspace".into())
    }

    pub fn agent(agent_id: &str) -> Self {
        ScopeKey(format!("agent:{agent_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a key read back from storage.
    pub fn from_stored(text: &str) -> Self {
        ScopeKey(text.to_string())
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An entity as written by a caller.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityInput {
    /// Unique in its scope; at most 256 bytes, not blank.
    #[schema(min_length = 1, max_length = 256, pattern = r"\S")]
    pub name: String,
    /// At most 64 bytes, not blank.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub entity_type: String,
    /// Facts about the entity, each at most 4096 bytes and not blank; an
    /// entity holds at most 1000.
    #[serde(default)]
    #[schema(value_type = Vec<ObservationText>)]
    pub observations: Vec<String>,
    /// A JSON object kept with the entity; replaces the stored one when
    /// given.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// When the new observations became true in the world (RFC 3339 or
    /// `YYYY-MM-DD`); default: when they are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// When they stopped being true, if they have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// An observation's text in the API document: what [`check_observation`]
/// accepts (not blank, at most 4096 bytes). A schema only; observations
/// are plain strings. It exists because the items of a `Vec<String>`
/// field cannot carry a pattern of their own.
pub struct ObservationText;

impl utoipa::PartialSchema for ObservationText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_OBSERVATION_BYTES))
            .pattern(Some(r"\S"))
            .into()
    }
}

impl utoipa::ToSchema for ObservationText {}

/// A memory scope as the API names it (`global`, `workspace`,
/// `agent:NAME`), in the API document; for the items of a list of scopes.
pub struct ScopeText;

impl utoipa::PartialSchema for ScopeText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^(global|workspace|agent:.+)$"))
            .into()
    }
}

impl utoipa::ToSchema for ScopeText {}

/// An entity as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entity {
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: the last change of type, metadata or observations.
    pub updated_at: String,
}

/// A relation, `from` —`relation_type`→ `to`, unique per triple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// An entity's name, in the same scope.
    #[schema(min_length = 1, max_length = 256, pattern = r"\S")]
    pub from: String,
    /// An entity's name, in the same scope.
    #[schema(min_length = 1, max_length = 256, pattern = r"\S")]
    pub to: String,
    /// At most 64 bytes, not blank.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub relation_type: String,
    #[serde(default = "one")]
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub strength: f32,
    #[serde(default = "one")]
    #[schema(default = 1.0, minimum = 0.0, maximum = 1.0)]
    pub confidence: f32,
    /// When the relation became true in the world (RFC 3339 or
    /// `YYYY-MM-DD`); default: when it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// When it stopped being true, if it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

fn one() -> f32 {
    1.0
}

/// A relation to delete: the triple is enough.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelationKey {
    pub from: String,
    pub to: String,
    pub relation_type: String,
}

/// Which relations a traversal follows from each entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Outgoing,
    Incoming,
    Both,
}

/// How far a traversal goes and which relations it follows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraverseOptions {
    /// Relations followed from the start, at most 6.
    #[serde(default = "default_depth")]
    #[schema(default = 2, maximum = 6)]
    pub max_depth: u32,
    /// Empty: every relation type.
    #[serde(default)]
    pub relation_types: Vec<String>,
    #[serde(default)]
    #[schema(default = "outgoing")]
    pub direction: Direction,
    /// Relations weaker than this are not followed.
    #[serde(default)]
    #[schema(default = 0.0)]
    pub min_strength: f32,
}

fn default_depth() -> u32 {
    2
}

impl Default for TraverseOptions {
    fn default() -> Self {
        TraverseOptions {
            max_depth: default_depth(),
            relation_types: Vec::new(),
            direction: Direction::Outgoing,
            min_strength: 0.0,
        }
    }
}

/// Entities and the relations between them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subgraph {
    pub entities: Vec<Entity>,
    pub relations: Vec<Relation>,
}

/// A traversal answer: each reached entity with its distance from the start.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Traversal {
    pub start: String,
    pub nodes: Vec<TraversedNode>,
    pub relations: Vec<Relation>,
}

/// An entity reached, `depth` relations from the start.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraversedNode {
    pub depth: u32,
    pub entity: Entity,
}

/// One search result: an entity, why it matched, how well.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub entity: Entity,
    /// Fused score (reciprocal-rank fusion of the semantic and keyword
    /// rankings); higher is better, comparable within one answer.
    pub score: f32,
    /// Cosine similarity of the best-matching text, when semantic search ran.
    pub semantic_score: Option<f32>,
    /// BM25 score of the best-matching text, when a keyword matched.
    pub keyword_score: Option<f32>,
    /// The observation (or name) that matched best.
    pub matched: String,
}

/// One page of `read_graph`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphPage {
    pub entities: Vec<Entity>,
    pub relations: Vec<Relation>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// What a write changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WriteSummary {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
}

/// Serialisable: in a cluster, the node that applied a write sends the
/// error to the node that took it.
#[derive(Debug, Clone, Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum MemoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("memory storage error: {0}")]
    Storage(String),
    /// The cluster could not take the write now; retrying may work.
    #[error("{0}")]
    Unavailable(String),
}

impl From<redb::Error> for MemoryError {
    fn from(e: redb::Error) -> Self {
        MemoryError::Storage(e.to_string())
    }
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MemoryError {
            fn from(e: $t) -> Self {
                MemoryError::Storage(e.to_string())
            }
        }
    )*};
}
storage_error_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, MemoryError>;

/// A relation type as a caller names it: not blank, at most 64 bytes.
pub fn check_relation_type(text: &str) -> Result<()> {
    check_text("relation_type", text, MAX_TYPE_BYTES)
}

fn check_text(what: &str, text: &str, max: usize) -> Result<()> {
    if text.trim().is_empty() {
        return Err(MemoryError::Invalid(format!("{what} must not be empty")));
    }
    if text.len() > max {
        return Err(MemoryError::Invalid(format!(
            "{what} is {} bytes; the limit is {max} (split it into smaller pieces)",
            text.len()
        )));
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<()> {
    check_text("entity name", name, MAX_NAME_BYTES)
}

pub fn check_observation(entity: &str, text: &str) -> Result<()> {
    check_text(
        &format!("an observation of `{entity}`"),
        text,
        MAX_OBSERVATION_BYTES,
    )
}

pub fn check_batch(what: &str, len: usize) -> Result<()> {
    if len == 0 {
        return Err(MemoryError::Invalid(format!("no {what} given")));
    }
    if len > MAX_BATCH {
        return Err(MemoryError::Invalid(format!(
            "{len} {what} in one call; the limit is {MAX_BATCH}"
        )));
    }
    Ok(())
}

impl EntityInput {
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        check_text(
            &format!("entity_type of `{}`", self.name),
            &self.entity_type,
            MAX_TYPE_BYTES,
        )?;
        for observation in &self.observations {
            check_observation(&self.name, observation)?;
        }
        self.validity()?;
        match &self.metadata {
            None | Some(serde_json::Value::Object(_)) => Ok(()),
            Some(_) => Err(MemoryError::Invalid(format!(
                "metadata of `{}` must be a JSON object",
                self.name
            ))),
        }
    }

    /// When its observations are true in the world, as the writer says.
    pub fn validity(&self) -> Result<super::temporal::Validity> {
        super::temporal::Validity::parse(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

impl Relation {
    pub fn validate(&self) -> Result<()> {
        check_name(&self.from)?;
        check_name(&self.to)?;
        check_text("relation_type", &self.relation_type, MAX_TYPE_BYTES)?;
        for (what, value) in [("strength", self.strength), ("confidence", self.confidence)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MemoryError::Invalid(format!(
                    "{what} of relation {} -{}-> {} is {value}; it must be between 0 and 1",
                    self.from, self.relation_type, self.to
                )));
            }
        }
        self.validity().map(|_| ())
    }

    /// When it is true in the world, as the writer says.
    pub fn validity(&self) -> Result<super::temporal::Validity> {
        super::temporal::Validity::parse(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;
    use utoipa::PartialSchema;

    /// A type's schema as the API document holds it.
    pub(crate) fn schema<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).expect("a schema is JSON")
    }

    /// utoipa takes only literals for caps, so the API document repeats
    /// these constants; this keeps the two in step.
    #[test]
    fn the_documented_caps_are_the_enforced_ones() {
        let entity = schema::<EntityInput>();
        assert_eq!(entity["properties"]["name"]["maxLength"], MAX_NAME_BYTES);
        assert_eq!(
            entity["properties"]["entity_type"]["maxLength"],
            MAX_TYPE_BYTES
        );
        assert_eq!(
            schema::<ObservationText>()["maxLength"],
            MAX_OBSERVATION_BYTES
        );
        let relation = schema::<Relation>();
        for end in ["from", "to"] {
            assert_eq!(relation["properties"][end]["maxLength"], MAX_NAME_BYTES);
        }
        assert_eq!(
            relation["properties"]["relation_type"]["maxLength"],
            MAX_TYPE_BYTES
        );
        assert_eq!(
            schema::<TraverseOptions>()["properties"]["max_depth"]["maximum"],
            MAX_DEPTH
        );
    }
}
