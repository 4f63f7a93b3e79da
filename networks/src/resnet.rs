//! ResNet-18/34/50/101/152 in torchvision's layout (He et al. 2016; torchvision's "v1.5": the
//! stride of a bottleneck sits on its 3x3 convolution), loaded from a safetensors file of a
//! torchvision state dict (`conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2,3}|bn{1,2,3}|downsample.{0,1}`,
//! `fc`). Batch norms (epsilon 1e-5) are folded into the convolutions at load time. MILAN's own
//! encoder is a ResNet; its layers for exemplars and features are `conv1` (after the stem's
//! ReLU, before the max pool) and `layer1` to `layer4`. Input: 224x224, ImageNet normalisation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::formats::weights::StateDict;
use anyhow::{Result, bail};
use burn::tensor::module::{adaptive_avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

const BN_EPS: f32 = 1e-5;
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The depths torchvision builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    R18,
    R34,
    R50,
    R101,
    R152,
}

impl Depth {
    pub fn parse(name: &str) -> Result<Depth> {
        Ok(match name {
            "resnet18" => Depth::R18,
            "resnet34" => Depth::R34,
            "resnet50" => Depth::R50,
            "resnet101" => Depth::R101,
            "resnet152" => Depth::R152,
            other => bail!(
                "unknown ResNet {other:?}: resnet18, resnet34, resnet50, resnet101 or resnet152"
            ),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Depth::R18 => "resnet18",
            Depth::R34 => "resnet34",
            Depth::R50 => "resnet50",
            Depth::R101 => "resnet101",
            Depth::R152 => "resnet152",
        }
    }

    /// Blocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Depth::R18 => [2, 2, 2, 2],
            Depth::R34 | Depth::R50 => [3, 4, 6, 3],
            Depth::R101 => [3, 4, 23, 3],
            Depth::R152 => [3, 8, 36, 3],
        }
    }

    pub fn bottleneck(self) -> bool {
        !matches!(self, Depth::R18 | Depth::R34)
    }

    /// Channels out of conv1 and each stage: 64 + 64/128/256/512 (x4 for bottlenecks).
    pub fn widths(self) -> [usize; 5] {
        let e = if self.bottleneck() { 4 } else { 1 };
        [64, 64 * e, 128 * e, 256 * e, 512 * e]
    }
}

/// The layers exemplars and features can read.
pub const LAYERS: [&str; 5] = ["conv1", "layer1", "layer2", "layer3", "layer4"];

#[derive(Debug, Clone)]
struct ConvBn {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    pad: usize,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            ConvOptions::new([self.stride; 2], [self.pad; 2], [1, 1], 1),
        )
    }
}

#[derive(Debug, Clone)]
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            h = c.forward(h);
            if i < last {
                h = burn::tensor::activation::relu(h);
            }
        }
        let identity = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        burn::tensor::activation::relu(h + identity)
    }
}

/// What a forward pass gives: logits and the kept layers' outputs.
#[derive(Debug)]
pub struct Output {
    pub logits: Tensor<2>,
    pub layers: HashMap<&'static str, Tensor<4>>,
}

#[derive(Debug, Clone)]
pub struct ResNet {
    pub depth: Depth,
    stem: ConvBn,
    stages: Vec<Vec<Block>>,
    fc_weight: Tensor<2>,
    fc_bias: Tensor<1>,
}

/// A convolution with its batch norm folded in, from the state dict (padding k / 2).
fn conv_bn(
    sd: &mut StateDict,
    conv: &str,
    bn: &str,
    [out, inp, k]: [usize; 3],
    stride: usize,
    device: &Device,
) -> Result<ConvBn> {
    let (weight, bias) = sd.conv_bn(conv, bn, [out, inp, k, k], BN_EPS, device)?;
    Ok(ConvBn {
        weight,
        bias,
        stride,
        pad: k / 2,
    })
}

