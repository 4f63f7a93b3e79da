//! `trainer sweep-lambda`: MILAN-PMI at several weights λ of `log p(d)`, re-decoded from the
//! trained trials of a `trainer fit` run, so the beam's share of MILAN-PMI's difference from the
//! greedy captioner can be told from the reranking's.
//!
//! λ only reranks the final beam, so each trial needs one beam search and one language-model pass
//! for every λ ([`milan_model::decoding::milan_pmi_lambdas`]); λ = 0 is plain beam search (the
//! `captioner-beam` system of `fit`). Every λ and the greedy captioner are scored as `fit` scores
//! its systems (the reference's protocol, [`crate::evaluation::scoring`]), on the test units the trial was
//! evaluated on: the rows of its `predictions.csv`, checked against the count its `metrics.json`
//! recorded.
//!
//! Writes `sweep.json`, `sweep.md`, `predictions.csv` (one column per λ) and `lambda.png` (each λ
//! minus greedy, paired 95% intervals) into the output folder.

use milan_shared::atomic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use milan_shared::roster::Roster;
use milan_shared::split::{Experiment, Split};
use serde::{Deserialize, Serialize};

use crate::corpus::Corpus;
use crate::evaluation::bootstrap::{BOOTSTRAP_RESAMPLES, MeanStd, paired_bootstrap};
use crate::evaluation::scoring::Scores;
use crate::evaluation::scoring::{ANNOTATORS, BertScoreChoice, Scorer};
use crate::experiments::predictions::{Row, read_units};
use crate::experiments::summary::folder_name;
use crate::experiments::systems::score;
use milan_model::decoding::{greedy, milan_pmi_lambdas};
use milan_model::train::load;

/// The system every λ is compared with, besides plain beam search (λ = 0).
const GREEDY: &str = "captioner-greedy";

/// Options of `trainer sweep-lambda`.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The `trainer fit` run folder.
    pub run: PathBuf,
    pub split: Split,
    /// The corpus's own networks and splits, as `fit` used them.
    pub roster: Option<Roster>,
    /// The weights to decode at; 0 is added when absent.
    pub lambdas: Vec<f32>,
    pub out: PathBuf,
    pub bertscore: BertScoreChoice,
    /// Seed of the bootstrap resampling.
    pub seed: u64,
}

/// One λ of one experiment, over its trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaPoint {
    pub lambda: f32,
    pub bertscore_f: MeanStd,
    pub bleu: MeanStd,
    /// ROUGE-L F, where every trial scored it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge_l: Option<MeanStd>,
    /// This λ minus the greedy captioner in BERTScore F1: (mean, low, high), paired bootstrap
    /// 95% interval over test neurons.
    pub minus_greedy: (f64, f64, f64),
    /// This λ minus plain beam search (λ = 0): the reranking's own effect.
    pub minus_beam: (f64, f64, f64),
    /// Mean words per description.
    pub words: f64,
    /// Share of test neurons whose description differs from plain beam search's.
    pub changed: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSweep {
    pub name: String,
    pub trials: usize,
    pub test_neurons: usize,
    pub greedy: MeanStd,
    pub annotators: MeanStd,
    pub points: Vec<LambdaPoint>,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub split: String,
    pub bertscore: String,
    pub experiments: Vec<ExperimentSweep>,
}

/// A system name for a λ.
fn lambda_name(lambda: f32) -> String {
    format!("lambda={lambda}")
}

/// The trained trials of an experiment's folder, in trial order: (folder, test neurons).
fn trials_of(dir: &Path) -> Result<Vec<(PathBuf, usize)>> {
    let mut found = Vec::new();
    for t in 0.. {
        let trial = dir.join(format!("trial-{t}"));
        let metrics = trial.join("metrics.json");
        if !metrics.is_file() {
            break;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&metrics)?)
            .with_context(|| format!("{}: not JSON", metrics.display()))?;
        let field = |name: &str| {
            v[name].as_u64().with_context(|| {
                format!(
                    "{}: no number {name:?} (a run of an older trainer?)",
                    metrics.display()
                )
            })
        };
        found.push((trial, field("test_neurons")? as usize));
    }
    Ok(found)
}

