//! The rescale baseline of a scoring model, as bert_score's `rescale_with_baseline` uses it:
//! the mean precision, recall and F1 (no idf) of pairs of unrelated sentences, per layer, so that
//! `(score - baseline) / (1 - baseline)` puts "unrelated" near 0.
//!
//! bert_score ships baselines for its models computed on Common Crawl sentences; none exists for
//! all-MiniLM-L6-v2, and none can be downloaded here. This one pairs crowd descriptions of
//! neurons at random (the Zhou et al. 2015 AlexNet phrases in the repository, 4,128 real
//! workers' sentences): the same kind of text the scores are about. It is computed once per model
//! and layer and stored beside the model as `bertscore-baseline.csv` in bert_score's
//! `LAYER,P,R,F` layout; a file the user puts there (bert_score's own, for roberta-large) is
//! used as it is.

use milan_shared::atomic;
use std::path::Path;

use anyhow::{Context, Result};
use milan_metrics::normalize;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::score::{BertScorer, read_baseline};

/// The baseline file in a model folder.
pub const FILE: &str = "bertscore-baseline.csv";

/// Random pairs a computed baseline averages over.
pub const PAIRS: usize = 2000;

const SEED: u64 = 2020;

const PHRASES: &str = include_str!(
    "../../../../shared/tests/fixtures/zhou2015-alexnet-units/imagenet-alexnet_unit_annotations.csv"
);

/// The distinct crowd phrases the baseline pairs, normalised as `trainer fit` normalises.
pub fn sentences() -> Vec<String> {
    let mut reader = csv::Reader::from_reader(PHRASES.as_bytes());
    let mut out: Vec<String> = reader
        .records()
        .filter_map(|r| r.ok().and_then(|r| r.get(2).map(normalize)))
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Mean (P, R, F) of `pairs` random pairs of different sentences, seeded.
pub fn compute(
    scorer: &BertScorer,
    sentences: &[String],
    pairs: usize,
    seed: u64,
) -> Result<(f64, f64, f64)> {
    anyhow::ensure!(
        sentences.len() >= 2,
        "a baseline needs two sentences or more"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = sentences.len() as u64;
    let mut cands = Vec::with_capacity(pairs);
    let mut refs = Vec::with_capacity(pairs);
    while cands.len() < pairs {
        let (a, b) = ((rng.next_u64() % n) as usize, (rng.next_u64() % n) as usize);
        if a != b {
            cands.push(sentences[a].clone());
            refs.push(vec![sentences[b].clone()]);
        }
    }
    Ok(scorer.score(&cands, &refs, false)?.means())
}

/// The baseline of `scorer`'s layer from `<dir>/bertscore-baseline.csv`, computed and added to
/// the file first when it has no row for that layer.
pub fn ensure(dir: &Path, scorer: &BertScorer) -> Result<(f64, f64, f64)> {
    let path = dir.join(FILE);
    let layer = scorer.num_layers();
    if path.is_file()
        && let Ok(b) = read_baseline(&path, layer)
    {
        return Ok(b);
    }
    eprintln!(
        "bertscore: computing the rescale baseline of {} layer {layer} ({PAIRS} random pairs of crowd phrases)",
        dir.display()
    );
    let b = compute(scorer, &sentences(), PAIRS, SEED)?;
    let mut rows: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .skip(1)
            .filter(|l| l.split([',', '\t']).next().map(str::trim) != Some(&layer.to_string()))
            .map(str::to_owned)
            .collect(),
        Err(_) => Vec::new(),
    };
    rows.push(format!("{layer},{},{},{}", b.0, b.1, b.2));
    rows.sort_by_key(|r| {
        r.split([',', '\t'])
            .next()
            .and_then(|l| l.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    let text = format!("LAYER,P,R,F\n{}\n", rows.join("\n"));
    atomic::write(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(b)
}
