//! Text generation with a quantized GGUF chat model, in-process on the CPU.
//!
//! The GGUF file is the only artefact: weights, hyper-parameters and the
//! tokenizer (a byte-level BPE vocabulary, rebuilt with candle's
//! `TokenizerFromGguf`) and the chat template all come from it.
//! Architectures `qwen2` (the default model, Qwen2.5-Coder-0.5B-Instruct),
//! `llama` (Llama 3, SmolLM2, TinyLlama, …) and `phi3` are supported.
//!
//! A model holds its KV cache, so one [`LocalLlm`] answers one prompt at a
//! time (`&mut self`); callers queue requests in front of it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::{quantized_llama, quantized_phi3, quantized_qwen2};
use tokenizers::Tokenizer;

use crate::llm::chatml::{self, ToolDecl, Turn};
use crate::llm::template::{ChatTemplate, TemplateError};

/// Why a model could not be loaded or could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot open the model file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a usable GGUF model: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error(
        "{} has architecture `{arch}`; the local provider runs `qwen2`, `llama` and `phi3` GGUF models",
        path.display()
    )]
    Architecture { path: PathBuf, arch: String },
    /// The matrix library cannot run on this CPU (see
    /// [`crate::cpu::check_matrix_kernels`]).
    #[error("unsupported CPU: {0}")]
    Cpu(String),
    #[error(
        "the prompt is {prompt_tokens} tokens; with {max_tokens} to generate it exceeds the \
         model's context of {context} tokens: shorten the system prompt or the history"
    )]
    TooLong {
        prompt_tokens: usize,
        max_tokens: usize,
        context: usize,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("inference failed: {0}")]
    Inference(String),
}

fn inference(e: impl std::fmt::Display) -> LlmError {
    LlmError::Inference(e.to_string())
}

/// How to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// `None` or `0.0`: greedy (deterministic); otherwise sampled.
    pub temperature: Option<f64>,
    pub seed: u64,
}

