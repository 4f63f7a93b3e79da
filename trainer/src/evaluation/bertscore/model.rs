//! A BERT / RoBERTa encoder in burn: embeddings, then self-attention layers (post-LayerNorm, exact
//! GELU), returning the hidden states after a chosen number of layers (bert_score's `num_layers`).
//! BERTScore runs it on devices other than flex (libtorch, possibly a GPU); on flex it runs
//! [`CpuEncoder`](super::cpu::CpuEncoder), the same computation tested against this one.

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
        let inner = gelu(self.intermediate.forward(attended.clone()));
        self.output_norm
            .forward(self.output.forward(inner) + attended)
    }
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
