//! Compiled components cached on disk, so a restart (or a second agent with
//! the same component) does not recompile.
//!
//! The cache is derived data, and it is data, not trust: a compiled
//! artifact is native code, so each file carries an HMAC-SHA256 over the
//! source component's hash, the engine fingerprint and the artifact, keyed
//! by a secret kept in the database (not in the cache directory). A file
//! that was swapped, damaged or written by anyone else fails the check, is
//! logged, and the component is recompiled from its stored bytes; nothing
//! in the cache directory can make the server run other code or crash.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use redb::{ReadableTable, TableDefinition};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::engine::engine_fingerprint;
use crate::storage::{Storage, db_err};

/// Name → secret bytes; holds the cache's MAC key.
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("runtime_secrets");
const CACHE_KEY: &str = "component_cache_mac_key";
const MAC_LEN: usize = 32;

/// The cache's MAC key, made at the first start and kept in the database.
pub fn mac_key(storage: &Storage) -> anyhow::Result<[u8; 32]> {
    let key = storage.write(|txn| {
        let mut table = txn.open_table(SECRETS).map_err(db_err)?;
        if let Some(existing) = table.get(CACHE_KEY).map_err(db_err)?
            && let Ok(key) = <[u8; 32]>::try_from(existing.value())
        {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            crate::storage::StorageError::Missing(format!("no system randomness: {e}"))
        })?;
        table.insert(CACHE_KEY, key.as_slice()).map_err(db_err)?;
        Ok(key)
    })?;
    Ok(key)
}

pub struct ComponentCache {
    engine: Engine,
    dir: PathBuf,
    fingerprint: String,
    key: [u8; 32],
    /// Components compiled for uploads not (yet) accepted, newest last:
    /// a deploy refused after compiling (a name taken, a failing `init`)
    /// and sent again, or the same bytes sent twice at once, compile once.
    /// In memory only, so bad uploads cannot fill the disk.
    recent: Mutex<VecDeque<(String, Component)>>,
    /// One lock per source hash being compiled: a second upload of the
    /// same bytes waits for the first compile instead of doing its own.
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Components compiled since the start (`caxton_component_compiles_total`).
    compiles: AtomicU64,
}

/// Most compiled components kept in `recent`.
const RECENT_COMPONENTS: usize = 4;
/// Most compiled code kept in `recent`, in bytes (a JS or Python agent
/// compiles to tens of megabytes).
const RECENT_BYTES: usize = 256 << 20;

fn code_size(component: &Component) -> usize {
    let range = component.image_range();
    (range.end as usize).saturating_sub(range.start as usize)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl ComponentCache {
    pub fn new(engine: Engine, dir: PathBuf, key: [u8; 32]) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let fingerprint = engine_fingerprint(&engine);
        Ok(ComponentCache {
            engine,
            dir,
            fingerprint,
            key,
            recent: Mutex::new(VecDeque::new()),
            compiling: Mutex::new(HashMap::new()),
            compiles: AtomicU64::new(0),
        })
    }

    fn mac(&self, sha256: &str, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(sha256.as_bytes());
        mac.update(b"\0");
        mac.update(self.fingerprint.as_bytes());
        mac.update(b"\0");
        mac.update(artifact);
        mac
    }

    /// The verified artifact in `path`, or why it cannot be used.
    fn read_verified(&self, sha256: &str, path: &Path) -> Result<Vec<u8>, String> {
        let mut bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
        if bytes.len() < MAC_LEN {
            return Err("too short to hold its check".into());
        }
        let artifact = bytes.split_off(MAC_LEN);
        self.mac(sha256, &artifact)
            .verify_slice(&bytes)
            .map_err(|_| {
                "its check does not match (damaged, or not written by this server)".to_string()
            })?;
        Ok(artifact)
    }

    /// The engine the cached artifacts were compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.fingerprint))
    }

    /// Loads the compiled component from disk, or compiles `bytes` and
    /// stores the result. Blocking: call it off the async executor.
    pub fn load_or_compile(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(component) = self.load_cached(sha256) {
            return Ok(component);
        }
        let component = self.compile(bytes)?;
        self.store(sha256, &component);
        Ok(component)
    }

    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        Component::new(&self.engine, bytes)
    }

    /// Components compiled since the start (not loaded from the cache).
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// The verified compiled component of `sha256`, when the cache has one:
    /// an upload of bytes already deployed shares that artifact instead of
    /// compiling again. Blocking.
    pub fn load_cached(&self, sha256: &str) -> Option<Component> {
        let path = self.path_for(sha256);
        if path.is_file() {
            match self.read_verified(sha256, &path) {
                Ok(artifact) => {
                    // SAFETY: the artifact's MAC, keyed by a secret only
                    // this server's database holds, proves `store` below
                    // wrote it from a component this same engine compiled
                    // for this source hash; wasmtime also checks the
                    // header and engine compatibility.
                    match unsafe { Component::deserialize(&self.engine, &artifact) } {
                        Ok(component) => return Some(component),
                        Err(e) => tracing::warn!(
                            path = %path.display(),
                            "discarding unusable compiled component: {e}"
                        ),
                    }
                }
                Err(reason) => tracing::warn!(
                    path = %path.display(),
                    "discarding compiled component: {reason}; recompiling from the stored bytes"
                ),
            }
        }
        None
    }

    /// The component of `sha256` for an upload that may still be refused:
    /// from the disk cache when deployed before, else from the recent
    /// compiles, else compiled (not written to disk: `store` does that
    /// once the upload is accepted). Blocking.
    pub fn compile_upload(&self, sha256: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        if let Some(component) = self.load_cached(sha256) {
            return Ok(component);
        }
        let gate = lock(&self.compiling)
            .entry(sha256.to_string())
            .or_default()
            .clone();
        let result = {
            let _compiling = lock(&gate);
            match self.recent(sha256) {
                Some(component) => Ok(component),
                None => self.compile(bytes).inspect(|component| {
                    self.remember(sha256, component.clone());
                }),
            }
        };
        let mut compiling = lock(&self.compiling);
        // The last one out removes the lock (the map holds one reference).
        if Arc::strong_count(&gate) <= 2 {
            compiling.remove(sha256);
        }
        result
    }

    fn recent(&self, sha256: &str) -> Option<Component> {
        lock(&self.recent)
            .iter()
            .find(|(sha, _)| sha == sha256)
            .map(|(_, component)| component.clone())
    }

    fn remember(&self, sha256: &str, component: Component) {
        let mut recent = lock(&self.recent);
        recent.retain(|(sha, _)| sha != sha256);
        recent.push_back((sha256.to_string(), component));
        let mut total: usize = recent.iter().map(|(_, c)| code_size(c)).sum();
        while recent.len() > RECENT_COMPONENTS || (total > RECENT_BYTES && recent.len() > 1) {
            if let Some((_, dropped)) = recent.pop_front() {
                total = total.saturating_sub(code_size(&dropped));
            }
        }
    }

    /// Writes a compiled component to the cache; failures only cost a
    /// recompile later, so they are logged, not returned.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.path_for(sha256);
        if let Err(e) = self.write_atomically(sha256, &path, component) {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e}");
        }
    }

    fn write_atomically(
        &self,
        sha256: &str,
        path: &Path,
        component: &Component,
    ) -> anyhow::Result<()> {
        let artifact = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("serialize: {e}"))?;
        let mut bytes = self.mac(sha256, &artifact).finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&artifact);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Removes the cached artifact of a component (after its last agent goes).
    pub fn forget(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path_for(sha256));
    }
}
