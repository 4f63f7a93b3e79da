//! `trainer exemplars`: exemplar sets of a network's units over a folder of images.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_shared::ModelKey;
use milan_trainer::encoders::efficientnet::EfficientNetLite0;
use milan_trainer::exemplars::{self, ExemplarConfig, Network};

#[derive(Debug, clap::Args)]
pub struct ExemplarsArgs {
    /// The network: efficientnet-lite0, or resnet18/34/50/101/152 (with --weights).
    #[arg(long)]
    model: String,
    /// Its weights (default: the model's asset).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Folder of images (PNG, JPEG; searched recursively, sorted by relative path).
    #[arg(long)]
    images: PathBuf,
    /// Layers, comma-separated (e.g. _blocks.5,_blocks.10,_blocks.15).
    #[arg(long, value_delimiter = ',', required = true)]
    layers: Vec<String>,
    /// Exemplars per unit.
    #[arg(long, default_value_t = 15)]
    k: usize,
    /// Mask threshold: this quantile of the unit's activations over all images.
    #[arg(long, default_value_t = 0.99)]
    quantile: f64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Root of the MILANNOTATIONS output: <out>/<model>/<name of the images folder>/<layer>/.
    #[arg(long)]
    out: PathBuf,
}

/// EfficientNet-Lite0's weights: given, or the asset.
fn weights_of(model: &str, given: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(w) = given {
        return Ok(w.clone());
    }
    let file = milan_trainer::assets::path(model)?.join("efficientnet-lite0-57934424.pth");
    anyhow::ensure!(
        file.is_file(),
        "no weights at {}: run `trainer assets fetch {model}`, or pass --weights",
        file.display()
    );
    Ok(file)
}

pub fn run(args: &ExemplarsArgs) -> Result<()> {
    let device = Device::flex();
    let net: Box<dyn Network> = match args.model.as_str() {
        "efficientnet-lite0" => Box::new(EfficientNetLite0::load(
            &weights_of(&args.model, args.weights.as_ref())?,
            &device,
        )?),
        name if name.starts_with("resnet") => {
            let depth = milan_trainer::encoders::resnet::Depth::parse(name)?;
            let weights = args.weights.as_ref().with_context(|| {
                format!("{name} needs --weights: a torchvision state dict saved as safetensors")
            })?;
            Box::new(milan_trainer::encoders::resnet::ResNet::load(
                weights, depth, &device,
            )?)
        }
        other => bail!("unknown model {other:?}: use efficientnet-lite0 or resnet18/34/50/101/152"),
    };
    let dataset = args
        .images
        .canonicalize()
        .with_context(|| format!("{}: no such folder", args.images.display()))?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("the images folder has no name")?;
    let key: ModelKey = format!("{}/{dataset}", args.model)
        .parse()
        .with_context(|| format!("{dataset:?} cannot name a dataset folder"))?;
    let config = ExemplarConfig {
        layers: args.layers.clone(),
        k: args.k,
        quantile: args.quantile,
        batch: args.batch,
        ..ExemplarConfig::default()
    };
    let started = Instant::now();
    let report = exemplars::compute(
        net.as_ref(),
        &key,
        &args.images,
        &args.out,
        &config,
        &device,
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} images, {} in {secs:.1} s ({:.1} images/s, {} pass{})",
        report.folder.display(),
        report.images,
        report
            .layers
            .iter()
            .map(|(l, u)| format!("{l} ({u} units)"))
            .collect::<Vec<_>>()
            .join(", "),
        (report.passes * report.images) as f64 / secs,
        report.passes,
        if report.passes == 1 { "" } else { "es" }
    );
    Ok(())
}
