//! The embedding pipeline: tokenise, run BERT, mean-pool, normalise.
//!
//! It reproduces what sentence-transformers does for all-MiniLM-L6-v2
//! (Transformer -> mean Pooling -> Normalize), so vectors are interchangeable
//! with the Python library's to within float rounding.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::bert::{Bert, BertConfig, SMALL_ROWS, masked_mean};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::DIMENSIONS;

/// sentence-transformers' `max_seq_length` for this model (counting [CLS] and
/// [SEP]). The shipped tokenizer.json says 128, but the model was trained with
/// 256 and sentence-transformers overrides the tokenizer to match.
const MAX_TOKENS: usize = 256;

/// Texts per forward pass. Larger batches gain little on a CPU and make every
/// text in the batch pay for the longest one's padding.
const BATCH: usize = 32;

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
    pad_id: u32,
    device: Device,
    /// Runs small forward passes (a search query) on one thread: splitting
    /// a fifteen-token product across cores costs more in wake-ups than it
    /// saves. Concurrent small embeds take turns on it (each is ~8 ms).
    one_thread: rayon::ThreadPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &crate::MODEL_NAME)
            .field("device", &self.device)
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
        // The shipped tokenizer pads every input to 128 tokens. Padding is done
        // per batch below instead: padding to a fixed width wastes work and,
        // more importantly, the mask must be built from the real lengths.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(format!("cannot set truncation: {e}")))?;

        let device = Device::Cpu;
        let weights_path = model_dir.join(WEIGHTS_FILE);
        // Read into memory rather than mmap: candle copies CPU tensors out of
        // the buffer anyway, and a buffer cannot fault (SIGBUS) if the file is
        // replaced while loading, so no `unsafe` is needed.
        let weights = fs::read(&weights_path).map_err(|source| EmbedError::Io {
            path: weights_path.clone(),
            source,
        })?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = Bert::load(vb, &config)?;
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "caxton-embed".into())
            .build()
            .map_err(|e| EmbedError::Model(candle_core::Error::Msg(e.to_string())))?;

        Ok(Embedder {
            model,
            tokenizer,
            pad_id: u32::try_from(config.pad_token_id).unwrap_or(0),
            device,
            one_thread,
        })
    }

    /// Embeds a batch of texts; result `i` belongs to `texts[i]`.
    ///
    /// Each vector has [`DIMENSIONS`] entries and unit length, so
    /// [`crate::cosine`] (or a plain dot product) compares them. Texts longer
    /// than 256 tokens (roughly 180 English words) are truncated: only their
    /// beginning counts. Empty input gives empty output.
    ///
    /// Texts are grouped by length into forward passes of up to 32, so long
    /// and short texts do not share padding; the result does not depend on
    /// batch composition beyond float rounding.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(format!("cannot tokenise input: {e}")))?;

        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());

        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&tokenizers::Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Embeds one text; see [`Embedder::embed`].
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(&[text])?
            .pop()
            .ok_or_else(|| EmbedError::Tokenizer("no embedding produced".into()))
    }

    /// One forward pass over already-tokenised texts.
    fn forward(&self, batch: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let width = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * width);
        let mut mask = Vec::with_capacity(batch.len() * width);
        for encoding in batch {
            let len = encoding.get_ids().len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(self.pad_id, width - len));
            mask.extend(std::iter::repeat_n(1u32, len));
            mask.extend(std::iter::repeat_n(0u32, width - len));
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        // The mask matters twice: BERT must not attend to padding, and the
        // mean must not average it in. Missing either makes short texts in a
        // padded batch drift towards one another.
        let run = || -> Result<Tensor, candle_core::Error> {
            let hidden = self.model.forward(&ids, &mask)?;
            masked_mean(&hidden, &mask)
        };
        let mean = if batch.len() * width <= SMALL_ROWS {
            self.one_thread.install(run)?
        } else {
            run()?
        };
        let rows = mean.to_vec2::<f32>()?;
        Ok(rows.into_iter().map(normalise).collect())
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
