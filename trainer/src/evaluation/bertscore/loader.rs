//! Reading a Hugging Face model folder (`config.json` and `model.safetensors`) into a
//! [`Checkpoint`], and building a [`BertModel`] from it.
//!
//! Key mapping (an optional `bert.` or `roberta.` prefix is stripped first; PyTorch's Linear
//! weights are [out, in] and are transposed to burn's [in, out]):
//!
//! | checkpoint key | burn field |
//! |---|---|
//! | `embeddings.word_embeddings.weight` | `embeddings.word.weight` |
//! | `embeddings.position_embeddings.weight` | `embeddings.position.weight` |
//! | `embeddings.token_type_embeddings.weight` | `embeddings.token_type.weight` |
//! | `embeddings.LayerNorm.{weight,bias}` (or `gamma`, `beta`) | `embeddings.norm.{gamma,beta}` |
//! | `encoder.layer.N.attention.self.{query,key,value}.{weight,bias}` | `layers[N].{query,key,value}` |
//! | `encoder.layer.N.attention.output.dense.{weight,bias}` | `layers[N].attention_output` |
//! | `encoder.layer.N.attention.output.LayerNorm.{weight,bias}` | `layers[N].attention_norm` |
//! | `encoder.layer.N.intermediate.dense.{weight,bias}` | `layers[N].intermediate` |
//! | `encoder.layer.N.output.dense.{weight,bias}` | `layers[N].output` |
//! | `encoder.layer.N.output.LayerNorm.{weight,bias}` | `layers[N].output_norm` |
//!
//! Pooler weights and anything else in the file are ignored.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use super::model::{BertConfig, BertModel, Embeddings, EncoderLayer};

/// Tensors of a checkpoint by key, as f32 with their shapes.
struct Weights {
    tensors: milan_networks::formats::weights::Tensors,
    file: String,
}

impl Weights {
    fn read(path: &Path) -> Result<Weights> {
        let tensors = milan_networks::formats::weights::read_safetensors_floats(path)?
            .into_iter()
            .map(|(name, tensor)| {
                let key = name
                    .strip_prefix("bert.")
                    .or_else(|| name.strip_prefix("roberta."))
                    .unwrap_or(&name)
                    .to_owned();
                (key, tensor)
            })
            .collect();
        Ok(Weights {
            tensors,
            file: path.display().to_string(),
        })
    }

    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (values, found) = self
            .tensors
            .remove(key)
            .with_context(|| format!("{}: missing weight {key}", self.file))?;
        if found != shape {
            bail!(
                "{}: {key} has shape {found:?}, expected {shape:?}",
                self.file
            );
        }
        Ok(values)
    }

    fn take_any(&mut self, keys: &[&str], shape: &[usize]) -> Result<Vec<f32>> {
        for key in keys {
            if self.tensors.contains_key(*key) {
                return self.take(key, shape);
            }
        }
        bail!("{}: missing weight {}", self.file, keys.join(" or "))
    }
}

/// A Linear layer's weights as the checkpoint holds them: `weight` is [out, in] (PyTorch's layout).
#[derive(Clone, Debug)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub d_in: usize,
    pub d_out: usize,
}

/// A LayerNorm's scale and shift, [d].
#[derive(Clone, Debug)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// One self-attention layer's weights.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub query: Dense,
    pub key: Dense,
    pub value: Dense,
    pub attention_output: Dense,
    pub attention_norm: Norm,
    pub intermediate: Dense,
    pub output: Dense,
    pub output_norm: Norm,
}

/// Every weight the encoder needs, by role, checked against the config's shapes: what both
/// [`BertModel`] (burn, any device) and [`CpuEncoder`](super::cpu::CpuEncoder) are built from.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: BertConfig,
    /// [vocab, hidden]
    pub word: Vec<f32>,
    /// [max_position_embeddings, hidden]
    pub position: Vec<f32>,
    /// [type_vocab_size, hidden]
    pub token_type: Vec<f32>,
    pub embedding_norm: Norm,
    pub layers: Vec<LayerWeights>,
}

fn dense(w: &mut Weights, prefix: &str, d_in: usize, d_out: usize) -> Result<Dense> {
    Ok(Dense {
        weight: w.take(&format!("{prefix}.weight"), &[d_out, d_in])?,
        bias: w.take(&format!("{prefix}.bias"), &[d_out])?,
        d_in,
        d_out,
    })
}

fn norm(w: &mut Weights, prefix: &str, d: usize) -> Result<Norm> {
    Ok(Norm {
        gamma: w.take_any(
            &[&format!("{prefix}.weight"), &format!("{prefix}.gamma")],
            &[d],
        )?,
        beta: w.take_any(
            &[&format!("{prefix}.bias"), &format!("{prefix}.beta")],
            &[d],
        )?,
    })
}

