//! `trainer`: trains and evaluates the MILAN captioner (`fit`, `describe`), and the tools around
//! it: the synthetic corpus, metrics, encoders, exemplars, features, assets and benchmarks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use milan_shared::ModelKey;
use milan_synth::SynthConfig;

mod cli;

#[derive(Debug, Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train and evaluate MILAN neuron captioners on MILANNOTATIONS",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the synthetic MILANNOTATIONS corpus (all seven model keys with their real layer
    /// names, procedurally drawn exemplars, three simulated descriptions per unit).
    Synth(SynthArgs),
    /// Build the grounded corpus: real networks' units over scenes with per-pixel truth,
    /// labelled by IoU and described by simulated workers with real crowds' habits.
    Grounded(cli::grounded::GroundedArgs),
    /// Plot MILAN-PMI's BERTScore gain over another system, with paired 95% intervals, against a
    /// setting (e.g. the share of generic describers), from several `trainer fit` runs.
    PlotGain(cli::grounded::PlotGainArgs),
    /// Score hypotheses against reference streams: BLEU as sacrebleu, BERTScore as bert_score.
    Score(cli::score::ScoreArgs),
    /// EfficientNet-Lite0's top-5 ImageNet classes for images.
    Classify(cli::classify::ClassifyArgs),
    /// Exemplar sets (top-k images and masks per unit) of a network over a folder of images,
    /// written as MILANNOTATIONS.
    Exemplars(cli::exemplars::ExemplarsArgs),
    /// The layers of a network whose units can be described (ONNX: every node, with its output
    /// shape and kind for one image).
    Layers(cli::exemplars::LayersArgs),
    /// MILAN's masked pyramid features of every exemplar of a MILANNOTATIONS folder, cached.
    Features(cli::features::FeaturesArgs),
    /// Train and evaluate MILAN on every experiment of a generalization split (paper's Table 3).
    Fit(cli::fit::FitArgs),
    /// Describe every unit of a network with a trained MILAN: layer,unit,description CSV.
    Describe(cli::fit::DescribeArgs),
    /// What kinds of features descriptions name (objects, parts, colours, textures, shapes,
    /// spatial relations, abstract concepts) per layer and model: tables and plots.
    Analyze(cli::analyze::AnalyzeArgs),
    /// The units whose descriptions mention a concept (faces, text, ...): a CSV and an HTML page
    /// with each unit's exemplars.
    Audit(cli::audit::AuditArgs),
    /// A classifier with chosen units switched off (zeroed after their layer) against the intact
    /// one: accuracy and each class's change.
    Ablate(cli::ablate::AblateArgs),
    /// The paper's editing case end to end: a classifier trained with its class names written on
    /// half its training images, its units described by a MILAN trained elsewhere, the text units
    /// switched off; test accuracy without the cue against as many random units.
    Edit(cli::edit::EditArgs),
    /// Decode a fit run's trained trials again at several PMI weights λ (0: plain beam search)
    /// and score each against greedy and beam: the reranking's effect, apart from the beam's.
    SweepLambda(cli::fit::SweepArgs),
    /// One system's BERTScore on each test network across fit runs of different splits: does
    /// within-network beat across-* on the same units?
    CompareSplits(cli::fit::CompareArgs),
    /// Score a fit run again from its predictions (the reference's protocol, the BERTScore
    /// setting chosen now, baseline labels brought in); nothing is retrained.
    Rescore(cli::report::RescoreArgs),
    /// Fit runs as the paper's table: BLEU, ROUGE-L and BERTScore per system with 95% intervals
    /// over trials, the annotators apart, the paper's figures beside ours (Markdown and CSV).
    Report(cli::report::ReportArgs),
    /// Follow an annotator project: train on its descriptions as they arrive, round after round,
    /// and keep a history of held-out scores against the number of annotated neurons.
    Follow(cli::follow::FollowArgs),
    /// Active ordering against random ordering: a simulated crowd, a real annotator and `trainer
    /// follow` on the synthetic corpus; learning curves of both.
    SimulateActive(cli::simulate::SimulateArgs),
    /// Print the default configuration (every number of a run) as JSON, for `fit --config`.
    Config,
    /// Images per second through the encoder and through exemplar computation, with peak memory.
    Bench(cli::bench::BenchArgs),
    /// The authors' released MILANNOTATIONS: fetch keys or groups, list what is present.
    Data {
        #[command(subcommand)]
        command: cli::data::DataCommand,
    },
    /// Models and data from the package registries, in ./assets (or $MILAN_ASSETS).
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AssetsCommand {
    /// Download (once, checked by SHA-256) an asset, or all of the registries' ones; fetch
    /// roberta-large from the Hugging Face Hub (the paper's BERTScore model, 1.4 GB, with
    /// bert_score's baseline from PyPI); or register weights the user downloaded (`resnet101
    /// --from resnet101-63fe2227.pth`).
    Fetch {
        #[arg(default_value = "all")]
        name: String,
        /// A file to register as the asset instead of downloading: torchvision's ResNet
        /// weights (`resnet18` .. `resnet152`; .pth as torchvision releases it, or
        /// safetensors), which no package registry carries.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Where the Hugging Face Hub is (roberta-large only): a mirror, or a local server.
        #[arg(long, default_value = milan_trainer::hub::DEFAULT_URL_BASE)]
        url_base: String,
    },
    /// Print where an asset lives.
    Path { name: String },
    /// List the assets and whether they are fetched.
    List,
}