/// The weights to decode at: finite, with 0 (plain beam search), sorted, each once.
fn lambdas_of(options: &SweepOptions) -> Result<Vec<f32>> {
    // -0 is 0: one name, one column.
    let mut lambdas: Vec<f32> = options
        .lambdas
        .iter()
        .map(|&l| if l == 0.0 { 0.0 } else { l })
        .collect();
    if let Some(bad) = lambdas.iter().find(|l| !l.is_finite()) {
        bail!("--lambdas: {bad} is not a number");
    }
    if !lambdas.contains(&0.0) {
        lambdas.push(0.0);
    }
    lambdas.sort_by(f32::total_cmp);
    lambdas.dedup();
    Ok(lambdas)
}

/// One trial re-decoded on the test units it was evaluated on: greedy and every λ per unit.
fn decode_trial(
    corpus: &Corpus,
    trial_dir: &Path,
    expected: usize,
    lambdas: &[f32],
    device: &Device,
) -> Result<Vec<Row>> {
    let units = read_units(&trial_dir.join("predictions.csv"))?;
    if units.len() != expected {
        bail!(
            "{}: {} rows in predictions.csv, {expected} test neurons in metrics.json",
            trial_dir.display(),
            units.len()
        );
    }
    let test = corpus.positions(&units).with_context(|| {
        format!(
            "{}: a test unit of the trial is not in --data: is it the corpus of that run?",
            trial_dir.display()
        )
    })?;
    let trained = load(trial_dir, device)?;
    if trained.info.encoder != corpus.encoder {
        bail!(
            "{}: trained on {} features, these are {} (pass --encoder {})",
            trial_dir.display(),
            trained.info.encoder,
            corpus.encoder,
            trained.info.encoder
        );
    }
    let config = &trained.info.config.decode;
    let mut by_lambda: Vec<Vec<Vec<usize>>> = vec![Vec::new(); lambdas.len()];
    let mut greedy_out = Vec::new();
    for chunk in test.chunks(64) {
        let features = corpus.features(chunk, device);
        let picked = milan_pmi_lambdas(
            &trained.captioner,
            &trained.lm,
            features.clone(),
            config,
            lambdas,
        );
        for (all, some) in by_lambda.iter_mut().zip(picked) {
            all.extend(some);
        }
        greedy_out.extend(greedy(&trained.captioner, features));
    }
    Ok(test
        .iter()
        .enumerate()
        .map(|(i, &position)| {
            let mut p = BTreeMap::new();
            p.insert(GREEDY.to_owned(), trained.vocab.decode(&greedy_out[i]));
            for (j, &l) in lambdas.iter().enumerate() {
                p.insert(lambda_name(l), trained.vocab.decode(&by_lambda[j][i]));
            }
            Row {
                position,
                predictions: p,
            }
        })
        .collect())
}

/// Per λ, summed over trials: mean words per description and the share of units whose
/// description differs from plain beam search's.
struct Shape {
    words: Vec<f64>,
    changed: Vec<f64>,
}

impl Shape {
    fn new(lambdas: usize) -> Shape {
        Shape {
            words: vec![0.0; lambdas],
            changed: vec![0.0; lambdas],
        }
    }

    fn add(&mut self, rows: &[Row], lambdas: &[f32]) {
        let n = rows.len().max(1) as f64;
        let beam = lambda_name(0.0);
        for (j, &l) in lambdas.iter().enumerate() {
            let name = lambda_name(l);
            self.words[j] += rows
                .iter()
                .map(|r| r.predictions[&name].split_whitespace().count())
                .sum::<usize>() as f64
                / n;
            self.changed[j] += rows
                .iter()
                .filter(|r| r.predictions[&name] != r.predictions[&beam])
                .count() as f64
                / n;
        }
    }
}

