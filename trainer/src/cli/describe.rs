//! `trainer describe`: a network's units described by a trained run, or by the authors'
//! released MILAN ([`pretrained`]).

mod pretrained;

use crate::cli::args::FeatureArgs;
use milan_shared::atomic;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use milan_model::decoding::DecodeConfig;
use milan_model::train::load;
use milan_trainer::applications::analysis::read_lines_from;
use milan_trainer::applications::catalog::Named;
use milan_trainer::corpus::Corpus;

use crate::cli::catalog::CatalogArgs;

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
    #[arg(long, default_value = milan_trainer::assets::download::DEFAULT_URL_BASE)]
    pub url_base: String,
    /// The network to describe: a MILANNOTATIONS model folder with exemplar images
    /// (e.g. from `trainer exemplars`); every unit of every layer is described.
    #[arg(long, required_unless_present_any = ["feature_dir", "model"])]
    pub data: Option<PathBuf>,
    /// Or the network itself: a model.onnx file (or efficientnet-lite0), with --layers and
    /// --images; its exemplars are computed (and cached beside the features) first.
    #[arg(long, conflicts_with_all = ["data", "feature_dir"], requires = "layers")]
    pub model: Option<String>,
    /// With --model: the layers to describe, comma-separated (`trainer layers` lists them).
    #[arg(long, value_delimiter = ',', requires = "model")]
    pub layers: Vec<String>,
    /// With --model: the folder of images the exemplars are drawn from.
    #[arg(long, requires = "model", required_unless_present_any = ["latents", "data", "feature_dir"])]
    pub images: Option<PathBuf>,
    /// With --model GEN.onnx, a generator: the latent dataset its exemplars are drawn from
    /// (`trainer latents`; see `trainer exemplars --latents`).
    #[arg(long, requires = "model", conflicts_with = "images")]
    pub latents: Option<PathBuf>,
    /// With --latents: more generator inputs, NAME=FILE.npy.
    #[arg(long = "inputs", value_name = "NAME=FILE.npy", requires = "latents")]
    pub inputs: Vec<String>,
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
    /// Also build a Neuron Catalog of the described network into this folder: its exemplars
    /// with these descriptions (and any human ones in the data), as `trainer catalog` does.
    #[arg(long, value_name = "SITE")]
    pub catalog: Option<PathBuf>,
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

pub fn run(args: &DescribeArgs) -> Result<()> {
    if let Some(model) = &args.model {
        let cache = args
            .features
            .cache
            .clone()
            .unwrap_or_else(milan_trainer::probing::features::default_cache);
        let data = match &args.latents {
            Some(latents) => crate::cli::exemplars::cached_generator_exemplars(
                model,
                &args.layers,
                latents,
                &args.inputs,
                &cache,
            )?,
            None => crate::cli::exemplars::cached_exemplars(
                model,
                &args.layers,
                args.images.as_deref().context("--images or --latents")?,
                &args.onnx,
                &cache,
            )?,
        };
        let mut chained = args.clone();
        chained.model = None;
        chained.data = Some(data);
        return run(&chained);
    }
    if args.pretrained.is_some() {
        return pretrained::run(args);
    }
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
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
    // Named after what the user gave: the experiment folder, or the trial folder.
    let name = checkpoint.file_name().map_or_else(
        || "MILAN".to_owned(),
        |n| format!("MILAN ({})", n.to_string_lossy()),
    );
    write_descriptions(
        args,
        &w.into_inner()?,
        corpus.neurons.len(),
        &dir.display().to_string(),
        &name,
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

/// Writes a `layer,unit,description` CSV to `--out` atomically (saying so), or to standard
/// output; with `--catalog`, builds the catalog of `--data` with them under `source`.
pub fn write_descriptions(
    args: &DescribeArgs,
    csv: &[u8],
    units: usize,
    with: &str,
    source: &str,
) -> Result<()> {
    let out = args.out.as_deref();
    if let Some(site) = &args.catalog {
        let data = args
            .data
            .as_deref()
            .context("--catalog needs the exemplars: --data or --model (not --features)")?;
        let label = out.unwrap_or(Path::new("the descriptions"));
        let named = Named {
            name: source.to_owned(),
            rows: read_lines_from(csv, label)?,
            file: label.to_owned(),
            model_column: false,
        };
        crate::cli::catalog::build_and_write(&CatalogArgs::new(data, site), data, &[named])?;
    }
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