#[derive(Debug, clap::Args)]
struct SynthArgs {
    /// Root folder; each key is written to <out>/<arch>/<dataset>, replacing what is there.
    #[arg(long)]
    out: PathBuf,
    /// Units per layer (capped at the layer's real width).
    #[arg(long, default_value_t = 20)]
    units_per_layer: usize,
    /// Side of the square exemplar images in pixels (MILANNOTATIONS uses 224).
    #[arg(long, default_value_t = 64)]
    image_size: usize,
    /// Seed; the same seed writes the same bytes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only these keys (comma-separated arch/dataset); all seven by default.
    #[arg(long, value_delimiter = ',')]
    keys: Vec<ModelKey>,
    /// Also write a PNG of the first N units of every key as a worker sees them, under
    /// <out>/preview/.
    #[arg(long, default_value_t = 0)]
    preview: usize,
}

fn main() -> ExitCode {
    milan_shared::closed_pipe::exit_quietly_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => synth(args),
        Command::Grounded(args) => cli::grounded::run(args),
        Command::PlotGain(args) => cli::grounded::plot_gain(args),
        Command::Score(args) => cli::score::run(&args),
        Command::Classify(args) => cli::classify::run(&args),
        Command::Bench(args) => cli::bench::run(&args),
        Command::Exemplars(args) => cli::exemplars::run(&args),
        Command::Layers(args) => cli::exemplars::run_layers(&args),
        Command::Features(args) => cli::features::run(&args),
        Command::Fit(args) => cli::fit::run_fit(&args),
        Command::Describe(args) => cli::fit::run_describe(&args),
        Command::Analyze(args) => cli::analyze::run(&args),
        Command::Audit(args) => cli::audit::run(&args),
        Command::Ablate(args) => cli::ablate::run(&args),
        Command::Edit(args) => cli::edit::run(&args),
        Command::SweepLambda(args) => cli::fit::run_sweep(&args),
        Command::CompareSplits(args) => cli::fit::run_compare(&args),
        Command::Rescore(args) => cli::report::run_rescore(&args),
        Command::Report(args) => cli::report::run_report(&args),
        Command::Follow(args) => cli::follow::run_follow(&args),
        Command::SimulateActive(args) => cli::simulate::run_simulation(&args),
        Command::Config => {
            serde_json::to_string_pretty(&milan_model::train::MilanConfig::default())
                .map(|s| println!("{s}"))
                .map_err(Into::into)
        }
        Command::Data { command } => cli::data::run(&command),
        Command::Assets { command } => assets(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader has what it wanted (`| head -1`): not a failure.
        Err(err) if milan_shared::closed_pipe::is_closed_pipe(err.as_ref()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn assets(command: AssetsCommand) -> Result<()> {
    use milan_trainer::assets::{ASSETS, fetch, find, is_fetched, path};
    match command {
        AssetsCommand::Fetch {
            name,
            from: Some(file),
            ..
        } => {
            let dir = milan_trainer::assets::register_weights(&name, &file)?;
            println!("{name}: registered {} in {}", file.display(), dir.display());
        }
        AssetsCommand::Fetch { name, .. } if name == "all" => {
            for asset in ASSETS {
                fetch(asset)?;
            }
            milan_trainer::photos::fetch()?;
        }
        AssetsCommand::Fetch { name, .. } if name == "photos" => {
            milan_trainer::photos::fetch()?;
        }
        AssetsCommand::Fetch { name, .. } if name == "stamps" => {
            milan_trainer::photos::fetch_stamps()?;
        }
        AssetsCommand::Fetch { name, url_base, .. }
            if name == milan_trainer::assets::ROBERTA_LARGE =>
        {
            milan_trainer::assets::fetch_roberta_large(&url_base)?;
        }
        AssetsCommand::Fetch { name, .. } => {
            fetch(find(&name)?)?;
        }
        AssetsCommand::Path { name } if name == "photos" => {
            println!("{}", milan_trainer::photos::dir().display());
        }
        AssetsCommand::Path { name } if name == "stamps" => {
            println!("{}", milan_trainer::photos::stamps_dir().display());
        }
        AssetsCommand::Path { name } => println!("{}", path(&name)?.display()),
        AssetsCommand::List => {
            for asset in ASSETS {
                let state = if is_fetched(asset) {
                    "fetched"
                } else {
                    "not fetched"
                };
                println!("{:<18} {:<12} {}", asset.name, state, asset.description);
            }
            let state = if milan_trainer::photos::is_fetched() {
                "fetched"
            } else {
                "not fetched"
            };
            let what = "real photos for the demo: Tux Paint stamp photographs composited on \
                        backgrounds, and foolbox's ImageNet photos";
            println!("{:<18} {state:<12} {what}", "photos");
            let state = if milan_trainer::photos::stamps_dir()
                .join(".complete")
                .is_file()
            {
                "fetched"
            } else {
                "not fetched"
            };
            println!(
                "{:<18} {state:<12} Tux Paint's stamp photographs, unpacked (the grounded corpus)",
                "stamps"
            );
            let roberta = milan_trainer::assets::ROBERTA_LARGE;
            let state = if milan_trainer::assets::is_fetched_named(roberta) {
                "fetched"
            } else {
                "not fetched"
            };
            println!(
                "{roberta:<18} {state:<12} the paper's BERTScore model, from the Hugging Face Hub \
                 (`trainer assets fetch {roberta}`; not in `all`)"
            );
            for resnet in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"] {
                let state = if milan_trainer::assets::registered_weights(resnet).is_some() {
                    "registered"
                } else if resnet == "resnet50" || resnet == "resnet101" {
                    "not registered"
                } else {
                    continue;
                };
                let why = if resnet == "resnet50" {
                    "the reference's generalization experiments' encoder, fit's default on the \
                     paper's keys"
                } else {
                    "the released MILAN's encoder"
                };
                println!(
                    "{resnet:<18} {state:<12} torchvision's weights ({why}): `trainer assets \
                     fetch {resnet} --from FILE`"
                );
            }
        }
    }
    Ok(())
}

fn synth(args: SynthArgs) -> Result<()> {
    let mut config = SynthConfig {
        units_per_layer: args.units_per_layer,
        image_size: args.image_size,
        seed: args.seed,
        ..SynthConfig::default()
    };
    if !args.keys.is_empty() {
        config.keys = args.keys;
    }
    let total = milan_synth::total_units(&config);
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} synth {bar:40} {pos}/{len} units {elapsed} (eta {eta})",
        )
        .expect("valid template"),
    );
    let started = Instant::now();
    let summary = milan_synth::generate(&args.out, &config, &|| bar.inc(1))
        .with_context(|| format!("generating the synthetic corpus in {}", args.out.display()))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    println!(
        "synthetic MILANNOTATIONS in {} (seed {}, {} units per layer, {}x{} px)",
        args.out.display(),
        config.seed,
        config.units_per_layer,
        config.image_size,
        config.image_size
    );
    print!("{}", summary.table());
    println!(
        "{} keys, {} units, {} descriptions, {:.1} MB, in {:.1?}",
        summary.keys.len(),
        summary.units(),
        summary.units() * 3,
        summary.bytes() as f64 / 1e6,
        elapsed
    );
    if args.preview > 0 {
        let dir = args.out.join("preview");
        let written = cli::preview::write_previews(&summary, args.preview, &dir)?;
        println!("{} previews in {}", written, dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every subcommand (unique argument names, valid relations), which
    /// otherwise only fail when that subcommand is run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
