//! The encoder's forward pass on the CPU, used for BERTScore when the device is flex: the same
//! computation as [`BertModel::forward`](super::model::BertModel::forward) (tested against it to
//! 1e-5), written on plain f32 buffers so that it costs little more than its matrix products.
//!
//! What burn's version spends beyond the products, and how this one avoids it
//! (docs/performance.md has the measurements):
//! - **Padding**: a batch's sentences are packed one after another, no padding rows. Every
//!   operation but attention works token by token, and attention runs within each sentence, so a
//!   token's state is what it is in a padded batch (where padding keys get weight exactly 0).
//! - **Per-sentence products**: a Linear on [batch, tokens, hidden] became one small product per
//!   sentence; here it is one product over all the batch's tokens (`gemm`, the crate flex itself
//!   calls), with query, key and value in a single product against their stacked weights.
//!   Attention's two products are `gemm` calls on strided views, per sentence and head.
//! - **Element-wise passes**: a product writes its output bare; bias, residual and LayerNorm (or
//!   bias and GELU) then run as one pass over each row while it is in cache.
//! - **Instruction set**: the release build targets baseline x86-64; the element-wise code runs
//!   compiled for AVX-512 or AVX2 when the CPU has them (pulp's run-time dispatch).
//! - **Threads**: a call runs on the calling thread only (`gemm` without its thread pool);
//!   [`BertScorer`](super::BertScorer) runs one batch per core, which keeps every core busy
//!   through the element-wise work too.
//!
//! Weights stay in PyTorch's [out, in] layout: `gemm` reads the right-hand side through strides,
//! measured as fast as a transposed copy.

use super::loader::{Checkpoint, Dense, Norm};

/// The checkpoint's Linear layers serve as they are (`weight` [out, in] row-major, `bias` [out]).
impl Dense {
    /// Query, key and value as one layer of 3 x out outputs (rows stacked in that order).
    fn stacked(parts: [Dense; 3]) -> Dense {
        let (d_in, d_out) = (parts[0].d_in, parts.iter().map(|p| p.d_out).sum());
        let mut weight = Vec::with_capacity(d_in * d_out);
        let mut bias = Vec::with_capacity(d_out);
        for part in parts {
            assert_eq!(part.d_in, d_in, "stacked layers read the same input");
            weight.extend(part.weight);
            bias.extend(part.bias);
        }
        Dense {
            weight,
            bias,
            d_in,
            d_out,
        }
    }

    /// `out = x W^T` for the `rows` rows of `x` ([rows, in]), without the bias: callers add it
    /// in the pass that follows (with the residual, the LayerNorm or GELU), so that it costs no
    /// pass of its own.
    #[inline(always)]
    fn product(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        assert_eq!(x.len(), rows * self.d_in);
        assert_eq!(out.len(), rows * self.d_out);
        if rows == 0 {
            return;
        }
        // SAFETY: `gemm` reads `rows x d_in` values of `x` (row stride d_in), `d_in x d_out` of
        // the weight read as its transpose (element (k, n) at n * d_in + k) and writes `rows x
        // d_out` of `out` (row stride d_out) without reading it; the lengths are asserted above
        // and `out`, borrowed mutably, overlaps neither input.
        unsafe {
            strided_product(
                [rows, self.d_out, self.d_in],
                (out.as_mut_ptr(), self.d_out as isize),
                (x.as_ptr(), self.d_in as isize, 1),
                (self.weight.as_ptr(), 1, self.d_in as isize),
                1.0,
            );
        }
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn new(norm: Norm, eps: f64) -> LayerNorm {
        LayerNorm {
            gamma: norm.gamma,
            beta: norm.beta,
            eps: eps as f32,
        }
    }

    /// Normalises one row in place: `(x - mean) / sqrt(var + eps) * gamma + beta`, the variance
    /// biased, as PyTorch and burn compute it.
    #[inline(always)]
    fn row(&self, row: &mut [f32]) {
        let d = self.gamma.len() as f32;
        let mean = sum(row) / d;
        let var = sum_sq_dev(row, mean) / d;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }

    /// `out = LayerNorm(out + bias + residual)` row by row: one pass over rows that stay in cache.
    #[inline(always)]
    fn add_and_apply(&self, out: &mut [f32], bias: &[f32], residual: &[f32]) {
        let d = self.gamma.len();
        for (row, res) in out.chunks_exact_mut(d).zip(residual.chunks_exact(d)) {
            for ((v, b), r) in row.iter_mut().zip(bias).zip(res) {
                *v = (*v + b) + r;
            }
            self.row(row);
        }
    }
}

struct Layer {
    qkv: Dense,
    attention_output: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: LayerNorm,
}

/// A BERT / RoBERTa encoder for the CPU (see the module docs).
pub struct CpuEncoder {
    hidden: usize,
    heads: usize,
    roberta: bool,
    pad_token_id: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    max_positions: usize,
    /// Row 0 of the token-type embeddings: BERTScore encodes single sentences.
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for CpuEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuEncoder")
            .field("hidden", &self.hidden)
            .field("heads", &self.heads)
            .field("layers", &self.layers.len())
            .field("roberta", &self.roberta)
            .finish_non_exhaustive()
    }
}

