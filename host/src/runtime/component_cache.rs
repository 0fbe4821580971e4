//! Compiled components cached on disk, so a restart (or a second agent with
//! the same component) does not recompile.
//!
//! The cache is derived data: any entry may be deleted, and an entry that
//! fails to load is recompiled and rewritten.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::engine::engine_fingerprint;

pub struct ComponentCache {
    engine: Engine,
    dir: PathBuf,
    fingerprint: String,
}

impl ComponentCache {
    pub fn new(engine: Engine, dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let fingerprint = engine_fingerprint(&engine);
        Ok(ComponentCache {
            engine,
            dir,
            fingerprint,
        })
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
        let path = self.path_for(sha256);
        if path.is_file() {
            // SAFETY: the file was written by `store` below from a
            // component this same engine compiled; wasmtime additionally
            // checks the header and engine compatibility, and any error
            // falls through to a recompile.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unusable compiled component: {e}")
                }
            }
        }
        let component = Component::new(&self.engine, bytes)?;
        self.store(sha256, &component);
        Ok(component)
    }

    /// Compiles without touching the cache: for uploads that may still be
    /// refused, so a stream of bad uploads cannot fill the disk.
    pub fn compile_uncached(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        Component::new(&self.engine, bytes)
    }

    /// Writes a compiled component to the cache; failures only cost a
    /// recompile later, so they are logged, not returned.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.path_for(sha256);
        if let Err(e) = Self::write_atomically(&path, component) {
            tracing::warn!(path = %path.display(), "cannot cache compiled component: {e}");
        }
    }

    fn write_atomically(path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| anyhow::anyhow!("serialize: {e}"))?;
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
