//! Decoding descriptions from the captioner: greedy, beam search, and MILAN's pointwise mutual
//! information reranking (milan-reference.md section 3).
//!
//! Beam search sums log-probabilities with no length normalisation. Two semantics:
//! - [`Beam::AllenNlp`] (the default; the reference's `Decoder` runs AllenNLP's `BeamSearch`): the
//!   beam keeps `beam` hypotheses at every step; a finished one (it emitted the stop token) stays
//!   in the beam at its score and competes with the extensions of the live ones for the `beam`
//!   slots, until every hypothesis is finished or `max_tokens` tokens were generated. PMI reranks
//!   the final beam.
//! - [`Beam::Shrinking`]: a finished hypothesis leaves the beam, which shrinks by one; PMI reranks
//!   the pool of every finished hypothesis.
//!
//! PMI scores a hypothesis `log p(d|E) - lambda * log p(d)`.
//!
//! The token choices are made on the CPU from each step's log-probabilities (the vocabulary is a
//! few thousand tokens at most); the tensors only carry the model's state. The padding and start
//! tokens are never generated.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::{Captioner, Encoded, LanguageModel, State};
use crate::vocab::{PAD_ID, START_ID, STOP_ID, pad};

/// A generated token sequence (no start token; ends with stop unless cut at `max_tokens`) and its
/// captioner log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub tokens: Vec<usize>,
    pub log_prob: f32,
}

/// Which beam search (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Beam {
    #[default]
    AllenNlp,
    Shrinking,
}

/// Decoding settings; the defaults are the reference's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecodeConfig {
    pub beam: usize,
    /// The beam's semantics; AllenNLP's when absent (configurations written before it existed
    /// ran the shrinking beam).
    #[serde(default)]
    pub semantics: Beam,
    /// The weight of log p(d) in PMI reranking.
    pub lambda: f32,
    /// Neurons decoded together (bounds memory: beam x neurons rows per step).
    pub neurons_per_batch: usize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            beam: 50,
            semantics: Beam::AllenNlp,
            lambda: 0.2,
            neurons_per_batch: 16,
        }
    }
}

/// A 2-D tensor's values, row-major.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("float data")
}

