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
//! The systems: `milan-pmi` (beam search + PMI reranking), `captioner-greedy` (p(d|E) alone,
//! greedy), `nearest-neighbour` (the description of the training neuron whose mean exemplar feature
//! is closest by cosine; of its three descriptions, the one with the highest sentence BLEU against
//! the other two) and `annotators` (each annotator's description against the other two, averaged
//! over the three annotators: two references where the systems have three).
//! BLEU is corpus BLEU as sacrebleu; BERTScore F1 is the mean over test neurons of the best F1 over
//! the references, idf weights from the test references (all-MiniLM-L6-v2 by default; the paper
//! used roberta-large). Standard deviations are over trials (sample std; 0 for one trial).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_metrics::bleu::{BleuConfig, corpus_bleu, sentence_bleu};
use milan_metrics::normalize;
use milan_shared::split::{Experiment, Split};
use serde::{Deserialize, Serialize};

use crate::bertscore::{BertScorer, ScorerOptions};
use crate::data::Corpus;
use crate::decoding::{greedy, milan_pmi};
use crate::train::{RunOptions, Trained, train, write_atomic};

pub const SYSTEMS: [&str; 4] = [
    "milan-pmi",
    "captioner-greedy",
    "nearest-neighbour",
    "annotators",
];

/// Options of `trainer fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub split: Split,
    pub direction: Option<String>,
    pub trials: usize,
    pub out: PathBuf,
    pub run: RunOptions,
    pub bertscore_model: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub bleu: f64,
    pub bertscore_f: f64,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub split: String,
    pub experiments: Vec<ExperimentSummary>,
}

/// A folder name for an experiment: `alexnet->resnet152` -> `alexnet-to-resnet152`,
/// `alexnet/imagenet` -> `alexnet_imagenet`.
pub fn folder_name(experiment: &str) -> String {
    experiment.replace("->", "-to-").replace('/', "_")
}

/// One test neuron's predictions and references.
#[derive(Debug, Clone)]
struct Row {
    position: usize,
    predictions: BTreeMap<&'static str, String>,
}

