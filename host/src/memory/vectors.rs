//! The vector index: an HNSW graph (usearch) derived from the embeddings in
//! redb, kept in step with every committed write, saved to disk so a restart
//! does not re-insert every vector.
//!
//! - Vectors are stored as f16: half the memory of f32 with no measured loss
//!   of recall on this model's embeddings (i8 lost recall).
//! - Each doc remembers its scope, so a search only returns the scopes the
//!   caller may see (a filter inside the HNSW walk, not a post-filter that
//!   could leave fewer than `k` results).
//! - redb stays the source of truth. Every transaction that changes the
//!   embeddings stamps them with a new random *vectors version*; the index
//!   knows the version it reflects and a snapshot records it. A snapshot
//!   whose version is the database's is used as it is (a restart at a
//!   million entities reads no embedding); any other is reconciled with
//!   the set of embedded docs in redb (adds what the snapshot missed, drops
//!   what was deleted since), so a crash between two saves costs a
//!   catch-up, never a wrong answer.
//!
//! [`load`]: VectorIndex::load

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::model::ScopeKey;

/// Graph degree and beam widths: usearch's defaults, which gave recall@10 of
/// 1.0 on 100K clustered 384-d vectors in our probe.
const CONNECTIVITY: usize = 16;
const EXPANSION_ADD: usize = 128;
const EXPANSION_SEARCH: usize = 64;
/// Index size up to which [`EXPANSION_SEARCH`] is used unchanged.
const EXPANSION_BASE_SIZE: usize = 100_000;
/// The widest search beam: the cost of a search grows with it.
const EXPANSION_SEARCH_MAX: usize = 256;

/// The search beam for an index of `size` vectors: 64 up to 100K, growing
/// with √size beyond (≈200 at 1M, the cap of 256 from 1.6M). A fixed beam
/// finds a shrinking share of the true neighbours as the graph grows: at
/// 2M vectors recall@10 had fallen to 0.745 with 64.
fn expansion_for(size: usize) -> usize {
    let scale = (size as f64 / EXPANSION_BASE_SIZE as f64).sqrt().max(1.0);
    ((EXPANSION_SEARCH as f64 * scale) as usize).min(EXPANSION_SEARCH_MAX)
}
/// Name of the file saying which snapshot in the index directory is current.
const CURRENT: &str = "CURRENT";
/// Extension of a snapshot's vectors-version file (16 hex digits); older
/// snapshots have none.
const VERSION_EXT: &str = "version";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("vector index: {0}")]
    Native(String),
    #[error("vector index file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("vector index snapshot {path} is unusable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn native(e: impl std::fmt::Display) -> IndexError {
    IndexError::Native(e.to_string())
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct VectorIndex {
    ann: Index,
    dimensions: usize,
    /// Interned scope names; `doc_scopes` refers to them by position.
    scopes: Vec<ScopeKey>,
    scope_ids: HashMap<ScopeKey, u32>,
    doc_scopes: HashMap<u64, u32>,
    /// The database's vectors version this index holds exactly; `None`
    /// when unknown (a change failed half-way, an older snapshot), which
    /// makes the next load reconcile.
    version: Option<u64>,
}

impl VectorIndex {
    pub fn new(dimensions: usize) -> Result<Self, IndexError> {
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F16,
            connectivity: CONNECTIVITY,
            expansion_add: EXPANSION_ADD,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        let ann = Index::new(&options).map_err(native)?;
        Ok(VectorIndex {
            ann,
            dimensions,
            scopes: Vec::new(),
            scope_ids: HashMap::new(),
            doc_scopes: HashMap::new(),
            version: None,
        })
    }

    /// The database's vectors version this index reflects, if known.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Records which vectors version the index now reflects (`None`: not
    /// known to reflect any).
    pub fn set_version(&mut self, version: Option<u64>) {
        self.version = version;
    }

