//! `trainer sweep-lambda`.

use crate::cli::args::{FeatureArgs, ScorerArgs};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use milan_shared::split::Split;
use milan_trainer::corpus::Corpus;

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// A `trainer fit` run folder (its trained trials are decoded again; nothing is trained).
    #[arg(long)]
    run: PathBuf,
    /// The split that run used.
    #[arg(long)]
    split: Split,
    /// The MILANNOTATIONS root the run was trained on.
    #[arg(long)]
    data: PathBuf,
    /// The weights λ of log p(d) to decode at, comma-separated; 0 (plain beam search) is always
    /// included.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.1,0.2,0.3,0.5,0.75,1"
    )]
    lambdas: Vec<f32>,
    /// Output folder (default: RUN/lambda-sweep).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    scorer: ScorerArgs,
    /// Seed of the bootstrap intervals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    features: FeatureArgs,
}

/// The encoder a fit run's trials were trained on (their config.json), if any.
pub fn run_encoder(run: &Path) -> Option<String> {
    let mut experiments: Vec<PathBuf> = std::fs::read_dir(run)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    experiments.sort();
    experiments.iter().find_map(|e| {
        let text = std::fs::read(e.join("trial-0/config.json")).ok()?;
        let info: serde_json::Value = serde_json::from_slice(&text).ok()?;
        info["encoder"].as_str().map(str::to_owned)
    })
}

/// `trainer sweep-lambda`.
pub fn run(args: &SweepArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let roster = milan_shared::roster::Roster::read(&args.data)?;
    let started = Instant::now();
    let encoder =
        run_encoder(&args.run).unwrap_or_else(|| crate::cli::args::DEFAULT_ENCODER.into());
    let corpus = Corpus::load(
        &args.data,
        &args.features.source_with(&encoder),
        false,
        &device,
    )?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("lambda-sweep"));
    let options = milan_trainer::experiments::sweep_lambda::SweepOptions {
        run: args.run.clone(),
        split: args.split,
        roster,
        lambdas: args.lambdas.clone(),
        out: out.clone(),
        bertscore: args.scorer.choice()?,
        seed: args.seed,
    };
    let sweep = milan_trainer::experiments::sweep_lambda::sweep(&corpus, &options, &device)?;
    print!(
        "{}",
        milan_trainer::experiments::sweep_lambda::markdown(&sweep)
    );
    println!(
        "\n{} experiment(s) in {:.1} min; sweep.json, sweep.md, predictions.csv and lambda.png in {}",
        sweep.experiments.len(),
        started.elapsed().as_secs_f64() / 60.0,
        out.display()
    );
    Ok(())
}
