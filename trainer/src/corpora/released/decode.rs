//! Decoding exactly as the MILAN authors' `Decoder.forward` does, so that a released checkpoint
//! describes a neuron here with the same words as in their library.
//!
//! Where their decoding differs from ours (`milan_model::decoding`), theirs is kept:
//! - no token is ever masked: `<start>`, `<pad>` and `<unk>` may be chosen (the text drops them);
//! - greedy runs all `length` steps and its score sums every step's chosen log-probability,
//!   after the stop token too (the text ends at the first stop);
//! - beam search is AllenNLP's `BeamSearch`: the beam keeps `beam` hypotheses at every step; a
//!   finished one stays in it, extended by `<stop>` at no cost, and the search ends when every
//!   hypothesis of the whole batch has finished or after `length` steps;
//! - reranking scores `[<start>] + tokens` with the language model, counting the tokens up to
//!   the first `<stop>` and one more after it when the batch ran longer (a quirk of their mask),
//!   and picks the first best of `log p(d|E) - temperature * log p(d)`;
//! - the text is their `Indexer.reconstruct`: words up to the first `<stop>`, specials
//!   dropped, no space before `. , ; :`, none around `-`, each sentence capitalized.

use burn::tensor::{Device, Tensor};

use milan_model::decoding::{ints, to_vec};
use milan_model::model::{Captioner, LanguageModel};
use milan_model::vocab::{Padded, START_ID, STOP_ID, Vocabulary};

/// One decoded description: tokens in our ids (the batch's full length for beam search), the
/// captioner's log-probability, and the score that chose it (the same, or the PMI score).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub tokens: Vec<usize>,
    pub log_prob: f32,
    pub score: f32,
}

