//! The small networks the grounded corpus trains here, in burn, on its own scenes: a classifier
//! (`convnet`, four convolutions and a linear read-out of the scene's main object category), an
//! autoencoder (`autoencoder`, three strided convolutions down, three upsampling convolutions
//! back to the image) and a generator (`decoder`: a latent vector to an image, BigGAN's shape at
//! a small scale, trained as the decoder of an encoder and probed from its latent space). Three
//! architectures and three tasks, so that across-arch and across-task are real shifts. All take
//! the 224-pixel scene averaged down to 112 pixels.

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

/// Width of the decoder's latent vectors.
pub const LATENT: usize = 128;

/// Channels and side of the generator's first map (`fc`, reshaped).
const SEED_CHANNELS: usize = 64;
const SEED_SIDE: usize = 7;

/// The generator: a latent vector to a 112-pixel image. `fc` maps the latent to a 7x7 map of 64
/// channels (as BigGAN's linear layer maps z to its first 4x4 block), then three (upsample,
/// convolution) blocks (64, 48, 24 channels) and an output convolution.
#[derive(Module, Debug)]
pub struct Generator {
    fc: Linear,
    gen1: Conv2d,
    gen2: Conv2d,
    gen3: Conv2d,
    out: Conv2d,
}

pub const GENERATOR_LAYERS: [&str; 4] = ["fc", "gen1", "gen2", "gen3"];

impl Generator {
    pub fn new(device: &Device) -> Generator {
        Generator {
            fc: LinearConfig::new(LATENT, SEED_CHANNELS * SEED_SIDE * SEED_SIDE).init(device),
            gen1: conv(SEED_CHANNELS, 64, 3, 1, device),
            gen2: conv(64, 48, 3, 1, device),
            gen3: conv(48, 24, 3, 1, device),
            out: conv(24, 3, 3, 1, device),
        }
    }

    /// Every layer's activation ([`GENERATOR_LAYERS`]) and the image, from latents [n, LATENT];
    /// the image is in the scenes' preprocessed scale (`x/255 - 0.5`), 112 pixels.
    pub fn forward(&self, z: Tensor<2>) -> (Vec<Tensor<4>>, Tensor<4>) {
        let [n, _] = z.dims();
        let h0: Tensor<4> =
            relu(self.fc.forward(z)).reshape([n, SEED_CHANNELS, SEED_SIDE, SEED_SIDE]);
        let h1 = relu(self.gen1.forward(up(h0.clone())));
        let h2 = relu(self.gen2.forward(up(h1.clone())));
        let h3 = relu(self.gen3.forward(up(h2.clone())));
        let out = self.out.forward(up(h3.clone()));
        (vec![h0, h1, h2, h3], out)
    }
}

/// The encoder the generator is trained behind: four strided convolutions (24, 48, 64, 64
/// channels, 112 down to 7 pixels) and a linear map to the latent. It gives each scene its
/// latent; its own units are not described.
#[derive(Module, Debug)]
pub struct LatentEncoder {
    enc1: Conv2d,
    enc2: Conv2d,
    enc3: Conv2d,
    enc4: Conv2d,
    fc: Linear,
}

impl LatentEncoder {
    pub fn new(device: &Device) -> LatentEncoder {
        LatentEncoder {
            enc1: conv(3, 24, 3, 2, device),
            enc2: conv(24, 48, 3, 2, device),
            enc3: conv(48, 64, 3, 2, device),
            enc4: conv(64, SEED_CHANNELS, 3, 2, device),
            fc: LinearConfig::new(SEED_CHANNELS * SEED_SIDE * SEED_SIDE, LATENT).init(device),
        }
    }

    /// The latents [n, LATENT] of preprocessed 224-pixel scenes, and the 112-pixel target.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<4>) {
        let small = half(x);
        let h = relu(self.enc1.forward(small.clone()));
        let h = relu(self.enc2.forward(h));
        let h = relu(self.enc3.forward(h));
        let h = relu(self.enc4.forward(h));
        let [n, c, y, x] = h.dims();
        (self.fc.forward(h.reshape([n, c * y * x])), small)
    }
}

/// The `decoder` network: its generator, and the encoder that gives the scenes their latents.
#[derive(Module, Debug)]
pub struct Decoder {
    pub encoder: LatentEncoder,
    pub generator: Generator,
}

impl Decoder {
    pub fn new(device: &Device) -> Decoder {
        Decoder {
            encoder: LatentEncoder::new(device),
            generator: Generator::new(device),
        }
    }

    /// The reconstruction of preprocessed scenes and its 112-pixel target.
    pub fn reconstruct(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (z, small) = self.encoder.forward(x);
        (self.generator.forward(z).1, small)
    }
}

