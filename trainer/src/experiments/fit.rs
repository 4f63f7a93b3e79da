//! `trainer fit`: every experiment of a generalization split (milan-reference.md section 4), each
//! over several trials, scored with BLEU, ROUGE and BERTScore beside the baselines, summarised as
//! the paper's Table 3.
//!
//! Layout of a run folder:
//! - `<experiment>/test-units.csv`: the experiment's test units (model, layer, unit). Within a
//!   network they are drawn once, from the run's seed, and kept for every trial and for
//!   `--resume`, as the reference keeps `<key>-splits.pth`; `--splits-from RUN` takes another
//!   run's, so that two runs score the same units. Across networks they are every unit of the
//!   test keys.
//! - `<experiment>/trial-<t>/`: the trained run (see [`milan_model::train`]), `predictions.csv` and
//!   `metrics.json` of that trial;
//! - `<experiment>/predictions.csv` (every trial) and `<experiment>/metrics.json` (per trial and
//!   mean/std);
//! - `summary.json` and `summary.md`.
//!
//! The systems: `milan-pmi` (beam search + PMI reranking), `captioner-beam` (the same final beam
//! without the reranking: its most likely description under p(d|E), which tells the beam's share
//! of MILAN-PMI's difference from greedy from PMI's), `captioner-greedy` (p(d|E) alone, greedy),
//! `nearest-neighbour` (the description of the training neuron whose mean exemplar feature is
//! closest by cosine; of its three descriptions, the one with the highest sentence BLEU against
//! the other two), `netdissect` and `compexp` (the unit's NetDissect concept and CompExp formula,
//! where the data has labels, as on the grounded corpus, or from `--baseline-labels` files),
//! each rendered as the reference's baselines render them ([`crate::corpora::grounded::compexp`]); and
//! `annotators`, each annotator's description against the others.
//! Scoring is the reference's ([`crate::evaluation::scoring`]): every system against all references of each
//! test unit; the annotators leave-one-annotator-out, in a column of their own. Standard
//! deviations are over trials (sample std; 0 for one trial); the difference between MILAN-PMI and
//! each other system gets a paired bootstrap 95% interval over test units ([`paired_bootstrap`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_model::train::{
    EarlyStopping, REFERENCE_WITHIN_NETWORK_PATIENCE, RunOptions, Trained, train,
};
use milan_shared::NeuronId;
use milan_shared::atomic;
use milan_shared::roster::Roster;
use milan_shared::split::{Evaluation, Experiment, Split};

use crate::corpus::Corpus;
use crate::evaluation::labels::BaselineLabels;
use crate::evaluation::scoring::{BertScoreChoice, Protocol, Scorer, Scores};
use crate::experiments::predictions::{
    Row, read_units, write_all_predictions, write_predictions, write_units,
};
use crate::experiments::summary::{
    ExperimentSummary, Summary, folder_name, one_line, trial_metrics, write_summary,
};
use crate::experiments::systems::{predict, score};

/// The file of an experiment's test units.
pub const TEST_UNITS: &str = "test-units.csv";

/// Options of `trainer fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub split: Split,
    pub direction: Option<String>,
    pub trials: usize,
    pub out: PathBuf,
    pub run: RunOptions,
    pub bertscore: BertScoreChoice,
    /// The corpus's own networks and splits (`roster.json`), instead of the paper's.
    pub roster: Option<Roster>,
    /// A run whose test units every experiment reuses (`--splits-from`).
    pub splits_from: Option<PathBuf>,
    /// Baseline labels computed elsewhere (`--baseline-labels`), by system.
    pub baseline_labels: BaselineLabels,
}

