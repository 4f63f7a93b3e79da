//! `trainer grounded`: builds the grounded corpus (see `milan_trainer::grounded`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use milan_trainer::grounded::{self, GroundedOptions, NETWORKS, StampSource};

#[derive(clap::Args, Debug)]
pub struct GroundedArgs {
    /// Root folder of the corpus: <out>/<arch>/<dataset> per key, roster.json at the top.
    #[arg(long)]
    out: PathBuf,
    /// Networks to dissect (efficientnet_lite0, random_lite0, convnet, autoencoder).
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
    /// Training epochs of the small networks (convnet, autoencoder).
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
    let device = milan_trainer::backend::device(&args.backend)?;
    let stamps_root = milan_trainer::photos::fetch_stamps()?;
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
pub fn plot_gain(args: PlotGainArgs) -> Result<()> {
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
            let summary: milan_trainer::fit::Summary =
                serde_json::from_slice(&std::fs::read(&path)?)
                    .with_context(|| format!("{}", path.display()))?;
            (path, summary.experiments)
        } else {
            let path = dir.join("metrics.json");
            let e: milan_trainer::fit::ExperimentSummary =
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
    let mut series: Vec<milan_trainer::plot::IntervalSeries> = by_experiment.into_iter().collect();
    for s in &mut series {
        s.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    milan_trainer::plot::interval_plot(
        &args.out,
        &format!("MILAN-PMI minus {} (BERTScore F1)", args.against),
        &args.x_label,
        "BERTScore F1 difference (95% interval)",
        &series,
    )?;
    println!("\n{}", args.out.display());
    Ok(())
}
