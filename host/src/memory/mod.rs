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

pub mod embedding;
pub mod graph;
pub mod model;
pub mod search;
pub mod store;
pub mod transfer;
pub mod vectors;

mod keyword;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;

use embedding::{EmbedderState, ModelState};
use model::{
    Entity, EntityInput, GraphPage, MemoryError, Relation, RelationKey, Result, ScopeKey,
    SearchHit, Subgraph, Traversal, TraverseOptions, WriteSummary,
};
use store::{IndexDelta, MemoryStore, Outcome};
use vectors::VectorIndex;

use crate::storage::Storage;

/// Latency samples kept per operation kind, for `stats`.
const LATENCY_SAMPLES: usize = 1024;

/// The memory system as the rest of the server sees it.
pub struct MemoryService {
    store: MemoryStore,
    embedder: EmbedderState,
    index: RwLock<VectorIndex>,
    latencies: Mutex<HashMap<&'static str, Vec<f64>>>,
}

/// Health of the memory system, in the runbook's shape.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryHealth {
    pub status: &'static str,
    pub sqlite_status: &'static str,
    pub embedding_model: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MemoryService {
    pub fn open(storage: Arc<Storage>, embedder: EmbedderState) -> Result<Self> {
        let store = MemoryStore::open(storage)?;
        let service = MemoryService {
            store,
            embedder,
            index: RwLock::new(VectorIndex::new()),
            latencies: Mutex::new(HashMap::new()),
        };
        service.rebuild_index()?;
        Ok(service)
    }

    /// Rebuilds the vector index from the embeddings in redb.
    pub fn rebuild_index(&self) -> Result<usize> {
        let reader = self.store.read()?;
        let mut index = VectorIndex::new();
        reader.all_embeddings(|doc, scope, vector| index.insert(doc, &scope, vector))?;
        let count = index.len();
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
        Ok(count)
    }

    /// Embeds docs written while no model was loaded. Answers how many.
    pub fn backfill_embeddings(&self) -> Result<usize> {
        let Some(embedder) = self.embedder.get() else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let pending = self.store.read()?.unembedded_docs(256)?;
            if pending.is_empty() {
                return Ok(total);
            }
            let texts: Vec<&str> = pending.iter().map(|(_, _, t)| t.as_str()).collect();
            let vectors = embedder.embed(&texts).map_err(MemoryError::Storage)?;
            let pairs: Vec<(u64, Vec<f32>)> =
                pending.iter().map(|(d, _, _)| *d).zip(vectors).collect();
            store::store_embeddings(&self.store, &pairs)?;
            let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
            for ((doc, vector), (_, scope, _)) in pairs.into_iter().zip(&pending) {
                index.insert(doc, scope, vector);
            }
            total += pending.len();
        }
    }

    pub fn model_state(&self) -> ModelState {
        self.embedder.state()
    }

    pub fn health(&self) -> MemoryHealth {
        let sqlite_status = match self.store.read().and_then(|r| r.counts()) {
            Ok(_) => "ok",
            Err(_) => "error",
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
            status,
            sqlite_status,
            embedding_model,
            reason,
        }
    }

    fn record(&self, kind: &'static str, started: Instant) {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let samples = latencies.entry(kind).or_default();
        if samples.len() == LATENCY_SAMPLES {
            samples.remove(0);
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }

    /// p50/p99 (ms) of recent operations of each kind.
    pub fn latency_percentiles(&self) -> HashMap<&'static str, (f64, f64, usize)> {
        let latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        latencies
            .iter()
            .map(|(kind, samples)| {
                let mut sorted = samples.clone();
                sorted.sort_by(f64::total_cmp);
                let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
                (*kind, (at(0.5), at(0.99), sorted.len()))
            })
            .collect()
    }

    pub fn counts(&self) -> Result<store::StoreCounts> {
        self.store.read()?.counts()
    }

    pub fn indexed_vectors(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Embeds every text at once (one batch) before the write transaction.
    fn embed_all(&self, texts: Vec<String>) -> Result<HashMap<String, Vec<f32>>> {
        let Some(embedder) = self.embedder.get() else {
            return Ok(HashMap::new());
        };
        let mut unique: Vec<String> = texts;
        unique.sort();
        unique.dedup();
        let refs: Vec<&str> = unique.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs).map_err(MemoryError::Storage)?;
        Ok(unique.into_iter().zip(vectors).collect())
    }

    fn apply(&self, delta: IndexDelta) {
        if delta.added.is_empty() && delta.removed.is_empty() {
            return;
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for doc in delta.removed {
            index.remove(doc);
        }
        for (doc, scope, vector) in delta.added {
            index.insert(doc, &scope, vector);
        }
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
        let (summary, delta) = self.store.write(&embeddings, |w| {
            let mut summary = WriteSummary::default();
            for entity in entities {
                match w.upsert_entity(scope, entity)? {
                    Outcome::Created => summary.created += 1,
                    Outcome::Updated => summary.updated += 1,
                    Outcome::Unchanged => summary.unchanged += 1,
                }
            }
            Ok(summary)
        })?;
        self.apply(delta);
        Ok(summary)
    }

    pub fn add_observations(
        &self,
        scope: &ScopeKey,
        entity: &str,
        observations: &[String],
    ) -> Result<u32> {
        model::check_name(entity)?;
        model::check_batch("observations", observations.len())?;
        for o in observations {
            model::check_observation(entity, o)?;
        }
        let embeddings = self.embed_all(observations.to_vec())?;
        let (added, delta) = self.store.write(&embeddings, |w| {
            w.add_observations(scope, entity, observations)
        })?;
        self.apply(delta);
        Ok(added)
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
        let (summary, delta) = self.store.write(&HashMap::new(), |w| {
            let mut summary = WriteSummary::default();
            for relation in relations {
                match w.put_relation(scope, relation)? {
                    Outcome::Created => summary.created += 1,
                    Outcome::Updated => summary.updated += 1,
                    Outcome::Unchanged => summary.unchanged += 1,
                }
            }
            Ok(summary)
        })?;
        self.apply(delta);
        Ok(summary)
    }

    pub fn delete_entities(&self, scope: &ScopeKey, names: &[String]) -> Result<u32> {
        model::check_batch("names", names.len())?;
        let (deleted, delta) = self.store.write(&HashMap::new(), |w| {
            let mut deleted = 0;
            for name in names {
                if w.delete_entity(scope, name)? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })?;
        self.apply(delta);
        Ok(deleted)
    }

    pub fn delete_observations(
        &self,
        scope: &ScopeKey,
        entity: &str,
        observations: &[String],
    ) -> Result<u32> {
        model::check_batch("observations", observations.len())?;
        let (deleted, delta) = self.store.write(&HashMap::new(), |w| {
            w.delete_observations(scope, entity, observations)
        })?;
        self.apply(delta);
        Ok(deleted)
    }

    pub fn delete_relations(&self, scope: &ScopeKey, relations: &[RelationKey]) -> Result<u32> {
        model::check_batch("relations", relations.len())?;
        let (deleted, delta) = self.store.write(&HashMap::new(), |w| {
            let mut deleted = 0;
            for r in relations {
                if w.delete_relation(scope, &r.from, &r.to, &r.relation_type)? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })?;
        self.apply(delta);
        Ok(deleted)
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
        self.record("graph_traversal", started);
        result
    }

    /// Hybrid search over one or more scopes.
    pub fn search(&self, scopes: &[ScopeKey], query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let started = Instant::now();
        if query.trim().is_empty() {
            return Err(MemoryError::Invalid("the search query is empty".into()));
        }
        let limit = limit.clamp(1, model::MAX_SEARCH_LIMIT);
        let query_vector = match self.embedder.get() {
            Some(embedder) => Some(
                embedder
                    .embed(&[query])
                    .map_err(MemoryError::Storage)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        MemoryError::Storage("the model returned no embedding".into())
                    })?,
            ),
            None => None,
        };
        let reader = self.store.read()?;
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let hits = search::hybrid(
            &reader,
            &index,
            scopes,
            query,
            query_vector.as_deref(),
            limit,
        );
        drop(index);
        self.record("semantic_search", started);
        hits
    }

    /// Everything, for export: entities then relations, scope by scope.
    pub fn export(
        &self,
        mut emit: impl FnMut(transfer::Record) -> std::io::Result<()>,
    ) -> Result<usize> {
        transfer::export(&self.store.read()?, &mut emit)
    }

    /// Replays exported records (entities before the relations that use
    /// them). Answers (entities, relations) written.
    pub fn import(&self, records: Vec<transfer::Record>) -> Result<(u32, u32)> {
        let mut entities = 0;
        let mut relations = 0;
        let mut batch: Vec<EntityInput> = Vec::new();
        let mut batch_scope: Option<ScopeKey> = None;
        let flush = |scope: &Option<ScopeKey>, batch: &mut Vec<EntityInput>| -> Result<u32> {
            match scope {
                Some(scope) if !batch.is_empty() => {
                    let s = self.create_entities(scope, batch)?;
                    batch.clear();
                    Ok(s.created + s.updated + s.unchanged)
                }
                _ => Ok(0),
            }
        };
        for record in records {
            match record {
                transfer::Record::Entity { scope, entity } => {
                    let scope = transfer::parse_scope(&scope)?;
                    if batch_scope.as_ref() != Some(&scope) || batch.len() == model::MAX_BATCH {
                        entities += flush(&batch_scope, &mut batch)?;
                        batch_scope = Some(scope);
                    }
                    batch.push(entity.into());
                }
                transfer::Record::Relation { scope, relation } => {
                    entities += flush(&batch_scope, &mut batch)?;
                    let scope = transfer::parse_scope(&scope)?;
                    self.create_relations(&scope, std::slice::from_ref(&relation))?;
                    relations += 1;
                }
            }
        }
        entities += flush(&batch_scope, &mut batch)?;
        Ok((entities, relations))
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
