//! `trainer rescore RUN`: a `trainer fit` run's figures computed again from its predictions, by
//! the current protocol ([`crate::evaluation::scoring`]) and BERTScore setting, with nothing retrained.
//!
//! Every trial's `predictions.csv` holds each system's prediction and the unit's references, so
//! scoring needs no data: a run scored before the reference's protocol (every system against
//! two references in turn), or with MiniLM before roberta-large was fetched, becomes comparable
//! with the paper's table this way. `--baseline-labels` brings in NetDissect or CompExp labels
//! computed elsewhere; they are written into the predictions as well. Figures of the old
//! protocol are kept beside the new ones (`*.two-reference-rounds.json`) the first time a run is
//! rescored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_shared::NeuronId;

use crate::evaluation::labels::BaselineLabels;
use crate::evaluation::scoring::{BertScoreChoice, Protocol, Scorer};
use crate::experiments::predictions::PREDICTION_COLUMNS;
use crate::experiments::summary::{
    ExperimentSummary, Summary, folder_name, trial_metrics, write_summary,
};
use milan_shared::atomic;

/// Options of `trainer rescore`.
#[derive(Debug, Clone)]
pub struct RescoreOptions {
    pub run: PathBuf,
    pub bertscore: BertScoreChoice,
    pub baseline_labels: BaselineLabels,
}

/// One trial's predictions as `fit` wrote them.
struct TrialPredictions {
    header: csv::StringRecord,
    rows: Vec<csv::StringRecord>,
    units: Vec<NeuronId>,
}

fn read_predictions(path: &Path) -> Result<TrialPredictions> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.clone();
    let mut rows = Vec::new();
    for (i, row) in reader.records().enumerate() {
        rows.push(row.with_context(|| format!("{}:{}", path.display(), i + 2))?);
    }
    let units = crate::experiments::predictions::read_units(path)?;
    Ok(TrialPredictions {
        header,
        rows,
        units,
    })
}

impl TrialPredictions {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Each system's predictions: MILAN's and the nearest neighbour's always (an empty
    /// description is a prediction), a labelled baseline's only where every unit has one.
    fn systems(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (column, system) in PREDICTION_COLUMNS {
            let Some(c) = self.column(column) else {
                continue;
            };
            let values: Vec<String> = self.rows.iter().map(|r| r[c].to_owned()).collect();
            let labelled = crate::evaluation::labels::LABEL_SYSTEMS.contains(&system);
            if labelled && values.iter().any(String::is_empty) {
                continue;
            }
            out.insert(system.to_owned(), values);
        }
        out
    }

    fn references(&self) -> Vec<Vec<String>> {
        let columns: Vec<usize> = (1..=3)
            .filter_map(|i| self.column(&format!("reference_{i}")))
            .collect();
        self.rows
            .iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|&c| r[c].to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .collect()
    }

    /// Writes `system`'s predictions into its column (added when the file has none).
    fn set(&mut self, system: &str, values: &[String]) {
        let column = PREDICTION_COLUMNS
            .iter()
            .find(|(_, s)| *s == system)
            .map(|(c, _)| *c)
            .expect("a prediction column");
        let c = match self.column(column) {
            Some(c) => c,
            None => {
                // A file from before the column: put it before the references.
                let at = self.column("reference_1").unwrap_or(self.header.len());
                let insert = |r: &csv::StringRecord, value: &str| {
                    let mut v: Vec<&str> = r.iter().collect();
                    v.insert(at, value);
                    csv::StringRecord::from(v)
                };
                self.header = insert(&self.header, column);
                self.rows = self.rows.iter().map(|r| insert(r, "")).collect();
                at
            }
        };
        for (row, value) in self.rows.iter_mut().zip(values) {
            let mut v: Vec<String> = row.iter().map(str::to_owned).collect();
            v[c] = value.clone();
            *row = csv::StringRecord::from(v);
        }
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.header)?;
        for r in &self.rows {
            w.write_record(r)?;
        }
        atomic::write(path, &w.into_inner()?)
    }
}

/// Keeps a copy of `path` as `<stem>.two-reference-rounds.json` when its figures are of the old
/// protocol (once: an earlier copy is not overwritten).
fn keep_legacy(path: &Path) -> Result<()> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(());
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(());
    };
    if crate::evaluation::scoring::require_current(&value, path).is_ok() {
        return Ok(());
    }
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let copy = path.with_file_name(format!("{stem}.two-reference-rounds.json"));
    if !copy.exists() {
        atomic::write(&copy, &bytes)?;
    }
    Ok(())
}