/// An experiment's test units, and where they came from: another run's (`--splits-from`), this
/// run's own from before (`--resume`), or drawn now. Written to `<dir>/test-units.csv`.
fn test_units(
    experiment: &Experiment,
    ids: &[NeuronId],
    dir: &Path,
    options: &FitOptions,
) -> Result<(Vec<NeuronId>, String)> {
    let folder = folder_name(&experiment.name);
    let own = dir.join(TEST_UNITS);
    let drawn = experiment.partition(ids, options.run.seed).test;
    let (units, from) = if let Some(other) = &options.splits_from {
        let path = other.join(&folder).join(TEST_UNITS);
        ensure!(
            path.is_file(),
            "--splits-from {}: no {folder}/{TEST_UNITS} (a run of another split, or one from \
             before test units were kept?)",
            other.display()
        );
        (read_units(&path)?, format!("from {}", path.display()))
    } else if options.run.resume && own.is_file() {
        (
            read_units(&own)?,
            "kept from the interrupted run".to_owned(),
        )
    } else {
        let from = match experiment.evaluation {
            Evaluation::HeldOutNeurons => format!(
                "{:.0}% of the network's units, drawn once with seed {} for every trial",
                milan_shared::split::TEST_FRACTION * 100.0,
                options.run.seed
            ),
            Evaluation::HeldOutNetworks => "every unit of the test keys".to_owned(),
        };
        (drawn.clone(), from)
    };
    let known: std::collections::HashSet<&NeuronId> = ids.iter().collect();
    if let Some(missing) = units
        .iter()
        .find(|n| !known.contains(n) || !experiment.test.contains(&n.key))
    {
        bail!(
            "{}: test unit {missing} is not an annotated unit of {} in this data",
            from,
            experiment.name
        );
    }
    if experiment.evaluation == Evaluation::HeldOutNetworks {
        // Across networks the test units are fixed by the keys; a different list means
        // different data.
        let mut given = units.clone();
        given.sort();
        ensure!(
            given == drawn,
            "{from}: {} test units, but this data has {} units of {}'s test keys: another corpus?",
            given.len(),
            drawn.len(),
            experiment.name
        );
    }
    write_units(&own, &units)?;
    Ok((units, from))
}

/// The experiments `fit` runs: of the data's roster when it has one, else the paper's; one of
/// them with `--direction`.
fn experiments_of(options: &FitOptions) -> Result<Vec<Experiment>> {
    Ok(match (&options.roster, &options.direction) {
        (Some(r), Some(name)) => vec![r.experiment(options.split, name)?],
        (Some(r), None) => r.experiments(options.split),
        (None, Some(name)) => vec![options.split.experiment(name)?],
        (None, None) => options.split.experiments(),
    })
}

/// One trial of an experiment: trained on its partition (test units fixed), every system
/// predicted and scored on the test units; writes the trial's folder (weights, learning curve,
/// `predictions.csv`, `metrics.json`). Returns its rows and scores.
#[allow(clippy::too_many_arguments)]
fn run_trial(
    corpus: &Corpus,
    experiment: &Experiment,
    ids: &[NeuronId],
    test: &[NeuronId],
    trial: usize,
    run_options: &RunOptions,
    scorer: &Scorer,
    options: &FitOptions,
    dir: &Path,
    device: &Device,
) -> Result<(Vec<Row>, BTreeMap<String, Scores>)> {
    let seed = options.run.seed.wrapping_add(trial as u64 * 1000);
    let partition = experiment.partition_with_test(ids, test, seed);
    let train_pos = corpus.positions(&partition.train)?;
    let val_pos = corpus.positions(&partition.validation)?;
    let test_pos = corpus.positions(&partition.test)?;
    let trial_dir = dir.join(format!("trial-{trial}"));
    let run = RunOptions {
        seed,
        ..run_options.clone()
    };
    let trained = train(corpus, &train_pos, &val_pos, &trial_dir, &run, device)?;
    crate::util::plot::learning_curve(&trial_dir.join("learning-curve.png"), &trained.history)?;
    let known: Vec<usize> = train_pos.iter().chain(&val_pos).copied().collect();
    let rows = predict(
        corpus,
        &trained,
        &known,
        &test_pos,
        &options.baseline_labels,
        device,
    )?;
    let scores = score(corpus, &rows, scorer)?;
    write_predictions(&trial_dir.join("predictions.csv"), corpus, &rows, None)?;
    atomic::write(
        &trial_dir.join("metrics.json"),
        &serde_json::to_vec_pretty(&trial_metrics(
            &experiment.name,
            trial,
            seed,
            [train_pos.len(), val_pos.len(), test_pos.len()],
            &scorer.setting,
            &scores,
        ))?,
    )?;
    eprintln!("  trial {trial}: {}", one_line(&scores));
    Ok((rows, scores))
}

