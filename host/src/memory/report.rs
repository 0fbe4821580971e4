//! What memory's operations report over the API: the bodies the server
//! sends and `caxton memory` reads. One type for both sides, so the CLI
//! cannot drift from the server (a renamed field fails to compile, not to
//! print).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MemoryStats;
use super::model::SearchHit;
use super::telemetry::{OpSummary, SlowQuery};

/// `GET /api/v1/memory/stats`: the stats and the database file's size.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatsReport {
    #[serde(flatten)]
    pub stats: MemoryStats,
    pub database_bytes: u64,
}

/// `POST /api/v1/memory/optimize`: what was done of the two.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Optimized {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexRebuilt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vacuum: Option<VacuumScheduled>,
}

/// The vector index, rebuilt from the database and saved.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexRebuilt {
    pub rebuilt_vectors: usize,
    pub elapsed_ms: u64,
}

/// redb compacts with exclusive access, so compaction waits for a start.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VacuumScheduled {
    pub scheduled: bool,
    pub database_bytes: u64,
    pub detail: Cow<'static, str>,
}

/// `POST /api/v1/memory/cache/clear`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CacheCleared {
    pub query_embeddings_cleared: usize,
    /// When the vector index was rebuilt too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuilt_vectors: Option<usize>,
}

/// `GET /api/v1/memory/diagnose`: latency by operation and the slow ones.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryDiagnosis)]
pub struct Diagnosis {
    pub slow_query_threshold_ms: u64,
    pub operations: BTreeMap<Cow<'static, str>, OpSummary>,
    pub slow_queries: Vec<SlowQuery>,
}

/// `POST /api/v1/memory/model/load`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelLoaded {
    pub embedding_model: Cow<'static, str>,
    /// False when the model was already loaded.
    pub changed: bool,
}

/// `POST /api/v1/memory/search`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub results: Vec<SearchHit>,
}

/// `POST /api/v1/memory/import`: records written.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Imported {
    pub entities: u32,
    pub relations: u32,
}
