//! The embedding backlog: texts stored without their vector yet.
//!
//! A write is acknowledged once its text is durable; embedding is what
//! costs (a 1,500-character text takes ~40 ms of both cores here). So a
//! write whose texts would take longer than [`INLINE_EMBED_BYTES`] allows
//! stores them without vectors, and one background thread embeds every
//! such doc in large batches, oldest first. Meanwhile keyword search
//! finds them at once; `GET /api/v1/health/memory` shows how many wait
//! (`embedding_backlog`). The backlog is the docs table itself (a doc
//! without an embedding), so `kill -9` loses nothing: the next start
//! resumes it. Docs written while no model is loaded wait the same way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::model::{MemoryError, Result};
use super::{MemoryService, index_err, store};

/// Texts (distinct, in bytes) a write embeds before it answers; more go
/// to the background. ~4 KB is ~150 ms of the model on 2 cores: a write
/// of a few dozen short facts stays read-your-writes by meaning, a batch
/// of long documents is acknowledged as soon as it is durable.
pub(super) const INLINE_EMBED_BYTES: usize = 4096;
/// Docs embedded per model call in the background.
const BATCH: usize = 64;

/// The background embedder's state. At most one thread embeds at a time.
#[derive(Default)]
pub(super) struct Backlog {
    /// Something was written without its vector since the thread looked.
    wanted: AtomicBool,
    /// The thread exists.
    running: AtomicBool,
    /// Every doc below this id has been embedded: doc ids only grow, so
    /// the next pass starts here instead of rescanning the table. It moves
    /// only while a model is loaded, so what was written before a model
    /// arrived is still ahead of it.
    from: AtomicU64,
}

impl Backlog {
    /// Forgets how far the embedder got: the docs table was replaced
    /// (a memory snapshot was loaded), so its ids say nothing any more.
    pub(super) fn rescan(&self) {
        self.from.store(0, Ordering::SeqCst);
    }
}

impl MemoryService {
    /// Starts embedding whatever waits for a vector, in the background.
    /// Cheap when nothing waits or the embedder already runs.
    pub fn embed_backlog(&self) {
        let backlog = &self.backlog;
        backlog.wanted.store(true, Ordering::SeqCst);
        if backlog.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(memory) = self.me.upgrade() else {
            backlog.running.store(false, Ordering::SeqCst);
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("caxton-embedder".into())
            .spawn(move || memory.embed_while_wanted());
        if let Err(e) = spawned {
            backlog.running.store(false, Ordering::SeqCst);
            tracing::warn!(error = %e, "could not start the background embedder");
        }
    }

    /// Embeds the backlog, once for each time it was asked, and exits
    /// when a pass found nothing new was wanted meanwhile.
    fn embed_while_wanted(&self) {
        let backlog = &self.backlog;
        loop {
            backlog.wanted.store(false, Ordering::SeqCst);
            match self.embed_pending() {
                Ok(0) => {}
                Ok(n) => tracing::debug!(docs = n, "embedded documents from the backlog"),
                Err(e) => {
                    tracing::warn!(error = %e, "background embedding stopped; the next write retries");
                    backlog.running.store(false, Ordering::SeqCst);
                    return;
                }
            }
            if backlog.wanted.load(Ordering::SeqCst) {
                continue;
            }
            backlog.running.store(false, Ordering::SeqCst);
            // A writer that set `wanted` after the check above, but saw
            // `running` still true, started no thread: take its work.
            if !backlog.wanted.load(Ordering::SeqCst)
                || backlog.running.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }

    /// Embeds every doc without a vector after the cursor, in batches.
    /// Answers how many. Without a model, nothing (the cursor stays).
    pub fn embed_pending(&self) -> Result<usize> {
        let Some(embedder) = self.embedder.get() else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let from = self.backlog.from.load(Ordering::Relaxed);
            let (pending, next) = self.store.read()?.unembedded_docs(from, BATCH)?;
            if pending.is_empty() {
                self.backlog.from.fetch_max(next, Ordering::Relaxed);
                return Ok(total);
            }
            let texts: Vec<&str> = pending.iter().map(|(_, _, t)| t.as_str()).collect();
            let vectors = embedder.embed(&texts).map_err(MemoryError::Storage)?;
            let pairs: Vec<(u64, Vec<f32>)> =
                pending.iter().map(|(d, _, _)| *d).zip(vectors).collect();
            let _writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            let (stored, version) = store::store_embeddings(&self.store, &pairs)?;
            let items = pairs
                .into_iter()
                .zip(&pending)
                .filter(|((doc, _), _)| stored.contains(doc))
                .map(|((doc, vector), (_, scope, _))| (doc, scope.clone(), vector))
                .collect::<Vec<_>>();
            self.unsaved
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            if version.is_some() {
                self.index
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply_versioned(version, |index| index.insert_many(items))
                    .map_err(index_err)?;
            }
            self.backlog.from.fetch_max(next, Ordering::Relaxed);
            total += pending.len();
        }
    }
}
