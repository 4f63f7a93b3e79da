//! `trainer follow`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use milan_model::train::RunOptions;
use milan_trainer::follow::{Describe, FollowOptions, Priority, follow};

use crate::cli::args::{FeatureArgs, TrainingArgs};

#[derive(Debug, clap::Args)]
// One of the two is needed; a missing token names both (the file first: it is the safer one).
#[command(group(clap::ArgGroup::new("requester_token").required(true).args(["token_file", "token"])))]
pub struct FollowArgs {
    /// The annotator's address, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    annotator: String,
    /// The annotator project to follow.
    #[arg(long)]
    project: String,
    /// A requester API token (`annotator requester-token`). Visible to other users of this
    /// machine in the process list: prefer --token-file.
    #[arg(long)]
    token: Option<String>,
    /// A file whose first line is the requester API token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Run folder: follow.json (cursor), exemplars/, rounds/, history.json, history.png.
    #[arg(long)]
    out: PathBuf,
    /// Start a round whenever this many more neurons have three approved descriptions.
    #[arg(long, default_value_t = 50)]
    every: usize,
    /// Held-out neurons: within-network (10% of every key's neurons, the default) or an
    /// experiment of a split, e.g. alexnet->resnet152 (test on the held-out network).
    #[arg(long)]
    split: Option<String>,
    /// Seed of the hold-out and of training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seconds between polls of the feed when nothing is new.
    #[arg(long, default_value_t = 10.0)]
    poll: f64,
    /// Stop after this many rounds in all.
    #[arg(long)]
    rounds: Option<usize>,
    /// Stop as soon as the feed has nothing new and no round is due.
    #[arg(long)]
    until_idle: bool,
    /// Give up when the annotator has not answered for this many seconds (default: wait
    /// forever, retrying with backoff).
    #[arg(long)]
    give_up_after: Option<f64>,
    /// What to post to the annotator for the sets not yet complete after each round.
    #[arg(long, value_enum, default_value = "greedy")]
    describe: Describe,
    /// The priority posted with each set (accept-next follows it when the project's active
    /// ordering is on).
    #[arg(long, value_enum, default_value = "uncertainty")]
    priority: Priority,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    features: FeatureArgs,
}

pub fn run(args: &FollowArgs) -> Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .next()
            .map(|l| l.trim().to_owned())
            .filter(|t| !t.is_empty())
            .with_context(|| format!("{}: no token on its first line", path.display()))?,
        (None, None) => unreachable!("clap requires --token or --token-file"),
    };
    let device = milan_trainer::util::backend::device(&args.features.backend)?;
    let options = FollowOptions {
        annotator: args.annotator.clone(),
        project: args.project.clone(),
        token,
        out: args.out.clone(),
        every: args.every,
        split: args.split.clone(),
        source: args.features.source(),
        run: RunOptions {
            config: args.training.config()?,
            seed: args.seed,
            resume: true,
            backend: args.features.backend.clone(),
            quiet: false,
            init: None,
        },
        poll: Duration::from_secs_f64(args.poll.max(0.0)),
        max_rounds: args.rounds,
        until_idle: args.until_idle,
        give_up_after: args.give_up_after.map(Duration::from_secs_f64),
        bertscore: args.training.scorer.choice()?,
        describe: args.describe,
        priority: args.priority,
    };
    let history = follow(options, &device)?;
    eprintln!(
        "{} round(s); history in {}",
        history.len(),
        args.out.join("history.json").display()
    );
    Ok(())
}
