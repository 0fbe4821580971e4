//! Embedded memory: a knowledge graph with hybrid (semantic + keyword)
//! search and traversal, for agents (WIT `memory` import, scoped to the
//! caller) and operators (REST, CLI).
//!
//! - [`store`]: the graph in redb, the source of truth;
//! - [`keyword`]: terms and BM25;
//! - [`vectors`]: the derived in-memory vector index;
//! - [`embedding`]: the sentence-embedding model, which may be absent —
//!   memory then works with keyword search and reports `degraded`;
//! - [`search`]: fusing the two rankings.
//!
//! "Immediately searchable": a write is embedded *before* its transaction
//! commits and enters the vector index right after, before the API answers;
//! so any search that starts after an acknowledged write sees it.

mod backlog;
pub mod embedding;
pub mod graph;
pub mod model;
pub mod replication;
pub mod report;
pub mod search;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod temporal;
pub mod transfer;
pub mod vectors;

mod keyword;
mod snapshot;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use embedding::{CacheStats, EmbedderState, ModelState, QueryCache};
use model::{
    Entity, EntityInput, GraphPage, MemoryError, Relation, RelationKey, Result, ScopeKey,
    SearchHit, Subgraph, Traversal, TraverseOptions, WriteSummary,
};
use store::{IndexDelta, MemoryStore, Outcome};
use telemetry::Telemetry;
use vectors::VectorIndex;

use crate::storage::Storage;

/// Length of every embedding (all-MiniLM-L6-v2's hidden size).
pub const DIMENSIONS: usize = caxton_models::DIMENSIONS;
/// Directory (in the data dir) holding the saved vector index.
pub const INDEX_DIR: &str = "memory-index";
/// Queries whose embeddings are kept.
const QUERY_CACHE_ENTRIES: usize = 4096;

/// Tunables, from `caxton.yaml`'s `memory:` section.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// Where the vector index snapshot lives.
    pub index_dir: PathBuf,
    /// Searches and traversals slower than this are remembered for
    /// `memory diagnose --show-slow-queries`.
    pub slow_query: Duration,
    /// Entity count the embedded store is sized for (capacity reports).
    pub recommended_max_entities: u64,
    /// Memory the server may use, for `usage --percentage`.
    pub memory_budget_bytes: u64,
}

impl MemoryOptions {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        MemoryOptions {
            index_dir: data_dir.join(INDEX_DIR),
            slow_query: Duration::from_millis(50),
            recommended_max_entities: 100_000,
            memory_budget_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// How the vector index came to be at start.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexOrigin {
    /// `snapshot` (loaded from disk) or `rebuilt` (from redb).
    pub source: Cow<'static, str>,
    /// Whether a snapshot was compared with every embedding in redb: it
    /// is when it does not name the database's vectors version (a crash
    /// after writes it did not see, an older snapshot).
    pub reconciled: bool,
    /// Vectors added to / removed from the snapshot to match redb.
    pub caught_up: usize,
    pub removed: usize,
    pub elapsed_ms: u64,
    /// Why a snapshot was not used, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The memory system as the rest of the server sees it.
pub struct MemoryService {
    store: MemoryStore,
    embedder: EmbedderState,
    index: RwLock<VectorIndex>,
    options: MemoryOptions,
    /// Serialises "commit, then update the index", so the index applies
    /// commits in commit order (a delete never overtakes the add it undoes).
    /// redb allows one writer at a time anyway, so this costs no concurrency.
    writes: Mutex<()>,
    /// Index changes since the last snapshot; 0 means saving is pointless.
    unsaved: AtomicU64,
    origin: Mutex<IndexOrigin>,
    query_cache: QueryCache,
    telemetry: Telemetry,
    backlog: backlog::Backlog,
    /// The service itself, for the background embedder's thread.
    me: std::sync::Weak<MemoryService>,
    /// Carries writes to every node when this node is in a cluster.
    replicator: std::sync::OnceLock<Arc<dyn replication::Replicator>>,
}

/// Health of the memory system, in the runbook's shape.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryHealth {
    /// `healthy`, `degraded` (no embedding model) or `unhealthy` (the
    /// database cannot be read).
    pub status: Cow<'static, str>,
    /// The database: `ok` or `error` (the name is the runbook's).
    pub sqlite_status: Cow<'static, str>,
    /// `loaded` or `unavailable`.
    pub embedding_model: Cow<'static, str>,
    /// Why the embedding model is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Stored texts not yet searchable by meaning (keyword search finds
    /// them already): large writes are embedded in the background, and
    /// everything written while no model is loaded waits here.
    pub embedding_backlog: u64,
}

/// Everything `memory stats` shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryStats {
    pub counts: store::StoreCounts,
    pub indexed_vectors: usize,
    pub index_memory_bytes: usize,
    pub index: IndexOrigin,
    pub query_cache: CacheStats,
    pub health: MemoryHealth,
    pub latency: std::collections::BTreeMap<Cow<'static, str>, telemetry::OpSummary>,
}

/// Entities against the recommended maximum (`limits-check` /
/// `capacity-check`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryCapacity)]
pub struct Capacity {
    pub entities: u64,
    pub recommended_max_entities: u64,
    /// `entities` as a percentage of `recommended_max_entities`.
    pub percent: f64,
}

