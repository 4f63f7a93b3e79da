//! `trainer features`: MILAN's masked pyramid features of a MILANNOTATIONS folder, cached.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::Device;
use milan_trainer::encoders::efficientnet::EfficientNetLite0;
use milan_trainer::features::{self, Featurizer};

#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// A MILANNOTATIONS model folder with images.npy (e.g. from `trainer exemplars`).
    #[arg(long)]
    data: PathBuf,
    /// The encoder: efficientnet-lite0, or resnet18/34/50/101/152 (with --weights).
    #[arg(long, default_value = "efficientnet-lite0")]
    encoder: String,
    /// Its weights (default: the encoder's asset).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Cache folder (default: $MILAN_CACHE or ./cache), one subfolder per encoder, weights and
    /// dataset.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Exemplar images per forward pass.
    #[arg(long, default_value_t = 30)]
    batch: usize,
}

pub fn run(args: &FeaturesArgs) -> Result<()> {
    let device = Device::flex();
    let weights = match &args.weights {
        Some(w) => w.clone(),
        None if args.encoder.starts_with("resnet") => {
            bail!(
                "{} needs --weights: a torchvision state dict saved as safetensors",
                args.encoder
            )
        }
        None => {
            let file =
                milan_trainer::assets::path(&args.encoder)?.join("efficientnet-lite0-57934424.pth");
            anyhow::ensure!(
                file.is_file(),
                "no weights at {}: run `trainer assets fetch {}`, or pass --weights",
                file.display(),
                args.encoder
            );
            file
        }
    };
    let encoder: Box<dyn Featurizer> = match args.encoder.as_str() {
        "efficientnet-lite0" => Box::new(EfficientNetLite0::load(&weights, &device)?),
        name if name.starts_with("resnet") => {
            Box::new(milan_trainer::encoders::resnet::ResNet::load(
                &weights,
                milan_trainer::encoders::resnet::Depth::parse(name)?,
                &device,
            )?)
        }
        other => {
            bail!("unknown encoder {other:?}: use efficientnet-lite0 or resnet18/34/50/101/152")
        }
    };
    let cache = args.cache.clone().unwrap_or_else(|| {
        std::env::var_os("MILAN_CACHE").map_or_else(|| PathBuf::from("cache"), PathBuf::from)
    });
    let started = Instant::now();
    let set = features::compute(
        encoder.as_ref(),
        &weights,
        &args.data,
        &cache,
        args.batch,
        &device,
    )?;
    println!(
        "{} features ({} dims, layers {}) {} {} in {:.1} s",
        encoder.name(),
        set.dims,
        set.layers.join(", "),
        if set.reused {
            "reused from"
        } else {
            "written to"
        },
        set.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