/// A trial's rows of the sweep's `predictions.csv`.
fn write_rows(
    predictions: &mut csv::Writer<Vec<u8>>,
    corpus: &Corpus,
    experiment: &str,
    trial: usize,
    rows: &[Row],
    lambdas: &[f32],
) -> Result<()> {
    for r in rows {
        let id = &corpus.neurons[r.position].id;
        let mut record = vec![
            experiment.to_owned(),
            trial.to_string(),
            id.key.to_string(),
            id.layer.clone(),
            id.unit.to_string(),
            r.predictions[GREEDY].clone(),
        ];
        record.extend(
            lambdas
                .iter()
                .map(|&l| r.predictions[&lambda_name(l)].clone()),
        );
        predictions.write_record(&record)?;
    }
    Ok(())
}

/// One figure of `system` in every scored trial.
fn column(scored: &[BTreeMap<String, Scores>], system: &str, f: fn(&Scores) -> f64) -> Vec<f64> {
    scored.iter().map(|s| f(&s[system])).collect()
}

/// Every λ of one experiment over its scored trials.
fn points_of(
    scored: &[BTreeMap<String, Scores>],
    lambdas: &[f32],
    shape: &Shape,
    seed: u64,
) -> Vec<LambdaPoint> {
    let n = scored.len() as f64;
    let difference = |a: &str, b: &str| -> (f64, f64, f64) {
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = scored
            .iter()
            .map(|s| (s[a].per_neuron.clone(), s[b].per_neuron.clone()))
            .collect();
        paired_bootstrap(&pairs, BOOTSTRAP_RESAMPLES, seed)
    };
    let beam = lambda_name(0.0);
    lambdas
        .iter()
        .enumerate()
        .map(|(j, &l)| {
            let name = lambda_name(l);
            LambdaPoint {
                lambda: l,
                bertscore_f: MeanStd::of(&column(scored, &name, |s| s.bertscore_f)),
                bleu: MeanStd::of(&column(scored, &name, |s| s.bleu)),
                rouge_l: scored
                    .iter()
                    .map(|s| s[&name].rouge_l())
                    .collect::<Option<Vec<f64>>>()
                    .map(|r| MeanStd::of(&r)),
                minus_greedy: difference(&name, GREEDY),
                minus_beam: difference(&name, &beam),
                words: shape.words[j] / n,
                changed: shape.changed[j] / n,
            }
        })
        .collect()
}

