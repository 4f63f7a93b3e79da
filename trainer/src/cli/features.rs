//! `trainer features`: MILAN's masked pyramid features of a MILANNOTATIONS folder, cached.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use milan_trainer::probing::features;

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
    /// Backend: flex (CPU, default) or, in a build with the `tch` feature, tch / tch-cuda[:N]
    /// (`trainer bench --encoders` compares them).
    #[arg(long, default_value = "flex")]
    backend: String,
}

pub fn run(args: &FeaturesArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.backend)?;
    let (encoder, weights) =
        features::load_featurizer(&args.encoder, args.weights.as_deref(), &device)?;
    let cache = args.cache.clone().unwrap_or_else(features::default_cache);
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
