//! How predictions are scored: the reference's protocol (`src/utils/metrics.py` of
//! evandez/neuron-descriptions), for every system `trainer fit`, `rescore`, `sweep-lambda` and
//! `follow` report.
//!
//! - **Systems** are scored against **all** references of each test unit: BLEU is sacrebleu's
//!   corpus BLEU with the references as reference streams; ROUGE is the PyPI `rouge` package's
//!   average over every (prediction, reference) pair ([`milan_metrics::rouge::milan`]);
//!   BERTScore F1 is each unit's best F1 over its references, idf weights computed on all test
//!   references, rescaled with the scoring model's baseline, bert_score's pairs matched 16 at a
//!   time (the reference calls `score(..., batch_size=16)`, which decides where bert_score's zero
//!   padding enters the matching). Texts are normalised first (`lower().strip('. ')`).
//! - **Annotators** need a held-out description, so they are scored leave-one-annotator-out: each
//!   description in turn against the other two (idf still from all test references), the rounds
//!   averaged. That is another protocol, reported in its own column and never compared with a
//!   system's figure as if it were one.
//!
//! Every [`Scores`] says which protocol produced it; a figure without one predates this module
//! (each system against two references in turn, [`Protocol::TwoReferenceRounds`]) and is
//! refused by readers that compare runs, which name `trainer rescore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use milan_metrics::bleu::{BleuConfig, corpus_bleu};
use milan_metrics::normalize;
use milan_metrics::rouge::{self, RougeScores};
use serde::{Deserialize, Serialize};

use crate::evaluation::bertscore::{BertScorer, ScorerOptions};

/// The system whose figures are leave-one-annotator-out.
pub const ANNOTATORS: &str = "annotators";

/// bert_score's pair batch in the reference's call (`batch_size=16`).
pub const REFERENCE_PAIR_BATCH: usize = 16;

/// Which protocol produced a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The reference's: against every reference of each test unit.
    AllReferences,
    /// The annotators: each description against the other two, rounds averaged.
    LeaveOneAnnotatorOut,
    /// Before this module: every system against two of the three references in turn, the
    /// rounds averaged (lower than the reference's by construction).
    TwoReferenceRounds,
}

impl Protocol {
    /// What a figure without a protocol field was scored with.
    pub fn legacy() -> Protocol {
        Protocol::TwoReferenceRounds
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::AllReferences => "all-references",
            Protocol::LeaveOneAnnotatorOut => "leave-one-annotator-out",
            Protocol::TwoReferenceRounds => "two-reference-rounds",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Protocol::AllReferences => {
                "against all references of each test unit (the reference's src/utils/metrics.py)"
            }
            Protocol::LeaveOneAnnotatorOut => {
                "each annotator's description against the other ones, rounds averaged"
            }
            Protocol::TwoReferenceRounds => {
                "against two of the three references in turn (milan-rs before the reference's \
                 protocol; not comparable)"
            }
        }
    }
}

/// One system's figures on one trial's test units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub bleu: f64,
    /// ROUGE-1, -2 and -L (r, p, f); absent when every pair had an empty side, and in old runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rouge: Option<RougeScores>,
    pub bertscore_f: f64,
    /// Each test unit's (rescaled) BERTScore F1, in test order: what paired intervals resample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_neuron: Vec<f64>,
    /// Each test unit's ROUGE-L F (the mean over its prediction-reference pairs; none where
    /// every pair has an empty side), in test order: what `compare-splits --metric rouge-l`
    /// groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_neuron_rouge_l: Vec<Option<f64>>,
    #[serde(default = "Protocol::legacy")]
    pub protocol: Protocol,
}

impl Scores {
    /// ROUGE-L F, when scored.
    pub fn rouge_l(&self) -> Option<f64> {
        self.rouge.map(|r| r.rouge_l.f)
    }
}

/// Which BERTScore model a command scores with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BertScoreChoice {
    /// The paper's when roberta-large is fetched, else all-MiniLM-L6-v2 (said loudly).
    Auto,
    /// roberta-large, layer 17, idf, rescaled with bert_score 0.3.13's own baseline.
    Paper,
    /// all-MiniLM-L6-v2, all six layers, idf, rescaled with a baseline computed here.
    MiniLm,
    /// A Hugging Face folder of the user's, with an optional layer count.
    Custom { dir: PathBuf, layers: Option<usize> },
}

/// The layer bert_score uses for roberta-large (its `model2layers`).
pub const PAPER_LAYERS: usize = crate::evaluation::bertscore::ROBERTA_LARGE_LAYER;

