//! `trainer report RUN...`: `trainer fit` runs as the paper's generalization table, in Markdown
//! and CSV: a row per (split, train -> test), BLEU, ROUGE-L and BERTScore for each system as the
//! mean over trials with a 95% interval (Student's t over the trials' figures), the annotators
//! in a column of their own (another protocol), and the paper's own BERTScore for MILAN-PMI
//! beside ours where the paper gives one.
//!
//! The paper's figures are those of its Table 3 (review version) as `docs/real-data.md` lists
//! them (milan-reference.md section 5): MILAN-PMI's BERTScore F1 per experiment. For its
//! baselines the paper gives ranges over the held-out classifier keys only; the report states
//! them under the table instead of in a row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use crate::evaluation::scoring::{ANNOTATORS, Protocol};
use crate::experiments::summary::Summary;
use crate::experiments::systems::SYSTEMS;
use milan_shared::atomic;

/// MILAN-PMI's BERTScore F1 in the paper, by (split, experiment), and where it is from.
pub const PAPER: [(&str, &str, f64); 13] = [
    ("within-network", "alexnet/imagenet", 0.39),
    ("within-network", "alexnet/places365", 0.47),
    ("within-network", "resnet152/imagenet", 0.35),
    ("within-network", "resnet152/places365", 0.28),
    ("within-network", "biggan/imagenet", 0.49),
    ("within-network", "biggan/places365", 0.52),
    ("across-arch", "alexnet->resnet152", 0.28),
    ("across-arch", "resnet152->alexnet", 0.35),
    ("across-arch", "base->dino_vits8/imagenet", 0.34),
    ("across-dataset", "imagenet->places365", 0.30),
    ("across-dataset", "places365->imagenet", 0.33),
    ("across-task", "cls->gen", 0.34),
    ("across-task", "gen->cls", 0.27),
];

/// Where [`PAPER`]'s figures come from.
pub const PAPER_SOURCE: &str = "Hernandez et al. 2022, Table 3 (review version), MILAN-PMI's \
    BERTScore F1 (roberta-large layer 17, idf, rescaled), as docs/real-data.md lists them";

/// The paper's baseline figures: ranges over the held-out classifier networks.
pub const PAPER_BASELINES: &str = "the paper gives its baselines as ranges over the held-out \
    classifier networks (BERTScore F1): NetDissect .21-.25, CompExp .01-.03, p(d|E) alone \
    .27-.34, MILAN-PMI .31-.38";

/// Student's t quantile t(0.975, df) for df = 1..30.
const T975: [f64; 30] = [
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
];

/// t(0.975, df): the table to 30 degrees of freedom, then the Cornish-Fisher expansion around
/// the normal quantile (within 2e-6 beyond 30).
pub fn t975(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    if df <= T975.len() {
        return T975[df - 1];
    }
    let z = 1.959_963_984_540_054_f64;
    let v = df as f64;
    z + (z.powi(3) + z) / (4.0 * v)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * v.powi(3))
}

/// A mean over trials with its 95% t interval (none for one trial).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Interval {
    pub fn of(values: &[f64]) -> Interval {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        if n < 2 {
            return Interval {
                mean,
                low: None,
                high: None,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t975(n - 1) * (var / n as f64).sqrt();
        Interval {
            mean,
            low: Some(mean - half),
            high: Some(mean + half),
        }
    }

    fn text(&self, digits: usize) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{:.d$} [{:.d$}, {:.d$}]", self.mean, l, h, d = digits),
            _ => format!("{:.d$}", self.mean, d = digits),
        }
    }
}

/// One system's figures in one experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub bleu: Interval,
    pub rouge_l: Option<Interval>,
    pub bertscore_f: Interval,
    pub protocol: Protocol,
}

/// One (split, experiment) row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub split: String,
    pub experiment: String,
    pub trials: usize,
    pub systems: BTreeMap<String, Figures>,
    /// MILAN-PMI's BERTScore F1 in the paper.
    pub paper: Option<f64>,
    /// The run's BERTScore setting.
    pub bertscore: String,
    pub bertscore_is_papers: bool,
}

/// The rows of every run, in the order given.
pub fn rows(runs: &[PathBuf]) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for run in runs {
        let path = run.join("summary.json");
        let value = crate::evaluation::scoring::read_current(&path)?;
        let summary: Summary = serde_json::from_value(value)
            .with_context(|| format!("{}: not a fit summary", path.display()))?;
        for e in &summary.experiments {
            let systems = SYSTEMS
                .iter()
                .copied()
                .chain([ANNOTATORS])
                .filter(|s| !e.trials.is_empty() && e.trials.iter().all(|t| t.contains_key(*s)))
                .map(|s| {
                    let column =
                        |f: &dyn Fn(&crate::evaluation::scoring::Scores) -> f64| -> Vec<f64> {
                            e.trials.iter().map(|t| f(&t[s])).collect()
                        };
                    let rouge: Option<Vec<f64>> = e.trials.iter().map(|t| t[s].rouge_l()).collect();
                    (
                        s.to_owned(),
                        Figures {
                            bleu: Interval::of(&column(&|x| x.bleu)),
                            rouge_l: rouge.map(|r| Interval::of(&r)),
                            bertscore_f: Interval::of(&column(&|x| x.bertscore_f)),
                            protocol: e.trials[0][s].protocol,
                        },
                    )
                })
                .collect();
            out.push(Row {
                split: summary.split.clone(),
                experiment: e.name.clone(),
                trials: e.trials.len(),
                systems,
                paper: PAPER
                    .iter()
                    .find(|(split, name, _)| *split == summary.split && *name == e.name)
                    .map(|p| p.2),
                bertscore: summary.bertscore.clone(),
                bertscore_is_papers: summary.bertscore_is_papers,
            });
        }
    }
    ensure!(!out.is_empty(), "the runs hold no experiment");
    Ok(out)
}

