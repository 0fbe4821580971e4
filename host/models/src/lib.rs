//! In-process models for Caxton, run on the CPU with
//! [candle](https://github.com/huggingface/candle), so the server needs no
//! Python, no ONNX runtime and no model service:
//!
//! - sentence embeddings for memory search: sentence-transformers'
//!   `all-MiniLM-L6-v2` (a 6-layer, 384-wide BERT), described below;
//! - a local chat model for config agents ([`llm`]): a quantized GGUF LLM,
//!   by default Qwen2.5-Coder-0.5B-Instruct.
//!
//! The embedding model has two halves:
//! - [`pull`] / [`model_status`] fetch the three files the model needs
//!   (weights, tokenizer, config) into a cache directory, pinned by sha256, so a
//!   tampered or truncated download is never loaded.
//! - [`Embedder`] turns texts into L2-normalised 384-d vectors, reproducing
//!   sentence-transformers' pipeline: tokenise (truncated at 256 tokens), run
//!   BERT with an attention mask, mean-pool over real tokens, normalise.
//!
//! ```no_run
//! let dir = caxton_models::pull(&caxton_models::default_cache_dir(), &mut |_| {})?;
//! let embedder = caxton_models::Embedder::load(&dir)?;
//! let v = embedder.embed(&["A man is eating food.", "A man is eating a piece of bread."])?;
//! assert!(caxton_models::cosine(&v[0], &v[1]) > 0.7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bert;
pub mod cpu;
mod embedder;
mod gelu;
mod softmax;
mod threads;
pub use threads::fix_thread_count;
mod fetch;
pub mod llm;
mod model_files;

pub use embedder::{EmbedError, Embedder};
pub use llm::{LLM_MODEL_NAME, llm_model_path, llm_model_status, pull_llm};
pub use model_files::{
    ModelStatus, PullError, PullProgress, PullSource, default_cache_dir, model_dir, model_status,
    pull,
};

/// Length of every embedding vector (the model's hidden size).
pub const DIMENSIONS: usize = 384;

/// The model this crate runs; also the name of its directory in the cache.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Cosine similarity of two vectors.
///
/// Embeddings from [`Embedder`] are already unit length, so this equals their
/// dot product; it still divides by the norms so it is correct for any input.
/// Returns 0.0 when either vector is all zeros or the lengths differ, rather
/// than NaN or a panic, because callers rank by it.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-2.0, -2.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[], &[]), 0.0);
    }
}