/// The BERTScore model, its rescale baseline and what the setting is, loaded once per command.
#[derive(Debug)]
pub struct Scorer {
    pub bert: BertScorer,
    /// (P, R, F) baseline of the layer used.
    pub baseline: (f64, f64, f64),
    /// One line naming the model, layer and baseline.
    pub setting: String,
    /// Whether this is the paper's setting (roberta-large, layer 17, bert_score's baseline).
    pub paper: bool,
}

impl Scorer {
    /// Loads the chosen model; `Auto` falls back to all-MiniLM-L6-v2 with a warning on stderr.
    pub fn load(choice: &BertScoreChoice, device: &Device) -> Result<Scorer> {
        let roberta = crate::evaluation::bertscore::paper::dir();
        let resolved = match choice {
            BertScoreChoice::Auto if crate::evaluation::bertscore::paper::is_fetched() => {
                BertScoreChoice::Paper
            }
            BertScoreChoice::Auto => {
                // Once per process: `simulate-active` loads a scorer every round.
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| eprintln!("{}", not_the_paper_warning()));
                BertScoreChoice::MiniLm
            }
            other => other.clone(),
        };
        let (dir, layers, paper) = match &resolved {
            BertScoreChoice::Paper => {
                ensure!(
                    crate::evaluation::bertscore::paper::is_fetched(),
                    "--bertscore paper needs roberta-large and bert_score's baseline for it: run \
                     `trainer assets fetch roberta-large` (1.4 GB from Hugging Face, once)"
                );
                (roberta, Some(PAPER_LAYERS), true)
            }
            BertScoreChoice::MiniLm | BertScoreChoice::Auto => {
                (crate::assets::path("minilm")?, None, false)
            }
            BertScoreChoice::Custom { dir, layers } => (dir.clone(), *layers, false),
        };
        let bert = BertScorer::load(
            &dir,
            &ScorerOptions {
                num_layers: layers,
                pair_batch_size: REFERENCE_PAIR_BATCH,
                ..ScorerOptions::default()
            },
            device,
        )?;
        let baseline = if paper {
            // bert_score's own file, never a computed one.
            crate::evaluation::bertscore::score::read_baseline(
                &dir.join(crate::evaluation::bertscore::baseline::FILE),
                bert.num_layers(),
            )?
        } else {
            crate::evaluation::bertscore::baseline::ensure(&dir, &bert)?
        };
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let setting = format!(
            "{name} layer {}, idf from the test references, rescaled with {} baseline P {:.4} R \
             {:.4} F {:.4}{}",
            bert.num_layers(),
            if paper {
                "bert_score 0.3.13's"
            } else {
                "a computed"
            },
            baseline.0,
            baseline.1,
            baseline.2,
            if paper {
                ": the paper's setting"
            } else {
                ": NOT the paper's setting (roberta-large layer 17); not comparable with its figures"
            }
        );
        Ok(Scorer {
            bert,
            baseline,
            setting,
            paper,
        })
    }
}

/// What `Auto` says when roberta-large is absent.
pub fn not_the_paper_warning() -> String {
    "WARNING: roberta-large is not fetched, so BERTScore is all-MiniLM-L6-v2's (with a baseline \
     computed here): these figures are NOT comparable with the paper's (roberta-large layer 17, \
     bert_score's baseline). Run `trainer assets fetch roberta-large` for the paper's setting, or \
     pass --bertscore minilm to choose MiniLM knowingly."
        .to_owned()
}

/// Every system's figures on the same test units, by the reference's protocol; `annotators`
/// leave-one-annotator-out (with at least two references per unit). `hyps` maps a system to its
/// prediction for each unit; `refs[i]` are unit i's descriptions. Texts are normalised here.
pub fn score(
    hyps: &BTreeMap<String, Vec<String>>,
    refs: &[Vec<String>],
    scorer: &Scorer,
) -> Result<BTreeMap<String, Scores>> {
    let refs: Vec<Vec<String>> = refs
        .iter()
        .map(|r| r.iter().map(|d| normalize(d)).collect())
        .collect();
    ensure!(
        refs.iter().all(|r| !r.is_empty()),
        "every test unit needs a reference"
    );
    let flat: Vec<&str> = refs.iter().flatten().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    for (system, predictions) in hyps {
        ensure!(
            predictions.len() == refs.len(),
            "{system}: {} predictions for {} test units",
            predictions.len(),
            refs.len()
        );
        let h: Vec<String> = predictions.iter().map(|p| normalize(p)).collect();
        out.insert(system.clone(), against(&h, &refs, &flat, scorer)?);
    }
    let rounds = refs.iter().map(Vec::len).min().unwrap_or(0);
    if rounds >= 2 {
        out.insert(
            ANNOTATORS.to_owned(),
            annotators(&refs, &flat, rounds, scorer)?,
        );
    }
    Ok(out)
}