/// Runs the split; writes everything under `options.out`.
pub fn fit(corpus: &Corpus, options: &FitOptions, device: &Device) -> Result<Summary> {
    let experiments: Vec<Experiment> = match &options.direction {
        Some(name) => vec![options.split.experiment(name)?],
        None => options.split.experiments(),
    };
    if options.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let scorer_dir = match &options.bertscore_model {
        Some(d) => d.clone(),
        None => crate::assets::path("minilm")?,
    };
    let scorer = BertScorer::load(&scorer_dir, &ScorerOptions::default(), device)?;
    let ids: Vec<_> = corpus.neurons.iter().map(|n| n.id.clone()).collect();
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let mut summary = Summary {
        split: options.split.name().to_owned(),
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
                ..options.run.clone()
            };
            let trained = train(corpus, &train_pos, &val_pos, &trial_dir, &run, device)?;
            let known: Vec<usize> = train_pos.iter().chain(&val_pos).copied().collect();
            let (rows, scores) =
                evaluate_rows(corpus, &trained, &known, &test_pos, &scorer, device)?;
            write_predictions(&trial_dir.join("predictions.csv"), corpus, &rows, None)?;
            write_atomic(
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
                SYSTEMS
                    .iter()
                    .map(|s| format!(
                        "{s} BLEU {:.1} BERTScore {:.3}",
                        scores[*s].bleu, scores[*s].bertscore_f
                    ))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            rows_all.push((trial, rows));
            trials.push(scores);
        }
        write_all_predictions(&dir.join("predictions.csv"), corpus, &rows_all)?;
        let results = SYSTEMS
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
        let entry = ExperimentSummary {
            name: experiment.name.clone(),
            train: experiment.train.iter().map(ToString::to_string).collect(),
            test: experiment.test.iter().map(ToString::to_string).collect(),
            trials,
            results,
        };
        write_atomic(
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
    write_atomic(
        &options.out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    write_atomic(
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
    device: &Device,
) -> Result<(Vec<Row>, BTreeMap<String, Scores>)> {
    let rows = predict(corpus, trained, known, test, device);
    let scores = score(corpus, &rows, scorer)?;
    Ok((rows, scores))
}

/// Scores every system on the `test` positions (the nearest neighbour searches `known`) and
/// writes their predictions to `predictions` (CSV, as a trial's).
pub fn evaluate(
    corpus: &Corpus,
    trained: &Trained,
    known: &[usize],
    test: &[usize],
    scorer: &BertScorer,
    predictions: &Path,
    device: &Device,
) -> Result<BTreeMap<String, Scores>> {
    let (rows, scores) = evaluate_rows(corpus, trained, known, test, scorer, device)?;
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
    let mut greedy_out = Vec::with_capacity(test.len());
    for chunk in test.chunks(64) {
        let features = corpus.features(chunk, device);
        pmi.extend(milan_pmi(
            &trained.captioner,
            &trained.lm,
            features.clone(),
            config,
        ));
        greedy_out.extend(greedy(&trained.captioner, features));
    }
    let neighbours = nearest_neighbours(corpus, known, test);
    test.iter()
        .enumerate()
        .map(|(i, &position)| {
            let mut predictions = BTreeMap::new();
            predictions.insert("milan-pmi", trained.vocab.decode(&pmi[i]));
            predictions.insert("captioner-greedy", trained.vocab.decode(&greedy_out[i]));
            predictions.insert(
                "nearest-neighbour",
                consensus(&corpus.neurons[neighbours[i]].descriptions),
            );
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

/// BLEU and BERTScore F1 of every system.
fn score(corpus: &Corpus, rows: &[Row], scorer: &BertScorer) -> Result<BTreeMap<String, Scores>> {
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
    let mut out = BTreeMap::new();
    for system in &SYSTEMS[..3] {
        let hyps: Vec<String> = rows
            .iter()
            .map(|r| normalize(&r.predictions[system]))
            .collect();
        out.insert((*system).to_owned(), score_pair(&hyps, &refs, scorer)?);
    }
    // Each annotator against the other two, averaged over the three.
    let mut bleu = 0.0;
    let mut bs = 0.0;
    let n = refs.iter().map(Vec::len).min().unwrap_or(0);
    for a in 0..n {
        let hyps: Vec<String> = refs.iter().map(|r| r[a].clone()).collect();
        let others: Vec<Vec<String>> = refs
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != a)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .collect();
        let s = score_pair(&hyps, &others, scorer)?;
        bleu += s.bleu / n as f64;
        bs += s.bertscore_f / n as f64;
    }
    out.insert(
        "annotators".to_owned(),
        Scores {
            bleu,
            bertscore_f: bs,
        },
    );
    Ok(out)
}

fn score_pair(hyps: &[String], refs: &[Vec<String>], scorer: &BertScorer) -> Result<Scores> {
    let bleu = corpus_bleu(hyps, refs, &BleuConfig::default()).score;
    let bs = scorer.score(hyps, refs, true)?;
    Ok(Scores {
        bleu,
        bertscore_f: bs.means().2,
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
        "captioner_greedy",
        "nearest_neighbour",
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
            r.predictions["captioner-greedy"].clone(),
            r.predictions["nearest-neighbour"].clone(),
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
    write_atomic(path, &w.into_inner()?)
}

fn write_all_predictions(path: &Path, corpus: &Corpus, trials: &[(usize, Vec<Row>)]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(predictions_header(true))?;
    for (t, rows) in trials {
        write_rows(&mut w, corpus, rows, Some(*t))?;
    }
    write_atomic(path, &w.into_inner()?)
}

/// The summary as a Markdown table shaped like the paper's Table 3.
pub fn markdown(summary: &Summary, skipped: &[String]) -> String {
    let mut s = format!(
        "# {}\n\nBLEU and BERTScore F1, mean ± std over {} trial(s).\n\n| experiment |",
        summary.split,
        summary.experiments.first().map_or(0, |e| e.trials.len())
    );
    for system in SYSTEMS {
        s.push_str(&format!(" {system} BLEU | {system} BERTScore |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(2 * SYSTEMS.len()));
    s.push('\n');
    for e in &summary.experiments {
        s.push_str(&format!("| {} |", e.name));
        for system in SYSTEMS {
            let r = &e.results[system];
            s.push_str(&format!(
                " {:.1} ± {:.1} | {:.3} ± {:.3} |",
                r.bleu.mean, r.bleu.std, r.bertscore_f.mean, r.bertscore_f.std
            ));
        }
        s.push('\n');
    }
    if !skipped.is_empty() {
        s.push_str(&format!(
            "\nNot run (no data for their keys): {}.\n",
            skipped.join(", ")
        ));
    }
    s
}