impl ResNet {
    /// Loads a torchvision state dict: torchvision's released `.pth` (zip format, or the legacy
    /// format of older releases) or safetensors.
    pub fn load(path: &Path, depth: Depth, device: &Device) -> Result<ResNet> {
        ResNet::from_state_dict(StateDict::read_any(path)?, depth, device)
    }

    /// torchvision's architecture with random weights (seeded; see [`StateDict::randomize`]): a
    /// network whose speed is a ResNet's when its released weights are not at hand (benchmarks).
    pub fn random(depth: Depth, seed: u64, device: &Device) -> Result<ResNet> {
        let mut sd = StateDict::from_tensors(
            torchvision_shapes(depth)
                .into_iter()
                .map(|(k, shape)| {
                    let n = shape.iter().product();
                    (k, (vec![0.0; n], shape))
                })
                .collect(),
            Path::new(depth.name()),
        );
        sd.randomize(seed);
        ResNet::from_state_dict(sd, depth, device)
    }

    /// A ResNet from the tensors of `sd` (keys as torchvision names them).
    pub fn from_state_dict(mut sd: StateDict, depth: Depth, device: &Device) -> Result<ResNet> {
        let stem = conv_bn(&mut sd, "conv1", "bn1", [64, 3, 7], 2, device)?;
        let widths = depth.widths();
        let mut inp = 64;
        let mut stages = Vec::new();
        for (s, &count) in depth.blocks().iter().enumerate() {
            let out = widths[s + 1];
            let mid = 64 << s;
            let mut blocks = Vec::new();
            for b in 0..count {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let p = format!("layer{}.{b}", s + 1);
                let convs = if depth.bottleneck() {
                    vec![
                        conv_bn(
                            &mut sd,
                            &format!("{p}.conv1"),
                            &format!("{p}.bn1"),
                            [mid, inp, 1],
                            1,
                            device,
                        )?,
                        conv_bn(
                            &mut sd,
                            &format!("{p}.conv2"),
                            &format!("{p}.bn2"),
                            [mid, mid, 3],
                            stride,
                            device,
                        )?,
                        conv_bn(
                            &mut sd,
                            &format!("{p}.conv3"),
                            &format!("{p}.bn3"),
                            [out, mid, 1],
                            1,
                            device,
                        )?,
                    ]
                } else {
                    vec![
                        conv_bn(
                            &mut sd,
                            &format!("{p}.conv1"),
                            &format!("{p}.bn1"),
                            [out, inp, 3],
                            stride,
                            device,
                        )?,
                        conv_bn(
                            &mut sd,
                            &format!("{p}.conv2"),
                            &format!("{p}.bn2"),
                            [out, out, 3],
                            1,
                            device,
                        )?,
                    ]
                };
                let downsample = if stride != 1 || inp != out {
                    Some(conv_bn(
                        &mut sd,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        [out, inp, 1],
                        stride,
                        device,
                    )?)
                } else {
                    None
                };
                blocks.push(Block { convs, downsample });
                inp = out;
            }
            stages.push(blocks);
        }
        let fc_w = sd.take("fc.weight", &[1000, inp])?;
        let fc_b = sd.take("fc.bias", &[1000])?;
        sd.finish()?;
        Ok(ResNet {
            depth,
            stem,
            stages,
            fc_weight: Tensor::<2>::from_data(TensorData::new(fc_w, [1000, inp]), device)
                .transpose(),
            fc_bias: Tensor::from_data(TensorData::new(fc_b, [1000]), device),
        })
    }

    /// Runs a batch [n, 3, h, w] of normalised images; keeps the outputs of `keep` (of [`LAYERS`]).
    pub fn forward(&self, x: Tensor<4>, keep: &[&str]) -> Output {
        self.forward_ablated(x, keep, &BTreeMap::new())
    }

