//! Hybrid search: the semantic ranking (vector index) and the keyword
//! ranking (BM25) fused by reciprocal rank, per entity. An entity whose name
//! is exactly the query goes first: that is what someone typing a name means.

use std::collections::HashMap;

use super::model::{MemoryError, Result, ScopeKey, SearchHit};
use super::store::GraphReader;
use super::vectors::VectorIndex;

/// Reciprocal-rank-fusion constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Candidates taken from each ranking per result wanted.
const CANDIDATES_PER_RESULT: usize = 5;
/// Semantic matches below this cosine similarity are noise, not meaning.
const MIN_SIMILARITY: f32 = 0.2;

#[derive(Default)]
struct Candidate {
    fused: f32,
    semantic: Option<(f32, u64)>,
    keyword: Option<(f32, u64)>,
}

pub fn hybrid(
    reader: &GraphReader,
    index: &VectorIndex,
    scopes: &[ScopeKey],
    query: &str,
    query_vector: Option<&[f32]>,
    limit: usize,
) -> Result<Vec<SearchHit>> {
    let depth = limit * CANDIDATES_PER_RESULT;
    let mut candidates: HashMap<u64, Candidate> = HashMap::new();

    if let Some(vector) = query_vector {
        let mut rank = 0;
        let matches = index
            .search(vector, scopes, depth, false)
            .map_err(|e| MemoryError::Storage(e.to_string()))?;
        for (doc, similarity) in matches {
            if similarity < MIN_SIMILARITY {
                break;
            }
            let Some(entity) = reader.doc_entity(doc)? else {
                continue;
            };
            let candidate = candidates.entry(entity).or_default();
            if candidate.semantic.is_none() {
                rank += 1;
                candidate.fused += 1.0 / (RRF_K + rank as f32);
                candidate.semantic = Some((similarity, doc));
            }
        }
    }

    let mut keyword = Vec::new();
    for scope in scopes {
        keyword.extend(reader.keyword_search(scope, query, depth)?);
    }
    keyword.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut rank = 0;
    for m in keyword {
        let candidate = candidates.entry(m.entity).or_default();
        if candidate.keyword.is_none() {
            rank += 1;
            candidate.fused += 1.0 / (RRF_K + rank as f32);
            candidate.keyword = Some((m.score, m.doc));
        }
    }

    let exact = query.trim();
    for scope in scopes {
        if let Some(entity) = reader.entity_id(scope, exact)? {
            candidates.entry(entity).or_default().fused += 1.0;
        }
    }

    let mut ranked: Vec<(u64, Candidate)> = candidates.into_iter().collect();
    ranked.sort_by(|a, b| b.1.fused.total_cmp(&a.1.fused).then(a.0.cmp(&b.0)));
    let mut hits = Vec::with_capacity(limit.min(ranked.len()));
    for (entity_id, candidate) in ranked.into_iter().take(limit) {
        let Some(entity) = reader.entity(entity_id)? else {
            continue;
        };
        let best_doc = candidate.semantic.or(candidate.keyword).map(|(_, doc)| doc);
        let matched = match best_doc {
            Some(doc) => reader.doc(doc)?.map(|(_, text)| text).unwrap_or_default(),
            None => entity.name.clone(),
        };
        hits.push(SearchHit {
            entity,
            score: candidate.fused,
            semantic_score: candidate.semantic.map(|(s, _)| s),
            keyword_score: candidate.keyword.map(|(s, _)| s),
            matched,
        });
    }
    Ok(hits)
}
