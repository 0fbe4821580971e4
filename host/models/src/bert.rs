//! The BERT encoder of all-MiniLM-L6-v2, written for the shapes embedding
//! actually sees: a few dozen short texts, or one search query.
//!
//! Weights are loaded with candle; the forward pass runs on plain row-major
//! `f32` slices with the `gemm` crate for the products and small fused
//! loops for everything else. Three things made candle's general tensor
//! path slow here, all measured with perf on 2 cores:
//! - every linear layer was `x · Wᵀ` followed by a separate bias add, and
//!   for a fifteen-token query gemm repacked the whole weight matrix on
//!   each call; here small products are taken as `(W · xᵀ)ᵀ` (the weight is
//!   read once, in order) and the bias is the product's starting value;
//! - every element-wise op (bias, residual, mask, scale) was its own pass,
//!   run on candle's barrier pool whose worker spins between ops and so
//!   competed with the matrix products for the two cores;
//! - texts were padded to the longest in the batch. Here the texts of a
//!   batch are packed end to end: linear layers see only real tokens, and
//!   attention runs per text over its own tokens, so there is no mask.
//!
//! The arithmetic is the same BERT (post-norm layers, erf GELU, softmax
//! attention), so vectors match the reference model to float rounding.

use candle_core::Result;
use candle_nn::VarBuilder;
use gemm::{Parallelism, gemm};
use rayon::prelude::*;
use serde::Deserialize;

use crate::gelu::gelu_in_place;
use crate::softmax::softmax_in_place;

/// Token rows at or below which a linear layer uses the query-shaped
/// product. Measured on 2 cores: at 16 rows `(W · xᵀ)ᵀ` takes 40–60 % of
/// the time of `x · Wᵀ`; at 1,280 rows it takes up to 2.5× as long.
const SMALL_ROWS: usize = 64;

/// The fields of `config.json` this encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

/// `y = x · Wᵀ + b` over `rows` row-major rows of `inputs` values.
struct Linear {
    /// (outputs, inputs), row-major, as stored in the checkpoint.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Linear {
            weight: flat(vb.get((outputs, inputs), "weight")?)?,
            bias: flat(vb.get(outputs, "bias")?)?,
            inputs,
            outputs,
        })
    }

    /// One layer computing all of `parts` side by side (query, key and
    /// value share their input, so one larger product replaces three).
    fn stacked(parts: [Linear; 3]) -> Linear {
        let inputs = parts[0].inputs;
        debug_assert!(parts.iter().all(|p| p.inputs == inputs));
        Linear {
            outputs: parts.iter().map(|p| p.outputs).sum(),
            weight: parts
                .iter()
                .flat_map(|p| p.weight.iter().copied())
                .collect(),
            bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
            inputs,
        }
    }

    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inputs, "linear input shape");
        if rows <= SMALL_ROWS {
            return self.forward_few(x, rows);
        }
        let mut y = Vec::with_capacity(rows * self.outputs);
        for _ in 0..rows {
            y.extend_from_slice(&self.bias);
        }
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        let (ins, outs) = (self.inputs as isize, self.outputs as isize);
        // SAFETY: gemm reads and writes through raw pointers with the
        // strides given: y (rows × outputs, row-major) = x (rows × inputs,
        // row-major) · Wᵀ (W is outputs × inputs, row-major). Every index
        // those strides reach lies inside `x`, `weight` and `y` (sizes
        // asserted above and set by construction), and `y` is a fresh vector
        // aliasing neither input. With `read_dst`, gemm computes
        // `y = 1·y + 1·x·Wᵀ`, so the bias already in `y` is added.
        unsafe {
            gemm(
                rows,
                self.outputs,
                self.inputs,
                y.as_mut_ptr(),
                1,
                outs,
                true,
                x.as_ptr(),
                1,
                ins,
                self.weight.as_ptr(),
                ins,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        y
    }

    /// The product for a handful of rows, taken as `(W · xᵀ)ᵀ`: written
    /// as `W · xᵀ` into a column-major result, gemm streams the weight as
    /// it is stored and packs only `x`, instead of repacking the whole
    /// weight matrix for a query of fifteen tokens. Reading the weights is
    /// the cost, so each thread of the pool streams its own share of the
    /// output rows (one block on a single-thread pool).
    fn forward_few(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut transposed = vec![0f32; rows * self.outputs];
        let ins = self.inputs as isize;
        let block = self.outputs.div_ceil(rayon::current_num_threads().max(1));
        transposed
            .par_chunks_mut(block * rows)
            .enumerate()
            .for_each(|(b, out)| {
                let first = b * block;
                let outputs = out.len() / rows;
                // SAFETY: as in `forward`, with out (outputs × rows,
                // row-major) = W[first..first + outputs] (row-major, `ins`
                // wide) · xᵀ (x is rows × inputs, row-major). `out` is
                // this block's part of `transposed`, and the weight rows
                // first..first + outputs exist (out.len() = outputs × rows
                // is at most what is left of outputs × rows). Without
                // `read_dst` its zeros are ignored.
                unsafe {
                    gemm(
                        outputs,
                        rows,
                        self.inputs,
                        out.as_mut_ptr(),
                        1,
                        rows as isize,
                        false,
                        self.weight.as_ptr().add(first * self.inputs),
                        1,
                        ins,
                        x.as_ptr(),
                        ins,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            });
        let mut y = Vec::with_capacity(rows * self.outputs);
        for r in 0..rows {
            y.extend(
                self.bias
                    .iter()
                    .enumerate()
                    .map(|(o, b)| transposed[o * rows + r] + b),
            );
        }
        y
    }
}

/// Layer normalisation over rows of `gamma.len()` values.
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, width: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            gamma: flat(vb.get(width, "weight")?)?,
            beta: flat(vb.get(width, "bias")?)?,
            eps: eps as f32,
        })
    }

    /// `x = norm(x + residual)`, row by row, in place.
    fn add_and_normalise(&self, x: &mut [f32], residual: &[f32]) {
        let width = self.gamma.len();
        x.par_chunks_mut(width)
            .zip(residual.par_chunks(width))
            .with_min_len(8)
            .for_each(|(row, res)| {
                row.iter_mut().zip(res).for_each(|(a, r)| *a += r);
                self.normalise_row(row);
            });
    }

    fn normalise_row(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let scale = 1.0 / (variance + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * scale * g + b;
        }
    }
}

