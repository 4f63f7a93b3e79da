//! A checkpoint's tensors by key, consumed as a model is built from them, so that a missing, a
//! misshapen and a left-over weight are each named; and batch norms folded into the convolution
//! before them (inference only: the same function with fewer operations).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// Tensors by key: values as f32 and the shape.
pub type Tensors = HashMap<String, (Vec<f32>, Vec<usize>)>;

/// The float tensors (f32, f16, bf16; as f32) of a safetensors file by key, with their shapes.
/// Integer buffers such as `num_batches_tracked` or `position_ids` are bookkeeping, not weights,
/// and are left out.
pub fn read_safetensors_floats(path: &Path) -> Result<Tensors> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => continue,
        };
        tensors.insert(name, (values, view.shape().to_vec()));
    }
    Ok(tensors)
}

#[derive(Debug)]
pub struct StateDict {
    tensors: Tensors,
    file: String,
}

impl StateDict {
    /// A legacy (pre-1.6) PyTorch state dict; see [`super::torch_legacy`].
    pub fn from_torch_legacy(path: &Path) -> Result<StateDict> {
        Ok(StateDict {
            tensors: super::torch_legacy::read_state_dict(path)?
                .into_iter()
                .map(|(k, t)| (k, (t.values, t.shape)))
                .collect(),
            file: path.display().to_string(),
        })
    }

    /// A zip-format PyTorch state dict; see [`super::torch_zip`].
    pub fn from_torch_zip(path: &Path) -> Result<StateDict> {
        Ok(StateDict::from_tensors(
            super::torch_zip::read_state_dict(path)?
                .into_iter()
                .map(|(k, t)| (k, (t.values, t.shape)))
                .collect(),
            path,
        ))
    }

    /// Tensors already read (`file` names them in errors).
    pub fn from_tensors(tensors: Tensors, file: &Path) -> StateDict {
        StateDict {
            tensors,
            file: file.display().to_string(),
        }
    }

    /// A state dict in any of the formats above, told apart by their first bytes.
    pub fn read_any(path: &Path) -> Result<StateDict> {
        if super::torch_zip::is_zip(path) {
            return StateDict::from_torch_zip(path);
        }
        // A legacy file opens with a protocol-2 pickle of its 10-byte magic number (PROTO 2,
        // LONG1 of 10 bytes); a safetensors file with its header's length, which these four
        // bytes cannot be.
        let mut magic = [0u8; 4];
        let legacy = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == [0x80, 0x02, 0x8a, 0x0a];
        if legacy {
            StateDict::from_torch_legacy(path)
        } else {
            StateDict::from_safetensors(path)
        }
    }