/// Buffers of one batch, kept between layers.
struct Buffers {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    inner: Vec<f32>,
    /// The output products' [tokens, hidden], before bias, residual and LayerNorm.
    projected: Vec<f32>,
    /// One head's attention scores, [longest, longest].
    scores: Vec<f32>,
}

impl CpuEncoder {
    pub fn new(checkpoint: Checkpoint) -> CpuEncoder {
        let config = checkpoint.config;
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let layers = checkpoint
            .layers
            .into_iter()
            .map(|l| Layer {
                qkv: Dense::stacked([l.query, l.key, l.value]),
                attention_output: l.attention_output,
                attention_norm: LayerNorm::new(l.attention_norm, eps),
                intermediate: l.intermediate,
                output: l.output,
                output_norm: LayerNorm::new(l.output_norm, eps),
            })
            .collect();
        let mut token_type = checkpoint.token_type;
        token_type.truncate(h);
        CpuEncoder {
            hidden: h,
            heads: config.num_attention_heads,
            roberta: config.is_roberta(),
            pad_token_id: config.pad_token_id,
            word: checkpoint.word,
            position: checkpoint.position,
            max_positions: config.max_position_embeddings,
            token_type,
            embedding_norm: LayerNorm::new(checkpoint.embedding_norm, eps),
            layers,
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Hidden states after `num_layers` layers (0 = the embeddings) of each token of each
    /// sentence, packed: [Σ lengths, hidden], sentence after sentence. Ids must be in the
    /// vocabulary and sentences no longer than the position table allows (the scorer truncates).
    pub fn forward<S: AsRef<[u32]>>(&self, sentences: &[S], num_layers: usize) -> Vec<f32> {
        assert!(
            num_layers <= self.layers.len(),
            "the model has {} layers",
            self.layers.len()
        );
        // The release build targets baseline x86-64 (SSE2); pulp runs the whole pass compiled for
        // the widest instruction set the CPU has. Every helper below is `inline(always)` so that
        // it is compiled into that copy. The element-wise numbers do not depend on the choice
        // (sums run in 16 explicit lanes or in order, and no multiply-add is fused); `gemm`
        // picks its kernels by instruction set on its own.
        pulp::Arch::new().dispatch(Forward {
            encoder: self,
            sentences,
            num_layers,
        })
    }

    #[inline(always)]
    fn forward_inlined<S: AsRef<[u32]>>(&self, sentences: &[S], num_layers: usize) -> Vec<f32> {
        let h = self.hidden;
        let tokens: usize = sentences.iter().map(|s| s.as_ref().len()).sum();
        let longest = sentences
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0);
        let inner = self.layers.first().map_or(0, |l| l.intermediate.d_out);
        let mut b = Buffers {
            x: self.embed(sentences, tokens),
            qkv: vec![0.0; tokens * 3 * h],
            context: vec![0.0; tokens * h],
            attended: vec![0.0; tokens * h],
            inner: vec![0.0; tokens * inner],
            projected: vec![0.0; tokens * h],
            scores: vec![0.0; longest * longest],
        };
        for layer in &self.layers[..num_layers] {
            self.layer(layer, sentences, tokens, &mut b);
        }
        b.x
    }

    /// Word + position + token type, then LayerNorm.
    #[inline(always)]
    fn embed<S: AsRef<[u32]>>(&self, sentences: &[S], tokens: usize) -> Vec<f32> {
        let h = self.hidden;
        let mut x = Vec::with_capacity(tokens * h);
        for ids in sentences {
            let ids = ids.as_ref();
            for (i, &id) in ids.iter().enumerate() {
                // RoBERTa numbers positions from padding_idx + 1.
                let position = if self.roberta {
                    self.pad_token_id + 1 + i
                } else {
                    i
                };
                assert!(
                    position < self.max_positions,
                    "a sentence of {} tokens is longer than the model's {} positions",
                    ids.len(),
                    self.max_positions
                );
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = &self.position[position * h..(position + 1) * h];
                x.extend(
                    word.iter()
                        .zip(pos)
                        .zip(&self.token_type)
                        .map(|((w, p), t)| (w + p) + t),
                );
            }
        }
        for row in x.chunks_exact_mut(h) {
            self.embedding_norm.row(row);
        }
        x
    }

    #[inline(always)]
    fn layer<S: AsRef<[u32]>>(
        &self,
        layer: &Layer,
        sentences: &[S],
        tokens: usize,
        b: &mut Buffers,
    ) {
        let h = self.hidden;
        layer.qkv.product(&b.x, tokens, &mut b.qkv);
        for row in b.qkv.chunks_exact_mut(3 * h) {
            for (v, bias) in row.iter_mut().zip(&layer.qkv.bias) {
                *v += bias;
            }
        }
        let mut start = 0;
        for ids in sentences {
            let len = ids.as_ref().len();
            self.attend(
                &b.qkv[start * 3 * h..(start + len) * 3 * h],
                len,
                &mut b.context[start * h..(start + len) * h],
                &mut b.scores,
            );
            start += len;
        }
        // attended = LayerNorm(context W_o^T + b_o + x)
        let (attention_output, norm) = (&layer.attention_output, &layer.attention_norm);
        attention_output.product(&b.context, tokens, &mut b.attended);
        norm.add_and_apply(&mut b.attended, &attention_output.bias, &b.x);
        // x = LayerNorm(GELU(attended W_i^T + b_i) W_out^T + b_out + attended)
        let (intermediate, output) = (&layer.intermediate, &layer.output);
        intermediate.product(&b.attended, tokens, &mut b.inner);
        for row in b.inner.chunks_exact_mut(intermediate.d_out) {
            for (v, bias) in row.iter_mut().zip(&intermediate.bias) {
                *v = gelu(*v + bias);
            }
        }
        output.product(&b.inner, tokens, &mut b.projected);
        layer
            .output_norm
            .add_and_apply(&mut b.projected, &output.bias, &b.attended);
        std::mem::swap(&mut b.x, &mut b.projected);
    }

    /// Multi-head self-attention within one sentence: `qkv` is [len, 3 hidden] (query, key,
    /// value), `context` [len, hidden] receives softmax(q k^T / √d) v for each head. Both
    /// products are `gemm` calls on strided views of `qkv` and `context` (measured 2-3x faster
    /// than loops for sentences of 8 to 16 tokens: short rows leave loops mostly in remainders
    /// and dependency chains); `scores` holds one head's [len, len].
    #[inline(always)]
    fn attend(&self, qkv: &[f32], len: usize, context: &mut [f32], scores: &mut [f32]) {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        assert_eq!(qkv.len(), len * 3 * h);
        assert_eq!(context.len(), len * h);
        let scores = &mut scores[..len * len];
        if len == 0 {
            return;
        }
        for head in 0..self.heads {
            // SAFETY: query row i, element d at i * 3h + head * dh + d, and key row j, element d
            // at h + j * 3h + head * dh + d, are inside `qkv` (len rows of 3h, asserted above);
            // `scores` is len x len and borrowed mutably, so it overlaps nothing read.
            unsafe {
                strided_product(
                    [len, len, dh],
                    (scores.as_mut_ptr(), len as isize),
                    (qkv.as_ptr().add(head * dh), 3 * h as isize, 1),
                    (qkv.as_ptr().add(h + head * dh), 1, 3 * h as isize),
                    scale,
                );
            }
            for row in scores.chunks_exact_mut(len) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
                for x in row.iter_mut() {
                    *x = exp_nonpositive(*x - max);
                }
                let total: f32 = row.iter().sum();
                for x in row.iter_mut() {
                    *x /= total;
                }
            }
            // SAFETY: value row j, element d at 2h + j * 3h + head * dh + d, is inside `qkv`;
            // the output, row i element d at i * h + head * dh + d, inside `context` (len rows
            // of h, asserted above), which is borrowed mutably and overlaps neither input.
            unsafe {
                strided_product(
                    [len, dh, len],
                    (context.as_mut_ptr().add(head * dh), h as isize),
                    (scores.as_ptr(), len as isize, 1),
                    (qkv.as_ptr().add(2 * h + head * dh), 3 * h as isize, 1),
                    1.0,
                );
            }
        }
    }
}