pub fn ints(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn generable(token: usize) -> bool {
    token != PAD_ID && token != START_ID
}

/// The most likely token at each step; `features` [N, K, D].
pub fn greedy(captioner: &Captioner, features: Tensor<3>) -> Vec<Vec<usize>> {
    let device = features.device();
    let n = features.dims()[0];
    let (encoded, mut state) = captioner.encode(features);
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut done = vec![false; n];
    let mut tokens = vec![START_ID as i64; n];
    for _ in 0..captioner.max_tokens {
        let step = captioner.step(&encoded, state, ints(tokens.clone(), &device));
        state = step.state;
        let v = step.log_probs.dims()[1];
        let lp = to_vec(step.log_probs);
        for i in 0..n {
            let row = &lp[i * v..(i + 1) * v];
            let best = (0..v)
                .filter(|&t| generable(t))
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .expect("a vocabulary beyond the specials");
            tokens[i] = best as i64;
            if !done[i] {
                out[i].push(best);
                done[i] = best == STOP_ID;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    out
}

struct Live {
    neuron: usize,
    tokens: Vec<usize>,
    log_prob: f32,
}

/// AllenNLP's beam search over any step function, per neuron: the final beam, best first.
///
/// `step(neurons, parents, last)` runs the model on one row per live hypothesis: the row's
/// neuron, the row of the previous call's output state it extends (for the first call, the
/// neuron's initial state), and its last token (`<start>` first); it returns the next-token
/// log-probabilities, row-major, and the vocabulary size. Each step, a neuron's candidates are
/// every generable extension of its live hypotheses and each of its finished hypotheses
/// unchanged; the best `beam` survive (ties to the earlier beam position, then the lower
/// token). A hypothesis is finished when it emits `<stop>`, or is cut after `max_tokens`.
pub fn allennlp_beam(
    n: usize,
    beam: usize,
    max_tokens: usize,
    mut step: impl FnMut(&[usize], &[usize], &[usize]) -> (Vec<f32>, usize),
) -> Vec<Vec<Hypothesis>> {
    #[derive(Clone)]
    struct Entry {
        tokens: Vec<usize>,
        log_prob: f32,
        finished: bool,
        /// The row of the last step's output this (live) hypothesis continues from.
        row: usize,
    }
    let mut beams: Vec<Vec<Entry>> = (0..n)
        .map(|i| {
            vec![Entry {
                tokens: Vec::new(),
                log_prob: 0.0,
                finished: false,
                row: i,
            }]
        })
        .collect();
    for t in 0..max_tokens {
        let live: Vec<(usize, usize)> = beams
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                b.iter()
                    .enumerate()
                    .filter(|(_, e)| !e.finished)
                    .map(move |(j, _)| (i, j))
            })
            .collect();
        if live.is_empty() {
            break;
        }
        let neurons: Vec<usize> = live.iter().map(|&(i, _)| i).collect();
        let parents: Vec<usize> = live.iter().map(|&(i, j)| beams[i][j].row).collect();
        let last: Vec<usize> = live
            .iter()
            .map(|&(i, j)| beams[i][j].tokens.last().copied().unwrap_or(START_ID))
            .collect();
        let (lp, v) = step(&neurons, &parents, &last);
        let final_step = t + 1 == max_tokens;
        // Candidates per neuron: (score, beam position, token, output row); a finished
        // hypothesis is carried as (its score, its position, STOP, none).
        let mut row_of = vec![Vec::new(); n];
        for (r, &(i, j)) in live.iter().enumerate() {
            row_of[i].push((j, r));
        }
        for (i, entries) in beams.iter_mut().enumerate() {
            let mut cands: Vec<(f32, usize, usize, Option<usize>)> = Vec::new();
            for (j, e) in entries.iter().enumerate() {
                if e.finished {
                    cands.push((e.log_prob, j, STOP_ID, None));
                }
            }
            for &(j, r) in &row_of[i] {
                let base = entries[j].log_prob;
                for token in (0..v).filter(|&x| generable(x)) {
                    cands.push((base + lp[r * v + token], j, token, Some(r)));
                }
            }
            let order = |a: &(f32, usize, usize, Option<usize>),
                         b: &(f32, usize, usize, Option<usize>)| {
                b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
            };
            let k = beam.min(cands.len());
            if k < cands.len() {
                cands.select_nth_unstable_by(k, order);
                cands.truncate(k);
            }
            cands.sort_by(order);
            *entries = cands
                .into_iter()
                .map(|(score, j, token, r)| match r {
                    None => entries[j].clone(),
                    Some(r) => {
                        let mut tokens = entries[j].tokens.clone();
                        tokens.push(token);
                        Entry {
                            tokens,
                            log_prob: score,
                            finished: token == STOP_ID || final_step,
                            row: r,
                        }
                    }
                })
                .collect();
        }
    }
    beams
        .into_iter()
        .map(|entries| {
            entries
                .into_iter()
                .map(|e| Hypothesis {
                    tokens: e.tokens,
                    log_prob: e.log_prob,
                })
                .collect()
        })
        .collect()
}

/// The final AllenNLP beam of the captioner, per neuron, best first; `features` [N, K, D].
pub fn beam_search_allennlp(
    captioner: &Captioner,
    features: Tensor<3>,
    beam: usize,
) -> Vec<Vec<Hypothesis>> {
    let device = features.device();
    let n = features.dims()[0];
    let (encoded, state) = captioner.encode(features);
    let mut state = Some(state);
    allennlp_beam(n, beam, captioner.max_tokens, |neurons, parents, last| {
        let to_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        let rows_state = state
            .take()
            .expect("a state each step")
            .select(ints(to_i64(parents), &device));
        let rows_encoded = encoded.rows(neurons);
        let out = captioner.step(&rows_encoded, rows_state, ints(to_i64(last), &device));
        let v = out.log_probs.dims()[1];
        state = Some(out.state);
        (to_vec(out.log_probs), v)
    })
}

/// Every finished hypothesis of the shrinking beam, per neuron, best first; `features`
/// [N, K, D].
pub fn beam_search(
    captioner: &Captioner,
    features: Tensor<3>,
    beam: usize,
) -> Vec<Vec<Hypothesis>> {
    let device = features.device();
    let n = features.dims()[0];
    let (encoded, state) = captioner.encode(features);
    let mut finished: Vec<Vec<Hypothesis>> = vec![Vec::new(); n];
    let mut width = vec![beam; n];
    let mut live: Vec<Live> = (0..n)
        .map(|neuron| Live {
            neuron,
            tokens: Vec::new(),
            log_prob: 0.0,
        })
        .collect();
    let mut rows_encoded: Encoded = encoded.clone();
    let mut rows_state: State = state;
    for t in 0..captioner.max_tokens {
        if live.is_empty() {
            break;
        }
        let last: Vec<i64> = live
            .iter()
            .map(|h| h.tokens.last().map_or(START_ID, |&x| x) as i64)
            .collect();
        let step = captioner.step(&rows_encoded, rows_state, ints(last, &device));
        let v = step.log_probs.dims()[1];
        let lp = to_vec(step.log_probs);
        let final_step = t + 1 == captioner.max_tokens;
        // Candidates per neuron: (score, row, token).
        let mut by_neuron: Vec<Vec<(f32, usize, usize)>> = vec![Vec::new(); n];
        for (row, h) in live.iter().enumerate() {
            for token in (0..v).filter(|&x| generable(x)) {
                by_neuron[h.neuron].push((h.log_prob + lp[row * v + token], row, token));
            }
        }
        let mut next: Vec<Live> = Vec::new();
        let mut parents: Vec<i64> = Vec::new();
        for (neuron, mut cands) in by_neuron.into_iter().enumerate() {
            let k = width[neuron].min(cands.len());
            if k == 0 {
                continue;
            }
            cands.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            cands.truncate(k);
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for (score, row, token) in cands {
                let mut tokens = live[row].tokens.clone();
                tokens.push(token);
                if token == STOP_ID || final_step {
                    finished[neuron].push(Hypothesis {
                        tokens,
                        log_prob: score,
                    });
                    width[neuron] -= 1;
                } else {
                    next.push(Live {
                        neuron,
                        tokens,
                        log_prob: score,
                    });
                    parents.push(row as i64);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        let parent_rows = ints(parents, &device);
        rows_state = step.state.select(parent_rows);
        let neurons: Vec<usize> = next.iter().map(|h| h.neuron).collect();
        rows_encoded = encoded.rows(&neurons);
        live = next;
    }
    for pool in &mut finished {
        pool.sort_by(|a, b| b.log_prob.total_cmp(&a.log_prob));
    }
    finished
}

/// log p(d) under the language model for each hypothesis.
pub fn lm_log_probs(lm: &LanguageModel, hyps: &[&Hypothesis], device: &Device) -> Vec<f32> {
    if hyps.is_empty() {
        return Vec::new();
    }
    let sequences: Vec<Vec<usize>> = hyps
        .iter()
        .map(|h| {
            std::iter::once(START_ID)
                .chain(h.tokens.iter().copied())
                .collect()
        })
        .collect();
    let refs: Vec<&[usize]> = sequences.iter().map(Vec::as_slice).collect();
    lm.log_prob(&pad(&refs), device)
}

/// The hypothesis with the highest `log p(d|E) - lambda * log p(d)` of each pool, with its PMI
/// score.
pub fn rerank(
    lm: &LanguageModel,
    pools: &[Vec<Hypothesis>],
    lambda: f32,
    device: &Device,
) -> Vec<(Hypothesis, f32)> {
    let priors = pool_priors(lm, pools, device);
    pools
        .iter()
        .zip(&priors)
        .map(|(pool, prior)| {
            let (best, score) = pick(pool, prior, lambda);
            (pool[best].clone(), score)
        })
        .collect()
}

/// log p(d) of every hypothesis of every pool, in one language-model pass.
fn pool_priors(lm: &LanguageModel, pools: &[Vec<Hypothesis>], device: &Device) -> Vec<Vec<f32>> {
    let flat: Vec<&Hypothesis> = pools.iter().flatten().collect();
    let prior = lm_log_probs(lm, &flat, device);
    let mut at = 0;
    pools
        .iter()
        .map(|pool| {
            let scores = prior[at..at + pool.len()].to_vec();
            at += pool.len();
            scores
        })
        .collect()
}

/// The index and PMI score of the pool's best hypothesis at `lambda`; on a tie the later one, as
/// `Iterator::max_by` keeps it.
fn pick(pool: &[Hypothesis], prior: &[f32], lambda: f32) -> (usize, f32) {
    pool.iter()
        .zip(prior)
        .map(|(h, &p)| h.log_prob - lambda * p)
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("a beam finishes at least one hypothesis")
}

/// MILAN's decoding of `features` [N, K, D]: beam search then PMI reranking, in batches of
/// `config.neurons_per_batch` neurons.
pub fn milan_pmi(
    captioner: &Captioner,
    lm: &LanguageModel,
    features: Tensor<3>,
    config: &DecodeConfig,
) -> Vec<Vec<usize>> {
    milan_pmi_lambdas(captioner, lm, features, config, &[config.lambda])
        .pop()
        .expect("one lambda")
}

/// [`milan_pmi`] at several weights `lambdas` from one beam search and one language-model pass
/// (lambda only reranks the final beam): the tokens of each neuron, one list per lambda. Lambda
/// 0 is plain beam search, the top of the final beam by log p(d|E).
pub fn milan_pmi_lambdas(
    captioner: &Captioner,
    lm: &LanguageModel,
    features: Tensor<3>,
    config: &DecodeConfig,
    lambdas: &[f32],
) -> Vec<Vec<Vec<usize>>> {
    let device = features.device();
    let n = features.dims()[0];
    let mut out = vec![Vec::with_capacity(n); lambdas.len()];
    for first in (0..n).step_by(config.neurons_per_batch.max(1)) {
        let len = config.neurons_per_batch.max(1).min(n - first);
        let batch = features.clone().narrow(0, first, len);
        let pools = match config.semantics {
            Beam::AllenNlp => beam_search_allennlp(captioner, batch, config.beam),
            Beam::Shrinking => beam_search(captioner, batch, config.beam),
        };
        let priors = pool_priors(lm, &pools, &device);
        for (picked, &lambda) in out.iter_mut().zip(lambdas) {
            picked.extend(
                pools
                    .iter()
                    .zip(&priors)
                    .map(|(pool, prior)| pool[pick(pool, prior, lambda).0].tokens.clone()),
            );
        }
    }
    out
}

/// Teacher-forced log p(d|E) of given token sequences (no start token), one neuron each: what
/// beam search's scores must agree with.
pub fn captioner_log_probs(
    captioner: &Captioner,
    features: Tensor<3>,
    sequences: &[Vec<usize>],
) -> Vec<f32> {
    let device = features.device();
    let full: Vec<Vec<usize>> = sequences
        .iter()
        .map(|s| std::iter::once(START_ID).chain(s.iter().copied()).collect())
        .collect();
    let refs: Vec<&[usize]> = full.iter().map(Vec::as_slice).collect();
    let padded = pad(&refs);
    let (log_probs, _) = captioner.forward(features, &padded);
    crate::model::sequence_log_probs(log_probs, &padded, &device)
}
