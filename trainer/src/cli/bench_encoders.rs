//! `trainer bench --encoders`: MILAN's masked pyramid features (`probing::features`, what
//! `trainer features` computes for every exemplar image) with ResNet-50, ResNet-101 and
//! EfficientNet-Lite0, in images per second, on each backend this build has. With
//! `--vs-pytorch` the same features are first computed by PyTorch (`bench_encoders.py`,
//! torchvision's ResNets and efficientnet_lite_pytorch's EfficientNet-Lite0, run by the Python of
//! scripts/install-libtorch's virtualenv) and every figure is printed as a ratio to PyTorch's;
//! without it, as a ratio to flex's.
//!
//! The ResNets have random weights (torchvision's shapes, seeded): their released weights are
//! not on the package registries, and the speed of a convolution does not depend on its values.
//! EfficientNet-Lite0 uses its fetched ImageNet weights.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::efficientnet::EfficientNetLite0;
use milan_networks::resnet::{Depth, ResNet};
use milan_trainer::probing::features::Featurizer;

use crate::cli::bench_model::{PyTorchRates, run_pytorch};

/// The encoders timed when `--encoders` names none.
pub const DEFAULT_ENCODERS: [&str; 3] = ["resnet50", "resnet101", "efficientnet-lite0"];

const SIZE: usize = 224;

/// The PyTorch side, written for this project: the same encoders, stages, pooling and inputs.
const PYTORCH_BENCH: &str = include_str!("bench_encoders.py");

/// The bench's inputs (as `bench_encoders.py` builds them): `batch` images of values in [-1, 1)
/// and masks of a centred square.
fn inputs(batch: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let values: Vec<f32> = (0..batch * 3 * SIZE * SIZE)
        .map(|i| ((i as u64 * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let inside = |i: usize| (SIZE / 4..3 * SIZE / 4).contains(&i);
    let mask: Vec<f32> = (0..batch * SIZE * SIZE)
        .map(|i| {
            let (y, x) = ((i / SIZE) % SIZE, i % SIZE);
            if inside(y) && inside(x) { 1.0 } else { 0.0 }
        })
        .collect();
    (
        Tensor::from_data(TensorData::new(values, [batch, 3, SIZE, SIZE]), device),
        Tensor::from_data(TensorData::new(mask, [batch, 1, SIZE, SIZE]), device),
    )
}

fn load(name: &str, device: &Device) -> Result<Box<dyn Featurizer>> {
    if name == "efficientnet-lite0" {
        let weights = milan_trainer::assets::path(name)?.join("efficientnet-lite0-57934424.pth");
        ensure!(
            weights.is_file(),
            "no weights at {}: run `trainer assets fetch efficientnet-lite0`",
            weights.display()
        );
        return Ok(Box::new(EfficientNetLite0::load(&weights, device)?));
    }
    Ok(Box::new(ResNet::random(Depth::parse(name)?, 0, device)?))
}

/// Images per second of `encoder`'s features, after one untimed batch.
fn rate(encoder: &dyn Featurizer, images: usize, batch: usize, device: &Device) -> f64 {
    let (x, masks) = inputs(batch, device);
    let _ = encoder.features(x.clone(), masks.clone()).into_data();
    let rounds = images.div_ceil(batch);
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = encoder.features(x.clone(), masks.clone()).into_data();
    }
    (rounds * batch) as f64 / started.elapsed().as_secs_f64()
}

fn pytorch(
    python: &Path,
    encoders: &[String],
    images: usize,
    batch: usize,
    threads: usize,
) -> Result<PyTorchRates<HashMap<String, f64>>> {
    let args = [
        "--encoders".to_owned(),
        encoders.join(","),
        "--images".to_owned(),
        images.to_string(),
        "--batch".to_owned(),
        batch.to_string(),
        "--threads".to_owned(),
        threads.to_string(),
    ];
    run_pytorch(
        python,
        PYTORCH_BENCH,
        &args,
        "\n(it needs torchvision and efficientnet_lite_pytorch beside torch: rerun \
         scripts/install-libtorch)",
    )
}

pub fn run(encoders: &[String], images: usize, batch: usize, python: Option<&Path>) -> Result<()> {
    let encoders: Vec<String> = if encoders.is_empty() {
        DEFAULT_ENCODERS.iter().map(|s| s.to_string()).collect()
    } else {
        encoders.to_vec()
    };
    for name in &encoders {
        ensure!(
            name == "efficientnet-lite0" || Depth::parse(name).is_ok(),
            "unknown encoder {name:?}: use efficientnet-lite0 or resnet18/34/50/101/152"
        );
    }
    let batch = batch.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut backends: Vec<(&str, Device)> = vec![("flex (CPU)", Device::flex())];
    if cfg!(feature = "tch") {
        backends.push((
            "libtorch (CPU)",
            milan_trainer::util::backend::device("tch")?,
        ));
    }
    println!(
        "MILAN's masked pyramid features, {SIZE}x{SIZE} images, batch {batch}, {} images per \
         measurement, {threads} threads",
        images.div_ceil(batch) * batch
    );
    let mut base: Option<(Vec<f64>, &str)> = None;
    if let Some(python) = python {
        let torch = pytorch(python, &encoders, images, batch, threads)?;
        println!("PyTorch {} (CPU, {} threads)", torch.torch, torch.threads);
        let mut rates = Vec::new();
        for name in &encoders {
            let r = *torch
                .rates
                .get(name)
                .with_context(|| format!("the PyTorch benchmark gave no figure for {name}"))?;
            println!("  {name:<20} {r:8.2} images/s");
            rates.push(r);
        }
        base = Some((rates, "PyTorch"));
    }
    for (backend, device) in backends {
        let mut rates = Vec::new();
        for name in &encoders {
            let encoder = load(name, &device)?;
            rates.push(rate(encoder.as_ref(), images, batch, &device));
        }
        let (base, against) = base.get_or_insert((rates.clone(), "flex"));
        println!("{backend}");
        for ((name, r), b) in encoders.iter().zip(&rates).zip(base.iter()) {
            println!("  {name:<20} {r:8.2} images/s  {:.2}x {against}", r / b);
        }
    }
    Ok(())
}
