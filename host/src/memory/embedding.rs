//! The sentence-embedding model as memory sees it: present (and then every
//! text is embedded) or absent with a reason (and search is keyword-only).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Turns texts into L2-normalised vectors of one fixed dimension.
pub trait TextEmbedder: Send + Sync {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
    /// Name shown in health and status output.
    fn name(&self) -> &str;
    /// Bytes the model's weights occupy in memory.
    fn memory_bytes(&self) -> u64;
}

#[derive(Debug, Clone)]
pub enum ModelState {
    Loaded { name: String },
    Unavailable { reason: String },
}

/// Shared, swappable: a model pulled while the server runs can be loaded
/// without a restart.
pub struct EmbedderState {
    inner: RwLock<Result<Arc<dyn TextEmbedder>, String>>,
}

impl EmbedderState {
    pub fn loaded(embedder: Arc<dyn TextEmbedder>) -> Self {
        EmbedderState {
            inner: RwLock::new(Ok(embedder)),
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        EmbedderState {
            inner: RwLock::new(Err(reason.into())),
        }
    }

    pub fn get(&self) -> Option<Arc<dyn TextEmbedder>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok()
            .cloned()
    }

    /// Records why there is no model (yet): a pull in progress, a failure.
    /// Does nothing once a model is loaded.
    pub fn set_unavailable(&self, reason: impl Into<String>) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.is_err() {
            *inner = Err(reason.into());
        }
    }

    pub fn set(&self, embedder: Arc<dyn TextEmbedder>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Ok(embedder);
    }

    pub fn state(&self) -> ModelState {
        match &*self.inner.read().unwrap_or_else(|p| p.into_inner()) {
            Ok(e) => ModelState::Loaded {
                name: e.name().to_string(),
            },
            Err(reason) => ModelState::Unavailable {
                reason: reason.clone(),
            },
        }
    }
}

/// all-MiniLM-L6-v2 run in-process by `caxton-models` (candle).
pub struct MiniLm {
    model: caxton_models::Embedder,
    /// Size of the f32 weights file, which candle holds in memory.
    weights_bytes: u64,
}

impl TextEmbedder for MiniLm {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.model.embed(texts).map_err(|e| e.to_string())
    }

    fn name(&self) -> &str {
        caxton_models::MODEL_NAME
    }

    fn memory_bytes(&self) -> u64 {
        self.weights_bytes
    }
}

/// Loads the model from `cache_dir` if its files are there and verified;
/// otherwise says what is missing and how to get it.
pub fn load_cached(cache_dir: &Path) -> Result<Arc<dyn TextEmbedder>, String> {
    let status = caxton_models::model_status(cache_dir);
    if !status.verified {
        return Err(format!(
            "embedding model not available ({}); search is keyword-only until \
             `caxton memory pull` fetches it",
            status.detail
        ));
    }
    let started = std::time::Instant::now();
    let embedder = caxton_models::Embedder::load(&status.dir).map_err(|e| {
        format!(
            "embedding model in {} could not be loaded ({e}); search is keyword-only; \
             run `caxton memory pull` to fetch it again",
            status.dir.display()
        )
    })?;
    tracing::info!(
        model = caxton_models::MODEL_NAME,
        elapsed_ms = started.elapsed().as_millis() as u64,
        simd = caxton_models::cpu::matrix_kernels(),
        "embedding model loaded"
    );
    let weights_bytes = std::fs::metadata(status.dir.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(Arc::new(MiniLm {
        model: embedder,
        weights_bytes,
    }))
}

/// Downloads the model into `cache_dir` (reporting progress through
/// `state`'s reason, which health shows), then loads it. Runs on its own
/// thread at first start; memory answers keyword-only meanwhile.
pub fn pull_and_load(
    cache_dir: &Path,
    state: &EmbedderState,
) -> Result<Arc<dyn TextEmbedder>, String> {
    let mut last_percent = u64::MAX;
    let mut report = |p: caxton_models::PullProgress| {
        let percent = p.total.map(|t| p.downloaded * 100 / t.max(1));
        if percent != Some(last_percent) {
            last_percent = percent.unwrap_or(0);
            state.set_unavailable(format!(
                "downloading the embedding model from {} ({}); search is keyword-only until it is loaded",
                p.source,
                match percent {
                    Some(pc) => format!("{pc}%"),
                    None => format!("{} MB", p.downloaded / 1_000_000),
                }
            ));
        }
    };
    caxton_models::pull(cache_dir, &mut report)
        .map_err(|e| format!("{e}; search is keyword-only (run `caxton memory pull` to retry)"))?;
    load_cached(cache_dir)
}

/// Cached vectors by query text, and the order they arrived in.
type CacheEntries = (HashMap<String, Arc<Vec<f32>>>, VecDeque<String>);

/// Recently embedded search queries. Agents and dashboards repeat queries;
/// embedding one costs milliseconds, a lookup microseconds. First in, first
/// out: simple, and a repeated query is re-inserted soon enough.
pub struct QueryCache {
    capacity: usize,
    entries: Mutex<CacheEntries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters for `memory stats` / `model-stats`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CacheStats {
    pub entries: usize,
    pub capacity: usize,
    pub hits: u64,
    pub misses: u64,
    /// Hits over lookups, 0..=1; `None` before the first lookup.
    pub hit_rate: Option<f64>,
    pub bytes: usize,
}

impl QueryCache {
    pub fn new(capacity: usize) -> Self {
        QueryCache {
            capacity,
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn get(&self, query: &str) -> Option<Arc<Vec<f32>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let found = entries.0.get(query).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn put(&self, query: &str, vector: Arc<Vec<f32>>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *entries;
        if map.insert(query.to_string(), vector).is_none() {
            order.push_back(query.to_string());
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// Empties the cache and its counters.
    pub fn clear(&self) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = entries.0.len();
        entries.0.clear();
        entries.1.clear();
        self.hits.store(0, Ordering::Relaxed);
        self.misses.store(0, Ordering::Relaxed);
        dropped
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let lookups = hits + misses;
        let bytes = entries
            .0
            .iter()
            .map(|(k, v)| k.len() + v.len() * 4 + 64)
            .sum();
        CacheStats {
            entries: entries.0.len(),
            capacity: self.capacity,
            hits,
            misses,
            hit_rate: (lookups > 0).then(|| hits as f64 / lookups as f64),
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_cache_evicts_oldest_and_counts() {
        let cache = QueryCache::new(2);
        assert!(cache.get("a").is_none());
        cache.put("a", Arc::new(vec![1.0]));
        cache.put("b", Arc::new(vec![2.0]));
        cache.put("c", Arc::new(vec![3.0]));
        assert!(cache.get("a").is_none(), "oldest evicted");
        assert_eq!(cache.get("c").map(|v| v[0]), Some(3.0));
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.hits, stats.misses), (2, 1, 2));
        assert_eq!(cache.clear(), 2);
        assert_eq!(cache.stats().hit_rate, None);
    }
}