fn argmax(row: &[f32]) -> usize {
    // The first of equal maxima, as torch.argmax.
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Their `strategy='greedy', mi=False` on `features` [N, K, D].
pub fn greedy(captioner: &Captioner, features: Tensor<3>, length: usize) -> Vec<Decoded> {
    let device = features.device();
    let n = features.dims()[0];
    let (encoded, mut state) = captioner.encode(features);
    let mut out = vec![
        Decoded {
            tokens: Vec::new(),
            log_prob: 0.0,
            score: 0.0,
        };
        n
    ];
    let mut current = vec![START_ID as i64; n];
    for _ in 0..length {
        let step = captioner.step(&encoded, state, ints(current.clone(), &device));
        state = step.state;
        let v = step.log_probs.dims()[1];
        let lp = to_vec(step.log_probs);
        for (i, d) in out.iter_mut().enumerate() {
            let row = &lp[i * v..(i + 1) * v];
            let best = argmax(row);
            d.tokens.push(best);
            d.log_prob += row[best];
            current[i] = best as i64;
        }
    }
    for d in &mut out {
        d.score = d.log_prob;
    }
    out
}

#[derive(Clone)]
struct Beam {
    tokens: Vec<usize>,
    score: f32,
}

/// AllenNLP's beam search over `features` [N, K, D]: every neuron's beam (`beam` hypotheses,
/// best first), all of the batch's length.
pub fn beam_search(
    captioner: &Captioner,
    features: Tensor<3>,
    beam: usize,
    length: usize,
) -> Vec<Vec<Decoded>> {
    let device = features.device();
    let n = features.dims()[0];
    let (encoded, state) = captioner.encode(features);
    let step = captioner.step(&encoded, state, ints(vec![START_ID as i64; n], &device));
    let v = step.log_probs.dims()[1];
    assert!(
        beam <= v,
        "a beam of {beam} is wider than the vocabulary ({v})"
    );
    let lp = to_vec(step.log_probs);
    let mut beams: Vec<Vec<Beam>> = (0..n)
        .map(|i| {
            let row = &lp[i * v..(i + 1) * v];
            top((0..v).map(|t| (row[t], 0usize, t)).collect(), beam)
                .into_iter()
                .map(|(score, _, t)| Beam {
                    tokens: vec![t],
                    score,
                })
                .collect()
        })
        .collect();
    // Every neuron's rows, `beam` each, in beam order.
    let rows: Vec<usize> = (0..n).flat_map(|i| std::iter::repeat_n(i, beam)).collect();
    let rows_encoded = encoded.rows(&rows);
    let mut rows_state = step
        .state
        .select(ints(rows.iter().map(|&r| r as i64).collect(), &device));
    for _ in 1..length {
        if beams
            .iter()
            .flatten()
            .all(|b| b.tokens.last() == Some(&STOP_ID))
        {
            break;
        }
        let last: Vec<i64> = beams
            .iter()
            .flatten()
            .map(|b| *b.tokens.last().expect("a token") as i64)
            .collect();
        let step = captioner.step(&rows_encoded, rows_state, ints(last, &device));
        let lp = to_vec(step.log_probs);
        let mut parents: Vec<i64> = Vec::with_capacity(n * beam);
        for (i, hyps) in beams.iter_mut().enumerate() {
            let mut cands: Vec<(f32, usize, usize)> = Vec::with_capacity(beam * v);
            for (j, b) in hyps.iter().enumerate() {
                let r = i * beam + j;
                if b.tokens.last() == Some(&STOP_ID) {
                    cands.push((b.score, j, STOP_ID));
                } else {
                    let row = &lp[r * v..(r + 1) * v];
                    cands.extend((0..v).map(|t| (b.score + row[t], j, t)));
                }
            }
            let chosen = top(cands, beam);
            let next: Vec<Beam> = chosen
                .into_iter()
                .map(|(score, j, t)| {
                    parents.push((i * beam + j) as i64);
                    let mut tokens = hyps[j].tokens.clone();
                    tokens.push(t);
                    Beam { tokens, score }
                })
                .collect();
            *hyps = next;
        }
        rows_state = step.state.select(ints(parents, &device));
    }
    beams
        .into_iter()
        .map(|hyps| {
            hyps.into_iter()
                .map(|b| Decoded {
                    tokens: b.tokens,
                    log_prob: b.score,
                    score: b.score,
                })
                .collect()
        })
        .collect()
}

/// The `k` best candidates, best first; equal scores keep the candidates' order.
fn top(mut cands: Vec<(f32, usize, usize)>, k: usize) -> Vec<(f32, usize, usize)> {
    let k = k.min(cands.len());
    if k < cands.len() {
        cands.select_nth_unstable_by(k, |a, b| {
            b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
        });
        cands.truncate(k);
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    cands
}

/// log p(d) of each beam hypothesis as their reranking counts it: `[<start>] + tokens`,
/// masked after the token that follows the first `<stop>`.
pub fn lm_scores(lm: &LanguageModel, hyps: &[&Decoded], device: &Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(hyps.len());
    // Chunks bound the [rows, steps, vocabulary] log-probabilities held at once.
    for chunk in hyps.chunks(64) {
        let steps = chunk.iter().map(|h| h.tokens.len()).max().unwrap_or(0);
        if steps == 0 {
            out.extend(std::iter::repeat_n(0.0, chunk.len()));
            continue;
        }
        let mut inputs = Vec::with_capacity(chunk.len() * steps);
        for h in chunk {
            assert_eq!(h.tokens.len(), steps, "a batch's hypotheses share a length");
            inputs.push(START_ID as i64);
            inputs.extend(h.tokens[..steps - 1].iter().map(|&t| t as i64));
        }
        let padded = Padded {
            targets: inputs.clone(),
            inputs,
            batch: chunk.len(),
            steps,
        };
        let lp = lm.forward(&padded, device);
        let v = lp.dims()[2];
        let lp = lp
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float data");
        for (b, h) in chunk.iter().enumerate() {
            let first_stop = h.tokens.iter().position(|&t| t == STOP_ID);
            let keep = first_stop.map_or(steps, |q| (q + 2).min(steps));
            let mut sum = 0.0f32;
            for (t, &token) in h.tokens.iter().enumerate().take(keep) {
                sum += lp[(b * steps + t) * v + token];
            }
            out.push(sum);
        }
    }
    out
}

/// Their `strategy='rerank'`: beam search, then the first best PMI score of each beam.
pub fn rerank(
    captioner: &Captioner,
    lm: &LanguageModel,
    features: Tensor<3>,
    beam: usize,
    length: usize,
    temperature: f32,
) -> Vec<Decoded> {
    let device = features.device();
    let beams = beam_search(captioner, features, beam, length);
    let flat: Vec<&Decoded> = beams.iter().flatten().collect();
    let prior = lm_scores(lm, &flat, &device);
    let mut at = 0;
    beams
        .iter()
        .map(|hyps| {
            let mut best: Option<Decoded> = None;
            for h in hyps {
                let score = h.log_prob - temperature * prior[at];
                at += 1;
                if best.as_ref().is_none_or(|b| score > b.score) {
                    best = Some(Decoded { score, ..h.clone() });
                }
            }
            best.expect("a beam of at least one hypothesis")
        })
        .collect()
}

/// Their `Indexer.reconstruct` of generated tokens (our ids).
pub fn reconstruct(vocab: &Vocabulary, tokens: &[usize]) -> String {
    let words: Vec<&str> = tokens
        .iter()
        .take_while(|&&t| t != STOP_ID)
        .filter(|&&t| t > milan_model::vocab::UNK_ID)
        .map(|&t| vocab.token(t))
        .collect();
    let mut text = words.join(" ");
    for p in [".", ",", ";", ":"] {
        text = text.replace(&format!(" {p}"), p);
    }
    text = text.replace(" -", "-").replace("- ", "-");
    let sentences: Vec<String> = text.split('.').map(|s| capitalize(s.trim())).collect();
    sentences.join(". ").trim().to_owned()
}

/// Python's `str.capitalize`: the first character upper case, the rest lower case.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_rebuilt_as_their_indexer_does() {
        let vocab = Vocabulary::from_tokens(
            [
                "<pad>", "<start>", "<stop>", "<unk>", "red", "dogs", ".", ",", "-", "and", "Sky",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        );
        // red , dogs - and <unk> . sky <stop> dogs
        let ids = [4, 7, 5, 8, 9, 3, 6, 10, 2, 5];
        assert_eq!(reconstruct(&vocab, &ids), "Red, dogs-and. Sky");
        assert_eq!(reconstruct(&vocab, &[2, 4]), "");
        assert_eq!(reconstruct(&vocab, &[1, 0, 4, 6]), "Red.");
    }

    #[test]
    fn top_keeps_the_best_in_order() {
        let c = vec![(0.1, 0, 0), (0.5, 0, 1), (0.3, 1, 0), (0.5, 1, 2)];
        assert_eq!(top(c, 3), vec![(0.5, 0, 1), (0.5, 1, 2), (0.3, 1, 0)]);
    }
}