    /// [`ResNet::forward`] with units switched off: the channels `off[i]` of layer
    /// `LAYERS[i]`'s output are zeroed before the rest of the network sees them (and in what
    /// `keep` returns). Panics on a channel the layer does not have ([`Depth::widths`]).
    pub fn forward_ablated(
        &self,
        x: Tensor<4>,
        keep: &[&str],
        off: &BTreeMap<usize, Vec<usize>>,
    ) -> Output {
        let mut layers = HashMap::new();
        let mut h = burn::tensor::activation::relu(self.stem.forward(x));
        if let Some(units) = off.get(&0) {
            h = crate::zero_channels(h, units);
        }
        if keep.contains(&"conv1") {
            layers.insert("conv1", h.clone());
        }
        h = max_pool2d(
            h,
            MaxPoolOptions::new([3, 3])
                .with_stride([2, 2])
                .with_padding([1, 1]),
        );
        for (s, stage) in self.stages.iter().enumerate() {
            for block in stage {
                h = block.forward(h);
            }
            if let Some(units) = off.get(&(s + 1)) {
                h = crate::zero_channels(h, units);
            }
            if keep.contains(&LAYERS[s + 1]) {
                layers.insert(LAYERS[s + 1], h.clone());
            }
        }
        let [n, c, _, _] = h.dims();
        let pooled: Tensor<2> = adaptive_avg_pool2d(h, [1, 1]).reshape([n, c]);
        let logits = pooled.matmul(self.fc_weight.clone()) + self.fc_bias.clone().unsqueeze();
        Output { logits, layers }
    }
}

/// The float weights of torchvision's state dict for `depth`, by key, with their shapes.
fn torchvision_shapes(depth: Depth) -> Vec<(String, Vec<usize>)> {
    let mut keys = vec![("conv1.weight".to_owned(), vec![64, 3, 7, 7])];
    let bn = |keys: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for leaf in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{p}.{leaf}"), vec![c]));
        }
    };
    bn(&mut keys, "bn1", 64);
    let widths = depth.widths();
    let mut inp = 64;
    for (s, &count) in depth.blocks().iter().enumerate() {
        let (mid, out) = (64 << s, widths[s + 1]);
        for b in 0..count {
            let p = format!("layer{}.{b}", s + 1);
            let convs: Vec<[usize; 3]> = if depth.bottleneck() {
                vec![[mid, inp, 1], [mid, mid, 3], [out, mid, 1]]
            } else {
                vec![[out, inp, 3], [out, out, 3]]
            };
            for (i, [o, c, k]) in convs.into_iter().enumerate() {
                keys.push((format!("{p}.conv{}.weight", i + 1), vec![o, c, k, k]));
                bn(&mut keys, &format!("{p}.bn{}", i + 1), o);
            }
            if b == 0 && (s > 0 || inp != out) {
                keys.push((format!("{p}.downsample.0.weight"), vec![out, inp, 1, 1]));
                bn(&mut keys, &format!("{p}.downsample.1"), out);
            }
            inp = out;
        }
    }
    keys.push(("fc.weight".into(), vec![1000, inp]));
    keys.push(("fc.bias".into(), vec![1000]));
    keys
}

/// An RGB image as a ResNet's input: 224x224 (bilinear resize when needed), ImageNet mean and
/// standard deviation, channels first.
pub fn preprocess(img: &image::RgbImage) -> Vec<f32> {
    let size = 224u32;
    let resized;
    let img = if img.dimensions() == (size, size) {
        img
    } else {
        resized = image::imageops::resize(img, size, size, image::imageops::FilterType::Triangle);
        &resized
    };
    let plane = 224 * 224;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_resnet_has_torchvisions_weights_and_gives_each_stage_its_width() {
        let device = Device::flex();
        for depth in [Depth::R18, Depth::R50] {
            // `from_state_dict` refuses a missing, misshapen or left-over weight.
            let net = ResNet::random(depth, 1, &device).unwrap();
            let x = Tensor::<4>::ones([1, 3, 64, 64], &device);
            let out = net.forward(x, &LAYERS);
            for (layer, width) in LAYERS.iter().zip(depth.widths()) {
                assert_eq!(
                    out.layers[layer].dims()[1],
                    width,
                    "{} {layer}",
                    depth.name()
                );
            }
            assert_eq!(out.logits.dims(), [1, 1000]);
        }
    }
}
