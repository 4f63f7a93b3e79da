//! What every network offers whose units can be described: its layers by name, and their
//! activations for a batch of images ([`Network`]), implemented here for EfficientNet-Lite0 and
//! the ResNets, by [`crate::onnx::OnnxNetwork`] for any ONNX model, and by the trainer's own
//! small networks.

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};

/// What MILANNOTATIONS' masks and images measure.
pub const SIZE: usize = 224;

/// One layer's activations for a batch: `values` laid out [n, units, height, width].
#[derive(Debug, Clone)]
pub struct Activation {
    pub values: Vec<f32>,
    pub units: usize,
    pub height: usize,
    pub width: usize,
}

impl Activation {
    /// A layer's output [n, units, height, width] read off the device.
    pub fn read(t: Tensor<4>) -> Result<Activation> {
        let [_, units, height, width] = t.dims();
        let values = t
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading activations: {e:?}"))?;
        Ok(Activation {
            values,
            units,
            height,
            width,
        })
    }
}

/// A network whose inner activations can be read by layer name.
pub trait Network: Sync {
    /// Layer names, in forward order.
    fn layers(&self) -> Vec<String>;
    /// Refuses layers the network cannot give, naming them.
    fn check_layers(&self, layers: &[String]) -> Result<()> {
        let known = self.layers();
        for l in layers {
            if !known.contains(l) {
                bail!("unknown layer {l:?}: the network has {}", known.join(", "));
            }
        }
        Ok(())
    }
    /// Side of the square images the network takes ([`SIZE`] unless it says otherwise).
    fn input_size(&self) -> usize {
        SIZE
    }
    /// Runs a batch [n, 3, 224, 224] of normalised images and returns the activations
    /// [n, units, h, w] of `layers`, in that order.
    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>>;
    /// One RGB image (input_size x input_size) as the network's input, channels first.
    fn preprocess(&self, img: &image::RgbImage) -> Vec<f32>;
    /// [`Network::activations`] on plain arrays: `input` holds `n` preprocessed images.
    fn run(
        &self,
        input: Vec<f32>,
        n: usize,
        layers: &[String],
        device: &Device,
    ) -> Result<Vec<Activation>> {
        let size = self.input_size();
        let x = Tensor::<4>::from_data(TensorData::new(input, [n, 3, size, size]), device);
        self.activations(x, layers)?
            .into_iter()
            .map(Activation::read)
            .collect()
    }
}

impl Network for crate::efficientnet::EfficientNetLite0 {
    fn layers(&self) -> Vec<String> {
        (0..crate::efficientnet::BLOCKS)
            .map(|i| format!("_blocks.{i}"))
            .collect()
    }

    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>> {
        let blocks = layers
            .iter()
            .map(|l| {
                l.strip_prefix("_blocks.")
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n < crate::efficientnet::BLOCKS)
                    .with_context(|| {
                        format!(
                            "efficientnet-lite0 has no layer {l:?}: use _blocks.0 to _blocks.15"
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = self.forward(x, &blocks);
        Ok(blocks
            .iter()
            .map(|b| out.blocks.remove(b).expect("kept"))
            .collect())
    }

    fn preprocess(&self, img: &image::RgbImage) -> Vec<f32> {
        crate::efficientnet::preprocess(img)
    }
}

impl Network for crate::resnet::ResNet {
    fn layers(&self) -> Vec<String> {
        crate::resnet::LAYERS
            .iter()
            .map(|l| (*l).to_owned())
            .collect()
    }

    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>> {
        let keep: Vec<&str> = crate::resnet::LAYERS
            .iter()
            .copied()
            .filter(|l| layers.iter().any(|w| w == l))
            .collect();
        let mut out = self.forward(x, &keep);
        layers
            .iter()
            .map(|l| {
                out.layers.remove(l.as_str()).with_context(|| {
                    format!("a ResNet has no layer {l:?}: use conv1, layer1 to layer4")
                })
            })
            .collect()
    }

    fn preprocess(&self, img: &image::RgbImage) -> Vec<f32> {
        crate::resnet::preprocess(img)
    }
}
