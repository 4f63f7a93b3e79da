//! The small networks the grounded corpus trains here, in burn, on its own scenes: a classifier
//! (`convnet`, four convolutions and a linear read-out of the scene's main object category) and
//! an autoencoder (`autoencoder`, three strided convolutions down, three upsampling convolutions
//! back to the image). Two architectures and two tasks, so that across-arch and across-task
//! are real shifts. Both take the 224-pixel scene averaged down to 112 pixels.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::module::{avg_pool2d, interpolate};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};
use milan_shared::progress::Progress;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde::Serialize;

use milan_networks::{Network, SIZE};

fn conv(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .init(device)
}

fn half(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, burn::tensor::ops::AvgPoolOptions::new([2, 2]))
}

fn up(x: Tensor<4>) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]),
    )
}

/// The classifier: conv1..conv4 (32, 64, 96, 128 channels), global average, linear.
#[derive(Module, Debug)]
pub struct ConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    conv4: Conv2d,
    head: Linear,
}

pub const CONVNET_LAYERS: [&str; 4] = ["conv1", "conv2", "conv3", "conv4"];

impl ConvNet {
    pub fn new(classes: usize, device: &Device) -> ConvNet {
        ConvNet {
            conv1: conv(3, 32, 5, 2, device),
            conv2: conv(32, 64, 3, 2, device),
            conv3: conv(64, 96, 3, 2, device),
            conv4: conv(96, 128, 3, 1, device),
            head: LinearConfig::new(128, classes).init(device),
        }
    }

    /// Every layer's activation and the class log-probabilities.
    pub fn forward(&self, x: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<2>) {
        self.forward_ablated(x, &BTreeMap::new())
    }

    /// [`ConvNet::forward`] with units switched off: the channels `off[&i]` of layer `i` (0:
    /// conv1 ... 3: conv4) zeroed after its ReLU, before the next layer (or the read-out) sees
    /// them; the activations given are the zeroed ones.
    pub fn forward_ablated(
        &self,
        x: Tensor<4>,
        off: &BTreeMap<usize, Vec<usize>>,
    ) -> (Vec<Tensor<4>>, Tensor<2>) {
        let cut = |i: usize, h: Tensor<4>| match off.get(&i) {
            Some(units) if !units.is_empty() => milan_networks::zero_channels(h, units),
            _ => h,
        };
        let a1 = cut(0, relu(self.conv1.forward(half(x))));
        let a2 = cut(1, relu(self.conv2.forward(a1.clone())));
        let a3 = cut(2, relu(self.conv3.forward(a2.clone())));
        let a4 = cut(3, relu(self.conv4.forward(a3.clone())));
        let [n, c, _, _] = a4.dims();
        let pooled: Tensor<2> = a4.clone().mean_dim(3).mean_dim(2).reshape([n, c]);
        (
            vec![a1, a2, a3, a4],
            log_softmax(self.head.forward(pooled), 1),
        )
    }
}

/// The autoencoder: enc1..enc3 (24, 48, 64 channels, each halving), dec1..dec2 (48, 24, each
/// doubling), then an output convolution to the 112-pixel image.
#[derive(Module, Debug)]
pub struct AutoEncoder {
    enc1: Conv2d,
    enc2: Conv2d,
    enc3: Conv2d,
    dec1: Conv2d,
    dec2: Conv2d,
    out: Conv2d,
}

pub const AUTOENCODER_LAYERS: [&str; 5] = ["enc1", "enc2", "enc3", "dec1", "dec2"];

impl AutoEncoder {
    pub fn new(device: &Device) -> AutoEncoder {
        AutoEncoder {
            enc1: conv(3, 24, 3, 2, device),
            enc2: conv(24, 48, 3, 2, device),
            enc3: conv(48, 64, 3, 2, device),
            dec1: conv(64, 48, 3, 1, device),
            dec2: conv(48, 24, 3, 1, device),
            out: conv(24, 3, 3, 1, device),
        }
    }