/// Reads `<dir>/config.json` and the weights of `<dir>/model.safetensors` (key table in the
/// module docs).
pub fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let config = read_config(dir)?;
    let mut w = Weights::read(&dir.join("model.safetensors"))?;
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let word = w.take("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
    let position = w.take(
        "embeddings.position_embeddings.weight",
        &[config.max_position_embeddings, h],
    )?;
    let token_type = w.take(
        "embeddings.token_type_embeddings.weight",
        &[config.type_vocab_size, h],
    )?;
    let embedding_norm = norm(&mut w, "embeddings.LayerNorm", h)?;
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for n in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{n}");
        layers.push(LayerWeights {
            query: dense(&mut w, &format!("{p}.attention.self.query"), h, h)?,
            key: dense(&mut w, &format!("{p}.attention.self.key"), h, h)?,
            value: dense(&mut w, &format!("{p}.attention.self.value"), h, h)?,
            attention_output: dense(&mut w, &format!("{p}.attention.output.dense"), h, h)?,
            attention_norm: norm(&mut w, &format!("{p}.attention.output.LayerNorm"), h)?,
            intermediate: dense(&mut w, &format!("{p}.intermediate.dense"), h, i)?,
            output: dense(&mut w, &format!("{p}.output.dense"), i, h)?,
            output_norm: norm(&mut w, &format!("{p}.output.LayerNorm"), h)?,
        });
    }
    Ok(Checkpoint {
        config,
        word,
        position,
        token_type,
        embedding_norm,
        layers,
    })
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn linear(dense: Dense, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(
            tensor(dense.weight, [dense.d_out, dense.d_in], device).transpose(),
        ),
        bias: Some(Param::from_tensor(tensor(
            dense.bias,
            [dense.d_out],
            device,
        ))),
    }
}

fn layer_norm(norm: Norm, eps: f64, device: &Device) -> LayerNorm {
    let d = norm.gamma.len();
    let mut layer = LayerNormConfig::new(d).with_epsilon(eps).init(device);
    layer.gamma = Param::from_tensor(tensor(norm.gamma, [d], device));
    layer.beta = Some(Param::from_tensor(tensor(norm.beta, [d], device)));
    layer
}

fn embedding(weight: Vec<f32>, n: usize, d: usize, device: &Device) -> Embedding {
    Embedding {
        weight: Param::from_tensor(tensor(weight, [n, d], device)),
    }
}

/// Reads `<dir>/config.json`.
pub fn read_config(dir: &Path) -> Result<BertConfig> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: BertConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a BERT config", path.display()))?;
    if !config
        .hidden_size
        .is_multiple_of(config.num_attention_heads)
    {
        bail!(
            "{}: hidden_size is not a multiple of num_attention_heads",
            path.display()
        );
    }
    if config.hidden_act != "gelu" {
        bail!(
            "{}: hidden_act {:?} is not supported (gelu is)",
            path.display(),
            config.hidden_act
        );
    }
    Ok(config)
}

/// Loads the encoder of a Hugging Face folder onto `device` as a burn module.
pub fn load(dir: &Path, device: &Device) -> Result<(BertConfig, BertModel)> {
    let checkpoint = read_checkpoint(dir)?;
    let config = checkpoint.config.clone();
    Ok((config, build(checkpoint, device)))
}

/// The burn module of a checkpoint, on `device`.
pub fn build(checkpoint: Checkpoint, device: &Device) -> BertModel {
    let Checkpoint {
        config,
        word,
        position,
        token_type,
        embedding_norm,
        layers,
    } = checkpoint;
    let (h, eps) = (config.hidden_size, config.layer_norm_eps);
    let embeddings = Embeddings {
        word: embedding(word, config.vocab_size, h, device),
        position: embedding(position, config.max_position_embeddings, h, device),
        token_type: embedding(token_type, config.type_vocab_size, h, device),
        norm: layer_norm(embedding_norm, eps, device),
    };
    let layers = layers
        .into_iter()
        .map(|l| EncoderLayer {
            query: linear(l.query, device),
            key: linear(l.key, device),
            value: linear(l.value, device),
            attention_output: linear(l.attention_output, device),
            attention_norm: layer_norm(l.attention_norm, eps, device),
            intermediate: linear(l.intermediate, device),
            output: linear(l.output, device),
            output_norm: layer_norm(l.output_norm, eps, device),
        })
        .collect();
    BertModel {
        embeddings,
        layers,
        heads: config.num_attention_heads,
        roberta: config.is_roberta(),
        pad_token_id: config.pad_token_id,
    }
}
