//! `memory:` in `caxton.yaml`: semantic search, the model cache, index
//! saving, and the budgets `memory` commands report against.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Semantic search with the embedded model. `false` keeps memory
    /// keyword-only and never downloads the model.
    pub semantic_search: bool,
    /// Download the embedding model at start when it is not cached.
    pub auto_pull: bool,
    /// Model cache shared by every data dir; default `$CAXTON_MODEL_CACHE`
    /// or `~/.cache/caxton/models`.
    pub model_cache_dir: Option<PathBuf>,
    /// Seconds between saves of the vector index (when it changed).
    pub index_save_interval_secs: u64,
    /// Searches and traversals slower than this are logged as slow queries.
    pub slow_query_ms: u64,
    /// Entity count this embedded store is sized for; `limits-check` and
    /// `capacity-check` report against it.
    pub recommended_max_entities: u64,
    /// Memory the server may use (bytes); `usage --percentage` reports
    /// resident memory against it.
    pub memory_budget_bytes: u64,
    /// redb's page cache in MiB. The default keeps a 100K-entity server
    /// under 400 MB resident; a larger store traverses and searches faster
    /// with a larger cache (each page it misses is a read from the file).
    pub database_cache_mb: u64,
    /// The runbook's keys. `backend` must be `embedded` and
    /// `embedding_model` all-MiniLM-L6-v2 (the only ones this build has);
    /// `sqlite_path` and `cleanup_interval` are accepted and noted.
    pub backend: Option<String>,
    pub sqlite_path: Option<PathBuf>,
    pub embedding_model: Option<String>,
    pub cleanup_interval: Option<String>,
    /// Relation types a source holds one of at a time (`works_at`,
    /// `lives_in`): writing a new one retires the previous one, which
    /// stays in the entity's history. The same list on every node of a
    /// cluster.
    pub single_valued_relations: Vec<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            semantic_search: true,
            auto_pull: true,
            model_cache_dir: None,
            index_save_interval_secs: 60,
            slow_query_ms: 50,
            recommended_max_entities: 100_000,
            memory_budget_bytes: 2 * 1024 * 1024 * 1024,
            database_cache_mb: crate::storage::DEFAULT_CACHE_MB,
            backend: None,
            sqlite_path: None,
            embedding_model: None,
            cleanup_interval: None,
            single_valued_relations: Vec::new(),
        }
    }
}

impl MemoryConfig {
    pub fn model_cache_dir(&self) -> PathBuf {
        self.model_cache_dir
            .clone()
            .unwrap_or_else(caxton_models::default_cache_dir)
    }
}

impl MemoryConfig {
    /// The runbook's `backend` and `embedding_model` keys may only name
    /// what this build has.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(backend) = &self.backend
            && !backend.eq_ignore_ascii_case("embedded")
        {
            return Err(format!(
                "memory.backend `{backend}` is not available: this build has the embedded \
                 backend only (remove the key or set it to \"embedded\")"
            ));
        }
        if let Some(model) = &self.embedding_model {
            let name = model.rsplit('/').next().unwrap_or(model);
            if !name.eq_ignore_ascii_case(caxton_models::MODEL_NAME) {
                return Err(format!(
                    "memory.embedding_model `{model}` is not available: the embedded model is \
                     {} (remove the key or set it to that)",
                    caxton_models::MODEL_NAME
                ));
            }
        }
        Ok(())
    }
}
