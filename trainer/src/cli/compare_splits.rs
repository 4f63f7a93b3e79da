//! `trainer compare-splits`.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// A `trainer fit` run and the column it fills, as NAME=DIR (e.g.
    /// within-network=runs/g/within); runs of the same NAME share a column. Repeat.
    #[arg(long = "run", required = true)]
    runs: Vec<String>,
    /// The system to compare (milan-pmi, captioner-beam, captioner-greedy, nearest-neighbour,
    /// netdissect, compexp, annotators).
    #[arg(long, default_value = "milan-pmi")]
    system: String,
    /// The per-unit figure compared: bertscore (rescaled F1) or rouge-l (F, the mean over a
    /// unit's prediction-reference pairs).
    #[arg(long, value_enum, default_value = "bertscore")]
    metric: CompareMetric,
    /// A PNG of the table (networks down, a colour per split).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Seed of the bootstrap intervals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareMetric {
    Bertscore,
    RougeL,
}

/// `trainer compare-splits`.
pub fn run(args: &CompareArgs) -> Result<()> {
    use milan_trainer::experiments::compare_splits::{NamedRun, compare, markdown, plot};
    let runs = args
        .runs
        .iter()
        .map(|r| {
            let (name, dir) = r
                .split_once('=')
                .with_context(|| format!("--run {r}: expected NAME=DIR"))?;
            Ok(NamedRun {
                name: name.to_owned(),
                dir: PathBuf::from(dir),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let metric = match args.metric {
        CompareMetric::Bertscore => milan_trainer::experiments::compare_splits::Metric::Bertscore,
        CompareMetric::RougeL => milan_trainer::experiments::compare_splits::Metric::RougeL,
    };
    let comparison = compare(&runs, &args.system, metric, args.seed)?;
    print!("{}", markdown(&comparison));
    if let Some(path) = &args.plot {
        plot(&comparison, path)?;
        println!("\n{}", path.display());
    }
    Ok(())
}