/// Rescores every trial of the run; rewrites its metrics and summary.
pub fn rescore(options: &RescoreOptions, device: &Device) -> Result<Summary> {
    let summary_path = options.run.join("summary.json");
    let old: Summary =
        serde_json::from_slice(&std::fs::read(&summary_path).with_context(|| {
            format!(
                "reading {}: is {} a `trainer fit` run?",
                summary_path.display(),
                options.run.display()
            )
        })?)
        .with_context(|| format!("{}: not a fit summary", summary_path.display()))?;
    let scorer = Scorer::load(&options.bertscore, device)?;
    let mut summary = Summary {
        split: old.split.clone(),
        bertscore: scorer.setting.clone(),
        bertscore_is_papers: scorer.paper,
        protocol: Protocol::AllReferences,
        experiments: Vec::new(),
    };
    for e in &old.experiments {
        let dir = options.run.join(folder_name(&e.name));
        eprintln!("rescoring {}", e.name);
        let mut trials = Vec::new();
        let mut combined: Option<TrialPredictions> = None;
        let mut seed = 0;
        for t in 0.. {
            let trial_dir = dir.join(format!("trial-{t}"));
            let predictions_path = trial_dir.join("predictions.csv");
            if !predictions_path.is_file() {
                break;
            }
            let mut predictions = read_predictions(&predictions_path)?;
            for (system, labels) in &options.baseline_labels {
                let values = predictions
                    .units
                    .iter()
                    .map(|u| {
                        labels
                            .get(u)
                            .map(|l| crate::evaluation::labels::baseline_text(system, l))
                            .with_context(|| {
                                format!("--baseline-labels {system}: no label for {u}, a test unit")
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                predictions.set(system, &values);
            }
            if !options.baseline_labels.is_empty() {
                predictions.write(&predictions_path)?;
            }
            let scores = crate::evaluation::scoring::score(
                &predictions.systems(),
                &predictions.references(),
                &scorer,
            )?;
            let metrics_path = trial_dir.join("metrics.json");
            keep_legacy(&metrics_path)?;
            let before: serde_json::Value = std::fs::read(&metrics_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let count = |field: &str| before[field].as_u64().unwrap_or(0) as usize;
            let trial_seed = before["seed"].as_u64().unwrap_or(0);
            if t == 0 {
                seed = trial_seed;
            }
            ensure!(
                before["test_neurons"].is_null() || count("test_neurons") == predictions.rows.len(),
                "{}: {} rows, but metrics.json recorded {} test neurons",
                predictions_path.display(),
                predictions.rows.len(),
                count("test_neurons")
            );
            atomic::write(
                &metrics_path,
                &serde_json::to_vec_pretty(&trial_metrics(
                    &e.name,
                    t,
                    trial_seed,
                    [
                        count("train_neurons"),
                        count("validation_neurons"),
                        predictions.rows.len(),
                    ],
                    &scorer.setting,
                    &scores,
                ))?,
            )?;
            eprintln!(
                "  trial {t}: {}",
                scores
                    .iter()
                    .map(|(s, v)| format!("{s} {:.3}", v.bertscore_f))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            trials.push(scores);
            // The experiment's predictions.csv: every trial's rows, a trial column first.
            let mut with_trial = TrialPredictions {
                header: std::iter::once("trial")
                    .chain(predictions.header.iter())
                    .collect(),
                rows: predictions
                    .rows
                    .iter()
                    .map(|r| {
                        std::iter::once(t.to_string().as_str())
                            .chain(r.iter())
                            .collect()
                    })
                    .collect(),
                units: Vec::new(),
            };
            match &mut combined {
                Some(c) => c.rows.append(&mut with_trial.rows),
                None => combined = Some(with_trial),
            }
        }
        if trials.is_empty() {
            bail!(
                "{}: no trial predictions (trial-<t>/predictions.csv) to rescore",
                dir.display()
            );
        }
        if !options.baseline_labels.is_empty()
            && let Some(c) = &combined
        {
            c.write(&dir.join("predictions.csv"))?;
        }
        let entry = ExperimentSummary::of_trials(
            (e.name.clone(), e.train.clone(), e.test.clone()),
            e.test_units.clone(),
            trials,
            e.seconds,
            seed,
        );
        let metrics_path = dir.join("metrics.json");
        keep_legacy(&metrics_path)?;
        atomic::write(&metrics_path, &serde_json::to_vec_pretty(&entry)?)?;
        summary.experiments.push(entry);
    }
    ensure!(
        !summary.experiments.is_empty(),
        "{}: no experiment to rescore",
        summary_path.display()
    );
    keep_legacy(&summary_path)?;
    write_summary(&options.run, &summary, &[])?;
    Ok(summary)
}
