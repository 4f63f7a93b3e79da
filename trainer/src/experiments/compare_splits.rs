//! `trainer compare-splits`: one system's BERTScore on each test network, side by side across
//! `trainer fit` runs of different splits: the paper's "within-network beats across-*" asked of
//! the same units.
//!
//! A split's table averages over its own test networks, and the splits test different networks
//! (across-task tests the generators, across-arch the small classifier...), so their rows do not
//! compare. Here every trial's per-neuron scores (its `metrics.json`) are grouped by the model key
//! of each test neuron (the trial's `predictions.csv`, in the same order), so each network gets
//! one score per split: the mean over trials of its test neurons' mean, with a bootstrap 95%
//! interval that redraws every trial's neurons of that network.
//!
//! Where two columns tested some of the same units of a network (within-network's test units
//! are drawn once per run and are among the units every across-* split tests), the comparison is
//! also made paired on those units: each unit's mean score over its trials in either column, the
//! difference bootstrapped over the shared units. That is tighter than setting the two cells side
//! by side, whose units differ. Runs scored before the reference's protocol are refused (rescore
//! them first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::evaluation::bootstrap::{BOOTSTRAP_RESAMPLES, paired_bootstrap};
use milan_shared::NeuronId;

/// One network's score in one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Test neurons of this network per trial.
    pub neurons: usize,
    /// Trials (over every experiment of the split that tests this network).
    pub trials: usize,
}

/// A run given as NAME=DIR: the column it fills.
#[derive(Debug, Clone)]
pub struct NamedRun {
    pub name: String,
    pub dir: PathBuf,
}

/// One column minus the network's first column, on the units both tested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub split: String,
    pub against: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Units both columns tested.
    pub units: usize,
}

/// What `compare-splits` compares: a per-unit figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Rescaled BERTScore F1 (`per_neuron`).
    Bertscore,
    /// ROUGE-L F, the mean over the unit's prediction-reference pairs (`per_neuron_rouge_l`).
    RougeL,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Bertscore => "BERTScore F1",
            Metric::RougeL => "ROUGE-L F",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Metric::Bertscore => "per_neuron",
            Metric::RougeL => "per_neuron_rouge_l",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub system: String,
    pub metric: Metric,
    /// Column names, in the order first given.
    pub splits: Vec<String>,
    /// network -> split -> cell.
    pub networks: BTreeMap<String, BTreeMap<String, Cell>>,
    /// network -> each later column against the first, paired on shared units.
    pub paired: BTreeMap<String, Vec<Paired>>,
}

/// One trial's test units of a network with their scores.
type TrialScores = Vec<(NeuronId, f64)>;

/// Every trained trial of a run folder: each experiment's `trial-<t>` with both files.
fn trial_dirs(run: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(run).with_context(|| format!("reading the run {}", run.display()))?;
    let mut experiments: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    experiments.sort();
    for experiment in experiments {
        for t in 0.. {
            let trial = experiment.join(format!("trial-{t}"));
            if !(trial.join("metrics.json").is_file() && trial.join("predictions.csv").is_file()) {
                break;
            }
            out.push(trial);
        }
    }
    Ok(out)
}

/// network -> the per-unit scores of `system` of each trial that tested it (units without a
/// score of `metric` left out).
fn scores_by_network(
    run: &Path,
    system: &str,
    metric: Metric,
) -> Result<BTreeMap<String, Vec<TrialScores>>> {
    let mut out: BTreeMap<String, Vec<TrialScores>> = BTreeMap::new();
    let trials = trial_dirs(run)?;
    if trials.is_empty() {
        bail!(
            "{}: no trained trial (<experiment>/trial-<t>/metrics.json and predictions.csv); is it \
             a `trainer fit` run?",
            run.display()
        );
    }
    for trial in trials {
        let metrics_path = trial.join("metrics.json");
        let metrics = crate::evaluation::scoring::read_current(&metrics_path)?;
        let per_neuron: Vec<Option<f64>> =
            serde_json::from_value(metrics["results"][system][metric.field()].clone())
                .ok()
                .filter(|v: &Vec<Option<f64>>| !v.is_empty())
                .with_context(|| {
                    format!(
                        "{}: no per-unit {} of {system} (another system name, or a run before \
                 per-unit figures? `trainer rescore` adds them)",
                        metrics_path.display(),
                        metric.name()
                    )
                })?;
        let predictions = trial.join("predictions.csv");
        let units = crate::experiments::predictions::read_units(&predictions)?;
        if units.len() != per_neuron.len() {
            bail!(
                "{}: {} rows but {} per-neuron scores in metrics.json",
                predictions.display(),
                units.len(),
                per_neuron.len()
            );
        }
        let mut grouped: BTreeMap<String, TrialScores> = BTreeMap::new();
        for (unit, score) in units.into_iter().zip(per_neuron) {
            let Some(score) = score else {
                continue;
            };
            grouped
                .entry(unit.key.to_string())
                .or_default()
                .push((unit, score));
        }
        for (key, scores) in grouped {
            out.entry(key).or_default().push(scores);
        }
    }
    Ok(out)
}

