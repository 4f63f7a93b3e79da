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
//! each rendered as the reference's baselines render them ([`crate::compexp`]); and
//! `annotators`, each annotator's description against the others.
//! Scoring is the reference's ([`crate::scoring`]): every system against all references of each
//! test unit; the annotators leave-one-annotator-out, in a column of their own. Standard
//! deviations are over trials (sample std; 0 for one trial); the difference between MILAN-PMI and
//! each other system gets a paired bootstrap 95% interval over test units ([`paired_bootstrap`]).

use milan_shared::atomic;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_metrics::bleu::sentence_bleu;
use milan_metrics::normalize;
use milan_shared::NeuronId;
use milan_shared::roster::Roster;
use milan_shared::split::{Evaluation, Experiment, Split};
use serde::{Deserialize, Serialize};

use crate::compexp::{render_compexp, render_netdissect};
use crate::data::Corpus;
pub use crate::scoring::Scores;
use crate::scoring::{ANNOTATORS, BertScoreChoice, Protocol, Scorer};
use milan_model::decoding::{greedy, milan_pmi_lambdas};
use milan_model::train::{
    EarlyStopping, REFERENCE_WITHIN_NETWORK_PATIENCE, RunOptions, Trained, train,
};

/// Every system, in table order; `netdissect` and `compexp` only where every test unit has a
/// label. The annotators ([`ANNOTATORS`]) are not a system: they are scored another way.
pub const SYSTEMS: [&str; 6] = [
    "milan-pmi",
    "captioner-beam",
    "captioner-greedy",
    "nearest-neighbour",
    "netdissect",
    "compexp",
];

/// The systems whose labels `--baseline-labels` may bring in.
pub const LABEL_SYSTEMS: [&str; 2] = ["netdissect", "compexp"];

/// The system the paired differences are taken from.
const MILAN: &str = "milan-pmi";

/// Bootstrap resamples of the paired intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

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

/// Labels of units by system (`netdissect`, `compexp`), as `--baseline-labels NAME=FILE` reads
/// them.
pub type BaselineLabels = BTreeMap<String, HashMap<NeuronId, String>>;

/// Reads a `--baseline-labels` file for `system`: a CSV whose header names `model`, `layer`,
/// `unit` and `label` (in any order; other columns are ignored), one unit per row. Labels are
/// kept as written; they are rendered as the reference renders its baselines when scored.
pub fn read_baseline_labels(system: &str, path: &Path) -> Result<HashMap<NeuronId, String>> {
    ensure!(
        LABEL_SYSTEMS.contains(&system),
        "--baseline-labels {system}=...: the systems with labels are {}",
        LABEL_SYSTEMS.join(", ")
    );
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no {name} column (the header must name model, layer, unit and label)",
                    path.display()
                )
            })
    };
    let (m, l, u, t) = (
        column("model")?,
        column("layer")?,
        column("unit")?,
        column("label")?,
    );
    let mut out = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", path.display()))?;
        let field = |c: usize| row.get(c).unwrap_or("").trim();
        let key = field(m).parse().with_context(|| {
            format!(
                "{}:{line}: field model: {:?} is not arch/dataset",
                path.display(),
                field(m)
            )
        })?;
        let unit: u32 = field(u).parse().with_context(|| {
            format!(
                "{}:{line}: field unit: {:?} is not a unit number",
                path.display(),
                field(u)
            )
        })?;
        let id = NeuronId::new(key, field(l), unit);
        if out.insert(id.clone(), field(t).to_owned()).is_some() {
            bail!("{}:{line}: a second label for {id}", path.display());
        }
    }
    Ok(out)
}

/// MILAN-PMI minus another system in BERTScore F1: the mean over trials of the mean paired
/// difference over test neurons, and its paired bootstrap 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub system: String,
    pub against: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The paired bootstrap of `mean_t mean_i (a_ti - b_ti)`: each resample draws every trial's test