/// `dst = scale · lhs · rhs` for an [m, k] `lhs`, a [k, n] `rhs` and an [m, n] `dst`, each given
/// by its first element and strides (`dst` by its row stride, its columns adjacent; the others by
/// row then column stride), with `gemm` on the calling thread. `dst` is written, never read.
///
/// # Safety
/// Every element the strides reach inside the three shapes lies in its allocation, and `dst`
/// overlaps neither input.
#[inline(always)]
unsafe fn strided_product(
    [m, n, k]: [usize; 3],
    (dst, dst_row): (*mut f32, isize),
    (lhs, lhs_row, lhs_col): (*const f32, isize, isize),
    (rhs, rhs_row, rhs_col): (*const f32, isize, isize),
    scale: f32,
) {
    // SAFETY: the caller's contract is gemm's: the strided shapes are in bounds and dst is
    // disjoint from lhs and rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row,
            false,
            lhs,
            lhs_col,
            lhs_row,
            rhs,
            rhs_col,
            rhs_row,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `a bᵀ` for row-major `a` [m, dim] and `b` [n, dim]: [m, n] row-major, with `gemm` (BERTScore's
/// token similarities, which bert_score computes in f32 as well).
pub fn times_transposed(a: &[f32], b: &[f32], dim: usize) -> Vec<f32> {
    assert!(dim > 0 && a.len().is_multiple_of(dim) && b.len().is_multiple_of(dim));
    let (m, n) = (a.len() / dim, b.len() / dim);
    let mut out = vec![0.0; m * n];
    if m > 0 && n > 0 {
        // SAFETY: `a` is m x dim (row stride dim), `b` read as its transpose (element (k, j) at
        // j * dim + k) is dim x n, `out` is m x n (row stride n) and freshly allocated.
        unsafe {
            strided_product(
                [m, n, dim],
                (out.as_mut_ptr(), n as isize),
                (a.as_ptr(), dim as isize, 1),
                (b.as_ptr(), 1, dim as isize),
                1.0,
            );
        }
    }
    out
}

/// [`CpuEncoder::forward`] as a pulp operation: `with_simd` is compiled once per instruction set.
struct Forward<'a, S> {
    encoder: &'a CpuEncoder,
    sentences: &'a [S],
    num_layers: usize,
}

impl<S: AsRef<[u32]>> pulp::WithSimd for Forward<'_, S> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<Simd: pulp::Simd>(self, _: Simd) -> Vec<f32> {
        self.encoder
            .forward_inlined(self.sentences, self.num_layers)
    }
}

