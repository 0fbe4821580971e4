//! Facts in time, in the store: the times of every current fact, the
//! retired facts each entity keeps as its history, and the rules that
//! retire a fact in the write that replaces it (see `memory::temporal`).
//!
//! Facts written before times existed have no row in the times tables;
//! they read as recorded and valid from their entity's creation, so an
//! old store needs no migration.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{
    DOCS, ENTITIES, ENTITY_DATA, GraphWriter, OBSERVATIONS, REL_IN, REL_OUT, StoredEntity,
};
use crate::memory::keyword;
use crate::memory::model::{Entity, Relation, Result, ScopeKey};
use crate::memory::temporal::{
    At, FactVersion, PastFact, PastKind, Times, TimesRow, Validity, attribute_key, retired_times,
};

/// Observation doc id → its [`Times`].
pub(super) const OBS_TIMES: TableDefinition<u64, TimesRow> = TableDefinition::new("mem_obs_times");
/// (from, relation type, to) → its [`Times`].
pub(super) const REL_TIMES: TableDefinition<(u64, &str, u64), TimesRow> =
    TableDefinition::new("mem_rel_times");
/// (scope, entity id, sequence) → a retired fact ([`PastFact`], postcard).
pub(super) const HISTORY: TableDefinition<(&str, u64, u64), &[u8]> =
    TableDefinition::new("mem_history");
/// (scope, term, entity id, sequence): the terms of each retired fact's
/// text, so a search as of a past time finds retired facts by keyword
/// without reading the whole history.
pub(super) const HISTORY_TERMS: TableDefinition<(&str, &str, u64, u64), ()> =
    TableDefinition::new("mem_history_terms");
/// (scope, relation type): types declared single-valued in one scope at
/// run time (besides `memory.single_valued_relations`, which holds for
/// every scope).
pub(super) const SINGLE_VALUED: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("mem_single_valued");
/// In `mem_meta`: the next history sequence number.
const NEXT_PAST: &str = "next_past";
/// Most history entries one query term is followed to.
const MAX_TERM_MATCHES: usize = 2000;

/// The text a retired fact is found by.
fn searchable(kind: &PastKind) -> String {
    match kind {
        PastKind::Observation { text } => text.clone(),
        PastKind::Relation {
            relation_type, to, ..
        } => format!("{relation_type} {to}"),
    }
}

fn millis(rfc3339: &str) -> i64 {
    crate::clock::parse_millis(rfc3339).unwrap_or(0)
}

