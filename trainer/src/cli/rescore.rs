//! `trainer rescore`.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::args::ScorerArgs;

#[derive(Debug, clap::Args)]
pub struct RescoreArgs {
    /// A `trainer fit` run folder (summary.json and <experiment>/trial-<t>/predictions.csv).
    run: PathBuf,
    /// Labels of a baseline computed elsewhere, as SYSTEM=FILE (netdissect or compexp; a CSV
    /// with columns model,layer,unit,label). They are written into the run's predictions.
    #[arg(long = "baseline-labels")]
    baseline_labels: Vec<String>,
    #[command(flatten)]
    scorer: ScorerArgs,
    /// Backend the BERTScore model runs on: flex, or tch / tch-cuda[:N] in a build with `tch`.
    #[arg(long, default_value = "flex")]
    backend: String,
}

pub fn run(args: &RescoreArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.backend)?;
    let options = milan_trainer::experiments::rescore::RescoreOptions {
        run: args.run.clone(),
        bertscore: args.scorer.choice()?,
        baseline_labels: crate::cli::fit::baseline_labels(&args.baseline_labels)?,
    };
    let summary = milan_trainer::experiments::rescore::rescore(&options, &device)?;
    crate::cli::fit::print_summary(
        &summary,
        &format!(
            "rescored; summary.json and summary.md in {}",
            args.run.display()
        ),
    );
    Ok(())
}
