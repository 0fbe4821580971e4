//! The sentence-embedding model as memory sees it: present (and then every
//! text is embedded) or absent with a reason (and search is keyword-only).

use std::sync::{Arc, RwLock};

/// Turns texts into L2-normalised vectors of one fixed dimension.
pub trait TextEmbedder: Send + Sync {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
    /// Name shown in health and status output.
    fn name(&self) -> &str;
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