/// `Σ f(a_i, b_i)` with 16 independent partial sums, so that the loop vectorises (one running
/// sum is a dependency chain the compiler may not reorder).
#[inline(always)]
fn lanes(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 16];
    let (chunks_a, chunks_b) = (a.chunks_exact(16), b.chunks_exact(16));
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for l in 0..16 {
            acc[l] += f(ca[l], cb[l]);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        total += f(*x, *y);
    }
    total
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    lanes(x, x, |x, _| x)
}

#[inline(always)]
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    lanes(x, x, |x, _| (x - mean) * (x - mean))
}

/// GELU as BERT defines it, `x Φ(x)` = `x (1 + erf(x / √2)) / 2`, with erf by Abramowitz and
/// Stegun's 7.1.26 (absolute error at most 1.5e-7) and `e^y` by [`exp_nonpositive`]: no libm
/// call, no branch, so a loop over it vectorises (burn's `gelu` is five element-wise passes
/// around a scalar libm `erff`). For x < 0 it computes `1 + erf(x / √2)` as the approximation's
/// `1 - erf(|x| / √2)` term directly, so the negative tail does not lose digits to cancellation.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    let a = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    // 1 - erf(a)
    let tail = poly * exp_nonpositive(-a * a);
    let one_plus_erf = if x >= 0.0 { 2.0 - tail } else { tail };
    0.5 * x * one_plus_erf
}