struct Layer {
    /// Query, key and value stacked: rows of 3 × hidden.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        let attention = vb.pp("attention");
        let heads = attention.pp("self");
        Ok(Layer {
            qkv: Linear::stacked([
                Linear::load(heads.pp("query"), h, h)?,
                Linear::load(heads.pp("key"), h, h)?,
                Linear::load(heads.pp("value"), h, h)?,
            ]),
            attention_out: Linear::load(attention.pp("output").pp("dense"), h, h)?,
            attention_norm: LayerNorm::load(
                attention.pp("output").pp("LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
            intermediate: Linear::load(vb.pp("intermediate").pp("dense"), h, c.intermediate_size)?,
            output: Linear::load(vb.pp("output").pp("dense"), c.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
        })
    }
}

/// The encoder: embeddings, then post-norm transformer layers.
pub struct Bert {
    /// (vocab, hidden), in f16: 30,522 rows of which a text reads a dozen,
    /// so half precision halves the model's largest tensor (47 → 23 MB
    /// resident) for a change in the output vectors of cosine < 1e-6.
    words: Vec<half::f16>,
    /// (max positions, hidden)
    positions: Vec<f32>,
    /// Segment 0's row: every text here is a single segment.
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    vocab: usize,
    max_positions: usize,
}

impl Bert {
    pub fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        if c.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act `{}` is not supported (all-MiniLM-L6-v2 uses `gelu`)",
                c.hidden_act
            );
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            candle_core::bail!("hidden_size is not a multiple of num_attention_heads");
        }
        if c.type_vocab_size == 0 {
            candle_core::bail!("type_vocab_size is 0");
        }
        let e = vb.pp("embeddings");
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), c))
            .collect::<Result<Vec<_>>>()?;
        let token_types = flat(
            e.pp("token_type_embeddings")
                .get((c.type_vocab_size, h), "weight")?,
        )?;
        Ok(Bert {
            words: e
                .pp("word_embeddings")
                .get((c.vocab_size, h), "weight")?
                .to_dtype(candle_core::DType::F16)?
                .flatten_all()?
                .to_vec1::<half::f16>()?,
            positions: flat(
                e.pp("position_embeddings")
                    .get((c.max_position_embeddings, h), "weight")?,
            )?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: LayerNorm::load(e.pp("LayerNorm"), h, c.layer_norm_eps)?,
            layers,
            heads: c.num_attention_heads,
            hidden: h,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Hidden states for texts packed end to end: `ids` holds every text's
    /// token ids one after another, `lengths[i]` says how many belong to
    /// text `i`. The result has one row of `hidden` values per token.
    pub fn forward(&self, ids: &[u32], lengths: &[usize]) -> Result<Vec<f32>> {
        if lengths.iter().sum::<usize>() != ids.len() {
            candle_core::bail!("token lengths do not add up to the ids given");
        }
        if let Some(&long) = lengths.iter().find(|&&l| l > self.max_positions) {
            candle_core::bail!(
                "a text of {long} tokens exceeds the model's {} positions",
                self.max_positions
            );
        }
        let h = self.hidden;
        let rows = ids.len();
        let mut x = Vec::with_capacity(rows * h);
        let mut start = 0;
        for &len in lengths {
            let text = &ids[start..start + len];
            start += len;
            for (position, &id) in text.iter().enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    candle_core::bail!("token id {id} is outside the vocabulary");
                }
                let word = &self.words[id * h..][..h];
                let place = &self.positions[position * h..][..h];
                x.extend(
                    word.iter()
                        .zip(place)
                        .zip(&self.token_type)
                        .map(|((w, p), t)| w.to_f32() + p + t),
                );
            }
        }
        x.par_chunks_mut(h)
            .with_min_len(8)
            .for_each(|row| self.embedding_norm.normalise_row(row));
        for layer in &self.layers {
            x = self.layer(layer, x, lengths);
        }
        Ok(x)
    }

    fn layer(&self, layer: &Layer, x: Vec<f32>, lengths: &[usize]) -> Vec<f32> {
        let rows = x.len() / self.hidden;
        let qkv = layer.qkv.forward(&x, rows);
        let context = self.attention(&qkv, lengths);
        drop(qkv);
        let mut attended = layer.attention_out.forward(&context, rows);
        drop(context);
        layer.attention_norm.add_and_normalise(&mut attended, &x);
        // Freed as soon as they are used: the peak of live activations is
        // what the allocator keeps resident after a large batch.
        drop(x);
        let mut inner = layer.intermediate.forward(&attended, rows);
        gelu_in_place(&mut inner);
        let mut out = layer.output.forward(&inner, rows);
        layer.output_norm.add_and_normalise(&mut out, &attended);
        out
    }

    /// Multi-head self-attention of each text over its own tokens, from
    /// rows of stacked (query, key, value); returns rows of `hidden`.
    fn attention(&self, qkv: &[f32], lengths: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        let d = h / self.heads;
        let stride = 3 * h;
        let scale = 1.0 / (d as f32).sqrt();
        let rows = qkv.len() / stride;
        let mut context = vec![0f32; rows * h];

        // One task per text, each owning its rows of the output.
        let mut texts = Vec::with_capacity(lengths.len());
        let mut rest = context.as_mut_slice();
        let mut start = 0;
        for &len in lengths {
            let (mine, others) = rest.split_at_mut(len * h);
            texts.push((start, len, mine));
            rest = others;
            start += len;
        }
        texts.into_par_iter().for_each(|(start, len, out)| {
            let text = &qkv[start * stride..][..len * stride];
            let mut scores = vec![0f32; len * len];
            for head in 0..self.heads {
                let (q_at, k_at, v_at) = (head * d, h + head * d, 2 * h + head * d);
                // SAFETY: `text` holds `len` rows of `stride` values; the
                // query, key and value of this head are `d` columns at
                // `q_at`, `k_at`, `v_at` (each + d <= stride) of every row,
                // so every (row, column) the strides reach is inside it.
                // `scores` is len × len, row-major, fresh for this task.
                // scores = scale · Q · Kᵀ (Kᵀ read column-wise from K's rows).
                unsafe {
                    gemm(
                        len,
                        len,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        text.as_ptr().add(q_at),
                        1,
                        stride as isize,
                        text.as_ptr().add(k_at),
                        stride as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                for row in scores.chunks_exact_mut(len) {
                    softmax_in_place(row);
                }
                // SAFETY: `out` is this text's len × h rows of the context;
                // the head's d columns start at head * d (+ d <= h). P is
                // `scores` (len × len), V as above. out = P · V.
                unsafe {
                    gemm(
                        len,
                        d,
                        len,
                        out.as_mut_ptr().add(head * d),
                        1,
                        h as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        text.as_ptr().add(v_at),
                        1,
                        stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            }
        });
        context
    }

    /// Width of a hidden state row.
    pub fn hidden(&self) -> usize {
        self.hidden
    }
}

/// Mean of each text's rows of `hidden` (texts packed as in
/// [`Bert::forward`]): sentence-transformers' mean pooling.
pub fn mean_pool(hidden: &[f32], width: usize, lengths: &[usize]) -> Vec<Vec<f32>> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let mut mean = vec![0f32; width];
            for row in hidden[start * width..][..len * width].chunks_exact(width) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            start += len;
            let n = len.max(1) as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            mean
        })
        .collect()
}

