//! `trainer edit`: the paper's editing case, end to end ([`milan_trainer::applications::editing`]).

use std::path::PathBuf;

use anyhow::Result;
use milan_trainer::applications::editing::{self, EditOptions, TEXT_WORDS};
use milan_trainer::corpora::grounded;

#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// The describer: a `trainer fit` run trained on other networks (RUNDIR/<experiment>, its best
    /// trial, or one trial folder), e.g. on the grounded corpus, whose describers say "text".
    #[arg(long)]
    describer: PathBuf,
    /// Everything the case writes: probe/, classifier.bpk, exemplars/, descriptions.csv and the
    /// report (edit.json, edit.md, edit.png, edit-conditions.png).
    #[arg(long)]
    out: PathBuf,
    /// Classes: the first N Tux Paint stamp categories (animals, plants, food, vehicles, ...).
    #[arg(long, default_value_t = 6)]
    classes: usize,
    /// Training images (the last 10% held out).
    #[arg(long, default_value_t = 1200)]
    train: usize,
    /// Images the exemplars come from, drawn as the training images are.
    #[arg(long, default_value_t = 600)]
    probe: usize,
    /// Clean images (no cue) that rank the text units and choose how many to switch off.
    #[arg(long, default_value_t = 300)]
    validation: usize,
    /// Test images, each tested without the cue, with its own name and with another class's.
    #[arg(long, default_value_t = 600)]
    test: usize,
    /// Share of the training images with their class name written in a corner.
    #[arg(long, default_value_t = 0.5)]
    cue_share: f64,
    /// Training epochs of the classifier.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Random draws of as many units as the text units.
    #[arg(long, default_value_t = 10)]
    draws: usize,
    /// Describe only the first N units of each layer (a quicker case; random draws come from
    /// the same units).
    #[arg(long)]
    max_units: Option<usize>,
    /// A unit whose description mentions one of these words (plurals match) is a text unit.
    #[arg(long, value_delimiter = ',', default_values_t = TEXT_WORDS.map(String::from))]
    words: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    features: super::args::FeatureArgs,
}

pub fn run(args: &EditArgs) -> Result<()> {
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let trial = milan_model::train::resolve_trial(&args.describer)?;
    let describer = milan_model::train::load(&trial, &device)?;
    let stamps_root = milan_trainer::corpora::photos::fetch_stamps()?;
    let (names, stamps) =
        editing::classes_from(grounded::tuxpaint_stamps(&stamps_root)?, args.classes)?;
    let options = EditOptions {
        out: args.out.clone(),
        classes: args.classes,
        train: args.train,
        probe: args.probe,
        validation: args.validation,
        test: args.test,
        cue_share: args.cue_share,
        epochs: args.epochs,
        draws: args.draws,
        max_units: args.max_units,
        words: args.words.clone(),
        features: args.features.source(),
        seed: args.seed,
        quiet: false,
    };
    let report = editing::run(&options, &names, &stamps, &describer, &device)?;
    print!("{}", report.markdown());
    println!(
        "\nedit.json, edit.md, edit.png and descriptions.csv in {} (describer: {})",
        args.out.display(),
        trial.display()
    );
    Ok(())
}