/// One experiment of the sweep: every trained trial re-decoded, scored, and its rows added to
/// `predictions`. `None` when the experiment has no trained trial.
fn sweep_experiment(
    corpus: &Corpus,
    options: &SweepOptions,
    experiment: &Experiment,
    lambdas: &[f32],
    scorer: &Scorer,
    predictions: &mut csv::Writer<Vec<u8>>,
    device: &Device,
) -> Result<Option<ExperimentSweep>> {
    let dir = options.run.join(folder_name(&experiment.name));
    let trials = trials_of(&dir)?;
    if trials.is_empty() {
        return Ok(None);
    }
    eprintln!(
        "experiment {} ({} trained trials)",
        experiment.name,
        trials.len()
    );
    let started = std::time::Instant::now();
    let mut scored: Vec<BTreeMap<String, Scores>> = Vec::new();
    let mut shape = Shape::new(lambdas.len());
    let mut test_neurons = 0;
    for (t, (trial_dir, expected)) in trials.iter().enumerate() {
        let rows = decode_trial(corpus, trial_dir, *expected, lambdas, device)?;
        test_neurons = rows.len();
        shape.add(&rows, lambdas);
        write_rows(predictions, corpus, &experiment.name, t, &rows, lambdas)?;
        let scores = score(corpus, &rows, scorer)?;
        eprintln!(
            "  trial {t}: greedy {:.3} | {}",
            scores[GREEDY].bertscore_f,
            lambdas
                .iter()
                .map(|&l| format!("λ {l} {:.3}", scores[&lambda_name(l)].bertscore_f))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        scored.push(scores);
    }
    Ok(Some(ExperimentSweep {
        name: experiment.name.clone(),
        trials: scored.len(),
        test_neurons,
        greedy: MeanStd::of(&column(&scored, GREEDY, |s| s.bertscore_f)),
        annotators: MeanStd::of(&column(&scored, ANNOTATORS, |s| s.bertscore_f)),
        points: points_of(&scored, lambdas, &shape, options.seed),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// `sweep.json`, `sweep.md`, `predictions.csv` and `lambda.png` into `options.out`.
fn write_sweep(options: &SweepOptions, out: &Sweep, predictions: Vec<u8>) -> Result<()> {
    atomic::write(
        &options.out.join("sweep.json"),
        &serde_json::to_vec_pretty(out)?,
    )?;
    atomic::write(&options.out.join("sweep.md"), markdown(out).as_bytes())?;
    atomic::write(&options.out.join("predictions.csv"), &predictions)?;
    let series: Vec<crate::util::plot::IntervalSeries> = out
        .experiments
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.points
                    .iter()
                    .map(|p| {
                        let (m, lo, hi) = p.minus_greedy;
                        (f64::from(p.lambda), m, lo, hi)
                    })
                    .collect(),
            )
        })
        .collect();
    crate::util::plot::interval_plot(
        &options.out.join("lambda.png"),
        "Beam search + PMI reranking minus the greedy captioner (λ = 0: plain beam)",
        "λ, the weight of log p(d)",
        "BERTScore F1 difference (95% interval)",
        &series,
    )
}

/// Re-decodes every trained trial of `options.run` at every λ and scores them.
pub fn sweep(corpus: &Corpus, options: &SweepOptions, device: &Device) -> Result<Sweep> {
    let lambdas = lambdas_of(options)?;
    let experiments: Vec<Experiment> = match &options.roster {
        Some(r) => r.experiments(options.split),
        None => options.split.experiments(),
    };
    let scorer = Scorer::load(&options.bertscore, device)?;
    let mut out = Sweep {
        split: options.split.name().to_owned(),
        bertscore: scorer.setting.clone(),
        experiments: Vec::new(),
    };
    let mut predictions = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["experiment", "trial", "model", "layer", "unit", "greedy"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    header.extend(lambdas.iter().map(|&l| lambda_name(l)));
    predictions.write_record(&header)?;
    for experiment in &experiments {
        if let Some(e) = sweep_experiment(
            corpus,
            options,
            experiment,
            &lambdas,
            &scorer,
            &mut predictions,
            device,
        )? {
            out.experiments.push(e);
        }
    }
    if out.experiments.is_empty() {
        bail!(
            "{}: no trained trial of any {} experiment (trial-<t>/metrics.json); is --run a `trainer \
             fit` run of that split?",
            options.run.display(),
            options.split.name()
        );
    }
    write_sweep(options, &out, predictions.into_inner()?)?;
    Ok(out)
}

/// The sweep as Markdown: one table per experiment.
pub fn markdown(sweep: &Sweep) -> String {
    let mut s = format!(
        "# λ sweep, {}\n\nBERTScore F1 ({}), mean ± std over trials; differences are paired \
         bootstrap 95% intervals over test neurons. λ = 0 is plain beam search.\n",
        sweep.split, sweep.bertscore
    );
    for e in &sweep.experiments {
        s.push_str(&format!(
            "\n## {} ({} trials, {} test neurons; greedy {:.3} ± {:.3}, annotators {:.3})\n\n\
             | λ | BERTScore | BLEU | ROUGE-L | minus greedy | minus beam | words | changed from beam |\n\
             |---:|---|---|---|---|---|---:|---:|\n",
            e.name, e.trials, e.test_neurons, e.greedy.mean, e.greedy.std, e.annotators.mean
        ));
        for p in &e.points {
            let d = |(m, lo, hi): (f64, f64, f64)| format!("{m:+.3} [{lo:+.3}, {hi:+.3}]");
            s.push_str(&format!(
                "| {} | {:.3} ± {:.3} | {:.1} ± {:.1} | {} | {} | {} | {:.2} | {:.0}% |\n",
                p.lambda,
                p.bertscore_f.mean,
                p.bertscore_f.std,
                p.bleu.mean,
                p.bleu.std,
                p.rouge_l
                    .map_or("-".to_owned(), |r| format!("{:.3} ± {:.3}", r.mean, r.std)),
                d(p.minus_greedy),
                d(p.minus_beam),
                p.words,
                100.0 * p.changed
            ));
        }
    }
    s
}
