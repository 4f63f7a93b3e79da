//! The MILAN model in burn (milan-reference.md section 3): the captioner p(d | E), a
//! "show, attend and tell" decoder over the 15 exemplar features of a neuron, and the language
//! model p(d) that PMI decoding divides out.
//!
//! burn's `Lstm` runs whole sequences; both decoders here need one step at a time (the captioner's
//! input at each step depends on its attention, beam search extends hypotheses token by token),
//! so [`LstmCell`] is written from two `Linear` layers with PyTorch's gate order and
//! initialisation.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig,
};
use burn::tensor::activation::{log_softmax, sigmoid, softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::vocab::{PAD_ID, Padded};

/// PyTorch's `LSTMCell`: gates i, f, g, o from `W_ih x + b_ih + W_hh h + b_hh`.
#[derive(Module, Debug)]
pub struct LstmCell {
    input: Linear,
    hidden: Linear,
    size: usize,
}

impl LstmCell {
    pub fn new(inputs: usize, size: usize, device: &Device) -> LstmCell {
        // PyTorch initialises every LSTM weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
        let bound = 1.0 / (size as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        LstmCell {
            input: LinearConfig::new(inputs, 4 * size)
                .with_initializer(init.clone())
                .init(device),
            hidden: LinearConfig::new(size, 4 * size)
                .with_initializer(init)
                .init(device),
            size,
        }
    }

    /// `x` [B, inputs], `(h, c)` [B, size] each -> the next `(h, c)`.
    pub fn forward(&self, x: Tensor<2>, (h, c): (Tensor<2>, Tensor<2>)) -> (Tensor<2>, Tensor<2>) {
        let gates = self.input.forward(x) + self.hidden.forward(h);
        let mut parts = gates.chunk(4, 1).into_iter();
        let mut next = || parts.next().expect("four gates");
        let (i, f, g, o) = (
            sigmoid(next()),
            sigmoid(next()),
            tanh(next()),
            sigmoid(next()),
        );
        let c = f * c + i * g;
        let h = o * tanh(c.clone());
        (h, c)
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

/// The captioner's dimensions; the defaults are the reference's.
#[derive(Config, Debug, PartialEq)]
pub struct CaptionerConfig {
    /// Length of one exemplar's feature vector (3904 for ResNet-152's pyramid).
    pub feature_dim: usize,
    pub vocab: usize,
    #[config(default = 128)]
    pub embedding: usize,
    #[config(default = 512)]
    pub hidden: usize,
    /// The additive attention's hidden size; `min(512, feature_dim)` when `None`.
    #[config(default = "None")]
    pub attention: Option<usize>,
    #[config(default = 0.5)]
    pub dropout: f64,
    /// Tokens generated at most, the stop token included.
    #[config(default = 15)]
    pub max_tokens: usize,
}

impl CaptionerConfig {
    pub fn attention_size(&self) -> usize {
        self.attention.unwrap_or(self.feature_dim.min(512))
    }

    pub fn init(&self, device: &Device) -> Captioner {
        let (d, h, a) = (self.feature_dim, self.hidden, self.attention_size());
        Captioner {
            init_h: LinearConfig::new(d, h).init(device),
            init_c: LinearConfig::new(d, h).init(device),
            attend_features: LinearConfig::new(d, a).init(device),
            attend_hidden: LinearConfig::new(h, a).init(device),
            attend_score: LinearConfig::new(a, 1).init(device),
            gate: LinearConfig::new(h, d).init(device),
            embedding: EmbeddingConfig::new(self.vocab, self.embedding).init(device),
            lstm: LstmCell::new(self.embedding + d, h, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(h, self.vocab).init(device),
            max_tokens: self.max_tokens,
        }
    }
}

/// p(d | E): an attention LSTM over one neuron's exemplar features.
#[derive(Module, Debug)]
pub struct Captioner {
    init_h: Linear,
    init_c: Linear,
    attend_features: Linear,
    attend_hidden: Linear,
    attend_score: Linear,
    gate: Linear,
    embedding: Embedding,
    lstm: LstmCell,
    dropout: Dropout,
    output: Linear,
    pub max_tokens: usize,
}

/// A batch of neurons' exemplar features with their attention projection, computed once per
/// decoding.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// [B, K, D]
    pub features: Tensor<3>,
    /// [B, K, A]
    pub projected: Tensor<3>,
}

impl Encoded {
    /// The rows `rows` (a neuron may appear several times, once per beam hypothesis).
    pub fn select(&self, rows: Tensor<1, Int>) -> Encoded {
        Encoded {
            features: self.features.clone().select(0, rows.clone()),
            projected: self.projected.clone().select(0, rows),
        }
    }
}

/// The recurrent state of a batch of hypotheses.
#[derive(Debug, Clone)]
pub struct State {
    pub h: Tensor<2>,
    pub c: Tensor<2>,
}

impl State {
    pub fn select(&self, rows: Tensor<1, Int>) -> State {
        State {
            h: self.h.clone().select(0, rows.clone()),
            c: self.c.clone().select(0, rows),
        }
    }
}

/// One decoding step's results: log-probabilities of the next token [B, V], the new state, and
/// the attention weights [B, K].
#[derive(Debug)]
pub struct Step {
    pub log_probs: Tensor<2>,
    pub state: State,
    pub alpha: Tensor<2>,
}

impl Captioner {
    /// `features` [B, K, D] -> the attention projection and the initial state from the mean
    /// feature.
    pub fn encode(&self, features: Tensor<3>) -> (Encoded, State) {
        let [b, _, d] = features.dims();
        let mean = features.clone().mean_dim(1).reshape([b, d]);
        let state = State {
            h: tanh(self.init_h.forward(mean.clone())),
            c: tanh(self.init_c.forward(mean)),
        };
        let projected = self.attend_features.forward(features.clone());
        (
            Encoded {
                features,
                projected,
            },
            state,
        )
    }

    /// Reads `tokens` [B] (the previous token of each row) and predicts the next.
    pub fn step(&self, encoded: &Encoded, state: State, tokens: Tensor<1, Int>) -> Step {
        let [b, k, d] = encoded.features.dims();
        let a = encoded.projected.dims()[2];
        let hidden = self
            .attend_hidden
            .forward(state.h.clone())
            .reshape([b, 1, a]);
        let scores = self
            .attend_score
            .forward(tanh(encoded.projected.clone() + hidden))
            .reshape([b, k]);
        let alpha = softmax(scores, 1);
        let attended = (encoded.features.clone() * alpha.clone().reshape([b, k, 1]))
            .sum_dim(1)
            .reshape([b, d]);
        let gated = sigmoid(self.gate.forward(state.h.clone())) * attended;
        let embedded = self.embedding.forward(tokens.reshape([b, 1]));
        let e = embedded.dims()[2];
        let x = Tensor::cat(vec![embedded.reshape([b, e]), gated], 1);
        let (h, c) = self.lstm.forward(x, (state.h, state.c));
        let logits = self.output.forward(self.dropout.forward(h.clone()));
        Step {
            log_probs: log_softmax(logits, 1),
            state: State { h, c },
            alpha,
        }
    }

    /// Teacher-forced pass: log-probabilities [B, T, V] of every next token and the attention
    /// weights [B, T, K].
    pub fn forward(&self, features: Tensor<3>, padded: &Padded) -> (Tensor<3>, Tensor<3>) {
        let device = features.device();
        let inputs = Tensor::<2, Int>::from_data(
            TensorData::new(padded.inputs.clone(), [padded.batch, padded.steps]),
            &device,
        );
        let (encoded, mut state) = self.encode(features);
        let mut log_probs = Vec::with_capacity(padded.steps);
        let mut alphas = Vec::with_capacity(padded.steps);
        for t in 0..padded.steps {
            let tokens = inputs.clone().narrow(1, t, 1).reshape([padded.batch]);
            let step = self.step(&encoded, state, tokens);
            state = step.state;
            log_probs.push(step.log_probs.unsqueeze_dim::<3>(1));
            alphas.push(step.alpha.unsqueeze_dim::<3>(1));
        }
        (Tensor::cat(log_probs, 1), Tensor::cat(alphas, 1))
    }

    /// The training loss: mean token NLL (padding ignored) + `attention_weight` *
    /// mean((1 - sum_t alpha_t)^2), the doubly stochastic attention penalty, its sum over the
    /// steps of each description.
    pub fn loss(&self, features: Tensor<3>, padded: &Padded, attention_weight: f64) -> Tensor<1> {
        let device = features.device();
        let (log_probs, alphas) = self.forward(features, padded);
        let mask = token_mask(padded, &device);
        let nll = nll(log_probs, padded, mask.clone());
        let attended = (alphas * mask.unsqueeze_dim::<3>(2)).sum_dim(1);
        let penalty = (attended.neg() + 1.0).powi_scalar(2).mean();
        nll + penalty * attention_weight
    }
}

/// 1.0 where a target token exists, 0.0 over padding: [B, T].
fn token_mask(padded: &Padded, device: &Device) -> Tensor<2> {
    let mask: Vec<f32> = padded
        .targets
        .iter()
        .map(|&t| if t == PAD_ID as i64 { 0.0 } else { 1.0 })
        .collect();
    Tensor::from_data(TensorData::new(mask, [padded.batch, padded.steps]), device)
}

/// Mean negative log-likelihood of the targets over non-padding positions.
fn nll(log_probs: Tensor<3>, padded: &Padded, mask: Tensor<2>) -> Tensor<1> {
    let device = log_probs.device();
    let targets = Tensor::<3, Int>::from_data(
        TensorData::new(padded.targets.clone(), [padded.batch, padded.steps, 1]),
        &device,
    );
    let picked = log_probs
        .gather(2, targets)
        .reshape([padded.batch, padded.steps]);
    let count = mask.clone().sum();
    (picked * mask).sum().neg() / count
}

/// The language model's dimensions; the defaults are the reference's.
#[derive(Config, Debug, PartialEq)]
pub struct LanguageModelConfig {
    pub vocab: usize,
    #[config(default = 128)]
    pub embedding: usize,
    #[config(default = 512)]
    pub hidden: usize,
    #[config(default = 2)]
    pub layers: usize,
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl LanguageModelConfig {
    pub fn init(&self, device: &Device) -> LanguageModel {
        let cells = (0..self.layers)
            .map(|l| {
                let inputs = if l == 0 { self.embedding } else { self.hidden };
                LstmCell::new(inputs, self.hidden, device)
            })
            .collect();
        LanguageModel {
            embedding: EmbeddingConfig::new(self.vocab, self.embedding).init(device),
            cells,
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(self.hidden, self.vocab).init(device),
        }
    }
}

/// p(d): a stacked LSTM over the description alone.
#[derive(Module, Debug)]
pub struct LanguageModel {
    embedding: Embedding,
    cells: Vec<LstmCell>,
    dropout: Dropout,
    output: Linear,
}

impl LanguageModel {
    /// Teacher-forced log-probabilities [B, T, V]; dropout between layers and before the output.
    pub fn forward(&self, padded: &Padded, device: &Device) -> Tensor<3> {
        let (b, steps) = (padded.batch, padded.steps);
        let inputs =
            Tensor::<2, Int>::from_data(TensorData::new(padded.inputs.clone(), [b, steps]), device);
        let embedded = self.embedding.forward(inputs);
        let e = embedded.dims()[2];
        let mut states: Vec<(Tensor<2>, Tensor<2>)> = self
            .cells
            .iter()
            .map(|c| {
                let zeros = Tensor::<2>::zeros([b, c.size()], device);
                (zeros.clone(), zeros)
            })
            .collect();
        let mut outputs = Vec::with_capacity(steps);
        for t in 0..steps {
            let mut x = embedded.clone().narrow(1, t, 1).reshape([b, e]);
            for (l, cell) in self.cells.iter().enumerate() {
                if l > 0 {
                    x = self.dropout.forward(x);
                }
                let (h, c) = cell.forward(x, states[l].clone());
                states[l] = (h.clone(), c);
                x = h;
            }
            let logits = self.output.forward(self.dropout.forward(x));
            outputs.push(log_softmax(logits, 1).unsqueeze_dim::<3>(1));
        }
        Tensor::cat(outputs, 1)
    }

    /// Mean token NLL, padding ignored.
    pub fn loss(&self, padded: &Padded, device: &Device) -> Tensor<1> {
        let log_probs = self.forward(padded, device);
        nll(log_probs, padded, token_mask(padded, device))
    }

    /// log p(d) of each sequence: the sum over its tokens (the stop token included when the
    /// sequence has one).
    pub fn log_prob(&self, padded: &Padded, device: &Device) -> Vec<f32> {
        sequence_log_probs(self.forward(padded, device), padded, device)
    }
}

/// Summed log-probabilities of each row's targets, padding ignored.
pub fn sequence_log_probs(log_probs: Tensor<3>, padded: &Padded, device: &Device) -> Vec<f32> {
    let targets = Tensor::<3, Int>::from_data(
        TensorData::new(padded.targets.clone(), [padded.batch, padded.steps, 1]),
        device,
    );
    let mask = token_mask(padded, device);
    let picked = log_probs
        .gather(2, targets)
        .reshape([padded.batch, padded.steps]);
    (picked * mask)
        .sum_dim(1)
        .reshape([padded.batch])
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float data")
}

/// Building both models from weights in PyTorch's layout, under the names the MILAN authors'
/// modules give them (`src/milan/decoders.py`, `lms.py`): `init_h.0`, `attend.key_to_hidden`,
/// `lstm.weight_ih`, `output.1`, ... and the language model's `embedding`, `lstm.*_l<k>`,
/// `output.0`. Each weight is checked for its shape; what is missing or misshapen is named.
pub mod torch_layout {
    use anyhow::Result;
    use burn::module::Param;
    use burn::nn::{DropoutConfig, Embedding, Linear};
    use burn::tensor::{Device, Tensor, TensorData};

    use super::{Captioner, CaptionerConfig, LanguageModel, LanguageModelConfig, LstmCell};
    use crate::encoders::weights::StateDict;

    fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn linear(
        sd: &mut StateDict,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        device: &Device,
    ) -> Result<Linear> {
        let weight = sd.take(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let bias = sd.take(&format!("{prefix}.bias"), &[d_out])?;
        Ok(Linear {
            weight: Param::from_tensor(tensor(weight, [d_out, d_in], device).transpose()),
            bias: Some(Param::from_tensor(tensor(bias, [d_out], device))),
        })
    }

    fn embedding(
        sd: &mut StateDict,
        key: &str,
        n: usize,
        d: usize,
        device: &Device,
    ) -> Result<Embedding> {
        let weight = sd.take(key, &[n, d])?;
        Ok(Embedding {
            weight: Param::from_tensor(tensor(weight, [n, d], device)),
        })
    }

    /// PyTorch's `LSTMCell` / one layer of `LSTM`: `weight_ih<suffix>`, `weight_hh<suffix>`,
    /// `bias_ih<suffix>`, `bias_hh<suffix>` under `prefix`.
    fn lstm(
        sd: &mut StateDict,
        prefix: &str,
        suffix: &str,
        inputs: usize,
        size: usize,
        device: &Device,
    ) -> Result<LstmCell> {
        let mut part = |name: &str, d_in: usize| -> Result<Linear> {
            let w = sd.take(
                &format!("{prefix}.weight_{name}{suffix}"),
                &[4 * size, d_in],
            )?;
            let b = sd.take(&format!("{prefix}.bias_{name}{suffix}"), &[4 * size])?;
            Ok(Linear {
                weight: Param::from_tensor(tensor(w, [4 * size, d_in], device).transpose()),
                bias: Some(Param::from_tensor(tensor(b, [4 * size], device))),
            })
        };
        Ok(LstmCell {
            input: part("ih", inputs)?,
            hidden: part("hh", size)?,
            size,
        })
    }

    /// The captioner of `config` from the decoder's weights (keys without the `lm.` and
    /// `encoder.` prefixes, which belong to the other two models).
    pub fn captioner(
        config: &CaptionerConfig,
        sd: &mut StateDict,
        device: &Device,
    ) -> Result<Captioner> {
        let (d, h, a, e, v) = (
            config.feature_dim,
            config.hidden,
            config.attention_size(),
            config.embedding,
            config.vocab,
        );
        Ok(Captioner {
            init_h: linear(sd, "init_h.0", d, h, device)?,
            init_c: linear(sd, "init_c.0", d, h, device)?,
            attend_features: linear(sd, "attend.key_to_hidden", d, a, device)?,
            attend_hidden: linear(sd, "attend.query_to_hidden", h, a, device)?,
            attend_score: linear(sd, "attend.output.0", a, 1, device)?,
            gate: linear(sd, "feature_gate.0", h, d, device)?,
            embedding: embedding(sd, "embedding.weight", v, e, device)?,
            lstm: lstm(sd, "lstm", "", e + d, h, device)?,
            dropout: DropoutConfig::new(config.dropout).init(),
            output: linear(sd, "output.1", h, v, device)?,
            max_tokens: config.max_tokens,
        })
    }

    /// The language model of `config` from its weights (keys under `prefix`, e.g. `lm`).
    pub fn language_model(
        config: &LanguageModelConfig,
        sd: &mut StateDict,
        prefix: &str,
        device: &Device,
    ) -> Result<LanguageModel> {
        let cells = (0..config.layers)
            .map(|l| {
                let inputs = if l == 0 {
                    config.embedding
                } else {
                    config.hidden
                };
                lstm(
                    sd,
                    &format!("{prefix}.lstm"),
                    &format!("_l{l}"),
                    inputs,
                    config.hidden,
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LanguageModel {
            embedding: embedding(
                sd,
                &format!("{prefix}.embedding.weight"),
                config.vocab,
                config.embedding,
                device,
            )?,
            cells,
            dropout: DropoutConfig::new(config.dropout).init(),
            output: linear(
                sd,
                &format!("{prefix}.output.0"),
                config.hidden,
                config.vocab,
                device,
            )?,
        })
    }
}
