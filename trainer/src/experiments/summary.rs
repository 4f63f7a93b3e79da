//! A fit run's summary: per experiment, each system's mean and std over trials and MILAN-PMI's
//! paired differences (`metrics.json`), per run `summary.json` and `summary.md` (the paper's
//! Table 3), and a trial's own `metrics.json`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use milan_shared::atomic;
use serde::{Deserialize, Serialize};

use crate::evaluation::bootstrap::{BOOTSTRAP_RESAMPLES, MeanStd, paired_bootstrap};
use crate::evaluation::scoring::{ANNOTATORS, Protocol, Scores};
use crate::experiments::systems::{MILAN, SYSTEMS};

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

/// A folder name for an experiment: `alexnet->resnet152` -> `alexnet-to-resnet152`,
/// `alexnet/imagenet` -> `alexnet_imagenet`.
pub fn folder_name(experiment: &str) -> String {
    experiment.replace("->", "-to-").replace('/', "_")
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
pub(crate) fn one_line(scores: &BTreeMap<String, Scores>) -> String {
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

/// `mean ± std / BLEU / ROUGE-L` of one system in one experiment.
pub(crate) fn cell(r: &SystemSummary) -> String {
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