/// neurons with replacement (the same draw for both systems, so the pairing is kept). Returns
/// (mean, 2.5th percentile, 97.5th percentile); percentiles interpolate linearly, as numpy's.
pub fn paired_bootstrap(
    trials: &[(Vec<f64>, Vec<f64>)],
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64) {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    let diffs: Vec<Vec<f64>> = trials
        .iter()
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x - y).collect())
        .collect();
    let mean_of = |d: &[f64]| d.iter().sum::<f64>() / d.len().max(1) as f64;
    let mean = diffs.iter().map(|d| mean_of(d)).sum::<f64>() / diffs.len().max(1) as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            diffs
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        return 0.0;
                    }
                    (0..d.len())
                        .map(|_| d[(rng.next_u64() % d.len() as u64) as usize])
                        .sum::<f64>()
                        / d.len() as f64
                })
                .sum::<f64>()
                / diffs.len().max(1) as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let pct = |q: f64| -> f64 {
        if stats.is_empty() {
            return mean;
        }
        let rank = q * (stats.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = (lo + 1).min(stats.len() - 1);
        stats[lo] + (stats[hi] - stats[lo]) * (rank - lo as f64)
    };
    (mean, pct(0.025), pct(0.975))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(values: &[f64]) -> MeanStd {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSummary {
    pub bleu: MeanStd,
    pub bertscore_f: MeanStd,
    /// ROUGE-L F, where every trial scored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<MeanStd>,
    #[serde(default = "Protocol::legacy")]
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub name: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
    /// Where the test units came from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub test_units: String,
    pub trials: Vec<BTreeMap<String, Scores>>,
    pub results: BTreeMap<String, SystemSummary>,
    #[serde(default)]
    pub differences: Vec<Difference>,
    /// Wall time of the experiment's trials, training and scoring.
    #[serde(default)]
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub split: String,
    /// The BERTScore setting: model, layer, baseline (P, R, F).
    #[serde(default)]
    pub bertscore: String,
    /// Whether that setting is the paper's (roberta-large layer 17, bert_score's baseline).
    #[serde(default)]
    pub bertscore_is_papers: bool,
    /// The systems' protocol (the annotators' is [`Protocol::LeaveOneAnnotatorOut`]).
    #[serde(default = "Protocol::legacy")]
    pub protocol: Protocol,
    pub experiments: Vec<ExperimentSummary>,
}

impl ExperimentSummary {
    /// The summary of an experiment's trials (its name, training and test groups): mean and std
    /// of every system every trial scored, and MILAN-PMI's paired difference with each other
    /// system (the annotators excluded: their figures are of another protocol).
    pub fn of_trials(
        (name, train, test): (String, Vec<String>, Vec<String>),
        test_units: String,
        trials: Vec<BTreeMap<String, Scores>>,
        seconds: f64,
        seed: u64,
    ) -> ExperimentSummary {
        let systems: Vec<&str> = SYSTEMS
            .iter()
            .copied()
            .chain([ANNOTATORS])
            .filter(|s| trials.iter().all(|t| t.contains_key(*s)))
            .collect();
        let results = systems
            .iter()
            .map(|s| {
                let of = |f: &dyn Fn(&Scores) -> f64| -> MeanStd {
                    MeanStd::of(&trials.iter().map(|t| f(&t[*s])).collect::<Vec<_>>())
                };
                let rouge: Option<Vec<f64>> = trials.iter().map(|t| t[*s].rouge_l()).collect();
                (
                    (*s).to_owned(),
                    SystemSummary {
                        bleu: of(&|x| x.bleu),
                        bertscore_f: of(&|x| x.bertscore_f),
                        rouge_l: rouge.map(|r| MeanStd::of(&r)),
                        protocol: trials[0][*s].protocol,
                    },
                )
            })
            .collect();
        let differences = systems
            .iter()
            .filter(|s| **s != MILAN && **s != ANNOTATORS && systems.contains(&MILAN))
            .map(|other| {
                let pairs: Vec<(Vec<f64>, Vec<f64>)> = trials
                    .iter()
                    .map(|t| (t[MILAN].per_neuron.clone(), t[*other].per_neuron.clone()))
                    .collect();
                let (mean, low, high) = paired_bootstrap(&pairs, BOOTSTRAP_RESAMPLES, seed);
                Difference {
                    system: MILAN.to_owned(),
                    against: (*other).to_owned(),
                    mean,
                    low,
                    high,
                }
            })
            .collect();
        ExperimentSummary {
            name,
            train,
            test,
            test_units,
            trials,
            results,
            differences,
            seconds,
        }
    }
}

/// A folder name for an experiment: `alexnet->resnet152` -> `alexnet-to-resnet152`,
/// `alexnet/imagenet` -> `alexnet_imagenet`.
pub fn folder_name(experiment: &str) -> String {
    experiment.replace("->", "-to-").replace('/', "_")
}

/// One test unit's predictions.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) position: usize,
    /// The prediction of each system, by name.
    pub(crate) predictions: BTreeMap<String, String>,
}

/// Reads a unit list (`model,layer,unit` header), as `test-units.csv` and a trial's
/// `predictions.csv` hold them.
pub fn read_units(path: &Path) -> Result<Vec<NeuronId>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no {name} column", path.display()))
    };
    let (m, l, u) = (column("model")?, column("layer")?, column("unit")?);
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", path.display()))?;
        let key = row[m]
            .parse()
            .with_context(|| format!("{}:{line}: field model", path.display()))?;
        let unit = row[u]
            .parse()
            .with_context(|| format!("{}:{line}: field unit", path.display()))?;
        out.push(NeuronId::new(key, &row[l], unit));
    }
    Ok(out)
}

