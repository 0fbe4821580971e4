//! The vector index: derived from the embeddings in redb, rebuilt at start
//! and kept in step with every committed write.
//!
//! Vectors are L2-normalised, so cosine similarity is a dot product. The
//! search is exact (a scan), which is simple and has perfect recall; each
//! doc remembers its scope so a search only looks at the scopes it may see.

use std::collections::HashMap;

use super::model::ScopeKey;

#[derive(Default)]
pub struct VectorIndex {
    /// Interned scope names; `docs` refer to them by position.
    scopes: Vec<ScopeKey>,
    scope_ids: HashMap<ScopeKey, u32>,
    docs: HashMap<u64, (u32, Vec<f32>)>,
}

impl VectorIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn insert(&mut self, doc: u64, scope: &ScopeKey, vector: Vec<f32>) {
        let id = match self.scope_ids.get(scope) {
            Some(id) => *id,
            None => {
                let id = self.scopes.len() as u32;
                self.scopes.push(scope.clone());
                self.scope_ids.insert(scope.clone(), id);
                id
            }
        };
        self.docs.insert(doc, (id, vector));
    }

    pub fn remove(&mut self, doc: u64) {
        self.docs.remove(&doc);
    }

    /// The `k` docs most similar to `query` among `scopes`, best first.
    pub fn search(&self, query: &[f32], scopes: &[ScopeKey], k: usize) -> Vec<(u64, f32)> {
        let allowed: Vec<u32> = scopes
            .iter()
            .filter_map(|s| self.scope_ids.get(s).copied())
            .collect();
        if allowed.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut best: Vec<(u64, f32)> = Vec::with_capacity(k + 1);
        for (doc, (scope, vector)) in &self.docs {
            if !allowed.contains(scope) {
                continue;
            }
            let score: f32 = vector.iter().zip(query).map(|(a, b)| a * b).sum();
            if best.len() < k || score > best[best.len() - 1].1 {
                let at = best.partition_point(|(_, s)| *s >= score);
                best.insert(at, (*doc, score));
                best.truncate(k);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_within_allowed_scopes() {
        let a = ScopeKey::global();
        let b = ScopeKey::agent("x");
        let mut index = VectorIndex::new();
        index.insert(1, &a, vec![1.0, 0.0]);
        index.insert(2, &a, vec![0.6, 0.8]);
        index.insert(3, &b, vec![1.0, 0.0]);
        let hits = index.search(&[1.0, 0.0], std::slice::from_ref(&a), 5);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2]);
        index.remove(1);
        assert_eq!(index.search(&[1.0, 0.0], &[a, b], 1)[0].0, 3);
    }
}