    /// Keeps only the weights under `prefix.`, with the prefix removed.
    pub fn strip_prefix(self, prefix: &str) -> StateDict {
        let p = format!("{prefix}.");
        StateDict {
            tensors: self
                .tensors
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_owned(), v)))
                .collect(),
            file: self.file,
        }
    }

    /// Replaces every value with a fresh random initialisation of the same shape, seeded: He
    /// normal for convolutions (`std = sqrt(2 / fan_in)`), U(+-1/sqrt(fan_in)) for linear
    /// weights, biases and batch-norm shifts 0, batch-norm scales and variances 1, means 0.
    /// The architecture stays; what it learned is gone (a control network).
    pub fn randomize(&mut self, seed: u64) {
        use rand_chacha::ChaCha8Rng;
        use rand_core::{Rng, SeedableRng};
        let mut keys: Vec<String> = self.tensors.keys().cloned().collect();
        keys.sort();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = move || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        for key in keys {
            let (values, shape) = self.tensors.get_mut(&key).expect("listed");
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let leaf = key.rsplit('.').next().unwrap_or("");
            let batch_norm = shape.len() == 1 && (key.contains("_bn") || key.contains(".bn"));
            for v in values.iter_mut() {
                *v = match (leaf, shape.len()) {
                    ("running_var", _) => 1.0,
                    ("running_mean" | "bias", _) => 0.0,
                    ("weight", 1) if batch_norm => 1.0,
                    (_, 4) => {
                        // Box-Muller.
                        let (u1, u2) = (uniform(), uniform());
                        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                        (z * (2.0 / fan_in as f64).sqrt()) as f32
                    }
                    _ => ((uniform() * 2.0 - 1.0) / (fan_in as f64).sqrt()) as f32,
                };
            }
        }
    }

    /// The shape of a weight, if the checkpoint has it.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|(_, s)| s.as_slice())
    }

    /// Reorders the rows (first dimension) of a weight: row `i` becomes the old row
    /// `order[i]`.
    pub fn permute_rows(&mut self, key: &str, order: &[usize]) -> Result<()> {
        let (values, shape) = self
            .tensors
            .get_mut(key)
            .with_context(|| format!("{}: missing weight {key}", self.file))?;
        ensure!(
            shape.first() == Some(&order.len()),
            "{}: {key} has shape {shape:?}, expected {} rows",
            self.file,
            order.len()
        );
        let row = values.len() / order.len();
        let old = std::mem::take(values);
        *values = order
            .iter()
            .flat_map(|&i| old[i * row..(i + 1) * row].iter().copied())
            .collect();
        Ok(())
    }

    /// Removes a weight if it is there (bookkeeping buffers a model does not use).
    pub fn discard(&mut self, key: &str) {
        self.tensors.remove(key);
    }

    /// A safetensors file; see [`read_safetensors_floats`].
    pub fn from_safetensors(path: &Path) -> Result<StateDict> {
        Ok(StateDict {
            tensors: read_safetensors_floats(path)?,
            file: path.display().to_string(),
        })
    }

    /// Removes and returns a weight, checking its shape.
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (values, found) = self
            .tensors
            .remove(key)
            .with_context(|| format!("{}: missing weight {key}", self.file))?;
        ensure!(
            found == shape,
            "{}: {key} has shape {found:?}, expected {shape:?}",
            self.file
        );
        Ok(values)
    }

    /// `conv` (no bias, weight `shape` = [out, in per group, k, k]) followed by batch norm `bn`
    /// with epsilon `eps`, folded: w' = w * g / sqrt(v + eps), b' = b - m * g / sqrt(v + eps).
    pub fn conv_bn(
        &mut self,
        conv: &str,
        bn: &str,
        shape: [usize; 4],
        eps: f32,
        device: &Device,
    ) -> Result<(Tensor<4>, Tensor<1>)> {
        let out = shape[0];
        let mut w = self.take(&format!("{conv}.weight"), &shape)?;
        let gamma = self.take(&format!("{bn}.weight"), &[out])?;
        let beta = self.take(&format!("{bn}.bias"), &[out])?;
        let mean = self.take(&format!("{bn}.running_mean"), &[out])?;
        let var = self.take(&format!("{bn}.running_var"), &[out])?;
        self.tensors.remove(&format!("{bn}.num_batches_tracked"));
        let per_out = w.len() / out;
        let mut bias = vec![0f32; out];
        for o in 0..out {
            let scale = gamma[o] / (var[o] + eps).sqrt();
            for v in &mut w[o * per_out..(o + 1) * per_out] {
                *v *= scale;
            }
            bias[o] = beta[o] - mean[o] * scale;
        }
        Ok((
            Tensor::from_data(TensorData::new(w, shape), device),
            Tensor::from_data(TensorData::new(bias, [out]), device),
        ))
    }

    /// Fails if any weight was left unused (a checkpoint of another model).
    pub fn finish(self) -> Result<()> {
        if !self.tensors.is_empty() {
            let mut left: Vec<_> = self.tensors.into_keys().collect();
            left.sort();
            bail!("{}: unexpected weights {}", self.file, left.join(", "));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> StateDict {
        let mut t = Tensors::new();
        t.insert(
            "conv.weight".into(),
            (vec![0.5; 8 * 4 * 9], vec![8, 4, 3, 3]),
        );
        t.insert("_bn0.weight".into(), (vec![0.3; 8], vec![8]));
        t.insert("_bn0.bias".into(), (vec![0.3; 8], vec![8]));
        t.insert("_bn0.running_mean".into(), (vec![0.3; 8], vec![8]));
        t.insert("_bn0.running_var".into(), (vec![0.3; 8], vec![8]));
        t.insert("fc.weight".into(), (vec![0.5; 10 * 16], vec![10, 16]));
        StateDict::from_tensors(t, Path::new("test"))
    }

    #[test]
    fn randomized_weights_keep_shapes_and_follow_their_initialisation() {
        let mut a = dict();
        a.randomize(1);
        let conv = &a.tensors["conv.weight"].0;
        let n = conv.len() as f64;
        let mean = conv.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = conv
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        // He normal: variance 2 / fan_in = 2 / 36.
        assert!(mean.abs() < 0.1, "{mean}");
        assert!((var - 2.0 / 36.0).abs() < 0.025, "{var}");
        assert_eq!(a.tensors["_bn0.weight"].0, vec![1.0; 8]);
        assert_eq!(a.tensors["_bn0.bias"].0, vec![0.0; 8]);
        assert_eq!(a.tensors["_bn0.running_mean"].0, vec![0.0; 8]);
        assert_eq!(a.tensors["_bn0.running_var"].0, vec![1.0; 8]);
        let bound = 1.0 / 4.0;
        assert!(a.tensors["fc.weight"].0.iter().all(|x| x.abs() <= bound));
        assert_eq!(a.shape("conv.weight"), Some(&[8, 4, 3, 3][..]));
        let mut b = dict();
        b.randomize(1);
        assert_eq!(a.tensors["conv.weight"], b.tensors["conv.weight"], "seeded");
        let mut c = dict();
        c.randomize(2);
        assert_ne!(a.tensors["conv.weight"], c.tensors["conv.weight"]);
    }
}
