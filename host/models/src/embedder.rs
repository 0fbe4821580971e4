//! The embedding pipeline: tokenise, run BERT, mean-pool, normalise.
//!
//! It reproduces what sentence-transformers does for all-MiniLM-L6-v2
//! (Transformer -> mean Pooling -> Normalize), so vectors are interchangeable
//! with the Python library's to within float rounding.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::bert::{Bert, BertConfig, mean_pool};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::DIMENSIONS;

/// sentence-transformers' `max_seq_length` for this model (counting [CLS] and
/// [SEP]). The shipped tokenizer.json says 128, but the model was trained with
/// 256 and sentence-transformers overrides the tokenizer to match.
const MAX_TOKENS: usize = 256;

/// Tokens per forward pass. Texts are packed without padding, so a pass is
/// sized by tokens: large enough that the matrix products run near the
/// cores' peak (1,024 measured ~5 % slower on 20-token texts), small enough
/// that activations stay in a few megabytes.
const PASS_TOKENS: usize = 2048;

const CONFIG_FILE: &str = "config.json";
const TOKENIZER_FILE: &str = "tokenizer.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// Why loading the model or embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory lacks files; nothing was pulled there yet.
    #[error("model files missing in {}: {}; run a model pull (caxton_models::pull) first", dir.display(), missing.join(", "))]
    MissingFiles { dir: PathBuf, missing: Vec<String> },
    /// A model file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// config.json is malformed or describes a different model.
    #[error("unusable model config {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    /// tokenizer.json could not be loaded or a text could not be tokenised.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// candle failed to load the weights or run the network.
    #[error("model: {0}")]
    Model(#[from] candle_core::Error),
    /// The matrix library cannot run on this CPU (see
    /// [`crate::cpu::check_matrix_kernels`]).
    #[error("unsupported CPU: {0}")]
    Cpu(String),
}

/// A loaded all-MiniLM-L6-v2, ready to embed text on the CPU.
///
/// Loading takes a fraction of a second and ~90 MB of memory, so load once and
/// share: the type is `Send + Sync` and [`Embedder::embed`] takes `&self`, so an
/// `Arc<Embedder>` can serve concurrent callers (candle already spreads one
/// batch over all cores, so concurrency mostly adds queueing, not throughput).
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    /// Runs every forward pass. The caller's thread would otherwise
    /// drive the serial parts (attention over small matrices, pooling)
    /// while both pool workers spin waiting for the next parallel product:
    /// three busy threads on two cores. Driving the pass from inside the
    /// pool lets the idle worker spin on the idle core. (Running it on the
    /// global pool instead measured ~20 MB more resident memory.)
    all_threads: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &crate::MODEL_NAME)
            .field("device", &"cpu")
            .finish_non_exhaustive()
    }
}

// The doc promise above; fails to compile if a dependency ever breaks it.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Embedder>();
};