fn write_units(path: &Path, units: &[NeuronId]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["model", "layer", "unit"])?;
    for n in units {
        w.write_record([n.key.to_string(), n.layer.clone(), n.unit.to_string()])?;
    }
    atomic::write(path, &w.into_inner()?)
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

/// Runs the split; writes everything under `options.out`.
pub fn fit(corpus: &Corpus, options: &FitOptions, device: &Device) -> Result<Summary> {
    let experiments: Vec<Experiment> = match (&options.roster, &options.direction) {
        (Some(r), Some(name)) => vec![r.experiment(options.split, name)?],
        (Some(r), None) => r.experiments(options.split),
        (None, Some(name)) => vec![options.split.experiment(name)?],
        (None, None) => options.split.experiments(),
    };
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
        let probe = experiment.partition(&ids, options.run.seed);
        if probe.train.is_empty() || probe.test.is_empty() {
            skipped.push(experiment.name.clone());
            eprintln!(
                "skipping {}: the data has no {} neurons",
                experiment.name,
                if probe.train.is_empty() {
                    "training"
                } else {
                    "test"
                }
            );
            continue;
        }
        let dir = options.out.join(folder_name(&experiment.name));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (test, test_from) = test_units(experiment, &ids, &dir, options)?;
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
            let seed = options.run.seed.wrapping_add(trial as u64 * 1000);
            let partition = experiment.partition_with_test(&ids, &test, seed);
            let train_pos = corpus.positions(&partition.train)?;
            let val_pos = corpus.positions(&partition.validation)?;
            let test_pos = corpus.positions(&partition.test)?;
            let trial_dir = dir.join(format!("trial-{trial}"));
            let run = RunOptions {
                seed,
                ..run_options.clone()
            };
            let trained = train(corpus, &train_pos, &val_pos, &trial_dir, &run, device)?;
            crate::plot::learning_curve(&trial_dir.join("learning-curve.png"), &trained.history)?;
            let known: Vec<usize> = train_pos.iter().chain(&val_pos).copied().collect();
            let rows = predict(
                corpus,
                &trained,
                &known,
                &test_pos,
                &options.baseline_labels,
                device,
            )?;
            let scores = score(corpus, &rows, &scorer)?;
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
        summary.experiments.push(entry);
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

/// A trial's `metrics.json`: what was trained and tested, how it was scored, and the figures.
pub fn trial_metrics(
    experiment: &str,
    trial: usize,
    seed: u64,
    [train, validation, test]: [usize; 3],
    bertscore: &str,
    scores: &BTreeMap<String, Scores>,
) -> serde_json::Value {
    serde_json::json!({
        "experiment": experiment,
        "trial": trial,
        "seed": seed,
        "train_neurons": train,
        "validation_neurons": validation,
        "test_neurons": test,
        "scoring": {
            "systems": Protocol::AllReferences.describe(),
            "annotators": Protocol::LeaveOneAnnotatorOut.describe(),
            "bertscore": bertscore,
        },
        "results": scores,
    })
}

/// `summary.json` and `summary.md` of a run.
pub fn write_summary(out: &Path, summary: &Summary, skipped: &[String]) -> Result<()> {
    atomic::write(
        &out.join("summary.json"),
        &serde_json::to_vec_pretty(summary)?,
    )?;
    atomic::write(
        &out.join("summary.md"),
        markdown(summary, skipped).as_bytes(),
    )
}

/// Every system's figures of a trial on one line.
fn one_line(scores: &BTreeMap<String, Scores>) -> String {
    scores
        .iter()
        .map(|(s, v)| {
            format!(
                "{s} BLEU {:.1} ROUGE-L {} BERTScore {:.3}",
                v.bleu,
                v.rouge_l().map_or("-".to_owned(), |r| format!("{r:.3}")),
                v.bertscore_f
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
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

/// A label as its baseline's system predicts it: rendered as the reference renders it, and
/// "none" where the unit has no label (NetDissect names no concept for a unit that overlaps
/// none).
pub(crate) fn baseline_text(system: &str, label: &str) -> String {
    let text = match system {
        "compexp" => render_compexp(label),
        _ => render_netdissect(label),
    };
    if text.trim().is_empty() {
        "none".to_owned()
    } else {
        text
    }
}

/// Predictions of every system for the test units.
fn predict(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    labels: &BaselineLabels,
    device: &Device,
) -> Result<Vec<Row>> {
    let config = &trained.info.config.decode;
    let mut pmi = Vec::with_capacity(test.len());
    let mut beam = Vec::with_capacity(test.len());
    let mut greedy_out = Vec::with_capacity(test.len());
    for chunk in test.chunks(64) {
        let features = corpus.features(chunk, device);
        let [at_lambda, at_zero]: [Vec<Vec<usize>>; 2] = milan_pmi_lambdas(
            &trained.captioner,
            &trained.lm,
            features.clone(),
            config,
            &[config.lambda, 0.0],
        )
        .try_into()
        .expect("two lambdas");
        pmi.extend(at_lambda);
        beam.extend(at_zero);
        greedy_out.extend(greedy(&trained.captioner, features));
    }
    let neighbours = nearest_neighbours(corpus, known, test);
    test.iter()
        .enumerate()
        .map(|(i, &position)| {
            let neuron = &corpus.neurons[position];
            let mut predictions = BTreeMap::new();
            predictions.insert("milan-pmi".to_owned(), trained.vocab.decode(&pmi[i]));
            predictions.insert("captioner-beam".to_owned(), trained.vocab.decode(&beam[i]));
            predictions.insert(
                "captioner-greedy".to_owned(),
                trained.vocab.decode(&greedy_out[i]),
            );
            predictions.insert(
                "nearest-neighbour".to_owned(),
                consensus(&corpus.neurons[neighbours[i]].descriptions),
            );
            if let Some(l) = &neuron.label {
                predictions.insert(
                    "netdissect".to_owned(),
                    baseline_text("netdissect", &l.concept),
                );
                if let Some(formula) = &l.compexp {
                    predictions.insert("compexp".to_owned(), baseline_text("compexp", formula));
                }
            }
            // Labels brought in by the user take the place of the corpus's own.
            for (system, by_unit) in labels {
                let label = by_unit.get(&neuron.id).with_context(|| {
                    format!(
                        "--baseline-labels {system}: no label for {} (model {}, layer {}, unit \
                         {}), a test unit",
                        neuron.id, neuron.id.key, neuron.id.layer, neuron.id.unit
                    )
                })?;
                predictions.insert(system.clone(), baseline_text(system, label));
            }
            Ok(Row {
                position,
                predictions,
            })
        })
        .collect()
}

/// The description that agrees most (sentence BLEU) with the neuron's other descriptions.
fn consensus(descriptions: &[String]) -> String {
    let mut best = (f64::NEG_INFINITY, String::new());
    for (i, d) in descriptions.iter().enumerate() {
        let others: Vec<String> = descriptions
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| normalize(o))
            .collect();
        let s = sentence_bleu(&normalize(d), &others).score;
        if s > best.0 {
            best = (s, d.clone());
        }
    }
    best.1
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}

/// For each test neuron, the known neuron with the most similar mean feature (cosine).
fn nearest_neighbours(corpus: &Corpus, known: &[usize], test: &[usize]) -> Vec<usize> {
    let known_means: Vec<Vec<f32>> = known
        .iter()
        .map(|&p| unit(&corpus.mean_feature(p)))
        .collect();
    test.iter()
        .map(|&t| {
            let q = unit(&corpus.mean_feature(t));
            let (best, _) = known_means
                .iter()
                .enumerate()
                .map(|(i, k)| (i, k.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>()))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("training neurons");
            known[best]
        })
        .collect()
}

/// Every system that predicted for every row, and the annotators, scored by the reference's
/// protocol ([`crate::scoring::score`]).
pub(crate) fn score(
    corpus: &Corpus,
    rows: &[Row],
    scorer: &Scorer,
) -> Result<BTreeMap<String, Scores>> {
    let refs: Vec<Vec<String>> = rows
        .iter()
        .map(|r| corpus.neurons[r.position].descriptions.clone())
        .collect();
    crate::scoring::score(&predictions_by_system(rows), &refs, scorer)
}

/// Each system's predictions, for the systems that predicted for every row.
pub(crate) fn predictions_by_system(rows: &[Row]) -> BTreeMap<String, Vec<String>> {
    let mut hyps = BTreeMap::new();
    if let Some(first) = rows.first() {
        for system in first.predictions.keys() {
            if rows.iter().all(|r| r.predictions.contains_key(system)) {
                hyps.insert(
                    system.clone(),
                    rows.iter().map(|r| r.predictions[system].clone()).collect(),
                );
            }
        }
    }
    hyps
}

/// The columns of a predictions file after its unit, by system.
pub const PREDICTION_COLUMNS: [(&str, &str); 6] = [
    ("prediction", "milan-pmi"),
    ("captioner_beam", "captioner-beam"),
    ("captioner_greedy", "captioner-greedy"),
    ("nearest_neighbour", "nearest-neighbour"),
    ("netdissect", "netdissect"),
    ("compexp", "compexp"),
];

fn predictions_header(with_trial: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if with_trial {
        h.push("trial");
    }
    h.extend(["model", "layer", "unit"]);
    h.extend(PREDICTION_COLUMNS.iter().map(|(c, _)| *c));
    h.extend(["reference_1", "reference_2", "reference_3"]);
    h
}

fn write_rows(
    w: &mut csv::Writer<Vec<u8>>,
    corpus: &Corpus,
    rows: &[Row],
    trial: Option<usize>,
) -> Result<()> {
    for r in rows {
        let n = &corpus.neurons[r.position];
        let mut record: Vec<String> = Vec::new();
        if let Some(t) = trial {
            record.push(t.to_string());
        }
        record.extend([
            n.id.key.to_string(),
            n.id.layer.clone(),
            n.id.unit.to_string(),
        ]);
        for (_, system) in PREDICTION_COLUMNS {
            record.push(r.predictions.get(system).cloned().unwrap_or_default());
        }
        for i in 0..3 {
            record.push(n.descriptions.get(i).cloned().unwrap_or_default());
        }
        w.write_record(&record)?;
    }
    Ok(())
}

fn write_predictions(
    path: &Path,
    corpus: &Corpus,
    rows: &[Row],
    trial: Option<usize>,
) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(predictions_header(trial.is_some()))?;
    write_rows(&mut w, corpus, rows, trial)?;
    atomic::write(path, &w.into_inner()?)
}

fn write_all_predictions(path: &Path, corpus: &Corpus, trials: &[(usize, Vec<Row>)]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(predictions_header(true))?;
    for (t, rows) in trials {
        write_rows(&mut w, corpus, rows, Some(*t))?;
    }
    atomic::write(path, &w.into_inner()?)
}

/// `mean ± std / BLEU / ROUGE-L` of one system in one experiment.
fn cell(r: &SystemSummary) -> String {
    format!(
        "{:.3} ± {:.3} / {:.1} / {}",
        r.bertscore_f.mean,
        r.bertscore_f.std,
        r.bleu.mean,
        r.rouge_l
            .map_or("-".to_owned(), |x| format!("{:.3}", x.mean))
    )
}

/// The summary as a Markdown table shaped like the paper's Table 3 (the annotators apart), then
/// the paired differences.
pub fn markdown(summary: &Summary, skipped: &[String]) -> String {
    let systems: Vec<&str> = SYSTEMS
        .iter()
        .copied()
        .filter(|s| {
            summary
                .experiments
                .iter()
                .any(|e| e.results.contains_key(*s))
        })
        .collect();
    let mut s = format!("# {}\n\n", summary.split);
    if !summary.bertscore_is_papers {
        s.push_str(&format!(
            "**BERTScore here is not the paper's** ({}); run `trainer assets fetch \
             roberta-large` and `trainer rescore` for figures to set beside the paper's.\n\n",
            summary.bertscore
        ));
    }
    s.push_str(&format!(
        "Each cell: BERTScore F1 mean ± std / BLEU / ROUGE-L F over {} trial(s). Systems are \
         scored {}; the annotators {} (another protocol: not comparable with a system's cell). \
         BERTScore: {}.\n\n| experiment |",
        summary.experiments.first().map_or(0, |e| e.trials.len()),
        summary.protocol.describe(),
        Protocol::LeaveOneAnnotatorOut.describe(),
        summary.bertscore,
    ));
    for system in &systems {
        s.push_str(&format!(" {system} |"));
    }
    s.push_str(" | annotators (leave one out) | minutes |\n|---|");
    s.push_str(&"---|".repeat(systems.len()));
    s.push_str("---|---|---:|\n");
    for e in &summary.experiments {
        s.push_str(&format!("| {} |", e.name));
        for system in &systems {
            match e.results.get(*system) {
                Some(r) => s.push_str(&format!(" {} |", cell(r))),
                None => s.push_str(" - |"),
            }
        }
        s.push_str(" |");
        match e.results.get(ANNOTATORS) {
            Some(r) => s.push_str(&format!(" {} |", cell(r))),
            None => s.push_str(" - |"),
        }
        s.push_str(&format!(" {:.1} |\n", e.seconds / 60.0));
    }
    if summary
        .experiments
        .iter()
        .any(|e| !e.differences.is_empty())
    {
        s.push_str(
            "\nMILAN-PMI minus each system in BERTScore F1: mean over trials, paired bootstrap 95% \
             interval over test units.\n\n| experiment | against | difference | 95% interval |\n|---|---|---:|---|\n",
        );
        for e in &summary.experiments {
            for d in &e.differences {
                s.push_str(&format!(
                    "| {} | {} | {:+.3} | [{:+.3}, {:+.3}] |\n",
                    e.name, d.against, d.mean, d.low, d.high
                ));
            }
        }
    }
    if summary.experiments.iter().any(|e| !e.test_units.is_empty()) {
        s.push_str("\nTest units:\n\n");
        for e in &summary.experiments {
            s.push_str(&format!("- {}: {}\n", e.name, e.test_units));
        }
    }
    if !skipped.is_empty() {
        s.push_str(&format!(
            "\nNot run (no data for their keys): {}.\n",
            skipped.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_bootstrap_centres_on_the_mean_difference_and_keeps_the_pairing() {
        // Two systems that differ by exactly 0.1 on every neuron: the interval is a point.
        let a: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 0.1).collect();
        let (mean, low, high) = paired_bootstrap(&[(a.clone(), b)], 500, 1);
        assert!((mean - 0.1).abs() < 1e-12);
        assert!((low - 0.1).abs() < 1e-12 && (high - 0.1).abs() < 1e-12);
        // Noisy differences around 0: the interval holds 0 and is narrower with more neurons.
        let noise = |n: usize, s: u64| -> Vec<f64> {
            (0..n)
                .map(|i| (((i as u64 * 2654435761 + s) % 1000) as f64 / 1000.0) - 0.5)
                .collect()
        };
        let zeros = |n: usize| vec![0.0; n];
        let (m1, l1, h1) = paired_bootstrap(&[(noise(40, 3), zeros(40))], 2000, 2);
        let (_, l2, h2) = paired_bootstrap(&[(noise(400, 3), zeros(400))], 2000, 2);
        assert!(l1 <= m1 && m1 <= h1);
        assert!(l1 < 0.05 && h1 > -0.05, "[{l1}, {h1}]");
        assert!(h2 - l2 < h1 - l1, "[{l2}, {h2}] vs [{l1}, {h1}]");
        // Several trials average.
        let (m, _, _) = paired_bootstrap(&[(vec![1.0], vec![0.0]), (vec![0.0], vec![0.0])], 10, 0);
        assert!((m - 0.5).abs() < 1e-12);
    }
}
