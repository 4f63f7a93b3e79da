//! `trainer rescore` and `trainer report`.

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

pub fn run_rescore(args: &RescoreArgs) -> Result<()> {
    let device = milan_trainer::backend::device(&args.backend)?;
    let options = milan_trainer::rescore::RescoreOptions {
        run: args.run.clone(),
        bertscore: args.scorer.choice()?,
        baseline_labels: crate::cli::fit::baseline_labels(&args.baseline_labels)?,
    };
    let summary = milan_trainer::rescore::rescore(&options, &device)?;
    crate::cli::fit::print_summary(
        &summary,
        &format!(
            "rescored; summary.json and summary.md in {}",
            args.run.display()
        ),
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// `trainer fit` run folders, one per split (or several), in the order of the table.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output folder for report.md and report.csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run_report(args: &ReportArgs) -> Result<()> {
    let md = milan_trainer::report::write(&args.runs, &args.out)?;
    print!("{md}");
    println!("\nreport.md and report.csv in {}", args.out.display());
    Ok(())
}