/// One experiment over its trials, into `<out>/<experiment>/`; `None` (and a line saying why)
/// when the data has no training or no test units for it.
fn run_experiment(
    corpus: &Corpus,
    experiment: &Experiment,
    ids: &[NeuronId],
    scorer: &Scorer,
    options: &FitOptions,
    device: &Device,
) -> Result<Option<ExperimentSummary>> {
    let probe = experiment.partition(ids, options.run.seed);
    if probe.train.is_empty() || probe.test.is_empty() {
        eprintln!(
            "skipping {}: the data has no {} neurons",
            experiment.name,
            if probe.train.is_empty() {
                "training"
            } else {
                "test"
            }
        );
        return Ok(None);
    }
    let dir = options.out.join(folder_name(&experiment.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (test, test_from) = test_units(experiment, ids, &dir, options)?;
    eprintln!(
        "experiment {} ({} trials; {} test units: {test_from})",
        experiment.name,
        options.trials,
        test.len()
    );
    let started = std::time::Instant::now();
    let mut run_options = options.run.clone();
    if run_options.config.early_stopping == EarlyStopping::Reference
        && experiment.evaluation == Evaluation::HeldOutNeurons
    {
        run_options.config.patience = REFERENCE_WITHIN_NETWORK_PATIENCE;
    }
    let mut trials = Vec::new();
    let mut rows_all = Vec::new();
    for trial in 0..options.trials {
        let (rows, scores) = run_trial(
            corpus,
            experiment,
            ids,
            &test,
            trial,
            &run_options,
            scorer,
            options,
            &dir,
            device,
        )?;
        rows_all.push((trial, rows));
        trials.push(scores);
    }
    write_all_predictions(&dir.join("predictions.csv"), corpus, &rows_all)?;
    let entry = ExperimentSummary::of_trials(
        (
            experiment.name.clone(),
            experiment.train.iter().map(ToString::to_string).collect(),
            experiment.test.iter().map(ToString::to_string).collect(),
        ),
        test_from,
        trials,
        started.elapsed().as_secs_f64(),
        options.run.seed,
    );
    atomic::write(
        &dir.join("metrics.json"),
        &serde_json::to_vec_pretty(&entry)?,
    )?;
    Ok(Some(entry))
}

/// Runs the split; writes everything under `options.out`.
pub fn fit(corpus: &Corpus, options: &FitOptions, device: &Device) -> Result<Summary> {
    let experiments = experiments_of(options)?;
    if options.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let scorer = Scorer::load(&options.bertscore, device)?;
    let ids: Vec<_> = corpus.neurons.iter().map(|n| n.id.clone()).collect();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut summary = Summary {
        split: options.split.name().to_owned(),
        bertscore: scorer.setting.clone(),
        bertscore_is_papers: scorer.paper,
        protocol: Protocol::AllReferences,
        experiments: Vec::new(),
    };
    let mut skipped = Vec::new();
    for experiment in &experiments {
        match run_experiment(corpus, experiment, &ids, &scorer, options, device)? {
            Some(entry) => summary.experiments.push(entry),
            None => skipped.push(experiment.name.clone()),
        }
    }
    if summary.experiments.is_empty() {
        bail!(
            "no experiment of {} has data here (skipped: {}); is --data the root of the model folders?",
            options.split.name(),
            skipped.join(", ")
        );
    }
    write_summary(&options.out, &summary, &skipped)?;
    Ok(summary)
}

/// Scores every system on the `test` positions (the nearest neighbour searches `known`) and
/// writes their predictions to `predictions` (CSV, as a trial's).
pub fn evaluate(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    scorer: &Scorer,
    predictions: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Scores>> {
    let rows = predict(corpus, trained, known, test, &BTreeMap::new(), device)?;
    let scores = score(corpus, &rows, scorer)?;
    write_predictions(predictions, corpus, &rows, None)?;
    Ok(scores)
}