    /// Applies a committed change of the embeddings (`change`) and takes
    /// on its `version` — only if the change is whole: until then, and
    /// after a failure, the index holds no known version, so a snapshot
    /// saved meanwhile is reconciled when loaded.
    pub fn apply_versioned(
        &mut self,
        version: Option<u64>,
        change: impl FnOnce(&mut Self) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        self.version = None;
        change(self)?;
        self.version = version;
        Ok(())
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn len(&self) -> usize {
        self.doc_scopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_scopes.is_empty()
    }

    pub fn contains(&self, doc: u64) -> bool {
        self.doc_scopes.contains_key(&doc)
    }

    /// Bytes the HNSW graph and vectors occupy in memory.
    pub fn memory_bytes(&self) -> usize {
        self.ann.memory_usage() + self.doc_scopes.len() * 24
    }

    fn scope_id(&mut self, scope: &ScopeKey) -> u32 {
        if let Some(id) = self.scope_ids.get(scope) {
            return *id;
        }
        let id = self.scopes.len() as u32;
        self.scopes.push(scope.clone());
        self.scope_ids.insert(scope.clone(), id);
        id
    }

    /// Makes room for `additional` more vectors (usearch needs capacity
    /// reserved before `add`); grows geometrically so inserts stay O(1)
    /// amortised.
    /// Takes `&mut self` although usearch would not need it: it also
    /// widens the search beam, which must not change under a search.
    fn reserve(&mut self, additional: usize) -> Result<(), IndexError> {
        let needed = self.ann.size() + additional;
        if needed > self.ann.capacity() {
            let capacity = needed.max(self.ann.capacity() * 2).max(1024);
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            self.ann
                .reserve_capacity_and_threads(capacity, threads)
                .map_err(native)?;
        }
        self.ann.change_expansion_search(expansion_for(needed));
        Ok(())
    }

    pub fn insert(&mut self, doc: u64, scope: &ScopeKey, vector: &[f32]) -> Result<(), IndexError> {
        if vector.len() != self.dimensions {
            return Err(IndexError::Native(format!(
                "doc {doc} has a {}-d vector; the index holds {}-d vectors",
                vector.len(),
                self.dimensions
            )));
        }
        if self.doc_scopes.contains_key(&doc) {
            self.ann.remove(doc).map_err(native)?;
        }
        self.reserve(1)?;
        self.ann.add(doc, vector).map_err(native)?;
        let id = self.scope_id(scope);
        self.doc_scopes.insert(doc, id);
        Ok(())
    }

    /// Inserts many vectors using every core (usearch supports concurrent
    /// adds once threads are reserved). Used by rebuilds and catch-up.
    pub fn insert_many(&mut self, items: Vec<(u64, ScopeKey, Vec<f32>)>) -> Result<(), IndexError> {
        if let Some((doc, _, v)) = items.iter().find(|(_, _, v)| v.len() != self.dimensions) {
            return Err(IndexError::Native(format!(
                "doc {doc} has a {}-d vector; the index holds {}-d vectors",
                v.len(),
                self.dimensions
            )));
        }
        for (doc, _, _) in &items {
            if self.doc_scopes.contains_key(doc) {
                self.ann.remove(*doc).map_err(native)?;
            }
        }
        self.reserve(items.len())?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = items.len().div_ceil(threads).max(1);
        let ann = &self.ann;
        std::thread::scope(|s| {
            let workers: Vec<_> = items
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || -> Result<(), IndexError> {
                        for (doc, _, vector) in part {
                            ann.add(*doc, vector.as_slice()).map_err(native)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(IndexError::Native("an index worker panicked".into())))
            })
        })?;
        for (doc, scope, _) in &items {
            let id = self.scope_id(scope);
            self.doc_scopes.insert(*doc, id);
        }
        Ok(())
    }

    pub fn remove(&mut self, doc: u64) -> Result<(), IndexError> {
        if self.doc_scopes.remove(&doc).is_some() {
            self.ann.remove(doc).map_err(native)?;
        }
        Ok(())
    }

    /// The `k` docs most similar to `query` among `scopes`, best first, with
    /// cosine similarity. `exact` scans every vector instead of walking the
    /// graph (for measuring the graph's recall).
    pub fn search(
        &self,
        query: &[f32],
        scopes: &[ScopeKey],
        k: usize,
        exact: bool,
    ) -> Result<Vec<(u64, f32)>, IndexError> {
        let allowed: Vec<u32> = scopes
            .iter()
            .filter_map(|s| self.scope_ids.get(s).copied())
            .collect();
        if allowed.is_empty() || k == 0 || self.is_empty() || query.len() != self.dimensions {
            return Ok(Vec::new());
        }
        let everything = allowed.len() == self.scopes.len();
        let matches = if everything && exact {
            self.ann.exact_search(query, k)
        } else if everything {
            self.ann.search(query, k)
        } else {
            let doc_scopes = &self.doc_scopes;
            let filter = move |doc: u64| doc_scopes.get(&doc).is_some_and(|s| allowed.contains(s));
            if exact {
                // usearch has no filtered exact search: widen the exact scan
                // until enough allowed docs are found.
                let mut width = k;
                loop {
                    let all = self.ann.exact_search(query, width).map_err(native)?;
                    let total = all.keys.len();
                    let hits: Vec<(u64, f32)> = all
                        .keys
                        .into_iter()
                        .zip(all.distances)
                        .filter(|(d, _)| filter(*d))
                        .map(|(d, dist)| (d, 1.0 - dist))
                        .take(k)
                        .collect();
                    if hits.len() == k || total < width {
                        return Ok(hits);
                    }
                    width *= 4;
                }
            }
            self.ann.filtered_search(query, k, filter)
        }
        .map_err(native)?;
        Ok(matches
            .keys
            .into_iter()
            .zip(matches.distances)
            .map(|(doc, distance)| (doc, 1.0 - distance))
            .collect())
    }