/// One system against every reference.
fn against(
    hyps: &[String],
    refs: &[Vec<String>],
    idf_from: &[&str],
    scorer: &Scorer,
) -> Result<Scores> {
    let bleu = corpus_bleu(hyps, refs, &BleuConfig::default()).score;
    let rouge = rouge::milan(hyps, refs).ok();
    let per_neuron_rouge_l = hyps
        .iter()
        .zip(refs)
        .map(|(h, r)| {
            rouge::milan(std::slice::from_ref(h), std::slice::from_ref(r))
                .ok()
                .map(|s| s.rouge_l.f)
        })
        .collect();
    let mut bs = scorer.bert.score_with_idf(hyps, refs, idf_from)?;
    bs.rescale(scorer.baseline);
    Ok(Scores {
        bleu,
        rouge,
        bertscore_f: bs.means().2,
        per_neuron: bs.f,
        per_neuron_rouge_l,
        protocol: Protocol::AllReferences,
    })
}

/// Each description in turn against the others; BLEU and ROUGE per round, BERTScore per unit,
/// the rounds averaged.
fn annotators(
    refs: &[Vec<String>],
    idf_from: &[&str],
    rounds: usize,
    scorer: &Scorer,
) -> Result<Scores> {
    let mut total = Scores {
        bleu: 0.0,
        rouge: Some(RougeScores::default()),
        bertscore_f: 0.0,
        per_neuron: vec![0.0; refs.len()],
        per_neuron_rouge_l: vec![Some(0.0); refs.len()],
        protocol: Protocol::LeaveOneAnnotatorOut,
    };
    let share = 1.0 / rounds as f64;
    for held in 0..rounds {
        let hyps: Vec<String> = refs.iter().map(|r| r[held].clone()).collect();
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
        let s = against(&hyps, &others, idf_from, scorer)?;
        total.bleu += s.bleu * share;
        total.bertscore_f += s.bertscore_f * share;
        for (t, x) in total.per_neuron.iter_mut().zip(&s.per_neuron) {
            *t += x * share;
        }
        for (t, x) in total
            .per_neuron_rouge_l
            .iter_mut()
            .zip(&s.per_neuron_rouge_l)
        {
            *t = t.zip(*x).map(|(t, x)| t + x * share);
        }
        total.rouge = match (total.rouge, s.rouge) {
            (Some(mut t), Some(x)) => {
                for (a, b) in [
                    (&mut t.rouge_1, x.rouge_1),
                    (&mut t.rouge_2, x.rouge_2),
                    (&mut t.rouge_l, x.rouge_l),
                ] {
                    a.r += b.r * share;
                    a.p += b.p * share;
                    a.f += b.f * share;
                }
                Some(t)
            }
            _ => None,
        };
    }
    Ok(total)
}

/// The protocol of every figure in a `metrics.json` or `summary.json` value, for readers that
/// compare runs: an error naming `trainer rescore` when any figure predates the reference's
/// protocol.
pub fn require_current(value: &serde_json::Value, path: &Path) -> Result<()> {
    let mut legacy = false;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(map) => {
                if map.contains_key("bertscore_f") && !map.contains_key("protocol") {
                    legacy = true;
                    break;
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    if legacy {
        bail!(
            "{}: scored before milan-rs used the reference's protocol (every system against two \
             of the three references in turn); its figures are not comparable with newer runs. \
             Rescore it from its predictions: `trainer rescore {}`",
            path.display(),
            run_of(path).display()
        );
    }
    Ok(())
}

/// The run folder a metrics or summary file belongs to (the folder holding summary.json).
fn run_of(path: &Path) -> PathBuf {
    let mut dir = path.parent().unwrap_or(Path::new("."));
    loop {
        if dir.join("summary.json").is_file() {
            return dir.to_owned();
        }
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p,
            _ => return path.parent().unwrap_or(Path::new(".")).to_owned(),
        }
    }
}

/// Reads a JSON file, refusing figures of the old protocol (see [`require_current`]).
pub fn read_current(path: &Path) -> Result<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", path.display()))?;
    require_current(&value, path)?;
    Ok(value)
}
