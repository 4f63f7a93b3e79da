//! The networks whose units milan-rs describes, and the readers of their published weights: the
//! only crate that runs tract or reads PyTorch's files.
//!
//! - [`network`]: the [`Network`] trait (layers by name, activations of a batch);
//! - [`efficientnet`]: EfficientNet-Lite0 in burn with its ImageNet weights;
//! - [`resnet`]: ResNet-18 to -152 in torchvision's layout, from safetensors or torchvision's
//!   own `.pth`;
//! - `onnx`: any network exported to ONNX, run on tract; `generator`: a generator exported to ONNX
//!   (latent inputs, inner maps and the image out); `external_data`: where their weights may be
//!   read from. These three need the `onnx` feature (default; tract is a quarter of a cold
//!   release build, which `scripts/demo` skips); [`input_spec`] describes their input either way;
//! - [`imagenet`]: the ImageNet class names;
//! - [`formats`]: the weight formats — `pickle` (decoded as data, running nothing),
//!   `torch_legacy` (pre-1.6 state dicts), `torch_zip` (`torch.save` since 1.6, storages read on
//!   demand), `weights` (checkpoints consumed key by key, batch norms folded).
//!
//! It knows nothing of MILAN, its data or its commands.

pub mod efficientnet;
#[cfg(feature = "onnx")]
pub mod external_data;
pub mod formats;
#[cfg(feature = "onnx")]
pub mod generator;
pub mod imagenet;
pub mod input_spec;
pub mod layer_kind;
pub mod layout;
pub mod network;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod resnet;

pub use network::{Activation, Network, SIZE};

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor, TensorData};

/// `h` [n, c, h, w] with the channels `units` set to zero: units switched off (ablation).
/// Panics on a channel `h` does not have (callers check first).
pub fn zero_channels(h: Tensor<4>, units: &[usize]) -> Tensor<4> {
    let [_, c, _, _] = h.dims();
    let mut mask = vec![1.0f32; c];
    for &u in units {
        assert!(u < c, "channel {u} of a layer with {c}");
        mask[u] = 0.0;
    }
    let mask =
        Tensor::<1>::from_data(TensorData::new(mask, [c]), &h.device()).reshape([1, c, 1, 1]);
    h * mask
}

/// Image files as one input batch [n, 3, 224, 224], each through `preprocess`; an unreadable
/// file is named.
pub fn image_batch(
    paths: &[std::path::PathBuf],
    preprocess: impl Fn(&image::RgbImage) -> Vec<f32>,
    device: &Device,
) -> Result<Tensor<4>> {
    const SIZE: usize = 224;
    let mut input = Vec::with_capacity(paths.len() * 3 * SIZE * SIZE);
    for path in paths {
        let img = image::open(path)
            .with_context(|| format!("reading {}", path.display()))?
            .to_rgb8();
        input.extend(preprocess(&img));
    }
    Ok(Tensor::<4>::from_data(
        TensorData::new(input, [paths.len(), 3, SIZE, SIZE]),
        device,
    ))
}
