//! `trainer fit`: every experiment of a generalization split (milan-reference.md section 4), each
//! over several trials, scored with BLEU and BERTScore beside three baselines, summarised as the
//! paper's Table 3.
//!
//! Layout of a run folder:
//! - `<experiment>/trial-<t>/`: the trained run (see [`crate::train`]), `predictions.csv` and
//!   `metrics.json` of that trial;
//! - `<experiment>/predictions.csv` (every trial) and `<experiment>/metrics.json` (per trial and
//!   mean/std);
//! - `summary.json` and `summary.md`.
//!
//! The systems: `milan-pmi` (beam search + PMI reranking), `captioner-beam` (the same final beam
//! without the reranking: its most likely description under p(d|E), which tells the beam's share
//! of MILAN-PMI's difference from greedy from PMI's), `captioner-greedy` (p(d|E) alone, greedy), `nearest-neighbour` (the description of the training neuron whose mean exemplar feature
//! is closest by cosine; of its three descriptions, the one with the highest sentence BLEU against
//! the other two), `netdissect` (the unit's top-IoU concept, where the data has NetDissect-style
//! labels: the grounded corpus) and `annotators` (each annotator's description against the other
//! two). Every row is scored against the same references: one description of each neuron is held
//! out in turn (it is the annotators' hypothesis), all rows are scored against the other two, and
//! the three rounds are averaged.
//! BLEU is corpus BLEU as sacrebleu; BERTScore F1 is the mean over test neurons of the best F1 over
//! the references, idf weights from the test references, rescaled with the scoring model's
//! baseline as bert_score's `rescale_with_baseline` does (all-MiniLM-L6-v2 by default, its
//! baseline computed here, see [`crate::bertscore::baseline`]; the paper used roberta-large layer
//! 17). Standard deviations are over trials (sample std; 0 for one trial); the difference between
//! MILAN-PMI and each other system gets a paired bootstrap 95% interval over test neurons
//! ([`paired_bootstrap`]).

use crate::atomic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_metrics::bleu::{BleuConfig, corpus_bleu, sentence_bleu};
use milan_metrics::normalize;
use milan_shared::roster::Roster;
use milan_shared::split::{Evaluation, Experiment, Split};
use serde::{Deserialize, Serialize};

use crate::bertscore::{BertScorer, ScorerOptions};
use crate::data::Corpus;
use crate::decoding::{greedy, milan_pmi_lambdas};
use crate::train::{EarlyStopping, REFERENCE_WITHIN_NETWORK_PATIENCE, RunOptions, Trained, train};

/// Every system, in table order; `netdissect` only where the test neurons have labels.
pub const SYSTEMS: [&str; 6] = [
    "milan-pmi",
    "captioner-beam",
    "captioner-greedy",
    "nearest-neighbour",
    "netdissect",
    "annotators",
];

/// The system the paired differences are taken from.
const MILAN: &str = "milan-pmi";

/// Bootstrap resamples of the paired intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Options of `trainer fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub split: Split,
    pub direction: Option<String>,
    pub trials: usize,
    pub out: PathBuf,
    pub run: RunOptions,
    pub bertscore_model: Option<PathBuf>,
    /// Layers of the BERTScore model to run (bert_score's `num_layers`); all when `None`.
    pub bertscore_layers: Option<usize>,
    /// The corpus's own networks and splits (`roster.json`), instead of the paper's.
    pub roster: Option<Roster>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub bleu: f64,
    pub bertscore_f: f64,
    /// Each test neuron's (rescaled) BERTScore F1, in test order: what the paired intervals
    /// resample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_neuron: Vec<f64>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    pub name: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
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
    pub experiments: Vec<ExperimentSummary>,
}

/// A folder name for an experiment: `alexnet->resnet152` -> `alexnet-to-resnet152`,
/// `alexnet/imagenet` -> `alexnet_imagenet`.
pub fn folder_name(experiment: &str) -> String {
    experiment.replace("->", "-to-").replace('/', "_")
}

/// One test neuron's predictions and references.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) position: usize,
    /// The prediction of each system, by name.
    pub(crate) predictions: BTreeMap<String, String>,
}

