//! `trainer plot-gain`: MILAN-PMI's BERTScore gain over another system (with its paired 95%
//! interval) against a setting, one line per experiment, from several `trainer fit` runs.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct PlotGainArgs {
    /// A fit run (or one experiment's folder of it) and the x it stands for, as X=DIR
    /// (e.g. 0.25=runs/g25/arch); repeat.
    #[arg(long = "run", required = true)]
    runs: Vec<String>,
    /// The system MILAN-PMI is compared with (captioner-greedy, nearest-neighbour, netdissect).
    #[arg(long, default_value = "captioner-greedy")]
    against: String,
    /// The x axis's label.
    #[arg(long, default_value = "share of generic describers")]
    x_label: String,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
}

/// `trainer plot-gain`: MILAN-PMI's BERTScore gain over another system (with its paired 95%
/// interval) against a setting, one line per experiment, from several `trainer fit` runs.
pub fn run(args: PlotGainArgs) -> Result<()> {
    let mut by_experiment: std::collections::BTreeMap<String, Vec<(f64, f64, f64, f64)>> =
        Default::default();
    println!(
        "| x | experiment | MILAN-PMI - {} | 95% interval |\n|---:|---|---:|---|",
        args.against
    );
    for run in &args.runs {
        let (x, dir) = run
            .split_once('=')
            .with_context(|| format!("--run {run}: expected X=DIR"))?;
        let x: f64 = x
            .parse()
            .with_context(|| format!("--run {run}: {x:?} is not a number"))?;
        // A whole run (summary.json), or one experiment's folder of it (metrics.json).
        let dir = PathBuf::from(dir);
        let (path, experiments) = if dir.join("summary.json").is_file() {
            let path = dir.join("summary.json");
            let summary: milan_trainer::experiments::summary::Summary =
                serde_json::from_slice(&std::fs::read(&path)?)
                    .with_context(|| format!("{}", path.display()))?;
            (path, summary.experiments)
        } else {
            let path = dir.join("metrics.json");
            let e: milan_trainer::experiments::summary::ExperimentSummary =
                serde_json::from_slice(&std::fs::read(&path).with_context(|| {
                    format!(
                        "reading {}: neither summary.json nor metrics.json there",
                        path.display()
                    )
                })?)
                .with_context(|| format!("{}", path.display()))?;
            (path, vec![e])
        };
        for e in &experiments {
            let d = e
                .differences
                .iter()
                .find(|d| d.against == args.against)
                .with_context(|| {
                    format!(
                        "{}: {} has no difference against {} (a run before paired intervals?)",
                        path.display(),
                        e.name,
                        args.against
                    )
                })?;
            println!(
                "| {x} | {} | {:+.3} | [{:+.3}, {:+.3}] |",
                e.name, d.mean, d.low, d.high
            );
            by_experiment
                .entry(e.name.clone())
                .or_default()
                .push((x, d.mean, d.low, d.high));
        }
    }
    let mut series: Vec<milan_trainer::util::plot::IntervalSeries> =
        by_experiment.into_iter().collect();
    for s in &mut series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    milan_trainer::util::plot::interval_plot(
        &args.out,
        &format!("MILAN-PMI minus {} (BERTScore F1)", args.against),
        &args.x_label,
        "BERTScore F1 difference (95% interval)",
        &series,
    )?;
    println!("\n{}", args.out.display());
    Ok(())
}
