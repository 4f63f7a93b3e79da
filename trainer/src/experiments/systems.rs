//! The systems every experiment scores on its test units: MILAN-PMI, the plain beam and greedy
//! from the trained captioner, the nearest training unit's description, and NetDissect's and
//! CompExp's labels where the data (or `--baseline-labels`) has them; scored by the reference's
//! protocol.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use burn::tensor::Device;
use milan_metrics::bleu::sentence_bleu;
use milan_metrics::normalize;
use milan_model::decoding::{greedy, milan_pmi_lambdas};
use milan_model::train::Trained;

use crate::corpus::Corpus;
use crate::evaluation::labels::{BaselineLabels, baseline_text};
use crate::evaluation::scoring::{Scorer, Scores};
use crate::experiments::predictions::{Row, predictions_by_system};

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

/// The system the paired differences are taken from.
pub(crate) const MILAN: &str = "milan-pmi";

/// Predictions of every system for the test units.
pub(crate) fn predict(
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
/// protocol ([`crate::evaluation::scoring::score`]).
pub(crate) fn score(
    corpus: &Corpus,
    rows: &[Row],
    scorer: &Scorer,
) -> Result<BTreeMap<String, Scores>> {
    let refs: Vec<Vec<String>> = rows
        .iter()
        .map(|r| corpus.neurons[r.position].descriptions.clone())
        .collect();
    crate::evaluation::scoring::score(&predictions_by_system(rows), &refs, scorer)
}