/// Each unit's mean score over the trials that tested it.
fn unit_means(trials: &[TrialScores]) -> BTreeMap<&NeuronId, f64> {
    let mut sums: BTreeMap<&NeuronId, (f64, usize)> = BTreeMap::new();
    for t in trials {
        for (unit, score) in t {
            let e = sums.entry(unit).or_default();
            e.0 += score;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(u, (s, n))| (u, s / n as f64))
        .collect()
}

/// `system`'s score on every test network of every run.
pub fn compare(runs: &[NamedRun], system: &str, metric: Metric, seed: u64) -> Result<Comparison> {
    let mut splits: Vec<String> = Vec::new();
    let mut gathered: BTreeMap<String, BTreeMap<String, Vec<TrialScores>>> = BTreeMap::new();
    for run in runs {
        if !splits.contains(&run.name) {
            splits.push(run.name.clone());
        }
        for (network, trials) in scores_by_network(&run.dir, system, metric)? {
            gathered
                .entry(network)
                .or_default()
                .entry(run.name.clone())
                .or_default()
                .extend(trials);
        }
    }
    let mut paired = BTreeMap::new();
    for (network, by_split) in &gathered {
        let mut columns = splits.iter().filter(|s| by_split.contains_key(*s));
        let Some(first) = columns.next() else {
            continue;
        };
        let base = unit_means(&by_split[first]);
        let mut rows = Vec::new();
        for split in columns {
            let other = unit_means(&by_split[split]);
            let (a, b): (Vec<f64>, Vec<f64>) = base
                .iter()
                .filter_map(|(u, x)| other.get(u).map(|y| (*y, *x)))
                .unzip();
            if a.is_empty() {
                continue;
            }
            let units = a.len();
            let (mean, low, high) = paired_bootstrap(&[(a, b)], BOOTSTRAP_RESAMPLES, seed);
            rows.push(Paired {
                split: split.clone(),
                against: first.clone(),
                mean,
                low,
                high,
                units,
            });
        }
        if !rows.is_empty() {
            paired.insert(network.clone(), rows);
        }
    }
    let networks = gathered
        .into_iter()
        .map(|(network, by_split)| {
            let cells = by_split
                .into_iter()
                .map(|(split, trials)| {
                    let pairs: Vec<(Vec<f64>, Vec<f64>)> = trials
                        .iter()
                        .map(|t| {
                            let scores: Vec<f64> = t.iter().map(|x| x.1).collect();
                            let zeros = vec![0.0; scores.len()];
                            (scores, zeros)
                        })
                        .collect();
                    let (mean, low, high) = paired_bootstrap(&pairs, BOOTSTRAP_RESAMPLES, seed);
                    let cell = Cell {
                        mean,
                        low,
                        high,
                        neurons: trials.iter().map(Vec::len).min().unwrap_or(0),
                        trials: trials.len(),
                    };
                    (split, cell)
                })
                .collect();
            (network, cells)
        })
        .collect();
    Ok(Comparison {
        system: system.to_owned(),
        metric,
        splits,
        networks,
        paired,
    })
}

/// The comparison as a Markdown table: a row per network, a column per split.
pub fn markdown(c: &Comparison) -> String {
    let mut s = format!(
        "{} {} on each test network: mean over trials, bootstrap 95% interval over its \
         test neurons (test neurons per trial x trials).\n\n| network |",
        c.system,
        c.metric.name()
    );
    for split in &c.splits {
        s.push_str(&format!(" {split} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---|".repeat(c.splits.len()));
    s.push('\n');
    for (network, cells) in &c.networks {
        s.push_str(&format!("| {network} |"));
        for split in &c.splits {
            match cells.get(split) {
                Some(x) => s.push_str(&format!(
                    " {:.3} [{:.3}, {:.3}] ({} x {}) |",
                    x.mean, x.low, x.high, x.neurons, x.trials
                )),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    if !c.paired.is_empty() {
        s.push_str(
            "\nPaired on the units both columns tested (each unit's mean over its trials; \
             bootstrap 95% interval over those units):\n\n| network | difference | units |\n|---|---|---:|\n",
        );
        for (network, rows) in &c.paired {
            for p in rows {
                s.push_str(&format!(
                    "| {network} | {} minus {}: {:+.3} [{:+.3}, {:+.3}] | {} |\n",
                    p.split, p.against, p.mean, p.low, p.high, p.units
                ));
            }
        }
    }
    s
}

/// The comparison as a PNG: networks along x, a colour per split, 95% intervals as bars.
pub fn plot(c: &Comparison, path: &Path) -> Result<()> {
    let networks: Vec<String> = c.networks.keys().cloned().collect();
    let series: Vec<crate::util::plot::CategorySeries> = c
        .splits
        .iter()
        .map(|split| {
            (
                split.clone(),
                c.networks
                    .values()
                    .map(|cells| cells.get(split).map(|x| (x.mean, x.low, x.high)))
                    .collect(),
            )
        })
        .collect();
    crate::util::plot::category_interval_plot(
        path,
        &format!("{} on each test network, by split", c.system),
        &networks,
        &format!("{} (95% interval)", c.metric.name()),
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trial folder with the per-neuron scores of milan-pmi for rows of the given networks.
    fn trial(dir: &Path, rows: &[(&str, f64)]) {
        std::fs::create_dir_all(dir).unwrap();
        let scores: Vec<f64> = rows.iter().map(|r| r.1).collect();
        std::fs::write(
            dir.join("metrics.json"),
            serde_json::json!({"results": {"milan-pmi": {"bleu": 0.0, "bertscore_f": 0.0,
                "per_neuron": scores, "protocol": "all-references"}}})
            .to_string(),
        )
        .unwrap();
        let mut csv = String::from("model,layer,unit,prediction\n");
        for (i, (key, _)) in rows.iter().enumerate() {
            csv.push_str(&format!("{key},conv1,{i},red\n"));
        }
        std::fs::write(dir.join("predictions.csv"), csv).unwrap();
    }

    #[test]
    fn scores_are_grouped_by_the_test_neurons_network_and_averaged_over_trials() {
        let tmp = tempfile::tempdir().unwrap();
        let across = tmp.path().join("across");
        // One experiment testing two networks, two trials; a second experiment testing a third.
        trial(
            &across.join("a-to-b/trial-0"),
            &[("b/x", 0.2), ("c/x", 0.5), ("b/x", 0.4)],
        );
        trial(
            &across.join("a-to-b/trial-1"),
            &[("b/x", 0.6), ("c/x", 0.7), ("b/x", 0.6)],
        );
        trial(&across.join("b-to-a/trial-0"), &[("a/x", 0.1)]);
        let within = tmp.path().join("within");
        trial(&within.join("b_x/trial-0"), &[("b/x", 0.9)]);
        let runs = [
            NamedRun {
                name: "within".into(),
                dir: within,
            },
            NamedRun {
                name: "across".into(),
                dir: across.clone(),
            },
        ];
        let c = compare(&runs, "milan-pmi", Metric::Bertscore, 0).unwrap();
        assert_eq!(c.splits, ["within", "across"]);
        let b = &c.networks["b/x"]["across"];
        // Trial means 0.3 and 0.6: their mean.
        assert!((b.mean - 0.45).abs() < 1e-12, "{b:?}");
        assert!(b.low <= b.mean && b.mean <= b.high && b.high - b.low > 0.0);
        assert_eq!((b.neurons, b.trials), (2, 2));
        assert!((c.networks["c/x"]["across"].mean - 0.6).abs() < 1e-12);
        assert!((c.networks["b/x"]["within"].mean - 0.9).abs() < 1e-12);
        assert!(!c.networks["a/x"].contains_key("within"));
        let md = markdown(&c);
        assert!(
            md.contains("| a/x | - | 0.100 [0.100, 0.100] (1 x 1) |"),
            "{md}"
        );
        // b/x unit 0 was tested in both columns: within 0.9, across (0.2 + 0.6) / 2; unit 2
        // only across. The paired difference is on unit 0 alone.
        let p = &c.paired["b/x"];
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].split.as_str(), p[0].against.as_str()),
            ("across", "within")
        );
        assert_eq!(p[0].units, 1);
        assert!((p[0].mean - (0.4 - 0.9)).abs() < 1e-12, "{p:?}");
        assert!(md.contains("| b/x | across minus within: -0.500"), "{md}");
        assert!(!c.paired.contains_key("c/x"), "one column only");

        // A run scored under the old protocol is refused, naming rescore.
        let old = tmp.path().join("old");
        trial(&old.join("a-to-b/trial-0"), &[("b/x", 0.2)]);
        std::fs::write(
            old.join("a-to-b/trial-0/metrics.json"),
            r#"{"results": {"milan-pmi": {"bleu": 0, "bertscore_f": 0, "per_neuron": [0.2]}}}"#,
        )
        .unwrap();
        let err = compare(
            &[NamedRun {
                name: "old".into(),
                dir: old,
            }],
            "milan-pmi",
            Metric::Bertscore,
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("trainer rescore"), "{err}");

        // Mismatched files and unknown systems are named.
        trial(&across.join("b-to-a/trial-1"), &[("a/x", 0.1)]);
        std::fs::write(
            across.join("b-to-a/trial-1/predictions.csv"),
            "model,layer,unit,prediction\na/x,conv1,0,red\na/x,conv1,1,red\n",
        )
        .unwrap();
        let err = compare(&runs, "milan-pmi", Metric::Bertscore, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 rows but 1 per-neuron scores"), "{err}");
        let err = compare(&runs[..1], "greedy", Metric::Bertscore, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no per-unit BERTScore F1 of greedy"), "{err}");
        let err = compare(
            &[NamedRun {
                name: "x".into(),
                dir: tmp.path().join("nothing"),
            }],
            "milan-pmi",
            Metric::Bertscore,
            0,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("reading the run"), "{err:#}");
    }
}
