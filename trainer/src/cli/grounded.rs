//! `trainer grounded`: builds the grounded corpus (see `milan_trainer::corpora::grounded`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use milan_trainer::corpora::grounded::{self, GroundedOptions, NETWORKS, StampSource};

#[derive(clap::Args, Debug)]
pub struct GroundedArgs {
    /// Root folder of the corpus: <out>/<arch>/<dataset> per key, roster.json at the top.
    #[arg(long)]
    out: PathBuf,
    /// Networks to dissect (efficientnet_lite0, random_lite0, convnet, autoencoder, decoder).
    #[arg(long, value_delimiter = ',', default_values_t = NETWORKS.map(String::from))]
    networks: Vec<String>,
    /// Scenes per set (two sets of disjoint object categories).
    #[arg(long, default_value_t = 1000)]
    scenes: usize,
    /// Share of the simulated workers who write generic descriptions ("colors and shapes").
    #[arg(long, default_value_t = 0.25)]
    generic_share: f64,
    /// Simulated workers in the pool (three distinct ones describe each unit).
    #[arg(long, default_value_t = 12)]
    pool: usize,
    /// Training epochs of the small networks (convnet, autoencoder, decoder).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Keep only the first N units of each layer (a quicker, smaller corpus).
    #[arg(long)]
    max_units: Option<usize>,
    /// Scenes and trained networks, reused by later builds with the same numbers
    /// (default <out>/.grounded).
    #[arg(long)]
    work: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tensor backend.
    #[arg(long, default_value = "flex")]
    backend: String,
}

pub fn run(args: GroundedArgs) -> Result<()> {
    let started = Instant::now();
    let device = milan_trainer::util::backend::device(&args.backend)?;
    let stamps_root = milan_trainer::corpora::photos::fetch_stamps()?;
    let sets = grounded::tuxpaint_stamps(&stamps_root)?;
    let lite0 = if args
        .networks
        .iter()
        .any(|n| n == "efficientnet_lite0" || n == "random_lite0")
    {
        Some(
            milan_trainer::assets::path("efficientnet-lite0")
                .context("run `trainer assets fetch efficientnet-lite0` first")?,
        )
    } else {
        None
    };
    let options = GroundedOptions {
        work: args.work.unwrap_or_else(|| args.out.join(".grounded")),
        out: args.out,
        networks: args.networks,
        scenes: args.scenes,
        generic_share: args.generic_share,
        pool: args.pool,
        epochs: args.epochs,
        max_units: args.max_units,
        seed: args.seed,
        quiet: false,
    };
    let keys = grounded::build(&options, &StampSource { sets, lite0 }, &device)?;
    println!(
        "grounded: {} keys in {} ({:.0} s): {}",
        keys.len(),
        options.out.display(),
        started.elapsed().as_secs_f64(),
        keys.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