/// Where memory's bytes go, against the configured budget (`usage`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryUsage)]
pub struct Usage {
    pub model_bytes: u64,
    pub model_loaded: bool,
    pub database_bytes: u64,
    pub index_bytes: u64,
    pub query_cache_bytes: u64,
    /// The whole server process (Linux; null elsewhere).
    pub resident_bytes: Option<u64>,
    pub budget_bytes: u64,
    /// `resident_bytes` as a percentage of `budget_bytes`, when known.
    pub percent: Option<f64>,
}

/// Entities without relations, found and removed
/// (`cleanup --remove-orphaned`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryCleanup)]
pub struct Cleanup {
    pub orphans: usize,
    /// 0 on a dry run.
    pub removed: u32,
    /// Up to 20 of them, as `scope/name`.
    pub sample: Vec<String>,
    /// Retired facts dropped from history (`retired_before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_dropped: Option<u32>,
}

/// Resident set size of this process, from /proc (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn index_err(e: vectors::IndexError) -> MemoryError {
    MemoryError::Storage(e.to_string())
}

impl MemoryService {
    pub fn open(
        storage: Arc<Storage>,
        embedder: EmbedderState,
        options: MemoryOptions,
    ) -> Result<Arc<Self>> {
        let store = MemoryStore::open(storage)?;
        let index = VectorIndex::new(DIMENSIONS).map_err(index_err)?;
        let service = Arc::new_cyclic(|me| MemoryService {
            store,
            embedder,
            index: RwLock::new(index),
            telemetry: Telemetry::new(options.slow_query),
            options,
            writes: Mutex::new(()),
            unsaved: AtomicU64::new(0),
            origin: Mutex::new(IndexOrigin {
                source: "rebuilt".into(),
                reconciled: false,
                caught_up: 0,
                removed: 0,
                elapsed_ms: 0,
                note: None,
            }),
            query_cache: QueryCache::new(QUERY_CACHE_ENTRIES),
            backlog: backlog::Backlog::default(),
            me: me.clone(),
            replicator: std::sync::OnceLock::new(),
        });
        service.open_index()?;
        Ok(service)
    }

