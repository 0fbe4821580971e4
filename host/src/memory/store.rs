//! Where memory is written: the knowledge graph in redb, the single source
//! of truth. Entities, observations (each a searchable document), both
//! directions of every relation, keyword postings and embeddings all
//! change in one transaction, so a crash never leaves them disagreeing.
//! The vector index is derived from the `mem_embeddings` table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use redb::{ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::keyword;
use super::model::{self, Entity, EntityInput, MemoryError, Relation, Result, ScopeKey};
use super::temporal::{Times, Validity};
use crate::storage::Storage;

mod history;
pub use history::HistoryReader;
use history::{HISTORY, HISTORY_TERMS, OBS_TIMES, REL_TIMES, SINGLE_VALUED};

/// (scope, name) → entity id.
const ENTITIES: TableDefinition<(&str, &str), u64> = TableDefinition::new("mem_entities");
/// entity id → JSON [`StoredEntity`].
const ENTITY_DATA: TableDefinition<u64, &[u8]> = TableDefinition::new("mem_entity_data");
/// (entity id, doc id) for each observation of an entity, in write order.
const OBSERVATIONS: TableDefinition<(u64, u64), ()> = TableDefinition::new("mem_observations");
/// entity id → doc id of the entity's name document.
const NAME_DOCS: TableDefinition<u64, u64> = TableDefinition::new("mem_name_docs");
/// doc id → (entity id, term count, scope, text): every searchable text.
const DOCS: TableDefinition<u64, (u64, u32, &str, &str)> = TableDefinition::new("mem_docs");
/// (scope, term, doc id) → term frequency: keyword postings.
const TERMS: TableDefinition<(&str, &str, u64), u32> = TableDefinition::new("mem_terms");
/// (scope, term) → number of docs containing the term.
const TERM_DF: TableDefinition<(&str, &str), u64> = TableDefinition::new("mem_term_df");
/// (from, relation type, to) → (strength, confidence).
const REL_OUT: TableDefinition<(u64, &str, u64), (f32, f32)> = TableDefinition::new("mem_rel_out");
/// (to, relation type, from): the reverse adjacency, for incoming traversal.
const REL_IN: TableDefinition<(u64, &str, u64), ()> = TableDefinition::new("mem_rel_in");
/// doc id → embedding: [`F16_VECTOR`] then little-endian f16s, or (older
/// rows) little-endian f32s.
const EMBEDDINGS: TableDefinition<u64, &[u8]> = TableDefinition::new("mem_embeddings");
/// Counters: `next_entity`, `next_doc`, `docs:<scope>`, `terms:<scope>`;
/// and [`VECTORS_VERSION`].
const META: TableDefinition<&str, u64> = TableDefinition::new("mem_meta");
/// A random stamp that changes with every transaction that changes
/// `mem_embeddings`: a saved vector index that names it holds exactly
/// these vectors (random rather than a counter, so a restored backup
/// cannot reach a number an index of another history carries).
const VECTORS_VERSION: &str = "vectors_version";
/// In `mem_meta`: the last position of the cluster's memory stream this
/// database applied (0: none), written in the same transaction as the
/// write it applied.
const REPLICATED_SEQ: &str = "replicated_seq";

/// First byte of an f16 embedding row. Old f32 rows have a length that is
/// a multiple of 4; an f16 row with this byte has an odd length.
const F16_VECTOR: u8 = 0x16;

/// An entity's record in `mem_entity_data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEntity {
    scope: String,
    name: String,
    entity_type: String,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    created_at: String,
    updated_at: String,
    /// The observation texts, oldest first: a copy of what OBSERVATIONS and
    /// DOCS hold (those stay the source for search), kept in the record so
    /// reading an entity — every node of a traversal, every search hit —
    /// is one lookup instead of two plus one per observation. Rewritten in
    /// the same transaction as any change to the observations. `None` in
    /// records written before the copy existed; readers then fall back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observations: Option<Vec<String>>,
}

/// First byte of a record in the binary format; older records are JSON
/// objects and start with `{`.
const RECORD_V1: u8 = 1;

/// The binary record: postcard (length-prefixed fields, no names to match,
/// no escapes to scan) decodes in a fraction of JSON's time, and decoding
/// records was a fifth of a traversal. Metadata stays JSON text inside,
/// since postcard cannot carry a free-form value.
#[derive(Serialize, Deserialize)]
struct RecordV1 {
    scope: String,
    name: String,
    entity_type: String,
    metadata: Option<String>,
    created_at: String,
    updated_at: String,
    /// `None` when converted from an old record that had no copy.
    observations: Option<Vec<String>>,
}

impl StoredEntity {
    fn encode(&self) -> Result<Vec<u8>> {
        let record = RecordV1 {
            scope: self.scope.clone(),
            name: self.name.clone(),
            entity_type: self.entity_type.clone(),
            metadata: match &self.metadata {
                Some(value) => Some(serde_json::to_string(value).map_err(json_err)?),
                None => None,
            },
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            observations: self.observations.clone(),
        };
        postcard::to_extend(&record, vec![RECORD_V1])
            .map_err(|e| MemoryError::Storage(format!("cannot encode entity record: {e}")))
    }

    fn decode(bytes: &[u8]) -> Result<StoredEntity> {
        match bytes.first() {
            Some(&RECORD_V1) => {
                let record: RecordV1 = postcard::from_bytes(&bytes[1..])
                    .map_err(|e| MemoryError::Storage(format!("unreadable entity record: {e}")))?;
                Ok(StoredEntity {
                    scope: record.scope,
                    name: record.name,
                    entity_type: record.entity_type,
                    metadata: match record.metadata {
                        Some(text) => Some(serde_json::from_str(&text).map_err(json_err)?),
                        None => None,
                    },
                    created_at: record.created_at,
                    updated_at: record.updated_at,
                    observations: record.observations,
                })
            }
            Some(b'{') => serde_json::from_slice(bytes).map_err(json_err),
            _ => Err(MemoryError::Storage(
                "unreadable entity record: unknown format".into(),
            )),
        }
    }
}

/// Changes the vector index must follow after a commit.
#[derive(Debug, Default)]
pub struct IndexDelta {
    pub added: Vec<(u64, ScopeKey, Vec<f32>)>,
    pub removed: Vec<u64>,
    /// Docs written without an embedding (no model loaded, or left to the
    /// background embedder).
    pub unembedded: u32,
    /// The vectors version the transaction wrote, when it changed any
    /// embedding.
    pub version: Option<u64>,
}

/// A doc waiting for its embedding: id, scope, text.
pub type PendingDoc = (u64, ScopeKey, String);

/// Counts for `stats` and health.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoreCounts {
    /// Current facts: entities, observations, relations.
    pub entities: u64,
    pub observations: u64,
    pub relations: u64,
    pub documents: u64,
    pub embeddings: u64,
    /// Observations and relations retired (replaced) and kept as history.
    #[serde(default)]
    pub retired_facts: u64,
}

/// A document found by keyword: its entity and BM25 score.
#[derive(Debug, Clone)]
pub struct KeywordMatch {
    pub doc: u64,
    pub entity: u64,
    pub score: f32,
}

pub struct MemoryStore {
    storage: Arc<Storage>,
    single_valued: std::sync::RwLock<Arc<HashSet<String>>>,
}

/// An embedding as stored: f16, half the bytes of f32. The vector index
/// holds f16 too, so nothing it can answer is lost.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + vector.len() * 2);
    out.push(F16_VECTOR);
    for x in vector {
        out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes());
    }
    out
}