fn flat(t: candle_core::Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The products against a plain triple loop, in both shapes.
    #[test]
    fn linear_matches_the_definition() {
        for rows in [1, 3, SMALL_ROWS, SMALL_ROWS + 7] {
            let (inputs, outputs) = (19, 11);
            let weight: Vec<f32> = (0..outputs * inputs)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
                .collect();
            let bias: Vec<f32> = (0..outputs).map(|i| i as f32).collect();
            let x: Vec<f32> = (0..rows * inputs)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0)
                .collect();
            let linear = Linear {
                weight: weight.clone(),
                bias: bias.clone(),
                inputs,
                outputs,
            };
            let y = linear.forward(&x, rows);
            for r in 0..rows {
                for o in 0..outputs {
                    let want = bias[o]
                        + (0..inputs)
                            .map(|i| x[r * inputs + i] * weight[o * inputs + i])
                            .sum::<f32>();
                    let got = y[r * outputs + o];
                    assert!(
                        (got - want).abs() < 1e-4,
                        "rows {rows} [{r},{o}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Attention through gemm against the definition written out: per
    /// text, per head, softmax(q·k / sqrt(d)) weighting the values.
    #[test]
    fn attention_matches_the_definition() {
        let (heads, h) = (2, 8);
        let d = h / heads;
        let bert = Bert {
            words: Vec::new(),
            positions: Vec::new(),
            token_type: Vec::new(),
            embedding_norm: LayerNorm {
                gamma: Vec::new(),
                beta: Vec::new(),
                eps: 0.0,
            },
            layers: Vec::new(),
            heads,
            hidden: h,
            vocab: 0,
            max_positions: 0,
        };
        let lengths = [3, 1, 5];
        let rows: usize = lengths.iter().sum();
        let stride = 3 * h;
        let qkv: Vec<f32> = (0..rows * stride)
            .map(|i| ((i * 7 % 17) as f32 - 8.0) / 9.0)
            .collect();
        let got = bert.attention(&qkv, &lengths);
        let mut start = 0;
        for &len in &lengths {
            for head in 0..heads {
                for i in 0..len {
                    let at = |row: usize, part: usize, c: usize| {
                        qkv[(start + row) * stride + part * h + head * d + c]
                    };
                    let logits: Vec<f32> = (0..len)
                        .map(|j| {
                            (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f32>()
                                / (d as f32).sqrt()
                        })
                        .collect();
                    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
                    let sum: f32 = exps.iter().sum();
                    for c in 0..d {
                        let want: f32 = (0..len).map(|j| exps[j] / sum * at(j, 2, c)).sum();
                        let got = got[(start + i) * h + head * d + c];
                        assert!(
                            (got - want).abs() < 1e-5,
                            "text at {start}, head {head}, [{i},{c}]: {got} vs {want}"
                        );
                    }
                }
            }
            start += len;
        }
    }

    #[test]
    fn mean_pool_averages_each_text() {
        let hidden = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0];
        let pooled = mean_pool(&hidden, 2, &[2, 1]);
        assert_eq!(pooled, vec![vec![2.0, 3.0], vec![10.0, 20.0]]);
    }
}