impl Embedder {
    /// Loads the model from a directory holding `config.json`,
    /// `tokenizer.json` and `model.safetensors` (normally [`crate::pull`]'s
    /// result). It does not re-check hashes; [`crate::model_status`] does.
    pub fn load(model_dir: &Path) -> Result<Embedder, EmbedError> {
        crate::cpu::check_matrix_kernels().map_err(EmbedError::Cpu)?;
        let missing: Vec<String> = [CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE]
            .iter()
            .filter(|name| !model_dir.join(name).is_file())
            .map(|name| name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(EmbedError::MissingFiles {
                dir: model_dir.to_path_buf(),
                missing,
            });
        }

        let config_path = model_dir.join(CONFIG_FILE);
        let config = read_config(&config_path)?;

        let tokenizer_path = model_dir.join(TOKENIZER_FILE);
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            EmbedError::Tokenizer(format!("cannot load {}: {e}", tokenizer_path.display()))
        })?;
        // The shipped tokenizer pads every input to 128 tokens. The encoder
        // packs texts end to end instead, so padding would only add tokens
        // that are not in the text.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(format!("cannot set truncation: {e}")))?;

        let weights_path = model_dir.join(WEIGHTS_FILE);
        // Read into memory rather than mmap: candle copies CPU tensors out of
        // the buffer anyway, and a buffer cannot fault (SIGBUS) if the file is
        // replaced while loading, so no `unsafe` is needed.
        let weights = fs::read(&weights_path).map_err(|source| EmbedError::Io {
            path: weights_path.clone(),
            source,
        })?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
        let model = Bert::load(vb, &config)?;
        let all_threads = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("caxton-embed-{i}"))
            .build()
            .map_err(|e| EmbedError::Model(candle_core::Error::Msg(e.to_string())))?;

        Ok(Embedder {
            model,
            all_threads,
            tokenizer,
        })
    }

    /// Embeds a batch of texts; result `i` belongs to `texts[i]`.
    ///
    /// Each vector has [`DIMENSIONS`] entries and unit length, so
    /// [`crate::cosine`] (or a plain dot product) compares them. Texts longer
    /// than 256 tokens (roughly 180 English words) are truncated: only their
    /// beginning counts. Empty input gives empty output.
    ///
    /// Texts are packed into forward passes of up to 2,048 tokens; each
    /// text attends only to its own tokens, so the result does not depend
    /// on what else is in the batch beyond float rounding.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(format!("cannot tokenise input: {e}")))?;

        let mut out = Vec::with_capacity(texts.len());
        let mut pass: Vec<&tokenizers::Encoding> = Vec::new();
        let mut tokens = 0;
        for encoding in &encodings {
            let len = encoding.get_ids().len();
            if !pass.is_empty() && tokens + len > PASS_TOKENS {
                out.extend(self.forward(&pass)?);
                pass.clear();
                tokens = 0;
            }
            pass.push(encoding);
            tokens += len;
        }
        out.extend(self.forward(&pass)?);
        Ok(out)
    }

    /// Embeds one text; see [`Embedder::embed`].
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(&[text])?
            .pop()
            .ok_or_else(|| EmbedError::Tokenizer("no embedding produced".into()))
    }

    /// One forward pass over already-tokenised texts, packed end to end
    /// (no padding: the encoder attends within each text).
    fn forward(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let lengths: Vec<usize> = batch.iter().map(|e| e.get_ids().len()).collect();
        let ids: Vec<u32> = batch.iter().flat_map(|e| e.get_ids()).copied().collect();
        let run = || -> Result<Vec<Vec<f32>>, candle_core::Error> {
            let hidden = self.model.forward(&ids, &lengths)?;
            Ok(mean_pool(&hidden, self.model.hidden(), &lengths))
        };
        // A query too: its products are bound by reading the weights, and
        // each worker streams half of them (p50 6.6 → 4.6 ms on 2 cores
        // against one thread; concurrent queries no longer queue on one
        // core while the other idles).
        let means = self.all_threads.install(run)?;
        Ok(means.into_iter().map(normalise).collect())
    }
}

fn read_config(path: &Path) -> Result<BertConfig, EmbedError> {
    let text = fs::read_to_string(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let config: BertConfig = serde_json::from_str(&text).map_err(|e| EmbedError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Callers size their vector stores by DIMENSIONS; another model would
    // silently break them.
    if config.hidden_size != DIMENSIONS {
        return Err(EmbedError::Config {
            path: path.to_path_buf(),
            reason: format!(
                "hidden_size is {}, this crate produces {DIMENSIONS}-d vectors",
                config.hidden_size
            ),
        });
    }
    Ok(config)
}

/// Scales to unit length (sentence-transformers' Normalize module), leaving a
/// zero vector as it is rather than dividing by zero.
fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_gives_unit_length() {
        let v = normalise(vec![3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert_eq!(normalise(vec![0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn load_reports_missing_files() {
        let dir =
            std::env::temp_dir().join(format!("caxton-models-nofiles-{}", std::process::id()));
        let err = Embedder::load(&dir).expect_err("empty dir must not load");
        match err {
            EmbedError::MissingFiles { missing, .. } => assert_eq!(missing.len(), 3),
            other => panic!("unexpected error: {other}"),
        }
    }
}