/// The BERTScore model (`model`, or the fetched all-MiniLM-L6-v2), its rescale baseline (P, R,
/// F; computed once and stored beside the model) and a line naming the setting.
pub(crate) fn load_scorer(
    model: Option<&Path>,
    layers: Option<usize>,
    device: &Device,
) -> Result<(BertScorer, (f64, f64, f64), String)> {
    let scorer_dir = match model {
        Some(d) => d.to_owned(),
        None => crate::assets::path("minilm")?,
    };
    let scorer = BertScorer::load(
        &scorer_dir,
        &ScorerOptions {
            num_layers: layers,
            ..ScorerOptions::default()
        },
        device,
    )?;
    let baseline = crate::bertscore::baseline::ensure(&scorer_dir, &scorer)?;
    let setting = format!(
        "{} layer {}, rescaled with baseline P {:.4} R {:.4} F {:.4}",
        scorer_dir.file_name().map_or_else(
            || scorer_dir.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        scorer.num_layers(),
        baseline.0,
        baseline.1,
        baseline.2
    );
    Ok((scorer, baseline, setting))
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
    let (scorer, baseline, setting) = load_scorer(
        options.bertscore_model.as_deref(),
        options.bertscore_layers,
        device,
    )?;
    let ids: Vec<_> = corpus.neurons.iter().map(|n| n.id.clone()).collect();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut summary = Summary {
        split: options.split.name().to_owned(),
        bertscore: setting,
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
        eprintln!("experiment {} ({} trials)", experiment.name, options.trials);
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
            let partition = experiment.partition(&ids, seed);
            let train_pos = corpus.positions(&partition.train)?;
            let val_pos = corpus.positions(&partition.validation)?;
            let test_pos = corpus.positions(&partition.test)?;
            let trial_dir = dir.join(format!("trial-{trial}"));
            let run = RunOptions {
                seed,
                ..run_options.clone()
            };
            let trained = train(corpus, &train_pos, &val_pos, &trial_dir, &run, device)?;
            let known: Vec<usize> = train_pos.iter().chain(&val_pos).copied().collect();
            let (rows, scores) = evaluate_rows(
                corpus, &trained, &known, &test_pos, &scorer, baseline, device,
            )?;
            write_predictions(&trial_dir.join("predictions.csv"), corpus, &rows, None)?;
            atomic::write(
                &trial_dir.join("metrics.json"),
                &serde_json::to_vec_pretty(&serde_json::json!({
                    "experiment": experiment.name,
                    "trial": trial,
                    "seed": seed,
                    "train_neurons": train_pos.len(),
                    "validation_neurons": val_pos.len(),
                    "test_neurons": test_pos.len(),
                    "results": scores,
                }))?,
            )?;
            eprintln!(
                "  trial {trial}: {}",
                scores
                    .iter()
                    .map(|(s, v)| format!("{s} BLEU {:.1} BERTScore {:.3}", v.bleu, v.bertscore_f))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            rows_all.push((trial, rows));
            trials.push(scores);
        }
        write_all_predictions(&dir.join("predictions.csv"), corpus, &rows_all)?;
        let systems: Vec<&str> = SYSTEMS
            .iter()
            .copied()
            .filter(|s| trials.iter().all(|t| t.contains_key(*s)))
            .collect();
        let results = systems
            .iter()
            .map(|s| {
                let bleu: Vec<f64> = trials.iter().map(|t| t[*s].bleu).collect();
                let bs: Vec<f64> = trials.iter().map(|t| t[*s].bertscore_f).collect();
                (
                    (*s).to_owned(),
                    SystemSummary {
                        bleu: MeanStd::of(&bleu),
                        bertscore_f: MeanStd::of(&bs),
                    },
                )
            })
            .collect();
        let differences = systems
            .iter()
            .filter(|s| **s != MILAN)
            .map(|other| {
                let pairs: Vec<(Vec<f64>, Vec<f64>)> = trials
                    .iter()
                    .map(|t| (t[MILAN].per_neuron.clone(), t[*other].per_neuron.clone()))
                    .collect();
                let (mean, low, high) =
                    paired_bootstrap(&pairs, BOOTSTRAP_RESAMPLES, options.run.seed);
                Difference {
                    system: MILAN.to_owned(),
                    against: (*other).to_owned(),
                    mean,
                    low,
                    high,
                }
            })
            .collect();
        let entry = ExperimentSummary {
            name: experiment.name.clone(),
            train: experiment.train.iter().map(ToString::to_string).collect(),
            test: experiment.test.iter().map(ToString::to_string).collect(),
            trials,
            results,
            differences,
            seconds: started.elapsed().as_secs_f64(),
        };
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
    atomic::write(
        &options.out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    atomic::write(
        &options.out.join("summary.md"),
        markdown(&summary, &skipped).as_bytes(),
    )?;
    Ok(summary)
}

fn evaluate_rows(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    scorer: &BertScorer,
    baseline: (f64, f64, f64),
    device: &Device,
) -> Result<(Vec<Row>, BTreeMap<String, Scores>)> {
    let rows = predict(corpus, trained, known, test, device);
    let scores = score(corpus, &rows, scorer, baseline)?;
    Ok((rows, scores))
}

/// Scores every system on the `test` positions (the nearest neighbour searches `known`) and
/// writes their predictions to `predictions` (CSV, as a trial's).
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    scorer: &BertScorer,
    baseline: (f64, f64, f64),
    predictions: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Scores>> {
    let (rows, scores) = evaluate_rows(corpus, trained, known, test, scorer, baseline, device)?;
    write_predictions(predictions, corpus, &rows, None)?;
    Ok(scores)
}

/// Predictions of every system for the test neurons.
fn predict(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    device: &Device,
) -> Vec<Row> {
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
            if let Some(label) = &corpus.neurons[position].label {
                // NetDissect names no concept for a unit that overlaps none.
                let text = if label.is_empty() { "none" } else { label };
                predictions.insert("netdissect".to_owned(), text.to_owned());
            }
            Row {
                position,
                predictions,
            }
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

/// BLEU and BERTScore F1 of every system (netdissect when every row has a label), each against
/// the same references: one of a neuron's three descriptions is held out in turn, every system
/// and the held-out description (the annotators row) are scored against the other two, and the
/// three rounds are averaged, per neuron for BERTScore and per round for corpus BLEU.
pub(crate) fn score(
    corpus: &Corpus,
    rows: &[Row],
    scorer: &BertScorer,
    baseline: (f64, f64, f64),
) -> Result<BTreeMap<String, Scores>> {
    let refs: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            corpus.neurons[r.position]
                .descriptions
                .iter()
                .map(|d| normalize(d))
                .collect()
        })
        .collect();
    // Every system that predicted for every row.
    let mut hyps: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    if let Some(first) = rows.first() {
        for system in first.predictions.keys() {
            if rows.iter().all(|r| r.predictions.contains_key(system)) {
                hyps.insert(
                    system,
                    rows.iter()
                        .map(|r| normalize(&r.predictions[system]))
                        .collect(),
                );
            }
        }
    }
    let rounds = refs.iter().map(Vec::len).min().unwrap_or(0);
    anyhow::ensure!(rounds >= 2, "test neurons need two descriptions or more");
    let mut out: BTreeMap<String, Scores> = BTreeMap::new();
    let mut add = |name: &str, s: Scores| {
        let acc = out.entry(name.to_owned()).or_insert_with(|| Scores {
            bleu: 0.0,
            bertscore_f: 0.0,
            per_neuron: vec![0.0; s.per_neuron.len()],
        });
        acc.bleu += s.bleu / rounds as f64;
        acc.bertscore_f += s.bertscore_f / rounds as f64;
        for (a, f) in acc.per_neuron.iter_mut().zip(&s.per_neuron) {
            *a += f / rounds as f64;
        }
    };
    for held in 0..rounds {
        let others: Vec<Vec<String>> = refs
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != held)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .collect();
        for (system, h) in &hyps {
            add(system, score_pair(h, &others, scorer, baseline)?);
        }
        let annotator: Vec<String> = refs.iter().map(|r| r[held].clone()).collect();
        add(
            "annotators",
            score_pair(&annotator, &others, scorer, baseline)?,
        );
    }
    Ok(out)
}

fn score_pair(
    hyps: &[String],
    refs: &[Vec<String>],
    scorer: &BertScorer,
    baseline: (f64, f64, f64),
) -> Result<Scores> {
    let bleu = corpus_bleu(hyps, refs, &BleuConfig::default()).score;
    let mut bs = scorer.score(hyps, refs, true)?;
    bs.rescale(baseline);
    Ok(Scores {
        bleu,
        bertscore_f: bs.means().2,
        per_neuron: bs.f,
    })
}

fn predictions_header(with_trial: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if with_trial {
        h.push("trial");
    }
    h.extend([
        "model",
        "layer",
        "unit",
        "prediction",
        "captioner_beam",
        "captioner_greedy",
        "nearest_neighbour",
        "netdissect",
        "reference_1",
        "reference_2",
        "reference_3",
    ]);
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
            r.predictions["milan-pmi"].clone(),
            r.predictions["captioner-beam"].clone(),
            r.predictions["captioner-greedy"].clone(),
            r.predictions["nearest-neighbour"].clone(),
            r.predictions.get("netdissect").cloned().unwrap_or_default(),
        ]);
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

/// The summary as a Markdown table shaped like the paper's Table 3, then the paired
/// differences.
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
    let mut s = format!(
        "# {}\n\nBERTScore F1 ({}) and BLEU, mean ± std over {} trial(s).\n\n| experiment |",
        summary.split,
        summary.bertscore,
        summary.experiments.first().map_or(0, |e| e.trials.len())
    );
    for system in &systems {
        s.push_str(&format!(" {system} BERTScore | {system} BLEU |"));
    }
    s.push_str(" minutes |\n|---|");
    s.push_str(&"---:|".repeat(2 * systems.len() + 1));
    s.push('\n');
    for e in &summary.experiments {
        s.push_str(&format!("| {} |", e.name));
        for system in &systems {
            match e.results.get(*system) {
                Some(r) => s.push_str(&format!(
                    " {:.3} ± {:.3} | {:.1} ± {:.1} |",
                    r.bertscore_f.mean, r.bertscore_f.std, r.bleu.mean, r.bleu.std
                )),
                None => s.push_str(" - | - |"),
            }
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
             interval over test neurons.\n\n| experiment | against | difference | 95% interval |\n|---|---|---:|---|\n",
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