/// A trained small network, read by layer name.
#[derive(Debug)]
pub enum SmallNet {
    ConvNet(Box<ConvNet>),
    AutoEncoder(Box<AutoEncoder>),
    /// Read from images, the generator's layers for each image's latent; the grounded corpus
    /// probes it from the latents themselves ([`super::decoder`]).
    Decoder(Box<Decoder>),
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
            SmallNet::Decoder(_) => &GENERATOR_LAYERS,
        };
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn activations(&self, x: Tensor<4>, layers: &[String]) -> Result<Vec<Tensor<4>>> {
        let names = self.layers();
        let all = match self {
            SmallNet::ConvNet(n) => n.forward(x).0,
            SmallNet::AutoEncoder(n) => n.forward(x).0,
            SmallNet::Decoder(n) => n.generator.forward(n.encoder.forward(x).0).0,
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
    /// Held-out (the last 10% of scenes): accuracy for the classifier, MSE of the reconstruction
    /// for the autoencoder and the decoder.
    pub held_out: f64,
    pub seconds: f64,
}

/// Trains `arch` (`convnet`, `autoencoder` or `decoder`) on the scenes (preprocessed, [n, 3, 224, 224] as one
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
    let schedule = Schedule {
        epochs,
        fit,
        batch,
        seed,
    };
    // The held-out MSE of a reconstruction, batch by batch.
    let held_out_mse = |redraw: &dyn Fn(Tensor<4>) -> (Tensor<4>, Tensor<4>)| -> f64 {
        let idx: Vec<usize> = (fit..n).collect();
        let mut total = 0.0;
        for chunk in idx.chunks(batch) {
            let (out, target) = redraw(batch_of(chunk, device));
            total += mse(out, target).into_scalar::<f32>() as f64 * chunk.len() as f64;
        }
        total / held.max(1) as f64
    };
    let (net, held_out, losses) = match arch {
        "convnet" => {
            let (model, losses) = schedule.run(
                ConvNet::new(classes, &autodiff),
                |model: &ConvNet, chunk| {
                    let (_, logp) = model.forward(batch_of(chunk, &autodiff));
                    -logp
                        .gather(1, targets(chunk, &autodiff).unsqueeze_dim(1))
                        .mean()
                },
                step,
            );
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
                losses,
            )
        }
        "autoencoder" => {
            let (model, losses) = schedule.run(
                AutoEncoder::new(&autodiff),
                |model: &AutoEncoder, chunk| {
                    let (_, out, target) = model.forward(batch_of(chunk, &autodiff));
                    mse(out, target)
                },
                step,
            );
            let model = model.valid();
            let held_out = held_out_mse(&|x| {
                let (_, out, target) = model.forward(x);
                (out, target)
            });
            (SmallNet::AutoEncoder(Box::new(model)), held_out, losses)
        }
        "decoder" => {
            let (model, losses) = schedule.run(
                Decoder::new(&autodiff),
                |model: &Decoder, chunk| {
                    let (out, target) = model.reconstruct(batch_of(chunk, &autodiff));
                    mse(out, target)
                },
                step,
            );
            let model = model.valid();
            let held_out = held_out_mse(&|x| model.reconstruct(x));
            (SmallNet::Decoder(Box::new(model)), held_out, losses)
        }
        other => {
            anyhow::bail!("unknown small network {other:?}: convnet, autoencoder or decoder")
        }
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

fn mse(out: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (out - target).powi_scalar(2).mean()
}

/// How the small networks are trained: AdamW (learning rate 2e-3, weight decay 1e-4) over the
/// first `fit` scenes, reshuffled each epoch, in batches.
struct Schedule {
    epochs: usize,
    fit: usize,
    batch: usize,
    seed: u64,
}

impl Schedule {
    /// Trains `model` on `loss` (a batch's mean loss, from the scene indices of the batch);
    /// returns it and each epoch's mean loss.
    fn run<M: Module>(
        &self,
        mut model: M,
        loss: impl Fn(&M, &[usize]) -> Tensor<1>,
        step: impl Fn(),
    ) -> (M, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut order: Vec<usize> = (0..self.fit).collect();
        let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
        let mut losses = Vec::with_capacity(self.epochs);
        for _ in 0..self.epochs {
            milan_shared::random::shuffle_modulo(&mut order, &mut rng);
            let mut total = 0.0;
            for chunk in order.chunks(self.batch) {
                let l = loss(&model, chunk);
                total += l.clone().into_scalar::<f32>() as f64 * chunk.len() as f64;
                let grads = GradientsParams::from_grads(l.backward(), &model);
                model = optimizer.step(2e-3, model, grads);
                step();
            }
            losses.push(total / self.fit as f64);
        }
        (model, losses)
    }
}

/// Saves a trained network's weights (burn's record format, written atomically).
pub fn save(net: &SmallNet, path: &Path) -> Result<()> {
    match net {
        SmallNet::ConvNet(m) => milan_model::train::save_module((**m).clone(), path),
        SmallNet::AutoEncoder(m) => milan_model::train::save_module((**m).clone(), path),
        SmallNet::Decoder(m) => milan_model::train::save_module((**m).clone(), path),
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
        "decoder" => SmallNet::Decoder(Box::new(milan_model::train::load_module(
            Decoder::new(device),
            path,
        )?)),
        other => anyhow::bail!("unknown small network {other:?}"),
    })
}
