//! Building a [`BertModel`] from a Hugging Face model folder: `config.json` and
//! `model.safetensors`.
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

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn linear(
    w: &mut Weights,
    prefix: &str,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Result<Linear> {
    let weight = w.take(&format!("{prefix}.weight"), &[d_out, d_in])?;
    let bias = w.take(&format!("{prefix}.bias"), &[d_out])?;
    Ok(Linear {
        weight: Param::from_tensor(tensor(weight, [d_out, d_in], device).transpose()),
        bias: Some(Param::from_tensor(tensor(bias, [d_out], device))),
    })
}

fn layer_norm(
    w: &mut Weights,
    prefix: &str,
    d: usize,
    eps: f64,
    device: &Device,
) -> Result<LayerNorm> {
    let gamma = w.take_any(
        &[&format!("{prefix}.weight"), &format!("{prefix}.gamma")],
        &[d],
    )?;
    let beta = w.take_any(
        &[&format!("{prefix}.bias"), &format!("{prefix}.beta")],
        &[d],
    )?;
    let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(device);
    norm.gamma = Param::from_tensor(tensor(gamma, [d], device));
    norm.beta = Some(Param::from_tensor(tensor(beta, [d], device)));
    Ok(norm)
}

fn embedding(w: &mut Weights, key: &str, n: usize, d: usize, device: &Device) -> Result<Embedding> {
    let weight = w.take(key, &[n, d])?;
    Ok(Embedding {
        weight: Param::from_tensor(tensor(weight, [n, d], device)),
    })
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

/// Loads the encoder of a Hugging Face folder onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<(BertConfig, BertModel)> {
    let config = read_config(dir)?;
    let mut w = Weights::read(&dir.join("model.safetensors"))?;
    let (h, i, eps) = (
        config.hidden_size,
        config.intermediate_size,
        config.layer_norm_eps,
    );
    let embeddings = Embeddings {
        word: embedding(
            &mut w,
            "embeddings.word_embeddings.weight",
            config.vocab_size,
            h,
            device,
        )?,
        position: embedding(
            &mut w,
            "embeddings.position_embeddings.weight",
            config.max_position_embeddings,
            h,
            device,
        )?,
        token_type: embedding(
            &mut w,
            "embeddings.token_type_embeddings.weight",
            config.type_vocab_size,
            h,
            device,
        )?,
        norm: layer_norm(&mut w, "embeddings.LayerNorm", h, eps, device)?,
    };
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for n in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{n}");
        layers.push(EncoderLayer {
            query: linear(&mut w, &format!("{p}.attention.self.query"), h, h, device)?,
            key: linear(&mut w, &format!("{p}.attention.self.key"), h, h, device)?,
            value: linear(&mut w, &format!("{p}.attention.self.value"), h, h, device)?,
            attention_output: linear(&mut w, &format!("{p}.attention.output.dense"), h, h, device)?,
            attention_norm: layer_norm(
                &mut w,
                &format!("{p}.attention.output.LayerNorm"),
                h,
                eps,
                device,
            )?,
            intermediate: linear(&mut w, &format!("{p}.intermediate.dense"), h, i, device)?,
            output: linear(&mut w, &format!("{p}.output.dense"), i, h, device)?,
            output_norm: layer_norm(&mut w, &format!("{p}.output.LayerNorm"), h, eps, device)?,
        });
    }
    let model = BertModel {
        embeddings,
        layers,
        heads: config.num_attention_heads,
        roberta: config.is_roberta(),
        pad_token_id: config.pad_token_id,
    };
    Ok((config, model))
}