/// The table in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let systems: Vec<&str> = SYSTEMS
        .iter()
        .copied()
        .filter(|s| rows.iter().any(|r| r.systems.contains_key(*s)))
        .collect();
    let mut s = String::from("# Generalization\n\n");
    let settings: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.bertscore.as_str()).collect();
    if rows.iter().any(|r| !r.bertscore_is_papers) {
        s.push_str(
            "**BERTScore here is not the paper's** for some rows (see the settings below): \
             those figures do not compare with the paper's column. `trainer assets fetch \
             roberta-large`, then `trainer rescore RUN`.\n\n",
        );
    }
    s.push_str(
        "Each cell: BLEU / ROUGE-L F / BERTScore F1, mean over trials [95% interval, Student's \
         t]. Systems are scored against all references of each test unit (the reference's \
         protocol); the annotators each against the others (leave one out), a protocol of their \
         own: set them beside, not against, a system.\n\n",
    );
    s.push_str("| split | experiment | trials |");
    for system in &systems {
        s.push_str(&format!(" {system} |"));
    }
    s.push_str(" paper (MILAN-PMI BERTScore) | | annotators (leave one out) |\n|---|---|---:|");
    s.push_str(&"---|".repeat(systems.len()));
    s.push_str("---:|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} |",
            r.split, r.experiment, r.trials
        ));
        for system in &systems {
            s.push_str(&format!(" {} |", cell(r.systems.get(*system))));
        }
        s.push_str(&format!(
            " {} | | {} |\n",
            r.paper.map_or("-".to_owned(), |p| format!("{p:.2}")),
            cell(r.systems.get(ANNOTATORS))
        ));
    }
    s.push_str(&format!(
        "\nThe paper's column: {PAPER_SOURCE}. Besides, {PAPER_BASELINES}.\n\nBERTScore settings:\n\n"
    ));
    for setting in settings {
        s.push_str(&format!("- {setting}\n"));
    }
    s
}

fn cell(f: Option<&Figures>) -> String {
    match f {
        Some(f) => format!(
            "{} / {} / {}",
            f.bleu.text(1),
            f.rouge_l.map_or("-".to_owned(), |r| r.text(3)),
            f.bertscore_f.text(3)
        ),
        None => "-".to_owned(),
    }
}

/// The table as CSV: a row per (split, experiment, system).
pub fn csv(rows: &[Row]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "split",
        "experiment",
        "system",
        "protocol",
        "trials",
        "bleu",
        "bleu_low",
        "bleu_high",
        "rouge_l",
        "rouge_l_low",
        "rouge_l_high",
        "bertscore_f",
        "bertscore_f_low",
        "bertscore_f_high",
        "paper_bertscore_f",
        "bertscore_setting",
    ])?;
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:.6}"));
    for r in rows {
        for (system, f) in &r.systems {
            let rouge = f.rouge_l;
            w.write_record([
                r.split.clone(),
                r.experiment.clone(),
                system.clone(),
                f.protocol.name().to_owned(),
                r.trials.to_string(),
                format!("{:.6}", f.bleu.mean),
                opt(f.bleu.low),
                opt(f.bleu.high),
                opt(rouge.map(|x| x.mean)),
                opt(rouge.and_then(|x| x.low)),
                opt(rouge.and_then(|x| x.high)),
                format!("{:.6}", f.bertscore_f.mean),
                opt(f.bertscore_f.low),
                opt(f.bertscore_f.high),
                if system == "milan-pmi" {
                    opt(r.paper)
                } else {
                    String::new()
                },
                r.bertscore.clone(),
            ])?;
        }
    }
    Ok(w.into_inner()?)
}

/// Writes `report.md` and `report.csv` into `out`; returns the Markdown.
pub fn write(runs: &[PathBuf], out: &Path) -> Result<String> {
    let rows = rows(runs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let md = markdown(&rows);
    atomic::write(&out.join("report.md"), md.as_bytes())?;
    atomic::write(&out.join("report.csv"), &csv(&rows)?)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_and_intervals() {
        assert!((t975(4) - 2.776445105).abs() < 1e-9);
        // Beyond the table the expansion continues it smoothly.
        assert!((t975(31) - 2.039513446).abs() < 1e-5);
        assert!((t975(1000) - 1.962339).abs() < 1e-5);
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        // mean 3, s = sqrt(2.5), half = 2.776 * sqrt(2.5 / 5).
        let half = 2.776445105 * (0.5f64).sqrt();
        assert!((i.mean - 3.0).abs() < 1e-12);
        assert!((i.low.unwrap() - (3.0 - half)).abs() < 1e-9);
        assert!((i.high.unwrap() - (3.0 + half)).abs() < 1e-9);
        assert_eq!(Interval::of(&[0.4]).low, None);
        assert_eq!(Interval::of(&[0.4]).text(2), "0.40");
    }
}