impl GraphWriter<'_> {
    /// The write's record time in milliseconds.
    pub(super) fn now_ms(&self) -> i64 {
        crate::clock::parse_millis(&self.now).unwrap_or(0)
    }

    /// When the entity was created: the times of its facts from before
    /// times were kept.
    fn created_ms(&self, entity: u64) -> Result<i64> {
        Ok(self
            .record(entity)?
            .map_or(0, |r: StoredEntity| millis(&r.created_at)))
    }

    fn obs_times(&self, entity: u64, doc: u64) -> Result<Times> {
        match self.txn.open_table(OBS_TIMES)?.get(doc)? {
            Some(row) => Ok(Times::from_row(row.value())),
            None => Ok(Times::since(self.created_ms(entity)?)),
        }
    }

    fn rel_times(&self, from: u64, kind: &str, to: u64) -> Result<Times> {
        match self.txn.open_table(REL_TIMES)?.get((from, kind, to))? {
            Some(row) => Ok(Times::from_row(row.value())),
            None => Ok(Times::since(
                self.created_ms(from)?.max(self.created_ms(to)?),
            )),
        }
    }

    pub(super) fn put_obs_times(&self, doc: u64, times: Times) -> Result<()> {
        self.txn
            .open_table(OBS_TIMES)?
            .insert(doc, times.to_row())?;
        Ok(())
    }

    pub(super) fn put_rel_times(&self, from: u64, kind: &str, to: u64, times: Times) -> Result<()> {
        self.txn
            .open_table(REL_TIMES)?
            .insert((from, kind, to), times.to_row())?;
        Ok(())
    }

    pub(super) fn forget_obs_times(&self, doc: u64) -> Result<()> {
        self.txn.open_table(OBS_TIMES)?.remove(doc)?;
        Ok(())
    }

    pub(super) fn forget_rel_times(&self, from: u64, kind: &str, to: u64) -> Result<()> {
        self.txn.open_table(REL_TIMES)?.remove((from, kind, to))?;
        Ok(())
    }

    fn keep(&self, scope: &ScopeKey, entity: u64, fact: &PastFact) -> Result<()> {
        let seq = self.bump(NEXT_PAST, 1)?;
        self.txn
            .open_table(HISTORY)?
            .insert((scope.as_str(), entity, seq), fact.encode()?.as_slice())?;
        let mut terms = self.txn.open_table(HISTORY_TERMS)?;
        for term in keyword::terms(&searchable(&fact.kind)).keys() {
            terms.insert((scope.as_str(), term.as_str(), entity, seq), ())?;
        }
        Ok(())
    }

    /// Removes one history entry and its terms.
    fn forget_past(&self, scope: &str, entity: u64, seq: u64) -> Result<()> {
        let Some(bytes) = self
            .txn
            .open_table(HISTORY)?
            .remove((scope, entity, seq))?
            .map(|v| v.value().to_vec())
        else {
            return Ok(());
        };
        let fact = PastFact::decode(&bytes)?;
        let mut terms = self.txn.open_table(HISTORY_TERMS)?;
        for term in keyword::terms(&searchable(&fact.kind)).keys() {
            terms.remove((scope, term.as_str(), entity, seq))?;
        }
        Ok(())
    }

    /// Moves an observation from the current graph (and its indexes) into
    /// its entity's history; it stops being valid at `replaced_from`.
    fn retire_observation(
        &mut self,
        scope: &ScopeKey,
        entity: u64,
        doc: u64,
        text: &str,
        replaced_from: i64,
    ) -> Result<()> {
        let times = retired_times(self.obs_times(entity, doc)?, replaced_from);
        self.txn.open_table(OBSERVATIONS)?.remove((entity, doc))?;
        self.remove_doc(scope, doc)?;
        self.forget_obs_times(doc)?;
        let fact = PastFact {
            kind: PastKind::Observation { text: text.into() },
            recorded_at: times.recorded_at,
            valid_from: times.valid_from,
            valid_to: times.valid_to,
            retired_at: self.now_ms(),
        };
        self.keep(scope, entity, &fact)
    }

    /// Moves a relation from the current graph into its source's history.
    fn retire_relation(
        &mut self,
        scope: &ScopeKey,
        from: u64,
        kind: &str,
        to: u64,
        replaced_from: i64,
    ) -> Result<bool> {
        let Some((strength, confidence)) = self
            .txn
            .open_table(REL_OUT)?
            .get((from, kind, to))?
            .map(|v| v.value())
        else {
            return Ok(false);
        };
        let times = retired_times(self.rel_times(from, kind, to)?, replaced_from);
        self.txn.open_table(REL_OUT)?.remove((from, kind, to))?;
        self.txn.open_table(REL_IN)?.remove((to, kind, from))?;
        self.forget_rel_times(from, kind, to)?;
        let target = self
            .record(to)?
            .map(|r| r.name)
            .unwrap_or_else(|| format!("#{to}"));
        let fact = PastFact {
            kind: PastKind::Relation {
                relation_type: kind.into(),
                to: target,
                strength,
                confidence,
            },
            recorded_at: times.recorded_at,
            valid_from: times.valid_from,
            valid_to: times.valid_to,
            retired_at: self.now_ms(),
        };
        self.keep(scope, from, &fact)?;
        Ok(true)
    }

    /// The attribute rule: a new `key: value` observation retires the
    /// entity's current observations with the same key. Answers their
    /// texts.
    pub(super) fn retire_same_key(
        &mut self,
        scope: &ScopeKey,
        entity: u64,
        text: &str,
        replaced_from: i64,
    ) -> Result<Vec<String>> {
        let Some(key) = attribute_key(text) else {
            return Ok(Vec::new());
        };
        let mut retired = Vec::new();
        for (doc, old) in self.observation_docs(entity)? {
            if old != text && attribute_key(&old) == Some(key) {
                self.retire_observation(scope, entity, doc, &old, replaced_from)?;
                retired.push(old);
            }
        }
        Ok(retired)
    }

    /// The single-valued rule: a new relation of a declared type retires
    /// the source's relations of that type to any other target.
    pub(super) fn retire_other_targets(
        &mut self,
        scope: &ScopeKey,
        from: u64,
        kind: &str,
        to: u64,
        replaced_from: i64,
    ) -> Result<u32> {
        let declared = || -> Result<bool> {
            Ok(self
                .txn
                .open_table(SINGLE_VALUED)?
                .get((scope.as_str(), kind))?
                .is_some())
        };
        if !self.single_valued.contains(kind) && !declared()? {
            return Ok(0);
        }
        let others: Vec<u64> = {
            let out = self.txn.open_table(REL_OUT)?;
            let mut v = Vec::new();
            for entry in out.range((from, kind, 0)..=(from, kind, u64::MAX))? {
                let (key, _) = entry?;
                let (_, _, other) = key.value();
                if other != to {
                    v.push(other);
                }
            }
            v
        };
        for other in &others {
            self.retire_relation(scope, from, kind, *other, replaced_from)?;
        }
        Ok(others.len() as u32)
    }

    /// Retires named facts (an explicit `supersede`): observations of
    /// `entity` by text, relations by triple. Answers how many were
    /// current and are now retired.
    pub fn supersede(
        &mut self,
        scope: &ScopeKey,
        observations: &[(String, String)],
        relations: &[crate::memory::model::RelationKey],
        validity: &Validity,
    ) -> Result<u32> {
        let ends = validity.from.unwrap_or_else(|| self.now_ms());
        let mut retired = 0;
        for (name, text) in observations {
            let id = self.require(scope, name)?;
            let found = self
                .observation_docs(id)?
                .into_iter()
                .find(|(_, t)| t == text);
            if let Some((doc, text)) = found {
                self.retire_observation(scope, id, doc, &text, ends)?;
                self.refresh_record(id, true)?;
                retired += 1;
            }
        }
        for r in relations {
            let (Some(from), Some(to)) = (
                self.entity_id(scope, &r.from)?,
                self.entity_id(scope, &r.to)?,
            ) else {
                continue;
            };
            if self.retire_relation(scope, from, &r.relation_type, to, ends)? {
                retired += 1;
            }
        }
        Ok(retired)
    }

    /// Restores an imported entity's facts in time: the times of its
    /// current facts (matched by text, or by relation type and target) and
    /// its retired facts, each kept once (importing a file twice adds
    /// nothing). Answers how many versions were applied.
    pub fn restore(
        &mut self,
        scope: &ScopeKey,
        name: &str,
        versions: &[FactVersion],
    ) -> Result<u32> {
        let id = self.require(scope, name)?;
        let kept: Vec<PastFact> = self
            .txn
            .open_table(HISTORY)?
            .range((scope.as_str(), id, 0)..=(scope.as_str(), id, u64::MAX))?
            .map(|e| {
                e.map_err(Into::into)
                    .and_then(|(_, v)| PastFact::decode(v.value()))
            })
            .collect::<Result<_>>()?;
        let docs = self.observation_docs(id)?;
        let mut applied = 0;
        for version in versions {
            let (kind, times, retired_at) = version.parse()?;
            match (retired_at, &kind) {
                (None, PastKind::Observation { text }) => {
                    if let Some((doc, _)) = docs.iter().find(|(_, t)| t == text) {
                        self.put_obs_times(*doc, times)?;
                        applied += 1;
                    }
                }
                (
                    None,
                    PastKind::Relation {
                        relation_type, to, ..
                    },
                ) => {
                    let Some(to) = self.entity_id(scope, to)? else {
                        continue;
                    };
                    let current = self
                        .txn
                        .open_table(REL_OUT)?
                        .get((id, relation_type.as_str(), to))?
                        .is_some();
                    if current {
                        self.put_rel_times(id, relation_type, to, times)?;
                        applied += 1;
                    }
                }
                (Some(retired_at), _) => {
                    let fact = PastFact {
                        kind,
                        recorded_at: times.recorded_at,
                        valid_from: times.valid_from,
                        valid_to: times.valid_to,
                        retired_at,
                    };
                    if !kept.contains(&fact) {
                        self.keep(scope, id, &fact)?;
                        applied += 1;
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Declares (or, with `single` false, undeclares) `relation_type`
    /// single-valued in `scope`. Answers 1 if that changed anything.
    pub fn declare_single_valued(
        &mut self,
        scope: &ScopeKey,
        relation_type: &str,
        single: bool,
    ) -> Result<u32> {
        let mut table = self.txn.open_table(SINGLE_VALUED)?;
        let changed = if single {
            table.insert((scope.as_str(), relation_type), ())?.is_none()
        } else {
            table.remove((scope.as_str(), relation_type))?.is_some()
        };
        Ok(u32::from(changed))
    }

    /// Drops an entity's history (the entity is deleted).
    pub(super) fn forget_history(&self, scope: &ScopeKey, entity: u64) -> Result<()> {
        let keys: Vec<u64> = self
            .txn
            .open_table(HISTORY)?
            .range((scope.as_str(), entity, 0)..=(scope.as_str(), entity, u64::MAX))?
            .map(|e| e.map(|(k, _)| k.value().2))
            .collect::<std::result::Result<_, _>>()?;
        for seq in keys {
            self.forget_past(scope.as_str(), entity, seq)?;
        }
        Ok(())
    }

    /// Drops every retired fact retired before `before` (milliseconds):
    /// `memory cleanup --retired-before`. Answers how many.
    pub fn drop_retired_before(&self, before: i64) -> Result<u64> {
        let mut old = Vec::new();
        for entry in self.txn.open_table(HISTORY)?.iter()? {
            let (key, value) = entry?;
            if PastFact::decode(value.value())?.retired_at < before {
                let (scope, entity, seq) = key.value();
                old.push((scope.to_string(), entity, seq));
            }
        }
        for (scope, entity, seq) in &old {
            self.forget_past(scope, *entity, *seq)?;
        }
        Ok(old.len() as u64)
    }
}

/// Reads facts in time, in one read transaction of its own.
pub struct HistoryReader {
    entities: redb::ReadOnlyTable<(&'static str, &'static str), u64>,
    entity_data: redb::ReadOnlyTable<u64, &'static [u8]>,
    observations: redb::ReadOnlyTable<(u64, u64), ()>,
    docs: redb::ReadOnlyTable<u64, (u64, u32, &'static str, &'static str)>,
    rel_out: redb::ReadOnlyTable<(u64, &'static str, u64), (f32, f32)>,
    obs_times: redb::ReadOnlyTable<u64, TimesRow>,
    rel_times: redb::ReadOnlyTable<(u64, &'static str, u64), TimesRow>,
    history: redb::ReadOnlyTable<(&'static str, u64, u64), &'static [u8]>,
    history_terms: redb::ReadOnlyTable<(&'static str, &'static str, u64, u64), ()>,
    single_valued: redb::ReadOnlyTable<(&'static str, &'static str), ()>,
}

/// One fact of an entity, current or retired, with its times.
struct Fact {
    kind: PastKind,
    times: Times,
    retired_at: Option<i64>,
}

impl HistoryReader {
    pub(super) fn open(txn: &redb::ReadTransaction) -> Result<HistoryReader> {
        Ok(HistoryReader {
            entities: txn.open_table(ENTITIES)?,
            entity_data: txn.open_table(ENTITY_DATA)?,
            observations: txn.open_table(OBSERVATIONS)?,
            docs: txn.open_table(DOCS)?,
            rel_out: txn.open_table(REL_OUT)?,
            obs_times: txn.open_table(OBS_TIMES)?,
            rel_times: txn.open_table(REL_TIMES)?,
            history: txn.open_table(HISTORY)?,
            history_terms: txn.open_table(HISTORY_TERMS)?,
            single_valued: txn.open_table(SINGLE_VALUED)?,
        })
    }

    fn stored(&self, id: u64) -> Result<Option<StoredEntity>> {
        self.entity_data
            .get(id)?
            .map(|b| StoredEntity::decode(b.value()))
            .transpose()
    }

    pub fn entity_id(&self, scope: &ScopeKey, name: &str) -> Result<Option<u64>> {
        Ok(self
            .entities
            .get((scope.as_str(), name))?
            .map(|v| v.value()))
    }

    /// Every fact of an entity, current ones first in write order, then
    /// retired ones in the order they were retired.
    fn facts(&self, scope: &ScopeKey, id: u64, created: i64) -> Result<Vec<Fact>> {
        let legacy = Times::since(created);
        let mut facts = Vec::new();
        for entry in self
            .observations
            .range((id, 0)..(id.saturating_add(1), 0))?
        {
            let (key, _) = entry?;
            let doc = key.value().1;
            let Some(text) = self.docs.get(doc)?.map(|v| v.value().3.to_string()) else {
                continue;
            };
            let times = self
                .obs_times
                .get(doc)?
                .map_or(legacy, |row| Times::from_row(row.value()));
            facts.push(Fact {
                kind: PastKind::Observation { text },
                times,
                retired_at: None,
            });
        }
        for entry in self
            .rel_out
            .range((id, "", 0)..(id.saturating_add(1), "", 0))?
        {
            let (key, value) = entry?;
            let (from, kind, to) = key.value();
            let (strength, confidence) = value.value();
            let target = self.stored(to)?.map(|r| r.name).unwrap_or_default();
            let times = self
                .rel_times
                .get((from, kind, to))?
                .map_or(legacy, |row| Times::from_row(row.value()));
            facts.push(Fact {
                kind: PastKind::Relation {
                    relation_type: kind.to_string(),
                    to: target,
                    strength,
                    confidence,
                },
                times,
                retired_at: None,
            });
        }
        for entry in self
            .history
            .range((scope.as_str(), id, 0)..=(scope.as_str(), id, u64::MAX))?
        {
            let (_, value) = entry?;
            let past = PastFact::decode(value.value())?;
            facts.push(Fact {
                times: past.times(),
                retired_at: Some(past.retired_at),
                kind: past.kind,
            });
        }
        Ok(facts)
    }

    /// Every version of an entity's facts with both times, oldest
    /// recorded first; `None` if there is no such entity.
    pub fn history(&self, scope: &ScopeKey, name: &str) -> Result<Option<Vec<FactVersion>>> {
        let Some(id) = self.entity_id(scope, name)? else {
            return Ok(None);
        };
        let Some(stored) = self.stored(id)? else {
            return Ok(None);
        };
        let mut versions: Vec<(i64, FactVersion)> = self
            .facts(scope, id, millis(&stored.created_at))?
            .into_iter()
            .map(|f| {
                (
                    f.times.recorded_at,
                    FactVersion::new(&f.kind, f.times, f.retired_at),
                )
            })
            .collect();
        versions.sort_by_key(|(recorded, _)| *recorded);
        Ok(Some(versions.into_iter().map(|(_, v)| v).collect()))
    }

    /// An entity as seen from `at`, with the relations leaving it then;
    /// `None` if it does not exist, or did not yet when `at` looks.
    pub fn entity_at(
        &self,
        scope: &ScopeKey,
        name: &str,
        at: &At,
    ) -> Result<Option<(Entity, Vec<Relation>)>> {
        let Some(id) = self.entity_id(scope, name)? else {
            return Ok(None);
        };
        let Some(stored) = self.stored(id)? else {
            return Ok(None);
        };
        let created = millis(&stored.created_at);
        if at.known_at.is_some_and(|t| t < created) {
            return Ok(None);
        }
        let mut observations = Vec::new();
        let mut relations = Vec::new();
        for fact in self.facts(scope, id, created)? {
            if !at.admits(&fact.times, fact.retired_at) {
                continue;
            }
            match fact.kind {
                PastKind::Observation { text } => observations.push(text),
                PastKind::Relation {
                    relation_type,
                    to,
                    strength,
                    confidence,
                } => relations.push(Relation {
                    from: stored.name.clone(),
                    to,
                    relation_type,
                    strength,
                    confidence,
                    valid_from: None,
                    valid_to: None,
                }),
            }
        }
        let entity = Entity {
            name: stored.name,
            entity_type: stored.entity_type,
            observations,
            metadata: stored.metadata,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        };
        Ok(Some((entity, relations)))
    }

    /// Entities of `scope` with a retired fact that has one of `terms`
    /// (as the keyword index splits text) and that `at` admits, with that
    /// fact's text: what a search as of a past time finds besides what is
    /// current. Read through the history's term index, at most
    /// [`MAX_TERM_MATCHES`] entries per term.
    pub fn past_matches(
        &self,
        scope: &ScopeKey,
        terms: &[String],
        at: &At,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let mut found: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for term in terms {
            let range = (scope.as_str(), term.as_str(), 0u64, 0u64)
                ..=(scope.as_str(), term.as_str(), u64::MAX, u64::MAX);
            for entry in self.history_terms.range(range)?.take(MAX_TERM_MATCHES) {
                let (key, _) = entry?;
                let (_, _, entity, seq) = key.value();
                if seen.contains(&entity) {
                    continue;
                }
                let Some(bytes) = self.history.get((scope.as_str(), entity, seq))? else {
                    continue;
                };
                let past = PastFact::decode(bytes.value())?;
                if !at.admits(&past.times(), Some(past.retired_at)) {
                    continue;
                }
                seen.insert(entity);
                if let Some(stored) = self.stored(entity)? {
                    found.push((stored.name, searchable(&past.kind)));
                }
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// The relation types declared single-valued in `scope` at run time.
    pub fn declared_single_valued(&self, scope: &ScopeKey) -> Result<Vec<String>> {
        let range = (scope.as_str(), "")..(scope.as_str(), "\u{10FFFF}");
        self.single_valued
            .range(range)?
            .map(|e| e.map(|(k, _)| k.value().1.to_string()).map_err(Into::into))
            .collect()
    }

    /// How many retired facts the history holds.
    pub fn retired(&self) -> Result<u64> {
        Ok(self.history.len()?)
    }
}
