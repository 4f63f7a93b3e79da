//! A BERT / RoBERTa encoder in burn: embeddings, then self-attention layers (post-LayerNorm, exact
//! GELU), returning the hidden states after a chosen number of layers (bert_score's `num_layers`).

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

/// The fields of a Hugging Face `config.json` the encoder needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    pub fn is_roberta(&self) -> bool {
        self.model_type == "roberta" || self.model_type == "xlm-roberta"
    }
}

#[derive(Module, Debug)]
pub struct Embeddings {
    pub word: Embedding,
    pub position: Embedding,
    pub token_type: Embedding,
    pub norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_output: Linear,
    pub attention_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct BertModel {
    pub embeddings: Embeddings,
    pub layers: Vec<EncoderLayer>,
    pub heads: usize,
    pub roberta: bool,
    pub pad_token_id: usize,
}

impl EncoderLayer {
    /// `x`: [batch, tokens, hidden]; `bias`: [batch, 1, 1, tokens], 0 for tokens, a large negative
    /// number for padding.
    fn forward(&self, x: Tensor<3>, bias: Tensor<4>, heads: usize) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let dh = h / heads;
        let split = |y: Tensor<3>| y.reshape([b, t, heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt() + bias;
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, t, h]);
        let attended = self
            .attention_norm
            .forward(self.attention_output.forward(context) + x);
        let inner = exact_gelu(self.intermediate.forward(attended.clone()));
        self.output_norm
            .forward(self.output.forward(inner) + attended)
    }
}

/// GELU as BERT defines it, `x Φ(x)` with the exact normal CDF. On flex it is one pass over the
/// values ([`gelu_one`]) instead of burn's five element-wise operations around a scalar libm
/// `erff` per value, which were a sixth of BERTScore's CPU time (docs/performance.md); other
/// backends (libtorch, possibly on a GPU) keep burn's `gelu`.
fn exact_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if device != Device::flex() {
        return gelu(x);
    }
    let shape = x.shape();
    let mut values: Vec<f32> = x
        .into_data()
        .try_into_vec::<f32>()
        .expect("the encoder's activations are f32");
    for v in &mut values {
        *v = gelu_one(*v);
    }
    Tensor::from_data(TensorData::new(values, shape), &device)
}

/// `x Φ(x)` = `x (1 + erf(x / √2)) / 2`, with erf by Abramowitz and Stegun's 7.1.26 (absolute
/// error at most 1.5e-7) and `e^y` by [`exp_nonpositive`]: no libm call, no branch, so the loop
/// above vectorises. For x < 0 it computes `1 + erf(x / √2)` as the approximation's `1 - erf(|x| /
/// √2)` term directly, so the negative tail does not lose digits to cancellation.
#[inline(always)]
fn gelu_one(x: f32) -> f32 {
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
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    // n sits in the low bits of `shifted` (its unit in the last place is 1): 2^n from integer
    // arithmetic on the bits, as a float-to-int conversion would not vectorise everywhere.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_to_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * two_to_n
}

impl BertModel {
    /// Hidden states after `num_layers` layers (0 = the embeddings), [batch, tokens, hidden].
    /// `ids` and `lengths` describe right-padded sequences.
    pub fn forward(&self, ids: &[Vec<u32>], num_layers: usize, device: &Device) -> Tensor<3> {
        assert!(
            num_layers <= self.layers.len(),
            "the model has {} layers",
            self.layers.len()
        );
        let b = ids.len();
        let t = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let pad = self.pad_token_id as i64;
        let mut flat = Vec::with_capacity(b * t);
        let mut positions = Vec::with_capacity(b * t);
        let mut bias = Vec::with_capacity(b * t);
        for seq in ids {
            for i in 0..t {
                let real = i < seq.len();
                flat.push(if real { i64::from(seq[i]) } else { pad });
                // RoBERTa numbers positions from padding_idx + 1 and gives padding padding_idx.
                positions.push(match (self.roberta, real) {
                    (true, true) => pad + 1 + i as i64,
                    (true, false) => pad,
                    (false, _) => i as i64,
                });
                bias.push(if real { 0.0f32 } else { f32::MIN });
            }
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(flat, [b, t]), device);
        let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [b, t]), device);
        let types = Tensor::<2, Int>::zeros([b, t], device);
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, t]), device);
        let e = &self.embeddings;
        let mut x = e.norm.forward(
            e.word.forward(ids) + e.position.forward(positions) + e.token_type.forward(types),
        );
        for layer in &self.layers[..num_layers] {
            x = layer.forward(x, bias.clone(), self.heads);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass GELU against burn's (flex: `x / √2`, libm's `erff`, `1 +`, two products) over
    /// the range BERT's activations take and past it: within 2 units in the last place of values
    /// near 1, and the tensor path keeps shape and order.
    #[test]
    fn the_one_pass_gelu_matches_burns() {
        let device = Device::flex();
        let xs: Vec<f32> = (0..40_005).map(|i| -20.0 + i as f32 * 0.001).collect();
        let n = xs.len();
        let burns: Vec<f32> = gelu(Tensor::<1>::from_data(
            TensorData::new(xs.clone(), [n]),
            &device,
        ))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
        for (x, b) in xs.iter().zip(&burns) {
            let ours = gelu_one(*x);
            assert!(
                (ours - b).abs() <= 2.5e-7 * x.abs().max(1.0),
                "gelu({x}): ours {ours}, burn's {b}"
            );
        }
        let grid = Tensor::<2>::from_data(TensorData::new(xs.clone(), [n / 7, 7]), &device);
        let fused = exact_gelu(grid);
        assert_eq!(fused.dims(), [n / 7, 7]);
        let fused: Vec<f32> = fused.into_data().try_into_vec::<f32>().unwrap();
        for (x, f) in xs.iter().zip(&fused) {
            assert_eq!(*f, gelu_one(*x));
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
}