/// An embedding row back as f32s, whichever format wrote it.
pub fn decode(bytes: &[u8]) -> Vec<f32> {
    match bytes.split_first() {
        Some((&F16_VECTOR, halves)) if bytes.len() % 2 == 1 => halves
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Copies every memory table from `from` into `to`.
fn copy_all(from: &redb::ReadTransaction, to: &WriteTransaction) -> Result<()> {
    use super::snapshot::copy_table;
    copy_table(from, to, ENTITIES)?;
    copy_table(from, to, ENTITY_DATA)?;
    copy_table(from, to, OBSERVATIONS)?;
    copy_table(from, to, NAME_DOCS)?;
    copy_table(from, to, DOCS)?;
    copy_table(from, to, TERMS)?;
    copy_table(from, to, TERM_DF)?;
    copy_table(from, to, REL_OUT)?;
    copy_table(from, to, REL_IN)?;
    copy_table(from, to, EMBEDDINGS)?;
    copy_table(from, to, OBS_TIMES)?;
    copy_table(from, to, REL_TIMES)?;
    copy_table(from, to, HISTORY)?;
    copy_table(from, to, HISTORY_TERMS)?;
    copy_table(from, to, SINGLE_VALUED)?;
    copy_table(from, to, META)
}

/// Gives the embeddings a new [`VECTORS_VERSION`].
fn stamp_vectors(meta: &mut redb::Table<&str, u64>) -> Result<u64> {
    let version = super::vectors::rand_token().max(1);
    meta.insert(VECTORS_VERSION, version)?;
    Ok(version)
}

fn json_err(e: serde_json::Error) -> MemoryError {
    MemoryError::Storage(format!("unreadable entity record: {e}"))
}

impl MemoryStore {
    pub fn open(storage: Arc<Storage>) -> Result<Self> {
        let txn = storage.database().begin_write()?;
        {
            txn.open_table(ENTITIES)?;
            txn.open_table(ENTITY_DATA)?;
            txn.open_table(OBSERVATIONS)?;
            txn.open_table(NAME_DOCS)?;
            txn.open_table(DOCS)?;
            txn.open_table(TERMS)?;
            txn.open_table(TERM_DF)?;
            txn.open_table(REL_OUT)?;
            txn.open_table(REL_IN)?;
            txn.open_table(EMBEDDINGS)?;
            txn.open_table(META)?;
            txn.open_table(OBS_TIMES)?;
            txn.open_table(REL_TIMES)?;
            txn.open_table(HISTORY)?;
            txn.open_table(HISTORY_TERMS)?;
            txn.open_table(SINGLE_VALUED)?;
        }
        txn.commit()?;
        Ok(MemoryStore {
            storage,
            single_valued: std::sync::RwLock::new(Arc::new(HashSet::new())),
        })
    }

    /// Declares the relation types of which a source holds one at a time
    /// (`memory.single_valued_relations`): a new one retires the old.
    pub fn set_single_valued(&self, types: impl IntoIterator<Item = String>) {
        *self
            .single_valued
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(types.into_iter().collect());
    }

    /// The declared single-valued relation types.
    pub fn single_valued(&self) -> Arc<HashSet<String>> {
        self.single_valued
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads facts in time (history, `as_of`, `known_at`).
    pub fn read_history(&self) -> Result<HistoryReader> {
        let txn = self.storage.database().begin_read()?;
        HistoryReader::open(&txn)
    }

    /// Runs `f` in one write transaction and commits durably; answers what
    /// `f` returned and how the vector index must change.
    pub fn write<T>(
        &self,
        embeddings: &HashMap<String, Vec<f32>>,
        f: impl FnOnce(&mut GraphWriter<'_>) -> Result<T>,
    ) -> Result<(T, IndexDelta)> {
        self.write_at(embeddings, None, None, f)
    }

    /// [`MemoryStore::write`] recorded at `now` (default: this clock's
    /// now) and, when `replicated` is given, marking that position of the
    /// cluster's memory stream applied in the same transaction.
    pub fn write_at<T>(
        &self,
        embeddings: &HashMap<String, Vec<f32>>,
        now: Option<&str>,
        replicated: Option<u64>,
        f: impl FnOnce(&mut GraphWriter<'_>) -> Result<T>,
    ) -> Result<(T, IndexDelta)> {
        let txn = self.storage.database().begin_write()?;
        let mut writer = GraphWriter {
            txn: &txn,
            embeddings,
            delta: IndexDelta::default(),
            now: now.map_or_else(crate::clock::now_rfc3339, str::to_string),
            single_valued: self.single_valued(),
        };
        let value = f(&mut writer)?;
        let mut delta = writer.delta;
        if !delta.added.is_empty() || !delta.removed.is_empty() {
            delta.version = Some(stamp_vectors(&mut txn.open_table(META)?)?);
        }
        if let Some(seq) = replicated {
            txn.open_table(META)?.insert(REPLICATED_SEQ, seq)?;
        }
        txn.commit()?;
        Ok((value, delta))
    }

    /// The data directory of the database.
    pub fn data_dir(&self) -> &std::path::Path {
        self.storage.dir()
    }

    /// Copies every memory table, as one read transaction sees them, into
    /// a new database file at `path`; answers the memory-stream position
    /// that copy holds (see `super::snapshot`).
    pub fn snapshot_into(&self, path: &std::path::Path) -> Result<u64> {
        let from = self.storage.database().begin_read()?;
        let seq = match from.open_table(META)?.get(REPLICATED_SEQ)? {
            Some(seq) => seq.value(),
            None => 0,
        };
        let target = super::snapshot::create(path)?;
        let to = target.begin_write()?;
        copy_all(&from, &to)?;
        to.commit()?;
        Ok(seq)
    }

    /// Replaces every memory table with the snapshot at `path`, in one
    /// transaction; answers the memory-stream position it holds. The
    /// vector index must be rebuilt afterwards.
    pub fn replace_from(&self, path: &std::path::Path) -> Result<u64> {
        let source = super::snapshot::open(path)?;
        let from = super::snapshot::read(&source)?;
        let seq = match from.open_table(META) {
            Ok(meta) => meta.get(REPLICATED_SEQ)?.map_or(0, |v| v.value()),
            Err(e) => {
                return Err(MemoryError::Storage(format!(
                    "{} is not a memory snapshot: {e}",
                    path.display()
                )));
            }
        };
        let to = self.storage.database().begin_write()?;
        use super::snapshot::drop_table;
        drop_table(&to, ENTITIES)?;
        drop_table(&to, ENTITY_DATA)?;
        drop_table(&to, OBSERVATIONS)?;
        drop_table(&to, NAME_DOCS)?;
        drop_table(&to, DOCS)?;
        drop_table(&to, TERMS)?;
        drop_table(&to, TERM_DF)?;
        drop_table(&to, REL_OUT)?;
        drop_table(&to, REL_IN)?;
        drop_table(&to, EMBEDDINGS)?;
        drop_table(&to, OBS_TIMES)?;
        drop_table(&to, REL_TIMES)?;
        drop_table(&to, HISTORY)?;
        drop_table(&to, HISTORY_TERMS)?;
        drop_table(&to, SINGLE_VALUED)?;
        drop_table(&to, META)?;
        copy_all(&from, &to)?;
        // The index rebuilt from these embeddings carries a version of
        // its own, so no saved index of another history is trusted.
        stamp_vectors(&mut to.open_table(META)?)?;
        to.commit()?;
        Ok(seq)
    }

    /// Marks position `seq` of the cluster's memory stream applied, for a
    /// write whose apply failed (it fails the same way on every node).
    pub fn mark_replicated(&self, seq: u64) -> Result<()> {
        let txn = self.storage.database().begin_write()?;
        txn.open_table(META)?.insert(REPLICATED_SEQ, seq)?;
        txn.commit()?;
        Ok(())
    }

    /// The embeddings' version, given one first if they have none (a
    /// database written before versions existed), so that the index saved
    /// from now on can be trusted as it is at the next start.
    pub fn ensure_vectors_version(&self) -> Result<u64> {
        if let Some(version) = self.read()?.vectors_version()? {
            return Ok(version);
        }
        let txn = self.storage.database().begin_write()?;
        let version = stamp_vectors(&mut txn.open_table(META)?)?;
        txn.commit()?;
        Ok(version)
    }

    pub fn read(&self) -> Result<GraphReader> {
        let txn = self.storage.database().begin_read()?;
        Ok(GraphReader {
            t: ReaderTables {
                entities: txn.open_table(ENTITIES)?,
                entity_data: txn.open_table(ENTITY_DATA)?,
                observations: txn.open_table(OBSERVATIONS)?,
                docs: txn.open_table(DOCS)?,
                terms: txn.open_table(TERMS)?,
                term_df: txn.open_table(TERM_DF)?,
                rel_out: txn.open_table(REL_OUT)?,
                rel_in: txn.open_table(REL_IN)?,
                embeddings: txn.open_table(EMBEDDINGS)?,
                meta: txn.open_table(META)?,
            },
        })
    }
}

/// An entity's observations as (doc id, text), oldest first, from
/// OBSERVATIONS and DOCS: the source the record's copy is rebuilt from.
fn observations_of(
    observations: &impl ReadableTable<(u64, u64), ()>,
    docs: &impl ReadableTable<u64, (u64, u32, &'static str, &'static str)>,
    entity: u64,
) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for entry in observations.range((entity, 0)..(entity.saturating_add(1), 0))? {
        let (key, _) = entry?;
        let (_, doc) = key.value();
        if let Some(v) = docs.get(doc)? {
            out.push((doc, v.value().3.to_string()));
        }
    }
    Ok(out)
}

/// Write operations inside one transaction.
pub struct GraphWriter<'t> {
    txn: &'t WriteTransaction,
    embeddings: &'t HashMap<String, Vec<f32>>,
    delta: IndexDelta,
    now: String,
    /// Relation types a source holds one of (see `memory::temporal`).
    single_valued: Arc<HashSet<String>>,
}

/// What happened to one entity in a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl GraphWriter<'_> {
    fn bump(&self, key: &str, by: i64) -> Result<u64> {
        let mut meta = self.txn.open_table(META)?;
        let current = meta.get(key)?.map(|v| v.value()).unwrap_or(0);
        let next = if by >= 0 {
            current.saturating_add(by as u64)
        } else {
            current.saturating_sub(by.unsigned_abs())
        };
        meta.insert(key, next)?;
        Ok(current)
    }

    pub fn entity_id(&self, scope: &ScopeKey, name: &str) -> Result<Option<u64>> {
        let entities = self.txn.open_table(ENTITIES)?;
        Ok(entities.get((scope.as_str(), name))?.map(|v| v.value()))
    }

    fn require(&self, scope: &ScopeKey, name: &str) -> Result<u64> {
        self.entity_id(scope, name)?.ok_or_else(|| {
            MemoryError::NotFound(format!(
                "no entity named `{name}` in scope `{scope}`; create it first with create_entities"
            ))
        })
    }

    /// Rewrites an entity's record with its current observation texts and,
    /// if `touch`, a new `updated_at`.
    fn refresh_record(&self, id: u64, touch: bool) -> Result<()> {
        let Some(mut record) = self.record(id)? else {
            return Ok(());
        };
        record.observations = Some(self.observation_texts(id)?);
        if touch {
            record.updated_at = self.now.clone();
        }
        self.put_record(id, &record)
    }

    /// Adds a searchable document (postings, counters, embedding).
    fn add_doc(&mut self, scope: &ScopeKey, entity: u64, text: &str) -> Result<u64> {
        let doc = self.bump("next_doc", 1)?;
        let terms = keyword::terms(text);
        let length = keyword::length(&terms);
        self.txn
            .open_table(DOCS)?
            .insert(doc, (entity, length, scope.as_str(), text))?;
        {
            let mut postings = self.txn.open_table(TERMS)?;
            let mut df = self.txn.open_table(TERM_DF)?;
            for (term, count) in &terms {
                postings.insert((scope.as_str(), term.as_str(), doc), *count)?;
                let current = df
                    .get((scope.as_str(), term.as_str()))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                df.insert((scope.as_str(), term.as_str()), current + 1)?;
            }
        }
        self.bump(&format!("docs:{scope}"), 1)?;
        self.bump(&format!("terms:{scope}"), i64::from(length))?;
        match self.embeddings.get(text) {
            Some(vector) => {
                self.txn
                    .open_table(EMBEDDINGS)?
                    .insert(doc, encode(vector).as_slice())?;
                self.delta.added.push((doc, scope.clone(), vector.clone()));
            }
            None => self.delta.unembedded += 1,
        }
        Ok(doc)
    }

    fn remove_doc(&mut self, scope: &ScopeKey, doc: u64) -> Result<()> {
        let removed = self.txn.open_table(DOCS)?.remove(doc)?.map(|v| {
            let (_, length, _, text) = v.value();
            (length, text.to_string())
        });
        let Some((length, text)) = removed else {
            return Ok(());
        };
        {
            let mut postings = self.txn.open_table(TERMS)?;
            let mut df = self.txn.open_table(TERM_DF)?;
            for term in keyword::terms(&text).keys() {
                postings.remove((scope.as_str(), term.as_str(), doc))?;
                let current = df
                    .get((scope.as_str(), term.as_str()))?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if current <= 1 {
                    df.remove((scope.as_str(), term.as_str()))?;
                } else {
                    df.insert((scope.as_str(), term.as_str()), current - 1)?;
                }
            }
        }
        self.bump(&format!("docs:{scope}"), -1)?;
        self.bump(&format!("terms:{scope}"), -i64::from(length))?;
        if self.txn.open_table(EMBEDDINGS)?.remove(doc)?.is_some() {
            self.delta.removed.push(doc);
        }
        Ok(())
    }

    fn observation_docs(&self, entity: u64) -> Result<Vec<(u64, String)>> {
        observations_of(
            &self.txn.open_table(OBSERVATIONS)?,
            &self.txn.open_table(DOCS)?,
            entity,
        )
    }

    fn observation_texts(&self, entity: u64) -> Result<Vec<String>> {
        Ok(self
            .observation_docs(entity)?
            .into_iter()
            .map(|(_, t)| t)
            .collect())
    }

    fn record(&self, id: u64) -> Result<Option<StoredEntity>> {
        let data = self.txn.open_table(ENTITY_DATA)?;
        let bytes = data.get(id)?;
        bytes.map(|b| StoredEntity::decode(b.value())).transpose()
    }

    fn put_record(&self, id: u64, record: &StoredEntity) -> Result<()> {
        self.txn
            .open_table(ENTITY_DATA)?
            .insert(id, record.encode()?.as_slice())?;
        Ok(())
    }

    /// Creates the entity, or merges new observations (and type, metadata)
    /// into an existing one of the same name.
    pub fn upsert_entity(&mut self, scope: &ScopeKey, input: &EntityInput) -> Result<Outcome> {
        let existing = self.entity_id(scope, &input.name)?;
        let (id, mut record, changed) = match existing {
            Some(id) => {
                let stored = self
                    .record(id)?
                    .ok_or_else(|| MemoryError::Storage(format!("entity {id} has no record")))?;
                let mut updated = stored.clone();
                updated.entity_type = input.entity_type.clone();
                if input.metadata.is_some() {
                    updated.metadata = input.metadata.clone();
                }
                let changed = updated.entity_type != stored.entity_type
                    || updated.metadata != stored.metadata;
                (id, updated, changed)
            }
            None => {
                let id = self.bump("next_entity", 1)?;
                self.txn
                    .open_table(ENTITIES)?
                    .insert((scope.as_str(), input.name.as_str()), id)?;
                let name_doc =
                    self.add_doc(scope, id, &name_text(&input.name, &input.entity_type))?;
                self.txn.open_table(NAME_DOCS)?.insert(id, name_doc)?;
                let record = StoredEntity {
                    scope: scope.to_string(),
                    name: input.name.clone(),
                    entity_type: input.entity_type.clone(),
                    metadata: input.metadata.clone(),
                    created_at: self.now.clone(),
                    updated_at: self.now.clone(),
                    observations: Some(Vec::new()),
                };
                (id, record, false)
            }
        };
        let added = self.add_observations_to(scope, id, &input.observations, &input.validity()?)?;
        if added > 0 {
            record.observations = Some(self.observation_texts(id)?);
        }
        let updated = changed || added > 0;
        if existing.is_some() && updated {
            // New observations update an entity too, as `add_observations`
            // does (orphan cleanup goes by updated_at).
            record.updated_at = self.now.clone();
        }
        // The record is written once, with its final observations.
        if existing.is_none() || updated {
            self.put_record(id, &record)?;
        }
        Ok(match (existing, updated) {
            (None, _) => Outcome::Created,
            (Some(_), true) => Outcome::Updated,
            (Some(_), false) => Outcome::Unchanged,
        })
    }

    /// Adds the observations the entity does not hold yet, each retiring
    /// the current one with the same attribute key (see
    /// `memory::temporal`). Answers how many were added.
    fn add_observations_to(
        &mut self,
        scope: &ScopeKey,
        entity: u64,
        texts: &[String],
        validity: &Validity,
    ) -> Result<u32> {
        let mut seen: HashSet<String> = self
            .observation_docs(entity)?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let times = Times::written(self.now_ms(), validity);
        let mut added = 0;
        for text in texts {
            if !seen.insert(text.clone()) {
                continue;
            }
            for old in self.retire_same_key(scope, entity, text, times.valid_from)? {
                seen.remove(&old);
            }
            if seen.len() > model::MAX_OBSERVATIONS_PER_ENTITY {
                return Err(MemoryError::Invalid(format!(
                    "an entity holds at most {} observations; merge or delete some first",
                    model::MAX_OBSERVATIONS_PER_ENTITY
                )));
            }
            let doc = self.add_doc(scope, entity, text)?;
            self.txn
                .open_table(OBSERVATIONS)?
                .insert((entity, doc), ())?;
            self.put_obs_times(doc, times)?;
            added += 1;
        }
        Ok(added)
    }

    /// Adds observations to an existing entity; duplicates are skipped.
    pub fn add_observations(
        &mut self,
        scope: &ScopeKey,
        name: &str,
        texts: &[String],
        validity: &Validity,
    ) -> Result<u32> {
        let id = self.require(scope, name)?;
        let added = self.add_observations_to(scope, id, texts, validity)?;
        if added > 0 {
            self.refresh_record(id, true)?;
        }
        Ok(added)
    }

    pub fn delete_observations(
        &mut self,
        scope: &ScopeKey,
        name: &str,
        texts: &[String],
    ) -> Result<u32> {
        let id = self.require(scope, name)?;
        let wanted: HashSet<&str> = texts.iter().map(String::as_str).collect();
        let mut removed = 0;
        for (doc, text) in self.observation_docs(id)? {
            if wanted.contains(text.as_str()) {
                self.txn.open_table(OBSERVATIONS)?.remove((id, doc))?;
                self.remove_doc(scope, doc)?;
                self.forget_obs_times(doc)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.refresh_record(id, true)?;
        }
        Ok(removed)
    }

    /// Deletes an entity with its observations and every relation touching it.
    pub fn delete_entity(&mut self, scope: &ScopeKey, name: &str) -> Result<bool> {
        let Some(id) = self.entity_id(scope, name)? else {
            return Ok(false);
        };
        for (doc, _) in self.observation_docs(id)? {
            self.txn.open_table(OBSERVATIONS)?.remove((id, doc))?;
            self.remove_doc(scope, doc)?;
            self.forget_obs_times(doc)?;
        }
        self.forget_history(scope, id)?;
        if let Some(doc) = self
            .txn
            .open_table(NAME_DOCS)?
            .remove(id)?
            .map(|v| v.value())
        {
            self.remove_doc(scope, doc)?;
        }
        let outgoing: Vec<(String, u64)> = {
            let out = self.txn.open_table(REL_OUT)?;
            let mut v = Vec::new();
            for entry in out.range((id, "", 0)..(id.saturating_add(1), "", 0))? {
                let (key, _) = entry?;
                let (_, kind, to) = key.value();
                v.push((kind.to_string(), to));
            }
            v
        };
        let incoming: Vec<(String, u64)> = {
            let inc = self.txn.open_table(REL_IN)?;
            let mut v = Vec::new();
            for entry in inc.range((id, "", 0)..(id.saturating_add(1), "", 0))? {
                let (key, _) = entry?;
                let (_, kind, from) = key.value();
                v.push((kind.to_string(), from));
            }
            v
        };
        {
            let mut out = self.txn.open_table(REL_OUT)?;
            let mut inc = self.txn.open_table(REL_IN)?;
            let mut times = self.txn.open_table(REL_TIMES)?;
            for (kind, to) in &outgoing {
                out.remove((id, kind.as_str(), *to))?;
                inc.remove((*to, kind.as_str(), id))?;
                times.remove((id, kind.as_str(), *to))?;
            }
            for (kind, from) in &incoming {
                out.remove((*from, kind.as_str(), id))?;
                inc.remove((id, kind.as_str(), *from))?;
                times.remove((*from, kind.as_str(), id))?;
            }
        }
        self.txn.open_table(ENTITY_DATA)?.remove(id)?;
        self.txn
            .open_table(ENTITIES)?
            .remove((scope.as_str(), name))?;
        Ok(true)
    }

    /// Creates or updates (strength, confidence) one relation.
    pub fn put_relation(&mut self, scope: &ScopeKey, relation: &Relation) -> Result<Outcome> {
        let from = self.require(scope, &relation.from)?;
        let to = self.require(scope, &relation.to)?;
        let kind = relation.relation_type.as_str();
        let validity = relation.validity()?;
        let times = Times::written(self.now_ms(), &validity);
        self.retire_other_targets(scope, from, kind, to, times.valid_from)?;
        let previous = self
            .txn
            .open_table(REL_OUT)?
            .insert((from, kind, to), (relation.strength, relation.confidence))?
            .map(|v| v.value());
        let outcome = match previous {
            None => Outcome::Created,
            Some(old) if old == (relation.strength, relation.confidence) => Outcome::Unchanged,
            Some(_) => Outcome::Updated,
        };
        // A relation written again keeps the times it was first written
        // with, unless the writer says when it holds.
        if previous.is_none() || validity != Validity::default() {
            self.put_rel_times(from, kind, to, times)?;
        }
        self.txn.open_table(REL_IN)?.insert((to, kind, from), ())?;
        Ok(outcome)
    }

    pub fn delete_relation(
        &mut self,
        scope: &ScopeKey,
        from: &str,
        to: &str,
        kind: &str,
    ) -> Result<bool> {
        let (Some(from), Some(to)) = (self.entity_id(scope, from)?, self.entity_id(scope, to)?)
        else {
            return Ok(false);
        };
        let existed = self
            .txn
            .open_table(REL_OUT)?
            .remove((from, kind, to))?
            .is_some();
        self.txn.open_table(REL_IN)?.remove((to, kind, from))?;
        self.forget_rel_times(from, kind, to)?;
        Ok(existed)
    }
}

/// How an entity's name is indexed: with its type, so "Alice (person)".
pub fn name_text(name: &str, entity_type: &str) -> String {
    format!("{name} ({entity_type})")
}

/// Reads inside one consistent snapshot.
pub struct GraphReader {
    /// Every table, opened once per reader: a traversal touches thousands
    /// of rows and opening a table per lookup cost as much as the lookup.
    t: ReaderTables,
}

struct ReaderTables {
    entities: ReadOnlyTable<(&'static str, &'static str), u64>,
    entity_data: ReadOnlyTable<u64, &'static [u8]>,
    observations: ReadOnlyTable<(u64, u64), ()>,
    docs: ReadOnlyTable<u64, (u64, u32, &'static str, &'static str)>,
    terms: ReadOnlyTable<(&'static str, &'static str, u64), u32>,
    term_df: ReadOnlyTable<(&'static str, &'static str), u64>,
    rel_out: ReadOnlyTable<(u64, &'static str, u64), (f32, f32)>,
    rel_in: ReadOnlyTable<(u64, &'static str, u64), ()>,
    embeddings: ReadOnlyTable<u64, &'static [u8]>,
    meta: ReadOnlyTable<&'static str, u64>,
}

/// One edge met during traversal or listing, by entity id.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: u64,
    pub to: u64,
    pub kind: String,
    pub strength: f32,
    pub confidence: f32,
}

/// How many problems a check lists before it only counts them.
const MAX_LISTED_PROBLEMS: usize = 50;

/// What [`GraphReader::check`] found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreCheck {
    pub records: u64,
    pub relations: u64,
    pub observations: u64,
    pub postings: u64,
    /// Problems found, all of them counted, the first few described.
    pub problems: u64,
    pub examples: Vec<String>,
}

impl StoreCheck {
    fn problem(&mut self, text: String) {
        self.problems += 1;
        if self.examples.len() < MAX_LISTED_PROBLEMS {
            self.examples.push(text);
        }
    }
}

/// What `storage repair` changed (or, dry, would change) in memory's
/// tables: only what dangles or is derived. Unreadable entity records are
/// counted, never dropped: they hold what a user wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = MemoryRepair)]
pub struct StoreRepair {
    pub relations_removed: u64,
    pub reverse_entries_added: u64,
    pub reverse_entries_removed: u64,
    pub names_removed: u64,
    pub documents_removed: u64,
    pub observations_removed: u64,
    pub embeddings_removed: u64,
    pub postings_removed: u64,
    pub unreadable_entities: u64,
}

impl StoreRepair {
    /// Fixes made (or to make).
    pub fn fixes(&self) -> u64 {
        self.relations_removed
            + self.reverse_entries_added
            + self.reverse_entries_removed
            + self.names_removed
            + self.documents_removed
            + self.observations_removed
            + self.embeddings_removed
            + self.postings_removed
    }
}

impl MemoryStore {
    /// Removes what points at nothing — relations to missing entities,
    /// names and documents of missing entities, observations, embeddings
    /// and keyword postings of missing documents — and restores the reverse
    /// relation index from the forward one, in one transaction. With
    /// `apply` false, counts and changes nothing. The caller rebuilds the
    /// vector index afterwards (it is derived from the embeddings).
    pub fn repair(&self, apply: bool) -> Result<StoreRepair> {
        let txn = self.storage.database().begin_write()?;
        let mut done = StoreRepair::default();
        {
            let mut entities = txn.open_table(ENTITIES)?;
            let entity_data = txn.open_table(ENTITY_DATA)?;
            let mut observations = txn.open_table(OBSERVATIONS)?;
            let mut name_docs = txn.open_table(NAME_DOCS)?;
            let mut docs = txn.open_table(DOCS)?;
            let mut terms = txn.open_table(TERMS)?;
            let mut term_df = txn.open_table(TERM_DF)?;
            let mut rel_out = txn.open_table(REL_OUT)?;
            let mut rel_in = txn.open_table(REL_IN)?;
            let mut embeddings = txn.open_table(EMBEDDINGS)?;
            let mut meta = txn.open_table(META)?;

            let mut live: HashSet<u64> = HashSet::new();
            for entry in entity_data.iter()? {
                let (id, bytes) = entry?;
                live.insert(id.value());
                if StoredEntity::decode(bytes.value()).is_err() {
                    done.unreadable_entities += 1;
                }
            }
            let dead_names: Vec<(String, String)> = entities
                .iter()?
                .filter_map(|e| e.ok())
                .filter(|(_, id)| !live.contains(&id.value()))
                .map(|(k, _)| (k.value().0.to_string(), k.value().1.to_string()))
                .collect();
            let dead_name_docs: Vec<u64> = name_docs
                .iter()?
                .filter_map(|e| e.ok())
                .filter(|(id, _)| !live.contains(&id.value()))
                .map(|(id, _)| id.value())
                .collect();
            // Documents of missing entities, with what their removal takes
            // from the keyword statistics.
            let mut dead_docs: Vec<(u64, String, u32)> = Vec::new();
            let mut kept_docs: HashSet<u64> = HashSet::new();
            for entry in docs.iter()? {
                let (doc, value) = entry?;
                let (entity, term_count, scope, _) = value.value();
                if live.contains(&entity) {
                    kept_docs.insert(doc.value());
                } else {
                    dead_docs.push((doc.value(), scope.to_string(), term_count));
                }
            }
            let dead_observations: Vec<(u64, u64)> = observations
                .iter()?
                .filter_map(|e| e.ok())
                .map(|(k, _)| k.value())
                .filter(|(entity, doc)| !live.contains(entity) || !kept_docs.contains(doc))
                .collect();
            let dead_embeddings: Vec<u64> = embeddings
                .iter()?
                .filter_map(|e| e.ok())
                .map(|(doc, _)| doc.value())
                .filter(|doc| !kept_docs.contains(doc))
                .collect();
            let dead_postings: Vec<(String, String, u64)> = terms
                .iter()?
                .filter_map(|e| e.ok())
                .map(|(k, _)| {
                    let (scope, term, doc) = k.value();
                    (scope.to_string(), term.to_string(), doc)
                })
                .filter(|(_, _, doc)| !kept_docs.contains(doc))
                .collect();
            let mut dead_relations: Vec<(u64, String, u64)> = Vec::new();
            let mut missing_reverse: Vec<(u64, String, u64)> = Vec::new();
            for entry in rel_out.iter()? {
                let (key, _) = entry?;
                let (from, kind, to) = key.value();
                if !live.contains(&from) || !live.contains(&to) {
                    dead_relations.push((from, kind.to_string(), to));
                } else if rel_in.get((to, kind, from))?.is_none() {
                    missing_reverse.push((from, kind.to_string(), to));
                }
            }
            let mut stray_reverse: Vec<(u64, String, u64)> = Vec::new();
            for entry in rel_in.iter()? {
                let (key, _) = entry?;
                let (to, kind, from) = key.value();
                let dead = dead_relations
                    .iter()
                    .any(|(f, k, t)| *f == from && k == kind && *t == to);
                if !dead && rel_out.get((from, kind, to))?.is_none() {
                    stray_reverse.push((to, kind.to_string(), from));
                }
            }

            done.names_removed = dead_names.len() as u64;
            done.documents_removed = dead_docs.len() as u64;
            done.observations_removed = dead_observations.len() as u64;
            done.embeddings_removed = dead_embeddings.len() as u64;
            done.postings_removed = dead_postings.len() as u64;
            done.relations_removed = dead_relations.len() as u64;
            done.reverse_entries_added = missing_reverse.len() as u64;
            done.reverse_entries_removed = stray_reverse.len() as u64;
            if apply {
                for (scope, name) in &dead_names {
                    entities.remove((scope.as_str(), name.as_str()))?;
                }
                for id in dead_name_docs {
                    name_docs.remove(id)?;
                }
                for (doc, scope, term_count) in &dead_docs {
                    docs.remove(*doc)?;
                    for (key, less) in [
                        (format!("docs:{scope}"), 1),
                        (format!("terms:{scope}"), u64::from(*term_count)),
                    ] {
                        let now = meta.get(key.as_str())?.map_or(0, |v| v.value());
                        meta.insert(key.as_str(), now.saturating_sub(less))?;
                    }
                }
                for key in dead_observations {
                    observations.remove(key)?;
                }
                if !dead_embeddings.is_empty() {
                    stamp_vectors(&mut meta)?;
                }
                for doc in dead_embeddings {
                    embeddings.remove(doc)?;
                }
                for (scope, term, doc) in &dead_postings {
                    terms.remove((scope.as_str(), term.as_str(), *doc))?;
                    let df_key = (scope.as_str(), term.as_str());
                    let df = term_df.get(df_key)?.map_or(0, |v| v.value());
                    if df <= 1 {
                        term_df.remove(df_key)?;
                    } else {
                        term_df.insert(df_key, df - 1)?;
                    }
                }
                for (from, kind, to) in &dead_relations {
                    rel_out.remove((*from, kind.as_str(), *to))?;
                    rel_in.remove((*to, kind.as_str(), *from))?;
                }
                for (from, kind, to) in &missing_reverse {
                    rel_in.insert((*to, kind.as_str(), *from), ())?;
                }
                for (to, kind, from) in &stray_reverse {
                    rel_in.remove((*to, kind.as_str(), *from))?;
                }
            }
        }
        if apply && done.fixes() > 0 {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(done)
    }
}

impl GraphReader {
    /// Cross-checks the memory tables in one snapshot: every entity record
    /// decodes, both ends of every relation exist and the reverse index
    /// has it, every observation and embedding points at a document of a
    /// live entity; with `postings`, every keyword posting too (the slow
    /// part at scale).
    pub fn check(&self, postings: bool) -> Result<StoreCheck> {
        let mut check = StoreCheck::default();
        let t = &self.t;
        let exists = |id: u64| -> Result<bool> { Ok(t.entity_data.get(id)?.is_some()) };
        for entry in t.entity_data.iter()? {
            let (id, bytes) = entry?;
            check.records += 1;
            if let Err(e) = StoredEntity::decode(bytes.value()) {
                check.problem(format!(
                    "entity {} has an unreadable record: {e}",
                    id.value()
                ));
            }
        }
        for entry in t.rel_out.iter()? {
            let (key, _) = entry?;
            let (from, kind, to) = key.value();
            check.relations += 1;
            for (end, id) in [("source", from), ("target", to)] {
                if !exists(id)? {
                    check.problem(format!(
                        "relation {from} -{kind}-> {to}: its {end} entity is gone"
                    ));
                }
            }
            if t.rel_in.get((to, kind, from))?.is_none() {
                check.problem(format!(
                    "relation {from} -{kind}-> {to} is missing from the reverse index"
                ));
            }
        }
        for entry in t.observations.iter()? {
            let (key, _) = entry?;
            let (entity, doc) = key.value();
            check.observations += 1;
            if !exists(entity)? {
                check.problem(format!(
                    "observation document {doc} belongs to a missing entity {entity}"
                ));
            }
            if t.docs.get(doc)?.is_none() {
                check.problem(format!(
                    "entity {entity} lists observation document {doc}, which is gone"
                ));
            }
        }
        for entry in t.embeddings.iter()? {
            let (doc, _) = entry?;
            if t.docs.get(doc.value())?.is_none() {
                check.problem(format!(
                    "an embedding is kept for the missing document {}",
                    doc.value()
                ));
            }
        }
        if postings {
            for entry in t.terms.iter()? {
                let (key, _) = entry?;
                let (scope, term, doc) = key.value();
                check.postings += 1;
                if t.docs.get(doc)?.is_none() {
                    check.problem(format!(
                        "keyword `{term}` in scope `{scope}` points at the missing document {doc}"
                    ));
                }
            }
        }
        Ok(check)
    }
    pub fn entity_id(&self, scope: &ScopeKey, name: &str) -> Result<Option<u64>> {
        let entities = &self.t.entities;
        Ok(entities.get((scope.as_str(), name))?.map(|v| v.value()))
    }

    fn stored(&self, id: u64) -> Result<Option<StoredEntity>> {
        let data = &self.t.entity_data;
        match data.get(id)? {
            Some(bytes) => Ok(Some(StoredEntity::decode(bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Name of an entity, without loading its observations.
    pub fn entity_name(&self, id: u64) -> Result<Option<String>> {
        Ok(self.stored(id)?.map(|s| s.name))
    }

    /// The scope an entity belongs to.
    pub fn entity_scope(&self, id: u64) -> Result<Option<ScopeKey>> {
        Ok(self.stored(id)?.map(|s| ScopeKey::from_stored(&s.scope)))
    }

    pub fn entity(&self, id: u64) -> Result<Option<Entity>> {
        let Some(stored) = self.stored(id)? else {
            return Ok(None);
        };
        let observations = match stored.observations {
            Some(texts) => texts,
            None => self.observation_texts(id)?,
        };
        Ok(Some(Entity {
            name: stored.name,
            entity_type: stored.entity_type,
            observations,
            metadata: stored.metadata,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }))
    }

    /// Observation texts from OBSERVATIONS and DOCS, for records written
    /// before they carried their own copy.
    fn observation_texts(&self, id: u64) -> Result<Vec<String>> {
        let docs = observations_of(&self.t.observations, &self.t.docs, id)?;
        Ok(docs.into_iter().map(|(_, text)| text).collect())
    }

    /// The entity a document belongs to (without copying its text).
    pub fn doc_entity(&self, doc: u64) -> Result<Option<u64>> {
        Ok(self.t.docs.get(doc)?.map(|v| v.value().0))
    }

    /// A document's entity and text.
    pub fn doc(&self, doc: u64) -> Result<Option<(u64, String)>> {
        let docs = &self.t.docs;
        Ok(docs.get(doc)?.map(|v| {
            let (entity, _, _, text) = v.value();
            (entity, text.to_string())
        }))
    }

    /// Edges leaving (or, for `incoming`, arriving at) an entity.
    pub fn edges(&self, id: u64, incoming: bool) -> Result<Vec<Edge>> {
        let out_table = &self.t.rel_out;
        let mut edges = Vec::new();
        if incoming {
            let in_table = &self.t.rel_in;
            for entry in in_table.range((id, "", 0)..(id.saturating_add(1), "", 0))? {
                let (key, _) = entry?;
                let (to, kind, from) = key.value();
                if let Some(v) = out_table.get((from, kind, to))? {
                    let (strength, confidence) = v.value();
                    edges.push(Edge {
                        from,
                        to,
                        kind: kind.to_string(),
                        strength,
                        confidence,
                    });
                }
            }
        } else {
            for entry in out_table.range((id, "", 0)..(id.saturating_add(1), "", 0))? {
                let (key, value) = entry?;
                let (from, kind, to) = key.value();
                let (strength, confidence) = value.value();
                edges.push(Edge {
                    from,
                    to,
                    kind: kind.to_string(),
                    strength,
                    confidence,
                });
            }
        }
        Ok(edges)
    }

    /// Entities of a scope in name order, after `cursor`, at most `limit`.
    pub fn page(
        &self,
        scope: &ScopeKey,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        let entities = &self.t.entities;
        let start = cursor.unwrap_or("");
        let mut out = Vec::new();
        for entry in entities.range((scope.as_str(), start)..)? {
            let (key, value) = entry?;
            let (s, name) = key.value();
            if s != scope.as_str() {
                break;
            }
            if cursor.is_some_and(|c| c == name) {
                continue;
            }
            out.push((name.to_string(), value.value()));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// BM25 over the scope's postings for `query`'s terms.
    pub fn keyword_search(
        &self,
        scope: &ScopeKey,
        query: &str,
        limit: usize,
    ) -> Result<Vec<KeywordMatch>> {
        /// Postings read per term at most: very common terms add little.
        const MAX_POSTINGS: usize = 5_000;
        let terms = keyword::terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let meta = &self.t.meta;
        let doc_count = meta
            .get(format!("docs:{scope}").as_str())?
            .map(|v| v.value())
            .unwrap_or(0);
        if doc_count == 0 {
            return Ok(Vec::new());
        }
        let term_total = meta
            .get(format!("terms:{scope}").as_str())?
            .map(|v| v.value())
            .unwrap_or(0);
        let avg_len = term_total as f32 / doc_count as f32;
        let postings = &self.t.terms;
        let df_table = &self.t.term_df;
        let docs = &self.t.docs;
        let mut with_df = Vec::with_capacity(terms.len());
        for term in terms.keys() {
            let df = df_table
                .get((scope.as_str(), term.as_str()))?
                .map(|v| v.value())
                .unwrap_or(0);
            if df > 0 {
                with_df.push((term, df));
            }
        }
        // Common terms weigh little (BM25's idf) but cost a scan of their
        // postings. Meaning is the semantic side's job; keywords are for
        // ids, names and rare words. So common terms are skipped when rarer
        // ones exist, and a query of only common words has no keyword
        // ranking at all: its first few thousand postings in id order would
        // be an arbitrary ranking that costs milliseconds. In a small
        // collection (the 500 floor) every term still counts.
        let common = (doc_count / 50).clamp(500, 2000);
        with_df.sort_by_key(|(_, df)| *df);
        match with_df.iter().position(|(_, df)| *df > common) {
            Some(0) => return Ok(Vec::new()),
            Some(at) => with_df.truncate(at),
            None => {}
        }
        let mut scores: HashMap<u64, (u64, f32)> = HashMap::new();
        for (term, df) in with_df {
            let range = postings.range(
                (scope.as_str(), term.as_str(), 0)..=(scope.as_str(), term.as_str(), u64::MAX),
            )?;
            for entry in range.take(MAX_POSTINGS) {
                let (key, tf) = entry?;
                let doc = key.value().2;
                let Some(v) = docs.get(doc)? else { continue };
                let (entity, length, _, _) = v.value();
                let score = keyword::bm25(tf.value(), length, avg_len, doc_count, df);
                let slot = scores.entry(doc).or_insert((entity, 0.0));
                slot.1 += score;
            }
        }
        let mut matches: Vec<KeywordMatch> = scores
            .into_iter()
            .map(|(doc, (entity, score))| KeywordMatch { doc, entity, score })
            .collect();
        matches.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        matches.truncate(limit);
        Ok(matches)
    }

    /// Every stored embedding with its doc's scope, for rebuilding the
    /// vector index.
    pub fn all_embeddings(&self, mut f: impl FnMut(u64, ScopeKey, Vec<f32>)) -> Result<()> {
        let table = &self.t.embeddings;
        let docs = &self.t.docs;
        for entry in table.iter()? {
            let (doc, bytes) = entry?;
            if let Some(v) = docs.get(doc.value())? {
                f(
                    doc.value(),
                    ScopeKey::from_stored(v.value().2),
                    decode(bytes.value()),
                );
            }
        }
        Ok(())
    }

    /// The embeddings' current version (see [`VECTORS_VERSION`]); `None`
    /// in a database written before versions existed.
    pub fn vectors_version(&self) -> Result<Option<u64>> {
        Ok(self.t.meta.get(VECTORS_VERSION)?.map(|v| v.value()))
    }

    /// The last position of the cluster's memory stream applied (0: none).
    pub fn replicated_seq(&self) -> Result<u64> {
        Ok(self.t.meta.get(REPLICATED_SEQ)?.map_or(0, |v| v.value()))
    }

    /// Ids of every doc that has an embedding, for reconciling a saved
    /// vector index with redb (it reads every row: seconds at millions).
    pub fn embedded_docs(&self) -> Result<Vec<u64>> {
        let table = &self.t.embeddings;
        let mut out = Vec::with_capacity(redb::ReadableTableMetadata::len(table)? as usize);
        for entry in table.iter()? {
            out.push(entry?.0.value());
        }
        Ok(out)
    }

    /// One doc's embedding and scope.
    pub fn embedded_doc(&self, doc: u64) -> Result<Option<(ScopeKey, Vec<f32>)>> {
        let table = &self.t.embeddings;
        let docs = &self.t.docs;
        let (Some(vector), Some(meta)) = (table.get(doc)?, docs.get(doc)?) else {
            return Ok(None);
        };
        Ok(Some((
            ScopeKey::from_stored(meta.value().2),
            decode(vector.value()),
        )))
    }

    /// Up to `limit` docs from id `from` on that have no embedding yet,
    /// with their scope and text, and the id to continue from (doc ids only
    /// grow, so a backlog is read linearly rather than rescanned from the
    /// start each batch).
    pub fn unembedded_docs(&self, from: u64, limit: usize) -> Result<(Vec<PendingDoc>, u64)> {
        let docs = &self.t.docs;
        let embeddings = &self.t.embeddings;
        let mut out = Vec::new();
        let mut next = from;
        for entry in docs.range(from..)? {
            let (doc, value) = entry?;
            next = doc.value().saturating_add(1);
            if embeddings.get(doc.value())?.is_none() {
                let (_, _, scope, text) = value.value();
                out.push((doc.value(), ScopeKey::from_stored(scope), text.to_string()));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok((out, next))
    }

    /// Entities with no relation in either direction, last updated before
    /// `updated_before` (RFC 3339 text, compared as text) when given.
    pub fn orphans(&self, updated_before: Option<&str>) -> Result<Vec<(ScopeKey, String)>> {
        let data = &self.t.entity_data;
        let out = &self.t.rel_out;
        let inc = &self.t.rel_in;
        let mut orphans = Vec::new();
        for entry in data.iter()? {
            let (id, bytes) = entry?;
            let id = id.value();
            let range = (id, "", 0)..(id.saturating_add(1), "", 0);
            if out.range(range.clone())?.next().is_some() || inc.range(range)?.next().is_some() {
                continue;
            }
            let stored = StoredEntity::decode(bytes.value())?;
            if updated_before.is_some_and(|cutoff| stored.updated_at.as_str() >= cutoff) {
                continue;
            }
            orphans.push((ScopeKey::from_stored(&stored.scope), stored.name));
        }
        Ok(orphans)
    }

    pub fn counts(&self) -> Result<StoreCounts> {
        use redb::ReadableTableMetadata;
        Ok(StoreCounts {
            entities: self.t.entity_data.len()?,
            observations: self.t.observations.len()?,
            relations: self.t.rel_out.len()?,
            documents: self.t.docs.len()?,
            embeddings: self.t.embeddings.len()?,
            retired_facts: 0,
        })
    }

    /// Every scope that holds at least one entity.
    pub fn scopes(&self) -> Result<Vec<ScopeKey>> {
        let entities = &self.t.entities;
        let mut scopes = Vec::new();
        let mut last: Option<String> = None;
        for entry in entities.iter()? {
            let (key, _) = entry?;
            let scope = key.value().0;
            if last.as_deref() != Some(scope) {
                last = Some(scope.to_string());
                scopes.push(ScopeKey::from_stored(scope));
            }
        }
        Ok(scopes)
    }
}

/// Stores embeddings computed later for docs written without them.
/// Answers the docs that got one (a doc may have been deleted meanwhile)
/// and the vectors version written, if any did.
pub fn store_embeddings(
    store: &MemoryStore,
    vectors: &[(u64, Vec<f32>)],
) -> Result<(std::collections::HashSet<u64>, Option<u64>)> {
    let mut stored = std::collections::HashSet::new();
    let txn = store.storage.database().begin_write()?;
    let mut version = None;
    {
        let docs = txn.open_table(DOCS)?;
        let mut table = txn.open_table(EMBEDDINGS)?;
        for (doc, vector) in vectors {
            // The doc may have been deleted meanwhile.
            if docs.get(*doc)?.is_some() {
                table.insert(*doc, encode(vector).as_slice())?;
                stored.insert(*doc);
            }
        }
        if !stored.is_empty() {
            version = Some(stamp_vectors(&mut txn.open_table(META)?)?);
        }
    }
    txn.commit()?;
    Ok((stored, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, observations: &[&str]) -> EntityInput {
        EntityInput {
            name: name.into(),
            entity_type: "note".into(),
            observations: observations.iter().map(|s| s.to_string()).collect(),
            metadata: None,
            valid_from: None,
            valid_to: None,
        }
    }

    fn observations(store: &MemoryStore, name: &str) -> (Vec<String>, Vec<String>) {
        let reader = store.read().expect("read");
        let id = reader
            .entity_id(&ScopeKey::global(), name)
            .expect("lookup")
            .expect("entity exists");
        let entity = reader.entity(id).expect("entity").expect("record");
        (
            entity.observations,
            reader.observation_texts(id).expect("docs"),
        )
    }

    /// Embeddings are stored as f16 and read back within f16's precision;
    /// rows written as f32 by older versions still read exactly.
    #[test]
    fn embeddings_are_stored_as_f16_and_old_f32_rows_still_read() {
        let vector: Vec<f32> = (0..384).map(|i| ((i as f32) * 0.37).sin() / 8.0).collect();
        let stored = encode(&vector);
        assert_eq!(stored.len(), 1 + 384 * 2);
        let back = decode(&stored);
        assert_eq!(back.len(), 384);
        for (a, b) in vector.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 1024.0 + 1e-7, "{a} became {b}");
        }
        let old: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(decode(&old), vector);
    }

    /// Every transaction that changes embeddings gives them a new version;
    /// one that changes none keeps it.
    #[test]
    fn the_vectors_version_changes_with_the_embeddings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MemoryStore::open(Arc::new(Storage::open(dir.path()).expect("storage")))
            .expect("store");
        let scope = ScopeKey::global();
        let version = || store.read().expect("read").vectors_version().expect("meta");
        assert_eq!(version(), None);
        let first = store.ensure_vectors_version().expect("stamp");
        assert_eq!(version(), Some(first));
        assert_eq!(store.ensure_vectors_version().expect("again"), first);

        let none = HashMap::new();
        let ((), delta) = store
            .write(&none, |w| {
                w.upsert_entity(&scope, &input("a", &["one"])).map(drop)
            })
            .expect("write");
        assert_eq!(delta.version, None, "no embedding was written");
        assert_eq!(version(), Some(first));

        let vectors = HashMap::from([("two".to_string(), vec![0.5f32; 384])]);
        let ((), delta) = store
            .write(&vectors, |w| {
                w.add_observations(&scope, "a", &["two".into()], &Validity::default())
                    .map(drop)
            })
            .expect("write");
        let second = delta.version.expect("an embedding was written");
        assert_ne!(second, first);
        assert_eq!(version(), Some(second));

        let pending = store
            .read()
            .expect("read")
            .unembedded_docs(0, 10)
            .expect("docs")
            .0;
        assert_eq!(pending.len(), 2, "the name and `one`");
        let pairs: Vec<(u64, Vec<f32>)> = pending
            .iter()
            .map(|(d, _, _)| (*d, vec![0.25; 384]))
            .collect();
        let (stored, third) = store_embeddings(&store, &pairs).expect("store");
        assert_eq!(stored.len(), 2);
        assert!(third.is_some_and(|v| v != second));
        assert_eq!(version(), third);
    }

    /// The record's copy of the observations follows every change, in the
    /// order OBSERVATIONS holds them; records without a copy still read.
    #[test]
    fn entity_records_carry_their_observations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MemoryStore::open(Arc::new(Storage::open(dir.path()).expect("storage")))
            .expect("store");
        let scope = ScopeKey::global();
        let none = HashMap::new();
        let write = |f: &dyn Fn(&mut GraphWriter<'_>) -> Result<()>| {
            store.write(&none, |w| f(w)).expect("write");
        };
        write(&|w| {
            w.upsert_entity(&scope, &input("a", &["one", "two"]))
                .map(drop)
        });
        assert_eq!(observations(&store, "a").0, ["one", "two"]);
        write(&|w| {
            w.upsert_entity(&scope, &input("a", &["two", "three"]))
                .map(drop)
        });
        write(&|w| {
            w.add_observations(&scope, "a", &["four".into()], &Validity::default())
                .map(drop)
        });
        write(&|w| {
            w.delete_observations(&scope, "a", &["one".into()])
                .map(drop)
        });
        let (copy, source) = observations(&store, "a");
        assert_eq!(copy, ["two", "three", "four"]);
        assert_eq!(copy, source);

        // Records are written in the binary format...
        {
            let reader = store.read().expect("read");
            let id = reader.entity_id(&scope, "a").expect("lookup").expect("a");
            let bytes = reader.t.entity_data.get(id).expect("get").expect("record");
            assert_eq!(bytes.value().first(), Some(&RECORD_V1));
        }
        // ...and a JSON record from before, without the copy of its
        // observations, still reads (through the docs), metadata included.
        write(&|w| {
            let id = w.require(&scope, "a")?;
            let mut data = w.txn.open_table(ENTITY_DATA)?;
            let mut stored = match data.get(id)? {
                Some(bytes) => StoredEntity::decode(bytes.value())?,
                None => return Err(MemoryError::NotFound("a".into())),
            };
            stored.observations = None;
            stored.metadata = Some(serde_json::json!({"source": "old"}));
            data.insert(
                id,
                serde_json::to_vec(&stored).map_err(json_err)?.as_slice(),
            )?;
            Ok(())
        });
        {
            let reader = store.read().expect("read");
            let id = reader.entity_id(&scope, "a").expect("lookup").expect("a");
            let entity = reader.entity(id).expect("entity").expect("record");
            assert_eq!(entity.metadata, Some(serde_json::json!({"source": "old"})));
        }
        assert_eq!(observations(&store, "a").0, ["two", "three", "four"]);
        // A change that leaves the observations alone rewrites the record
        // without a copy rather than with an empty one.
        let mut retyped = input("a", &[]);
        retyped.entity_type = "person".into();
        write(&|w| w.upsert_entity(&scope, &retyped).map(drop));
        assert_eq!(observations(&store, "a").0, ["two", "three", "four"]);
        // Adding observations writes the copy, metadata kept.
        write(&|w| {
            w.add_observations(&scope, "a", &["five".into()], &Validity::default())
                .map(drop)
        });
        let reader = store.read().expect("read");
        let id = reader.entity_id(&scope, "a").expect("lookup").expect("a");
        let bytes = reader.t.entity_data.get(id).expect("get").expect("record");
        let stored = StoredEntity::decode(bytes.value()).expect("decode");
        assert_eq!(bytes.value().first(), Some(&RECORD_V1));
        assert_eq!(stored.metadata, Some(serde_json::json!({"source": "old"})));
        assert_eq!(
            stored.observations.as_deref(),
            Some(&["two", "three", "four", "five"].map(String::from)[..])
        );
        assert!(StoredEntity::decode(b"\x07garbage").is_err());
        assert!(StoredEntity::decode(b"").is_err());
    }

    /// A store from before times were kept (no times rows, no history
    /// tables' rows): its facts read as recorded and valid from their
    /// entity's creation, and the first replacement retires them with
    /// those times.
    #[test]
    fn facts_from_before_times_read_as_valid_from_their_entitys_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MemoryStore::open(Arc::new(Storage::open(dir.path()).expect("storage")))
            .expect("store");
        let scope = ScopeKey::global();
        let none = HashMap::new();
        store
            .write_at(&none, Some("2020-01-01T00:00:00Z"), None, |w| {
                w.upsert_entity(&scope, &input("a", &["status: old"]))?;
                // What an older build wrote: no times row.
                let docs: Vec<u64> = w
                    .txn
                    .open_table(OBS_TIMES)?
                    .iter()?
                    .map(|e| e.map(|(k, _)| k.value()))
                    .collect::<std::result::Result<_, _>>()?;
                for doc in docs {
                    w.forget_obs_times(doc)?;
                }
                Ok(())
            })
            .expect("write");
        let history = store.read_history().expect("read");
        let versions = history.history(&scope, "a").expect("history").expect("a");
        assert_eq!(versions.len(), 1);
        assert!(versions[0].valid_from.starts_with("2020-01-01T00:00:00"));
        assert!(versions[0].recorded_at.starts_with("2020-01-01T00:00:00"));
        drop(history);
        store
            .write_at(&none, Some("2024-01-01T00:00:00Z"), None, |w| {
                w.add_observations(&scope, "a", &["status: new".into()], &Validity::default())
                    .map(drop)
            })
            .expect("write");
        let history = store.read_history().expect("read");
        let versions = history.history(&scope, "a").expect("history").expect("a");
        let old = versions
            .iter()
            .find(|v| v.fact == "status: old")
            .expect("old");
        assert!(!old.current);
        assert!(old.valid_from.starts_with("2020-01-01"));
        assert!(
            old.valid_to
                .as_deref()
                .is_some_and(|t| t.starts_with("2024-01-01"))
        );
        assert_eq!(observations(&store, "a").0, ["status: new"]);
    }
}