    /// Loads the saved index — as it is when it holds the database's
    /// vectors version, reconciled with redb when not — or rebuilds it when
    /// there is no usable snapshot.
    fn open_index(&self) -> Result<()> {
        let started = Instant::now();
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = match VectorIndex::load(&self.options.index_dir, DIMENSIONS) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "vector index snapshot unusable; rebuilding from the database");
                self.origin.lock().unwrap_or_else(|p| p.into_inner()).note = Some(e.to_string());
                None
            }
        };
        let Some(mut index) = snapshot else {
            drop(_writes);
            let count = self.rebuild_index()?;
            tracing::info!(
                vectors = count,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "vector index rebuilt from the database"
            );
            return Ok(());
        };
        // Under the write lock: nothing changes the embeddings between
        // reading their version and reconciling.
        let version = self.store.ensure_vectors_version()?;
        let reconciled = index.version() != Some(version);
        let (mut caught_up, mut removed) = (0, 0);
        if reconciled {
            (caught_up, removed) = self.reconcile(&mut index)?;
            index.set_version(Some(version));
            // Saved again with the version, even when nothing changed.
            self.unsaved
                .fetch_add((caught_up + removed) as u64 + 1, Ordering::Relaxed);
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            vectors = index.len(),
            reconciled,
            caught_up,
            removed,
            elapsed_ms,
            "vector index loaded from snapshot"
        );
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        *self.origin.lock().unwrap_or_else(|p| p.into_inner()) = IndexOrigin {
            source: "snapshot".into(),
            reconciled,
            caught_up,
            removed,
            elapsed_ms,
            note: None,
        };
        Ok(())
    }

    /// Brings a snapshot to the set of embeddings in redb: drops what was
    /// deleted since, adds what it missed. Answers (added, removed).
    fn reconcile(&self, index: &mut VectorIndex) -> Result<(usize, usize)> {
        let reader = self.store.read()?;
        let in_db: HashSet<u64> = reader.embedded_docs()?.into_iter().collect();
        let stale: Vec<u64> = index.docs().filter(|d| !in_db.contains(d)).collect();
        for doc in &stale {
            index.remove(*doc).map_err(index_err)?;
        }
        let mut missing = Vec::new();
        for doc in in_db.iter().filter(|d| !index.contains(**d)) {
            if let Some((scope, vector)) = reader.embedded_doc(*doc)? {
                missing.push((*doc, scope, vector));
            }
        }
        let caught_up = missing.len();
        index.insert_many(missing).map_err(index_err)?;
        Ok((caught_up, stale.len()))
    }

    /// Rebuilds the vector index from the embeddings in redb. Answers how
    /// many vectors it holds.
    pub fn rebuild_index(&self) -> Result<usize> {
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        self.rebuild_index_locked()
    }

    /// [`MemoryService::rebuild_index`], with the write lock held.
    fn rebuild_index_locked(&self) -> Result<usize> {
        let started = Instant::now();
        let reader = self.store.read()?;
        let mut items = Vec::new();
        reader.all_embeddings(|doc, scope, vector| items.push((doc, scope, vector)))?;
        let mut index = VectorIndex::new(DIMENSIONS).map_err(index_err)?;
        index.insert_many(items).map_err(index_err)?;
        index.set_version(reader.vectors_version()?);
        let count = index.len();
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        self.unsaved.fetch_add(count as u64 + 1, Ordering::Relaxed);
        let mut origin = self.origin.lock().unwrap_or_else(|p| p.into_inner());
        origin.source = "rebuilt".into();
        origin.caught_up = 0;
        origin.removed = 0;
        origin.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(count)
    }

    /// Saves the vector index if it changed since the last save. Answers
    /// whether it wrote a snapshot. Searches continue meanwhile; writes wait.
    pub fn save_index(&self) -> Result<bool> {
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let unsaved = self.unsaved.load(Ordering::Relaxed);
        if unsaved == 0 {
            return Ok(false);
        }
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index.save(&self.options.index_dir).map_err(index_err)?;
        self.unsaved.fetch_sub(unsaved, Ordering::Relaxed);
        Ok(true)
    }

    pub fn model_state(&self) -> ModelState {
        self.embedder.state()
    }

    /// The model slot, so the server can load or swap the model at runtime.
    pub fn embedder(&self) -> &EmbedderState {
        &self.embedder
    }

    pub fn health(&self) -> MemoryHealth {
        let (sqlite_status, embedding_backlog) = match self.store.read().and_then(|r| r.counts()) {
            Ok(counts) => ("ok", counts.documents.saturating_sub(counts.embeddings)),
            Err(_) => ("error", 0),
        };
        let (embedding_model, reason) = match self.embedder.state() {
            ModelState::Loaded { .. } => ("loaded", None),
            ModelState::Unavailable { reason } => ("unavailable", Some(reason)),
        };
        let status = if sqlite_status != "ok" {
            "unhealthy"
        } else if reason.is_some() {
            "degraded"
        } else {
            "healthy"
        };
        MemoryHealth {
            status: status.into(),
            sqlite_status: sqlite_status.into(),
            embedding_model: embedding_model.into(),
            reason,
            embedding_backlog,
        }
    }

    /// Cross-checks the memory tables in one snapshot (`storage verify`).
    pub fn check(&self, postings: bool) -> Result<store::StoreCheck> {
        self.store.read()?.check(postings)
    }

    /// `storage repair`: drops what dangles in memory's tables and, when
    /// anything changed, rebuilds the vector index from what is left.
    pub fn repair(&self, apply: bool) -> Result<store::StoreRepair> {
        let done = {
            let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            self.store.repair(apply)?
        };
        if apply && done.fixes() > 0 {
            self.rebuild_index()?;
        }
        Ok(done)
    }

    pub fn stats(&self) -> Result<MemoryStats> {
        let mut counts = self.counts()?;
        counts.retired_facts = self.store.read_history()?.retired()?;
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        Ok(MemoryStats {
            counts,
            indexed_vectors: index.len(),
            index_memory_bytes: index.memory_bytes(),
            index: self
                .origin
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            query_cache: self.query_cache.stats(),
            health: self.health(),
            latency: self.telemetry.summary(),
        })
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Entities against the recommended maximum (`limits-check`,
    /// `capacity-check`).
    pub fn capacity(&self) -> Result<Capacity> {
        let entities = self.counts()?.entities;
        let limit = self.options.recommended_max_entities.max(1);
        Ok(Capacity {
            entities,
            recommended_max_entities: limit,
            percent: entities as f64 * 100.0 / limit as f64,
        })
    }

    /// Where memory's bytes go (`usage`): the model, the database, the
    /// vector index, the query cache, against the configured budget.
    pub fn usage(&self, database_bytes: u64) -> Usage {
        let (model_bytes, model_loaded) = match self.embedder.get() {
            Some(model) => (model.memory_bytes(), true),
            None => (0, false),
        };
        let index_bytes = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .memory_bytes() as u64;
        let cache_bytes = self.query_cache.stats().bytes as u64;
        let resident_bytes = resident_memory_bytes();
        Usage {
            model_bytes,
            model_loaded,
            database_bytes,
            index_bytes,
            query_cache_bytes: cache_bytes,
            resident_bytes,
            budget_bytes: self.options.memory_budget_bytes,
            percent: resident_bytes
                .map(|r| r as f64 * 100.0 / self.options.memory_budget_bytes.max(1) as f64),
        }
    }

    /// Deletes entities that have no relations (optionally only those not
    /// updated for `older_than_days`). `dry_run` only lists them.
    pub fn cleanup_orphans(&self, older_than_days: Option<u64>, dry_run: bool) -> Result<Cleanup> {
        let cutoff = older_than_days.map(crate::clock::rfc3339_days_ago);
        let orphans = self.store.read()?.orphans(cutoff.as_deref())?;
        let mut removed = 0;
        if !dry_run {
            let mut by_scope: std::collections::BTreeMap<ScopeKey, Vec<String>> =
                Default::default();
            for (scope, name) in &orphans {
                by_scope
                    .entry(scope.clone())
                    .or_default()
                    .push(name.clone());
            }
            for (scope, names) in by_scope {
                for chunk in names.chunks(model::MAX_BATCH) {
                    removed += self.delete_entities(&scope, chunk)?;
                }
            }
        }
        Ok(Cleanup {
            orphans: orphans.len(),
            removed,
            sample: orphans
                .iter()
                .take(20)
                .map(|(s, n)| format!("{s}/{n}"))
                .collect(),
            retired_dropped: None,
        })
    }

    /// Drops every cached query embedding. Answers how many were dropped.
    pub fn clear_query_cache(&self) -> usize {
        self.query_cache.clear()
    }

    pub fn counts(&self) -> Result<store::StoreCounts> {
        self.store.read()?.counts()
    }

    pub fn indexed_vectors(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Embeds every text before the write transaction (each distinct text
    /// once), or none of them when that would take longer than a write
    /// should wait: then the texts are stored without vectors and the
    /// background embedder picks them up (see `backlog`).
    fn embed_all(&self, texts: Vec<String>) -> Result<HashMap<String, Vec<f32>>> {
        let Some(embedder) = self.embedder.get() else {
            return Ok(HashMap::new());
        };
        let mut unique: Vec<String> = texts;
        unique.sort();
        unique.dedup();
        if unique.iter().map(String::len).sum::<usize>() > backlog::INLINE_EMBED_BYTES {
            return Ok(HashMap::new());
        }
        let refs: Vec<&str> = unique.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs).map_err(MemoryError::Storage)?;
        Ok(unique.into_iter().zip(vectors).collect())
    }

    /// Runs one write transaction and applies its index changes before any
    /// other write can commit.
    fn write<T>(
        &self,
        embeddings: &HashMap<String, Vec<f32>>,
        f: impl FnOnce(&mut store::GraphWriter<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_at(embeddings, None, None, f)
    }

    /// [`MemoryService::write`] recorded at `now`, marking position
    /// `replicated` of the cluster's memory stream applied.
    fn write_at<T>(
        &self,
        embeddings: &HashMap<String, Vec<f32>>,
        now: Option<&str>,
        replicated: Option<u64>,
        f: impl FnOnce(&mut store::GraphWriter<'_>) -> Result<T>,
    ) -> Result<T> {
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let (out, delta) = self.store.write_at(embeddings, now, replicated, f)?;
        let unembedded = delta.unembedded;
        self.apply(delta)?;
        drop(_writes);
        if unembedded > 0 {
            self.embed_backlog();
        }
        Ok(out)
    }

    fn apply(&self, delta: IndexDelta) -> Result<()> {
        if delta.added.is_empty() && delta.removed.is_empty() {
            return Ok(());
        }
        let changes = (delta.added.len() + delta.removed.len()) as u64;
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let (added, removed) = (delta.added, delta.removed);
        index
            .apply_versioned(delta.version, |index| {
                for doc in removed {
                    index.remove(doc)?;
                }
                if added.len() > 16 {
                    index.insert_many(added)
                } else {
                    added
                        .into_iter()
                        .try_for_each(|(doc, scope, vector)| index.insert(doc, &scope, &vector))
                }
            })
            .map_err(index_err)?;
        self.unsaved.fetch_add(changes, Ordering::Relaxed);
        Ok(())
    }

    /// Sends this node's writes through `replicator` from now on (this
    /// node joined a cluster). Once only.
    pub fn replicate_through(&self, replicator: Arc<dyn replication::Replicator>) {
        let _ = self.replicator.set(replicator);
    }

    /// The last position of the cluster's memory stream this node applied.
    pub fn replicated_seq(&self) -> Result<u64> {
        self.store.read()?.replicated_seq()
    }

    /// Applies position `seq` of the cluster's memory stream: a write
    /// checked and embedded by the node that took it.
    pub fn apply_replicated(
        &self,
        write: &replication::ReplicatedWrite,
        seq: u64,
    ) -> Result<replication::WriteResult> {
        let applied = self.apply_op(
            &write.scope(),
            &write.op,
            &write.embeddings(),
            Some(&write.now),
            Some(seq),
        );
        // A write refused here is refused on every node (same state, same
        // order): its position is passed. A storage failure is this node's
        // own, and the position is applied again after it.
        if let Err(e) = &applied
            && !matches!(e, MemoryError::Storage(_))
        {
            self.store.mark_replicated(seq)?;
        }
        applied
    }

    /// Writes this node's memory, as it is at one moment, to a new
    /// database file at `path`; answers the memory-stream position the
    /// copy holds. Reads and writes go on meanwhile.
    pub fn write_snapshot(&self, path: &Path) -> Result<u64> {
        self.store.snapshot_into(path)
    }

    /// Replaces this node's memory with the snapshot at `path` (taken by
    /// [`MemoryService::write_snapshot`], here or on another node) and
    /// rebuilds the vector index from it; answers the memory-stream
    /// position it holds. Writes wait meanwhile.
    pub fn load_snapshot(&self, path: &Path) -> Result<u64> {
        let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.store.replace_from(path)?;
        self.rebuild_index_locked()?;
        self.query_cache.clear();
        self.backlog.rescan();
        drop(_writes);
        self.embed_backlog();
        Ok(seq)
    }

    /// Where this node keeps its data (scratch files go there, on the
    /// same disk as the database they become part of).
    pub fn data_dir(&self) -> &Path {
        self.store.data_dir()
    }

    /// Passes position `seq` of the cluster's memory stream without
    /// applying anything (a message this version cannot read).
    pub fn store_replicated_position(&self, seq: u64) -> Result<()> {
        self.store.mark_replicated(seq)
    }

    /// Performs a checked, embedded write: here at once, or through the
    /// cluster (every node applies it, this one before answering).
    fn perform(
        &self,
        scope: &ScopeKey,
        op: replication::WriteOp,
        embeddings: HashMap<String, Vec<f32>>,
    ) -> Result<replication::WriteResult> {
        let Some(replicator) = self.replicator.get() else {
            return self.apply_op(scope, &op, &embeddings, None, None);
        };
        replicator.submit(replication::ReplicatedWrite {
            id: uuid::Uuid::new_v4().to_string(),
            now: crate::clock::now_rfc3339(),
            scope: scope.as_str().to_string(),
            op,
            embeddings: replication::carried(&embeddings),
        })
    }

    /// The one place a write's operation turns into store changes, for
    /// this node's writes and the cluster's alike.
    fn apply_op(
        &self,
        scope: &ScopeKey,
        op: &replication::WriteOp,
        embeddings: &HashMap<String, Vec<f32>>,
        now: Option<&str>,
        replicated: Option<u64>,
    ) -> Result<replication::WriteResult> {
        use replication::{WriteOp, WriteResult};
        let tally = |outcomes: &mut WriteSummary, outcome: Outcome| match outcome {
            Outcome::Created => outcomes.created += 1,
            Outcome::Updated => outcomes.updated += 1,
            Outcome::Unchanged => outcomes.unchanged += 1,
        };
        self.write_at(embeddings, now, replicated, |w| match op {
            WriteOp::CreateEntities(entities) => {
                let mut summary = WriteSummary::default();
                for entity in entities {
                    tally(&mut summary, w.upsert_entity(scope, entity)?);
                }
                Ok(WriteResult::Summary(summary))
            }
            WriteOp::AddObservations {
                entity,
                observations,
                valid_from,
                valid_to,
                supersede,
            } => {
                let validity =
                    temporal::Validity::parse(valid_from.as_deref(), valid_to.as_deref())?;
                if !supersede.is_empty() {
                    let named: Vec<(String, String)> = supersede
                        .iter()
                        .map(|text| (entity.clone(), text.clone()))
                        .collect();
                    w.supersede(scope, &named, &[], &validity)?;
                }
                Ok(WriteResult::Count(w.add_observations(
                    scope,
                    entity,
                    observations,
                    &validity,
                )?))
            }
            WriteOp::Supersede {
                observations,
                relations,
                valid_from,
            } => {
                let validity = temporal::Validity::parse(valid_from.as_deref(), None)?;
                Ok(WriteResult::Count(w.supersede(
                    scope,
                    observations,
                    relations,
                    &validity,
                )?))
            }
            WriteOp::SingleValued {
                relation_type,
                single,
            } => Ok(WriteResult::Count(w.declare_single_valued(
                scope,
                relation_type,
                *single,
            )?)),
            WriteOp::Restore { entity, versions } => {
                Ok(WriteResult::Count(w.restore(scope, entity, versions)?))
            }
            WriteOp::DropRetired { before } => Ok(WriteResult::Count(
                u32::try_from(w.drop_retired_before(*before)?).unwrap_or(u32::MAX),
            )),
            WriteOp::CreateRelations(relations) => {
                let mut summary = WriteSummary::default();
                for relation in relations {
                    tally(&mut summary, w.put_relation(scope, relation)?);
                }
                Ok(WriteResult::Summary(summary))
            }
            WriteOp::DeleteEntities(names) => {
                let mut deleted = 0;
                for name in names {
                    if w.delete_entity(scope, name)? {
                        deleted += 1;
                    }
                }
                Ok(WriteResult::Count(deleted))
            }
            WriteOp::DeleteObservations {
                entity,
                observations,
            } => Ok(WriteResult::Count(w.delete_observations(
                scope,
                entity,
                observations,
            )?)),
            WriteOp::DeleteRelations(relations) => {
                let mut deleted = 0;
                for r in relations {
                    if w.delete_relation(scope, &r.from, &r.to, &r.relation_type)? {
                        deleted += 1;
                    }
                }
                Ok(WriteResult::Count(deleted))
            }
        })
    }

    pub fn create_entities(
        &self,
        scope: &ScopeKey,
        entities: &[EntityInput],
    ) -> Result<WriteSummary> {
        model::check_batch("entities", entities.len())?;
        for entity in entities {
            entity.validate()?;
        }
        let mut texts = Vec::new();
        for e in entities {
            texts.push(store::name_text(&e.name, &e.entity_type));
            texts.extend(e.observations.iter().cloned());
        }
        let embeddings = self.embed_all(texts)?;
        let op = replication::WriteOp::CreateEntities(entities.to_vec());
        Ok(self.perform(scope, op, embeddings)?.summary())
    }

    pub fn add_observations(
        &self,
        scope: &ScopeKey,
        entity: &str,
        observations: &[String],
    ) -> Result<u32> {
        self.add_observations_valid(scope, entity, observations, None, None, &[])
    }

    /// [`MemoryService::add_observations`] true in the world from
    /// `valid_from` (to `valid_to`), as the writer says, retiring the
    /// entity's observations named in `supersede` in the same write.
    pub fn add_observations_valid(
        &self,
        scope: &ScopeKey,
        entity: &str,
        observations: &[String],
        valid_from: Option<&str>,
        valid_to: Option<&str>,
        supersede: &[String],
    ) -> Result<u32> {
        model::check_name(entity)?;
        model::check_batch("observations", observations.len())?;
        if !supersede.is_empty() {
            model::check_batch("superseded observations", supersede.len())?;
        }
        for o in observations.iter().chain(supersede) {
            model::check_observation(entity, o)?;
        }
        temporal::Validity::parse(valid_from, valid_to)?;
        let embeddings = self.embed_all(observations.to_vec())?;
        let op = replication::WriteOp::AddObservations {
            entity: entity.to_string(),
            observations: observations.to_vec(),
            valid_from: valid_from.map(str::to_string),
            valid_to: valid_to.map(str::to_string),
            supersede: supersede.to_vec(),
        };
        Ok(self.perform(scope, op, embeddings)?.count())
    }

    /// Retires named facts (an explicit `supersede`): they leave the
    /// current graph and stay in history, valid until `valid_from`
    /// (default now). Answers how many were current.
    pub fn supersede(
        &self,
        scope: &ScopeKey,
        observations: &[(String, String)],
        relations: &[RelationKey],
        valid_from: Option<&str>,
    ) -> Result<u32> {
        model::check_batch("facts", observations.len() + relations.len())?;
        for (entity, text) in observations {
            model::check_name(entity)?;
            model::check_observation(entity, text)?;
        }
        temporal::Validity::parse(valid_from, None)?;
        let op = replication::WriteOp::Supersede {
            observations: observations.to_vec(),
            relations: relations.to_vec(),
            valid_from: valid_from.map(str::to_string),
        };
        Ok(self.perform(scope, op, HashMap::new())?.count())
    }

    /// Drops history retired before `before` (`memory cleanup
    /// --retired-before`): the only way a retired fact goes. Answers how
    /// many went.
    pub fn drop_retired_before(&self, before: &str) -> Result<u32> {
        let before = temporal::parse_time("retired_before", before)?;
        let op = replication::WriteOp::DropRetired { before };
        // Scope-less: the history of every scope.
        Ok(self
            .perform(&ScopeKey::global(), op, HashMap::new())?
            .count())
    }

    /// Declares `relation_type` single-valued in `scope` (or, with
    /// `single` false, no longer): a source holds one relation of that
    /// type, and a new one retires the previous. Answers whether that
    /// changed anything.
    pub fn declare_single_valued(
        &self,
        scope: &ScopeKey,
        relation_type: &str,
        single: bool,
    ) -> Result<bool> {
        model::check_relation_type(relation_type)?;
        let op = replication::WriteOp::SingleValued {
            relation_type: relation_type.to_string(),
            single,
        };
        Ok(self.perform(scope, op, HashMap::new())?.count() > 0)
    }

    /// The relation types single-valued in `scope`: those of
    /// `memory.single_valued_relations` (every scope) and those declared
    /// for it.
    pub fn single_valued_in(&self, scope: &ScopeKey) -> Result<(Vec<String>, Vec<String>)> {
        let mut configured: Vec<String> = self.store.single_valued().iter().cloned().collect();
        configured.sort();
        let declared = self.store.read_history()?.declared_single_valued(scope)?;
        Ok((configured, declared))
    }

    /// Declares the single-valued relation types
    /// (`memory.single_valued_relations`).
    pub fn set_single_valued(&self, types: impl IntoIterator<Item = String>) {
        self.store.set_single_valued(types);
    }

    /// Every version of an entity's facts, with when each was true and
    /// when memory recorded and retired it.
    pub fn history(&self, scope: &ScopeKey, name: &str) -> Result<Vec<temporal::FactVersion>> {
        model::check_name(name)?;
        self.store
            .read_history()?
            .history(scope, name)?
            .ok_or_else(|| {
                MemoryError::NotFound(format!("no entity named `{name}` in scope `{scope}`"))
            })
    }

    /// [`MemoryService::open_nodes`] as seen from `at`: the facts that
    /// held `as_of`, as memory knew them `known_at`, and the relations
    /// among the entities asked for.
    pub fn open_nodes_at(
        &self,
        scope: &ScopeKey,
        names: &[String],
        at: &temporal::At,
    ) -> Result<Subgraph> {
        if at.is_now() {
            return self.open_nodes(scope, names);
        }
        model::check_batch("names", names.len())?;
        let reader = self.store.read_history()?;
        let mut graph = Subgraph::default();
        let mut relations = Vec::new();
        for name in names {
            if let Some((entity, out)) = reader.entity_at(scope, name, at)? {
                graph.entities.push(entity);
                relations.extend(out);
            }
        }
        let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        graph.relations = relations
            .into_iter()
            .filter(|r| wanted.contains(r.to.as_str()))
            .collect();
        Ok(graph)
    }

    /// [`MemoryService::search`] as seen from `at`: current matches and
    /// retired facts that match (a scan of the scopes' history), each
    /// entity with the facts that held then; entities with none drop out.
    pub fn search_at(
        &self,
        scopes: &[ScopeKey],
        query: &str,
        limit: usize,
        at: &temporal::At,
    ) -> Result<Vec<SearchHit>> {
        if at.is_now() {
            return self.search(scopes, query, limit);
        }
        let limit = limit.clamp(1, model::MAX_SEARCH_LIMIT);
        let current = self.search(scopes, query, limit.saturating_mul(2))?;
        let reader = self.store.read_history()?;
        let terms: Vec<String> = keyword::terms(query).into_keys().collect();
        let mut hits = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add =
            |scope: &ScopeKey, name: &str, score: f32, matched: Option<String>| -> Result<()> {
                if !seen.insert((scope.clone(), name.to_string())) {
                    return Ok(());
                }
                if let Some((entity, _)) = reader.entity_at(scope, name, at)?
                    && !entity.observations.is_empty()
                {
                    let matched = matched
                        .filter(|m| entity.observations.contains(m))
                        .or_else(|| {
                            entity
                                .observations
                                .iter()
                                .find(|o| {
                                    let o = o.to_lowercase();
                                    terms.iter().any(|t| o.contains(t.as_str()))
                                })
                                .cloned()
                        })
                        .unwrap_or_else(|| entity.name.clone());
                    hits.push(SearchHit {
                        entity,
                        score,
                        semantic_score: None,
                        keyword_score: None,
                        matched,
                    });
                }
                Ok(())
            };
        for scope in scopes {
            for (name, text) in reader.past_matches(scope, &terms, at, limit)? {
                add(scope, &name, 1.0, Some(text))?;
            }
        }
        for hit in current {
            let scope = scopes
                .iter()
                .find(|s| {
                    reader
                        .entity_id(s, &hit.entity.name)
                        .is_ok_and(|id| id.is_some())
                })
                .cloned();
            if let Some(scope) = scope {
                add(
                    &scope,
                    &hit.entity.name,
                    hit.score,
                    Some(hit.matched.clone()),
                )?;
            }
        }
        hits.truncate(limit);
        Ok(hits)
    }

    pub fn create_relations(
        &self,
        scope: &ScopeKey,
        relations: &[Relation],
    ) -> Result<WriteSummary> {
        model::check_batch("relations", relations.len())?;
        for r in relations {
            r.validate()?;
        }
        let op = replication::WriteOp::CreateRelations(relations.to_vec());
        Ok(self.perform(scope, op, HashMap::new())?.summary())
    }

    pub fn delete_entities(&self, scope: &ScopeKey, names: &[String]) -> Result<u32> {
        model::check_batch("names", names.len())?;
        let op = replication::WriteOp::DeleteEntities(names.to_vec());
        Ok(self.perform(scope, op, HashMap::new())?.count())
    }

    pub fn delete_observations(
        &self,
        scope: &ScopeKey,
        entity: &str,
        observations: &[String],
    ) -> Result<u32> {
        model::check_batch("observations", observations.len())?;
        for observation in observations {
            model::check_observation(entity, observation)?;
        }
        let op = replication::WriteOp::DeleteObservations {
            entity: entity.to_string(),
            observations: observations.to_vec(),
        };
        Ok(self.perform(scope, op, HashMap::new())?.count())
    }

    pub fn delete_relations(&self, scope: &ScopeKey, relations: &[RelationKey]) -> Result<u32> {
        model::check_batch("relations", relations.len())?;
        let op = replication::WriteOp::DeleteRelations(relations.to_vec());
        Ok(self.perform(scope, op, HashMap::new())?.count())
    }

    /// Deletes every entity of a scope (an agent's private memory when the
    /// agent is removed). Answers how many.
    pub fn delete_scope(&self, scope: &ScopeKey) -> Result<u32> {
        let mut total = 0;
        loop {
            let page = self.store.read()?.page(scope, None, model::MAX_BATCH)?;
            if page.is_empty() {
                return Ok(total);
            }
            let names: Vec<String> = page.into_iter().map(|(n, _)| n).collect();
            total += self.delete_entities(scope, &names)?;
        }
    }

    pub fn open_nodes(&self, scope: &ScopeKey, names: &[String]) -> Result<Subgraph> {
        model::check_batch("names", names.len())?;
        let reader = self.store.read()?;
        graph::open_nodes(&reader, scope, names)
    }

    pub fn read_graph(
        &self,
        scope: &ScopeKey,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<GraphPage> {
        let limit = limit.clamp(1, model::MAX_PAGE);
        let reader = self.store.read()?;
        graph::page(&reader, scope, cursor, limit)
    }

    pub fn traverse(
        &self,
        scope: &ScopeKey,
        start: &str,
        options: &TraverseOptions,
    ) -> Result<Traversal> {
        let started = Instant::now();
        let reader = self.store.read()?;
        let result = graph::traverse(&reader, scope, start, options);
        self.telemetry
            .record("graph_traversal", start, started.elapsed());
        result
    }

    /// Hybrid search over one or more scopes.
    pub fn search(&self, scopes: &[ScopeKey], query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let started = Instant::now();
        if query.trim().is_empty() {
            return Err(MemoryError::Invalid("the search query is empty".into()));
        }
        if query.len() > model::MAX_QUERY_BYTES {
            return Err(MemoryError::Invalid(format!(
                "the search query is {} bytes; the limit is {}",
                query.len(),
                model::MAX_QUERY_BYTES
            )));
        }
        let limit = limit.clamp(1, model::MAX_SEARCH_LIMIT);
        let query_vector = self.embed_query(query)?;
        let reader = self.store.read()?;
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let hits = search::hybrid(
            &reader,
            &index,
            scopes,
            query,
            query_vector.as_deref().map(Vec::as_slice),
            limit,
        );
        drop(index);
        self.telemetry
            .record("semantic_search", query, started.elapsed());
        crate::observe::MEMORY_SEARCH_SECONDS.observe(started.elapsed());
        hits
    }

    /// The query's embedding (from the cache when it was asked before), or
    /// `None` without a model.
    fn embed_query(&self, query: &str) -> Result<Option<Arc<Vec<f32>>>> {
        let Some(embedder) = self.embedder.get() else {
            return Ok(None);
        };
        if let Some(vector) = self.query_cache.get(query) {
            return Ok(Some(vector));
        }
        let vector = embedder
            .embed(&[query])
            .map_err(MemoryError::Storage)?
            .into_iter()
            .next()
            .ok_or_else(|| MemoryError::Storage("the model returned no embedding".into()))?;
        let vector = Arc::new(vector);
        self.query_cache.put(query, vector.clone());
        Ok(Some(vector))
    }

    /// The vector index alone: the `k` docs nearest to `vector` in
    /// `scopes`, `exact` scanning instead of walking the graph. For
    /// benchmarks (index latency, recall) and diagnostics.
    pub fn vector_search(
        &self,
        vector: &[f32],
        scopes: &[ScopeKey],
        k: usize,
        exact: bool,
    ) -> Result<Vec<(u64, f32)>> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .search(vector, scopes, k, exact)
            .map_err(index_err)
    }

    /// Everything, for export: entities then relations, scope by scope.
    pub fn export(
        &self,
        mut emit: impl FnMut(transfer::Record) -> std::io::Result<()>,
    ) -> Result<usize> {
        transfer::export(&self.store.read()?, &self.store.read_history()?, &mut emit)
    }

    /// Replays exported records in one write transaction: every record is
    /// checked and every text embedded first, then all entities are
    /// written, then all relations. A bad record (an invalid entity, a
    /// relation whose entity is neither stored nor in the records) fails
    /// the transaction, so an import is written whole or not at all.
    /// Answers (entities, relations) written.
    pub fn import(&self, records: Vec<transfer::Record>) -> Result<(u32, u32)> {
        let mut entities: Vec<(ScopeKey, EntityInput)> = Vec::new();
        let mut relations: Vec<(ScopeKey, Relation)> = Vec::new();
        let mut histories: Vec<(ScopeKey, String, Vec<temporal::FactVersion>)> = Vec::new();
        for record in records {
            match record {
                transfer::Record::History {
                    scope,
                    entity,
                    versions,
                } => {
                    for version in &versions {
                        version.parse()?;
                    }
                    histories.push((transfer::parse_scope(&scope)?, entity, versions));
                }
                transfer::Record::Entity { scope, entity } => {
                    let entity = EntityInput::from(entity);
                    entity.validate()?;
                    entities.push((transfer::parse_scope(&scope)?, entity));
                }
                transfer::Record::Relation { scope, relation } => {
                    relation.validate()?;
                    relations.push((transfer::parse_scope(&scope)?, relation));
                }
            }
        }
        if self.replicator.get().is_some() {
            let counts = self.import_replicated(entities, relations)?;
            for (scope, entity, versions) in histories {
                let op = replication::WriteOp::Restore { entity, versions };
                self.perform(&scope, op, HashMap::new())?;
            }
            return Ok(counts);
        }
        let mut texts = Vec::new();
        for (_, e) in &entities {
            texts.push(store::name_text(&e.name, &e.entity_type));
            texts.extend(e.observations.iter().cloned());
        }
        let embeddings = self.embed_all(texts)?;
        self.write(&embeddings, |w| {
            for (scope, entity) in &entities {
                w.upsert_entity(scope, entity)?;
            }
            for (scope, relation) in &relations {
                w.put_relation(scope, relation)?;
            }
            for (scope, entity, versions) in &histories {
                w.restore(scope, entity, versions)?;
            }
            Ok(())
        })?;
        Ok((entities.len() as u32, relations.len() as u32))
    }

    /// An import in a cluster: checked whole (above), then written in
    /// batches through the cluster's stream, entities before relations. A
    /// failure part-way leaves the batches before it written (each batch
    /// is all or nothing, and importing again is harmless: writes are
    /// upserts).
    fn import_replicated(
        &self,
        entities: Vec<(ScopeKey, EntityInput)>,
        relations: Vec<(ScopeKey, Relation)>,
    ) -> Result<(u32, u32)> {
        const BATCH: usize = 100;
        let (entity_count, relation_count) = (entities.len() as u32, relations.len() as u32);
        let mut by_scope: BTreeMap<ScopeKey, Vec<EntityInput>> = BTreeMap::new();
        for (scope, entity) in entities {
            by_scope.entry(scope).or_default().push(entity);
        }
        for (scope, entities) in &by_scope {
            for batch in entities.chunks(BATCH) {
                self.create_entities(scope, batch)?;
            }
        }
        let mut by_scope: BTreeMap<ScopeKey, Vec<Relation>> = BTreeMap::new();
        for (scope, relation) in relations {
            by_scope.entry(scope).or_default().push(relation);
        }
        for (scope, relations) in &by_scope {
            for batch in relations.chunks(BATCH) {
                self.create_relations(scope, batch)?;
            }
        }
        Ok((entity_count, relation_count))
    }

    /// Entity in a scope, by name.
    pub fn entity(&self, scope: &ScopeKey, name: &str) -> Result<Option<Entity>> {
        let reader = self.store.read()?;
        match reader.entity_id(scope, name)? {
            Some(id) => reader.entity(id),
            None => Ok(None),
        }
    }
}