    /// Every layer's activation and the reconstruction of the 112-pixel input.
    pub fn forward(&self, x: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<4>, Tensor<4>) {
        let small = half(x);
        let e1 = relu(self.enc1.forward(small.clone()));
        let e2 = relu(self.enc2.forward(e1.clone()));
        let e3 = relu(self.enc3.forward(e2.clone()));
        let d1 = relu(self.dec1.forward(up(e3.clone())));
        let d2 = relu(self.dec2.forward(up(d1.clone())));
        let out = self.out.forward(up(d2.clone()));
        (vec![e1, e2, e3, d1, d2], out, small)
    }
}

/// A trained small network, read by layer name.
#[derive(Debug)]
pub enum SmallNet {
    ConvNet(Box<ConvNet>),
    AutoEncoder(Box<AutoEncoder>),
}

/// The scene as the small networks take it: `x/255 - 0.5`, channels first.
pub fn preprocess(img: &image::RgbImage) -> Vec<f32> {
    let plane = SIZE * SIZE;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate().take(plane) {
        for c in 0..3 {
            out[c * plane + i] = f32::from(p[c]) / 255.0 - 0.5;
        }
    }
    out
}

impl Network for SmallNet {
    fn layers(&self) -> Vec<String> {
        let names: &[&str] = match self {
            SmallNet::ConvNet(_) => &CONVNET_LAYERS,
            SmallNet::AutoEncoder(_) => &AUTOENCODER_LAYERS,
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>> {
        let names = self.layers();
        let all = match self {
            SmallNet::ConvNet(n) => n.forward(x).0,
            SmallNet::AutoEncoder(n) => n.forward(x).0,
        };
        layers
            .iter()
            .map(|l| {
                let i = names.iter().position(|n| n == l).with_context(|| {
                    format!("no layer {l:?}: the layers are {}", names.join(", "))
                })?;
                Ok(all[i].clone())
            })
            .collect()
    }

    fn preprocess(&self, img: &image::RgbImage) -> Vec<f32> {
        preprocess(img)
    }
}

/// What training reached, written beside the weights.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub arch: String,
    pub epochs: usize,
    pub train_loss: Vec<f64>,
    /// Held-out (the last 10% of scenes): accuracy for the classifier, MSE for the autoencoder.
    pub held_out: f64,
    pub seconds: f64,
}

/// Trains `arch` (`convnet` or `autoencoder`) on the scenes (preprocessed, [n, 3, 224, 224] as one
/// flat vector) and their main object category; the last 10% are held out.
#[allow(clippy::too_many_arguments)]
pub fn train(
    arch: &str,
    images: &[f32],
    labels: &[usize],
    classes: usize,
    epochs: usize,
    seed: u64,
    quiet: bool,
    device: &Device,
) -> Result<(SmallNet, TrainReport)> {
    let started = std::time::Instant::now();
    let per = 3 * SIZE * SIZE;
    let n = images.len() / per;
    ensure!(n == labels.len() && n >= 10, "{n} scenes to train on");
    let held = n / 10;
    let fit = n - held;
    let autodiff = device.clone().autodiff();
    autodiff.seed(seed);
    let batch = 32;
    let batch_of = |idx: &[usize], dev: &Device| -> Tensor<4> {
        let mut v = Vec::with_capacity(idx.len() * per);
        for &i in idx {
            v.extend_from_slice(&images[i * per..(i + 1) * per]);
        }
        Tensor::from_data(TensorData::new(v, [idx.len(), 3, SIZE, SIZE]), dev)
    };
    let targets = |idx: &[usize], dev: &Device| -> Tensor<1, Int> {
        Tensor::from_data(
            TensorData::new(
                idx.iter().map(|&i| labels[i] as i64).collect::<Vec<_>>(),
                [idx.len()],
            ),
            dev,
        )
    };
    // A bar on a terminal, log lines otherwise; nothing when quiet.
    let bar = (!quiet).then(|| {
        Progress::new(
            epochs * fit.div_ceil(batch),
            &format!("train {arch}"),
            "batches",
        )
    });
    let step = || {
        if let Some(b) = &bar {
            b.inc(1);
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..fit).collect();
    let mut losses = Vec::new();
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
    let lr = 2e-3;
    let (net, held_out) = match arch {
        "convnet" => {
            let mut model = ConvNet::new(classes, &autodiff);
            for _ in 0..epochs {
                milan_shared::random::shuffle_modulo(&mut order, &mut rng);
                let mut total = 0.0;
                for chunk in order.chunks(batch) {
                    let (_, logp) = model.forward(batch_of(chunk, &autodiff));
                    let loss = -logp
                        .gather(1, targets(chunk, &autodiff).unsqueeze_dim(1))
                        .mean();
                    total += loss.clone().into_scalar::<f32>() as f64 * chunk.len() as f64;
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    model = optimizer.step(lr, model, grads);
                    step();
                }
                losses.push(total / fit as f64);
            }
            let model = model.valid();
            let idx: Vec<usize> = (fit..n).collect();
            let mut right = 0usize;
            for chunk in idx.chunks(batch) {
                let (_, logp) = model.forward(batch_of(chunk, device));
                let pred: Vec<i64> = logp
                    .argmax(1)
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .expect("ints");
                right += chunk
                    .iter()
                    .zip(&pred)
                    .filter(|(i, p)| labels[**i] as i64 == **p)
                    .count();
            }
            (
                SmallNet::ConvNet(Box::new(model)),
                right as f64 / held.max(1) as f64,
            )
        }
        "autoencoder" => {
            let mut model = AutoEncoder::new(&autodiff);
            for _ in 0..epochs {
                milan_shared::random::shuffle_modulo(&mut order, &mut rng);
                let mut total = 0.0;
                for chunk in order.chunks(batch) {
                    let (_, out, target) = model.forward(batch_of(chunk, &autodiff));
                    let loss = (out - target).powi_scalar(2).mean();
                    total += loss.clone().into_scalar::<f32>() as f64 * chunk.len() as f64;
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    model = optimizer.step(lr, model, grads);
                    step();
                }
                losses.push(total / fit as f64);
            }
            let model = model.valid();
            let idx: Vec<usize> = (fit..n).collect();
            let mut total = 0.0;
            for chunk in idx.chunks(batch) {
                let (_, out, target) = model.forward(batch_of(chunk, device));
                total += (out - target).powi_scalar(2).mean().into_scalar::<f32>() as f64
                    * chunk.len() as f64;
            }
            (
                SmallNet::AutoEncoder(Box::new(model)),
                total / held.max(1) as f64,
            )
        }
        other => anyhow::bail!("unknown small network {other:?}: convnet or autoencoder"),
    };
    if let Some(b) = &bar {
        b.finish();
    }
    Ok((
        net,
        TrainReport {
            arch: arch.to_owned(),
            epochs,
            train_loss: losses,
            held_out,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// Saves a trained network's weights (burn's record format, written atomically).
pub fn save(net: &SmallNet, path: &Path) -> Result<()> {
    match net {
        SmallNet::ConvNet(m) => milan_model::train::save_module((**m).clone(), path),
        SmallNet::AutoEncoder(m) => milan_model::train::save_module((**m).clone(), path),
    }
}

/// Loads weights [`save`] wrote.
pub fn load(arch: &str, classes: usize, path: &Path, device: &Device) -> Result<SmallNet> {
    Ok(match arch {
        "convnet" => SmallNet::ConvNet(Box::new(milan_model::train::load_module(
            ConvNet::new(classes, device),
            path,
        )?)),
        "autoencoder" => SmallNet::AutoEncoder(Box::new(milan_model::train::load_module(
            AutoEncoder::new(device),
            path,
        )?)),
        other => anyhow::bail!("unknown small network {other:?}"),
    })
}