    /// Writes a snapshot into `dir`: the usearch graph plus the doc → scope
    /// table, then flips `CURRENT` to it atomically (write, fsync, rename),
    /// so a crash mid-save leaves the previous snapshot in force.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let token = format!("{:016x}", rand_token());
        let graph = dir.join(format!("{token}.usearch"));
        let docs = dir.join(format!("{token}.docs"));
        let graph_str = graph.to_str().ok_or_else(|| IndexError::Corrupt {
            path: graph.clone(),
            reason: "the path is not UTF-8".into(),
        })?;
        self.ann.save(graph_str).map_err(native)?;
        fs::File::open(&graph)
            .and_then(|f| f.sync_all())
            .map_err(io_at(&graph))?;
        write_synced(&docs, &self.encode_docs())?;
        if let Some(version) = self.version {
            let path = dir.join(format!("{token}.{VERSION_EXT}"));
            write_synced(&path, format!("{version:016x}").as_bytes())?;
        }
        let tmp = dir.join(format!("{CURRENT}.tmp"));
        write_synced(&tmp, token.as_bytes())?;
        fs::rename(&tmp, dir.join(CURRENT)).map_err(io_at(dir))?;
        // Older snapshots are garbage now; failing to delete one only wastes
        // disk until the next save.
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let snapshot_file = [".usearch", ".docs", ".version"]
                    .iter()
                    .any(|ext| name.ends_with(ext));
                let stale = snapshot_file && !name.starts_with(&token);
                if stale {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// Loads the current snapshot in `dir`, if there is one that matches
    /// `dimensions`. `Ok(None)` means "no snapshot": the caller rebuilds.
    pub fn load(dir: &Path, dimensions: usize) -> Result<Option<Self>, IndexError> {
        let current = dir.join(CURRENT);
        let token = match fs::read_to_string(&current) {
            Ok(t) => t.trim().to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&current)(e)),
        };
        let graph = dir.join(format!("{token}.usearch"));
        let docs = dir.join(format!("{token}.docs"));
        let corrupt = |reason: String| IndexError::Corrupt {
            path: graph.clone(),
            reason,
        };
        let index = VectorIndex::new(dimensions)?;
        let graph_str = graph
            .to_str()
            .ok_or_else(|| corrupt("the path is not UTF-8".into()))?;
        let meta = Index::metadata(graph_str).map_err(|e| corrupt(e.to_string()))?;
        if meta.dimensions as usize != dimensions {
            return Err(corrupt(format!(
                "it holds {}-d vectors, the model makes {dimensions}-d",
                meta.dimensions
            )));
        }
        index
            .ann
            .load(graph_str)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut bytes = Vec::new();
        fs::File::open(&docs)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_at(&docs))?;
        let mut index = index;
        index
            .decode_docs(&bytes)
            .map_err(|reason| IndexError::Corrupt {
                path: docs.clone(),
                reason,
            })?;
        if index.doc_scopes.len() != index.ann.size() {
            return Err(corrupt(format!(
                "the graph holds {} vectors but the doc table {}",
                index.ann.size(),
                index.doc_scopes.len()
            )));
        }
        let size = index.ann.size();
        index.ann.change_expansion_search(expansion_for(size));
        // A missing or unreadable version only costs a reconcile.
        index.version = fs::read_to_string(dir.join(format!("{token}.{VERSION_EXT}")))
            .ok()
            .and_then(|text| u64::from_str_radix(text.trim(), 16).ok());
        Ok(Some(index))
    }

    /// Docs in the index, with their scopes (for reconciling with redb).
    pub fn docs(&self) -> impl Iterator<Item = u64> + '_ {
        self.doc_scopes.keys().copied()
    }

    /// Doc table format: a JSON line with the scope names, then one
    /// little-endian (doc u64, scope u32) pair per vector.
    fn encode_docs(&self) -> Vec<u8> {
        let names: Vec<&str> = self.scopes.iter().map(ScopeKey::as_str).collect();
        let mut out = serde_json::to_vec(&names).unwrap_or_else(|_| b"[]".to_vec());
        out.push(b'\n');
        out.reserve(self.doc_scopes.len() * 12);
        for (doc, scope) in &self.doc_scopes {
            out.extend_from_slice(&doc.to_le_bytes());
            out.extend_from_slice(&scope.to_le_bytes());
        }
        out
    }

    fn decode_docs(&mut self, bytes: &[u8]) -> Result<(), String> {
        let newline = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("no scope header")?;
        let names: Vec<String> =
            serde_json::from_slice(&bytes[..newline]).map_err(|e| e.to_string())?;
        let scopes: Vec<ScopeKey> = names.iter().map(|n| ScopeKey::from_stored(n)).collect();
        let body = &bytes[newline + 1..];
        if !body.len().is_multiple_of(12) {
            return Err("truncated doc table".into());
        }
        for pair in body.chunks_exact(12) {
            let doc = u64::from_le_bytes(pair[..8].try_into().map_err(|_| "bad doc")?);
            let scope = u32::from_le_bytes(pair[8..].try_into().map_err(|_| "bad scope")?);
            if scope as usize >= scopes.len() {
                return Err(format!("doc {doc} names scope #{scope}, which is unknown"));
            }
            self.doc_scopes.insert(doc, scope);
        }
        for (id, scope) in scopes.into_iter().enumerate() {
            self.scope_ids.insert(scope.clone(), id as u32);
            self.scopes.push(scope);
        }
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let mut file = fs::File::create(path).map_err(io_at(path))?;
    file.write_all(bytes).map_err(io_at(path))?;
    file.sync_all().map_err(io_at(path))
}