/// Tokens that end an assistant turn in the chat formats of the supported
/// families (ChatML, Llama 3, Phi 3), besides the file's EOS.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>"];

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            temperature: None,
            seed: 299_792_458,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` were generated.
    Length,
    /// The caller's token callback asked to stop (cancelled, timed out).
    Cancelled,
}

/// The answer to one prompt, with its costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Time to process the prompt (up to the first generated token).
    pub prefill: Duration,
    /// Time spent generating after the first token.
    pub decode: Duration,
}

impl Generation {
    /// Prompt tokens processed per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prefill)
    }

    /// Tokens generated per second, after the first.
    pub fn decode_tokens_per_second(&self) -> f64 {
        per_second(self.completion_tokens.saturating_sub(1), self.decode)
    }
}

fn per_second(tokens: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        tokens as f64 / time.as_secs_f64()
    }
}

enum Weights {
    Qwen2(quantized_qwen2::ModelWeights),
    Llama(quantized_llama::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

impl Weights {
    fn forward(&mut self, input: &Tensor, position: usize) -> candle_core::Result<Tensor> {
        match self {
            Weights::Qwen2(m) => m.forward(input, position),
            Weights::Llama(m) => m.forward(input, position),
            Weights::Phi3(m) => m.forward(input, position),
        }
    }

    fn clear_kv_cache(&mut self) {
        match self {
            Weights::Qwen2(m) => m.clear_kv_cache(),
            // quantized_llama and quantized_phi3 keep no reset method: their
            // cache is rebuilt when a forward pass starts at position 0.
            Weights::Llama(_) | Weights::Phi3(_) => {}
        }
    }
}

/// A loaded chat model.
pub struct LocalLlm {
    weights: Weights,
    tokenizer: Tokenizer,
    /// Tokens that end the assistant's turn (`<|im_end|>`, `<|eot_id|>`,
    /// `<|end|>`, EOS).
    stop_tokens: Vec<u32>,
    /// The GGUF's own chat template; `None`: ChatML.
    template: Option<ChatTemplate>,
    /// Why the GGUF's template is not used, when it has one that failed to
    /// compile.
    template_problem: Option<String>,
    context_length: usize,
    /// `general.name` from the GGUF, for status and logs.
    name: String,
    path: PathBuf,
    device: Device,
}

impl LocalLlm {
    /// Loads a GGUF file (about 1.5 s and 1 GiB of memory for the default
    /// 0.5B model).
    pub fn load(path: &Path) -> Result<LocalLlm, LlmError> {
        crate::cpu::check_matrix_kernels().map_err(LlmError::Cpu)?;
        let format = |detail: String| LlmError::Format {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = File::open(path).map_err(|source| LlmError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| format(e.to_string()))?;
        let text = |key: &str| {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_string().ok())
                .cloned()
        };
        let arch = text("general.architecture").unwrap_or_default();
        let name = text("general.name").unwrap_or_else(|| arch.clone());
        let context_length = content
            .metadata
            .get(&format!("{arch}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .map_or(4096, |n| n as usize);
        let tokenizer = Tokenizer::from_gguf(&content)
            .map_err(|e| format(format!("cannot build its tokenizer: {e}")))?;
        let mut stop_tokens: Vec<u32> = END_OF_TURN
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        let token_id = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
        let eos = token_id("tokenizer.ggml.eos_token_id");
        stop_tokens.extend(eos);
        let token_text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        let (template, template_problem) = match text("tokenizer.chat_template") {
            None => (None, None),
            Some(source) => match ChatTemplate::new(
                source,
                token_text(token_id("tokenizer.ggml.bos_token_id")),
                token_text(eos),
            ) {
                Ok(template) => (Some(template), None),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "{e}; prompts use ChatML instead");
                    (None, Some(e.to_string()))
                }
            },
        };
        if stop_tokens.is_empty() {
            return Err(format(
                "its vocabulary has no end-of-turn token (<|im_end|> or EOS)".into(),
            ));
        }
        let device = Device::Cpu;
        let weights = match arch.as_str() {
            "qwen2" => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut file, &device)
                    .map_err(|e| format(e.to_string()))?,
            ),
            "llama" => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut file, &device)
                    .map_err(|e| format(e.to_string()))?,
            ),
            "phi3" => Weights::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut file, &device)
                    .map_err(|e| format(e.to_string()))?,
            ),
            _ => {
                return Err(LlmError::Architecture {
                    path: path.to_path_buf(),
                    arch,
                });
            }
        };
        Ok(LocalLlm {
            weights,
            tokenizer,
            stop_tokens,
            template,
            template_problem,
            context_length,
            name,
            path: path.to_path_buf(),
            device,
        })
    }

    /// The model's own name (`general.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The prompt for a conversation, in the format the model was trained
    /// on: its GGUF's chat template, or ChatML when it carries none.
    pub fn prompt(&self, turns: &[Turn], tools: &[ToolDecl]) -> Result<String, LlmError> {
        match &self.template {
            Some(template) => Ok(template.render(turns, tools)?),
            None => Ok(chatml::render(turns, tools)),
        }
    }

    /// The GGUF's own chat template, when it has a usable one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// Where prompts come from: `"gguf"` (the file's own template) or
    /// `"chatml"`, and why not the file's template when it has one that
    /// could not be used.
    pub fn prompt_format(&self) -> (&'static str, Option<&str>) {
        match &self.template {
            Some(_) => ("gguf", None),
            None => ("chatml", self.template_problem.as_deref()),
        }
    }

    /// Number of tokens `text` encodes to (special tokens recognised).
    pub fn count_tokens(&self, text: &str) -> Result<usize, LlmError> {
        Ok(self.encode(text)?.len())
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self.tokenizer.encode(text, false).map_err(inference)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Completes `prompt` (already in the model's chat format, see
    /// [`Self::prompt`]). `on_text` receives each new piece of text
    /// as it is decoded and returns `false` to stop early.
    pub fn generate(
        &mut self,
        prompt: &str,
        params: GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, LlmError> {
        let prompt_ids = self.encode(prompt)?;
        if prompt_ids.is_empty() {
            return Err(LlmError::Inference("the prompt is empty".into()));
        }
        if prompt_ids.len() + params.max_tokens > self.context_length {
            return Err(LlmError::TooLong {
                prompt_tokens: prompt_ids.len(),
                max_tokens: params.max_tokens,
                context: self.context_length,
            });
        }
        let sampling = match params.temperature {
            Some(t) if t > 1e-7 => Sampling::All { temperature: t },
            _ => Sampling::ArgMax,
        };
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);
        self.weights.clear_kv_cache();

        let started = Instant::now();
        let input = Tensor::new(prompt_ids.as_slice(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(inference)?;
        let logits = self
            .weights
            .forward(&input, 0)
            .and_then(|l| l.squeeze(0))
            .map_err(inference)?;
        let mut next = sampler.sample(&logits).map_err(inference)?;
        let prefill = started.elapsed();
        let decode_started = Instant::now();

        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        let stop = loop {
            if self.stop_tokens.contains(&next) {
                break StopReason::EndOfTurn;
            }
            generated.push(next);
            // Decode the whole tail and emit what is new: a token can be half
            // of a UTF-8 character, shown as U+FFFD until the next arrives.
            let decoded = self.tokenizer.decode(&generated, true).map_err(inference)?;
            if !decoded.ends_with('\u{FFFD}')
                && let Some(piece) = decoded.get(emitted..).filter(|p| !p.is_empty())
            {
                emitted = decoded.len();
                if !on_text(piece) {
                    break StopReason::Cancelled;
                }
            }
            if generated.len() >= params.max_tokens {
                break StopReason::Length;
            }
            let input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(inference)?;
            let position = prompt_ids.len() + generated.len() - 1;
            let logits = self
                .weights
                .forward(&input, position)
                .and_then(|l| l.squeeze(0))
                .map_err(inference)?;
            next = sampler.sample(&logits).map_err(inference)?;
        };
        // The streamed pieces are a best effort; the whole decode is exact.
        let text = self.tokenizer.decode(&generated, true).map_err(inference)?;
        Ok(Generation {
            text,
            stop,
            prompt_tokens: prompt_ids.len(),
            completion_tokens: generated.len(),
            prefill,
            decode: decode_started.elapsed(),
        })
    }
}