/// `e^y` for `y <= 0` (0 below -87, where f32 would go subnormal): `y = n ln 2 + r` with `|r| <=
/// ln 2 / 2`, `e^r` by its Taylor polynomial to `r^7` (truncation below 6e-9 relative), `2^n` put
/// into the exponent bits. Branch-free so that callers' loops vectorise.
#[inline(always)]
fn exp_nonpositive(y: f32) -> f32 {
    // Adding then subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    // ln 2 split so that n * LN2_HI is exact for the n that occur (Cody and Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let y = y.max(-87.0);
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n sits in the low bits of `shifted` (its unit in the last place is 1): 2^n from integer
    // arithmetic on the bits, as a float-to-int conversion would not vectorise everywhere.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_to_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * two_to_n
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::gelu as burns_gelu;
    use burn::tensor::{Device, Tensor, TensorData};

    use super::super::loader::{self, Checkpoint, Dense, LayerWeights, Norm};
    use super::super::model::BertConfig;
    use super::*;

    /// A random checkpoint (weights from a fixed-seed generator, roughly the scale of trained
    /// ones).
    fn random_checkpoint(config: BertConfig, seed: u64) -> Checkpoint {
        let mut state = seed;
        let mut values = |n: usize, scale: f32, offset: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                    offset + scale * (2.0 * unit - 1.0)
                })
                .collect()
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let mut dense = |d_in: usize, d_out: usize| Dense {
            weight: values(d_in * d_out, 1.0 / (d_in as f32).sqrt(), 0.0),
            bias: values(d_out, 0.1, 0.0),
            d_in,
            d_out,
        };
        let layers: Vec<_> = (0..config.num_hidden_layers)
            .map(|_| {
                (
                    dense(h, h),
                    dense(h, h),
                    dense(h, h),
                    dense(h, h),
                    dense(h, i),
                    dense(i, h),
                )
            })
            .collect();
        let mut norm = || Norm {
            gamma: values(h, 0.2, 1.0),
            beta: values(h, 0.1, 0.0),
        };
        let layers = layers
            .into_iter()
            .map(
                |(query, key, value, attention_output, intermediate, output)| LayerWeights {
                    query,
                    key,
                    value,
                    attention_output,
                    attention_norm: norm(),
                    intermediate,
                    output,
                    output_norm: norm(),
                },
            )
            .collect();
        let embedding_norm = norm();
        Checkpoint {
            word: values(config.vocab_size * h, 1.0, 0.0),
            position: values(config.max_position_embeddings * h, 0.5, 0.0),
            token_type: values(config.type_vocab_size * h, 0.5, 0.0),
            embedding_norm,
            layers,
            config,
        }
    }

    fn config(model_type: &str, hidden: usize, heads: usize) -> BertConfig {
        BertConfig {
            model_type: model_type.into(),
            vocab_size: 50,
            hidden_size: hidden,
            num_hidden_layers: 3,
            num_attention_heads: heads,
            intermediate_size: 2 * hidden,
            max_position_embeddings: 40,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 1,
            hidden_act: "gelu".into(),
        }
    }

    /// Every token's state after 0 to 3 layers equals the burn module's on flex (padded batch,
    /// masked attention) within 1e-5, for BERT's and RoBERTa's position numbering, head sizes
    /// below, at and beyond one 16-lane chunk, sentences of 1 to 37 tokens.
    #[test]
    fn the_cpu_encoder_computes_what_the_burn_module_does() {
        let device = Device::flex();
        for (model_type, hidden, heads) in [("bert", 40, 4), ("roberta", 64, 2), ("bert", 48, 1)] {
            let checkpoint = random_checkpoint(config(model_type, hidden, heads), hidden as u64);
            let model = loader::build(checkpoint.clone(), &device);
            let cpu = CpuEncoder::new(checkpoint);
            let sentences: Vec<Vec<u32>> = [5usize, 1, 37, 12, 2, 17]
                .iter()
                .enumerate()
                .map(|(s, &len)| (0..len).map(|i| ((s * 13 + i * 7) % 50) as u32).collect())
                .collect();
            for layers in 0..=3 {
                let ours = cpu.forward(&sentences, layers);
                let burns = model.forward(&sentences, layers, &device);
                let [_, t, h] = burns.dims();
                let burns: Vec<f32> = burns.into_data().try_to_vec::<f32>().unwrap();
                let mut row = 0;
                let mut worst = 0.0f32;
                for (s, ids) in sentences.iter().enumerate() {
                    for i in 0..ids.len() {
                        let a = &ours[row * h..(row + 1) * h];
                        let b = &burns[(s * t + i) * h..(s * t + i + 1) * h];
                        for (x, y) in a.iter().zip(b) {
                            worst = worst.max((x - y).abs());
                        }
                        row += 1;
                    }
                }
                assert_eq!(ours.len(), row * h);
                assert!(
                    worst < 1e-5,
                    "{model_type} h={hidden} heads={heads}, {layers} layers: differs by {worst}"
                );
            }
        }
    }

    /// A sentence's states do not depend on its neighbours in the batch (up to rounding: the
    /// matrix products tile their rows differently), and an empty batch is empty.
    #[test]
    fn sentences_do_not_see_each_other() {
        let cpu = CpuEncoder::new(random_checkpoint(config("bert", 32, 2), 9));
        let a: Vec<u32> = vec![2, 9, 4, 3];
        let b: Vec<u32> = vec![7, 7, 1];
        let together = cpu.forward(&[a.clone(), b.clone()], 3);
        let close = |x: &[f32], y: &[f32]| {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| (x - y).abs() < 1e-6)
        };
        assert!(close(&cpu.forward(&[a], 3), &together[..4 * 32]));
        assert!(close(&cpu.forward(&[b], 3), &together[4 * 32..]));
        assert!(cpu.forward::<Vec<u32>>(&[], 3).is_empty());
    }

    /// The one-pass GELU against burn's (flex: `x / √2`, libm's `erff`, `1 +`, two products) over
    /// the range BERT's activations take and past it: within 2 units in the last place of values
    /// near 1.
    #[test]
    fn the_one_pass_gelu_matches_burns() {
        let device = Device::flex();
        let xs: Vec<f32> = (0..40_005).map(|i| -20.0 + i as f32 * 0.001).collect();
        let n = xs.len();
        let burns: Vec<f32> = burns_gelu(Tensor::<1>::from_data(
            TensorData::new(xs.clone(), [n]),
            &device,
        ))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
        for (x, b) in xs.iter().zip(&burns) {
            let ours = gelu(*x);
            assert!(
                (ours - b).abs() <= 2.5e-7 * x.abs().max(1.0),
                "gelu({x}): ours {ours}, burn's {b}"
            );
        }
    }

    #[test]
    fn exp_of_nonpositive_numbers() {
        for i in 0..87_000 {
            let y = -(i as f32) * 0.001;
            let (ours, libm) = (exp_nonpositive(y), y.exp());
            assert!(
                (ours - libm).abs() <= 2.0e-7 * libm,
                "e^{y}: {ours} against {libm}"
            );
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
        assert!(exp_nonpositive(-1000.0) < 2e-38);
    }

    #[test]
    fn products_with_a_transpose() {
        // [[1, 2], [3, 4], [5, 6]] times the transpose of [[1, 0], [1, 1]].
        let out = times_transposed(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1.0, 0.0, 1.0, 1.0], 2);
        assert_eq!(out, vec![1.0, 3.0, 3.0, 7.0, 5.0, 11.0]);
        assert!(times_transposed(&[], &[1.0, 2.0], 2).is_empty());
    }

    #[test]
    fn sums_in_lanes_match_plain_sums() {
        for n in [0usize, 1, 15, 16, 17, 32, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((lanes(&a, &b, |x, y| x * y) - plain).abs() < 1e-5, "n={n}");
            let mean = sum(&a) / n.max(1) as f32;
            let plain: f32 = a.iter().map(|x| (x - mean) * (x - mean)).sum();
            assert!((sum_sq_dev(&a, mean) - plain).abs() < 1e-5, "n={n}");
        }
    }
}