/// A random u64 (snapshot names, the vectors version).
pub(super) fn rand_token() -> u64 {
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    hi ^ lo
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_beam_grows_with_the_index() {
        assert_eq!(expansion_for(0), EXPANSION_SEARCH);
        assert_eq!(expansion_for(100_000), EXPANSION_SEARCH);
        assert_eq!(expansion_for(400_000), 2 * EXPANSION_SEARCH);
        assert!((190..=210).contains(&expansion_for(1_000_000)));
        assert_eq!(expansion_for(10_000_000), EXPANSION_SEARCH_MAX);
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn finds_nearest_within_allowed_scopes() {
        let a = ScopeKey::global();
        let b = ScopeKey::agent("x");
        let mut index = VectorIndex::new(2).unwrap();
        index.insert(1, &a, &unit(&[1.0, 0.0])).unwrap();
        index.insert(2, &a, &unit(&[0.6, 0.8])).unwrap();
        index.insert(3, &b, &unit(&[1.0, 0.05])).unwrap();
        for exact in [false, true] {
            let hits = index
                .search(&[1.0, 0.0], std::slice::from_ref(&a), 5, exact)
                .unwrap();
            assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 2]);
            assert!((hits[0].1 - 1.0).abs() < 1e-3);
        }
        index.remove(1).unwrap();
        let hits = index.search(&[1.0, 0.0], &[a, b], 1, false).unwrap();
        assert_eq!(hits[0].0, 3);
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let global = ScopeKey::global();
        let agent = ScopeKey::agent("bob");
        let mut index = VectorIndex::new(3).unwrap();
        let items: Vec<_> = (0..500u64)
            .map(|i| {
                let scope = if i % 2 == 0 { &global } else { &agent };
                let v = unit(&[1.0 + i as f32, (i % 7) as f32, (i % 13) as f32]);
                (i, scope.clone(), v)
            })
            .collect();
        index.insert_many(items).unwrap();
        index.save(dir.path()).unwrap();
        assert_eq!(
            VectorIndex::load(dir.path(), 3).unwrap().unwrap().version(),
            None,
            "an index of unknown version is saved as such"
        );
        index.set_version(Some(0xfeed));
        index.save(dir.path()).unwrap();
        index.save(dir.path()).unwrap();
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 4, "one snapshot (graph, docs, version) plus CURRENT");
        let loaded = VectorIndex::load(dir.path(), 3).unwrap().unwrap();
        assert_eq!(loaded.len(), 500);
        assert_eq!(loaded.version(), Some(0xfeed));
        let q = unit(&[3.0, 3.0, 3.0]);
        assert_eq!(
            loaded
                .search(&q, std::slice::from_ref(&agent), 5, true)
                .unwrap(),
            index
                .search(&q, std::slice::from_ref(&agent), 5, true)
                .unwrap()
        );
        assert!(
            VectorIndex::load(dir.path(), 4).is_err(),
            "wrong dimensions"
        );
        assert!(
            VectorIndex::load(&dir.path().join("none"), 3)
                .unwrap()
                .is_none()
        );
    }
}
