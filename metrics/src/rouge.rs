//! ROUGE exactly as the PyPI package `rouge` 1.0.1 computes it, which is what MILAN's reference
//! code reports (`src/utils/metrics.py`: `Rouge().get_scores(hyps, refs, avg=True,
//! ignore_empty=True)`, each prediction paired with each of its references).
//!
//! That package is not ROUGE as Lin's Perl script defines it, and its own rules are kept here:
//! - a text is split into "sentences" at every `.`; empty pieces are dropped, and each piece's
//!   whitespace runs (Python's `str.split()`) are collapsed to single spaces, so a piece of only
//!   spaces becomes an empty sentence and then an empty word;
//! - words are the sentences' pieces between single spaces, across sentence boundaries;
//! - n-grams are counted as a *set* (its default `exclusive=True`): a repeated n-gram counts once
//!   in the hypothesis, in the reference and in their overlap;
//! - P = overlap / hypothesis n-grams, R = overlap / reference n-grams (0 when a side has none),
//!   F = 2PR / (P + R + 1e-8);
//! - ROUGE-L is its "summary level" variant: the union, over every (reference sentence,
//!   hypothesis sentence) pair, of the *distinct words* of the longest common subsequence that
//!   its backtracking picks (ties go left, as its `_recon_lcs` does), divided by the distinct
//!   words of the reference (R) and of the hypothesis (P);
//! - `ignore_empty` drops pairs whose hypothesis or reference is the empty string (not one of
//!   only dots: that hypothesis has no sentence, and the package raises);
//! - averages are plain means over the pairs left.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Recall, precision and F of one ROUGE variant.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Prf {
    pub r: f64,
    pub p: f64,
    pub f: f64,
}

impl Prf {
    fn from_counts(hyp: usize, reference: usize, overlap: usize) -> Prf {
        let p = if hyp == 0 {
            0.0
        } else {
            overlap as f64 / hyp as f64
        };
        let r = if reference == 0 {
            0.0
        } else {
            overlap as f64 / reference as f64
        };
        Prf {
            r,
            p,
            f: f_score(p, r),
        }
    }
}

/// The package's F: `2 * ((p * r) / (p + r + 1e-8))`, in that order of operations.
fn f_score(p: f64, r: f64) -> f64 {
    2.0 * ((p * r) / (p + r + 1e-8))
}

/// ROUGE-1, ROUGE-2 and ROUGE-L, serialised under the package's own names.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScores {
    #[serde(rename = "rouge-1")]
    pub rouge_1: Prf,
    #[serde(rename = "rouge-2")]
    pub rouge_2: Prf,
    #[serde(rename = "rouge-l")]
    pub rouge_l: Prf,
}

/// Where the package raises instead of scoring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RougeError {
    /// A hypothesis with no sentence (e.g. only dots): the package's "Hypothesis is empty.".
    #[error("pair {pair}: the hypothesis {text:?} has no sentence (rouge 1.0.1 raises here)")]
    EmptyHypothesis { pair: usize, text: String },
    /// A reference with no sentence: the package's "Reference is empty.".
    #[error("pair {pair}: the reference {text:?} has no sentence (rouge 1.0.1 raises here)")]
    EmptyReference { pair: usize, text: String },
    /// Nothing left to average (every pair had an empty side, or there were none).
    #[error("no pair with a non-empty hypothesis and reference to score")]
    NoPairs,
    #[error("{hyps} hypotheses but {refs} references")]
    Lengths { hyps: usize, refs: usize },
}

/// Python's `str.isspace` set: Unicode White_Space plus the four ASCII separators U+001C..U+001F.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The package's sentences of a text: split at '.', empty pieces dropped, whitespace collapsed.
fn sentences(text: &str) -> Vec<String> {
    text.split('.')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            piece
                .split(python_space)
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Words of sentences: each split at single spaces (an empty sentence is one empty word).
fn words(sentences: &[String]) -> Vec<&str> {
    sentences.iter().flat_map(|s| s.split(' ')).collect()
}

fn ngrams<'a>(n: usize, words: &'a [&'a str]) -> HashSet<&'a [&'a str]> {
    if words.len() < n {
        return HashSet::new();
    }
    words.windows(n).collect()
}

fn rouge_n(n: usize, hyp: &[String], reference: &[String]) -> Prf {
    let (hw, rw) = (words(hyp), words(reference));
    let (h, r) = (ngrams(n, &hw), ngrams(n, &rw));
    let overlap = h.intersection(&r).count();
    Prf::from_counts(h.len(), r.len(), overlap)
}

/// The distinct words of the longest common subsequence of `x` and `y` that the package's
/// `_recon_lcs` backtracks to: on a match take it, else step towards the larger neighbour, ties
/// to `y`'s side (`j - 1`).
fn lcs_words<'a>(x: &[&'a str], y: &[&str]) -> Vec<&'a str> {
    let (n, m) = (x.len(), y.len());
    let mut table = vec![0usize; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in 1..=n {
        for j in 1..=m {
            table[at(i, j)] = if x[i - 1] == y[j - 1] {
                table[at(i - 1, j - 1)] + 1
            } else {
                table[at(i - 1, j)].max(table[at(i, j - 1)])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        if x[i - 1] == y[j - 1] {
            out.push(x[i - 1]);
            i -= 1;
            j -= 1;
        } else if table[at(i - 1, j)] > table[at(i, j - 1)] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    out
}

fn rouge_l(hyp: &[String], reference: &[String]) -> Prf {
    let m = words(reference).into_iter().collect::<HashSet<_>>().len();
    let n = words(hyp).into_iter().collect::<HashSet<_>>().len();
    // The package adds each reference sentence's new words of the union to a running sum, which
    // totals the size of the union of every pair's LCS words.
    let mut union: HashSet<&str> = HashSet::new();
    for r in reference {
        let rw: Vec<&str> = r.split(' ').collect();
        for h in hyp {
            let hw: Vec<&str> = h.split(' ').collect();
            union.extend(lcs_words(&rw, &hw));
        }
    }
    let llcs = union.len() as f64;
    let (r, p) = (llcs / m as f64, llcs / n as f64);
    Prf {
        r,
        p,
        f: f_score(p, r),
    }
}

/// ROUGE-1, -2 and -L of one hypothesis against one reference (the package's `get_scores` for
/// one pair).
pub fn pair(hyp: &str, reference: &str) -> Result<RougeScores, RougeError> {
    pair_at(0, hyp, reference)
}

fn pair_at(index: usize, hyp: &str, reference: &str) -> Result<RougeScores, RougeError> {
    let (h, r) = (sentences(hyp), sentences(reference));
    if h.is_empty() {
        return Err(RougeError::EmptyHypothesis {
            pair: index,
            text: hyp.to_owned(),
        });
    }
    if r.is_empty() {
        return Err(RougeError::EmptyReference {
            pair: index,
            text: reference.to_owned(),
        });
    }
    Ok(RougeScores {
        rouge_1: rouge_n(1, &h, &r),
        rouge_2: rouge_n(2, &h, &r),
        rouge_l: rouge_l(&h, &r),
    })
}

/// The package's `get_scores(hyps, refs, avg=True, ignore_empty=...)`: the mean of every pair's
/// scores, `hyps[i]` against `refs[i]`.
pub fn average<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[R],
    ignore_empty: bool,
) -> Result<RougeScores, RougeError> {
    if hyps.len() != refs.len() {
        return Err(RougeError::Lengths {
            hyps: hyps.len(),
            refs: refs.len(),
        });
    }
    let mut sum = RougeScores::default();
    let mut count = 0usize;
    for (i, (h, r)) in hyps.iter().zip(refs).enumerate() {
        let (h, r) = (h.as_ref(), r.as_ref());
        if ignore_empty && (h.is_empty() || r.is_empty()) {
            continue;
        }
        let s = pair_at(i, h, r)?;
        for (acc, x) in [
            (&mut sum.rouge_1, s.rouge_1),
            (&mut sum.rouge_2, s.rouge_2),
            (&mut sum.rouge_l, s.rouge_l),
        ] {
            acc.r += x.r;
            acc.p += x.p;
            acc.f += x.f;
        }
        count += 1;
    }
    if count == 0 {
        return Err(RougeError::NoPairs);
    }
    let c = count as f64;
    for acc in [&mut sum.rouge_1, &mut sum.rouge_2, &mut sum.rouge_l] {
        acc.r /= c;
        acc.p /= c;
        acc.f /= c;
    }
    Ok(sum)
}

/// MILAN's ROUGE (`src/utils/metrics.py`): each normalised prediction paired with each of its
/// normalised, non-empty references, averaged by [`average`] with `ignore_empty`. The texts
/// must already be normalised ([`crate::normalize`]).
pub fn milan<H: AsRef<str>, R: AsRef<str>>(
    hyps: &[H],
    refs: &[Vec<R>],
) -> Result<RougeScores, RougeError> {
    let mut h = Vec::new();
    let mut r = Vec::new();
    for (hyp, group) in hyps.iter().zip(refs) {
        for reference in group {
            if reference.as_ref().is_empty() {
                continue;
            }
            h.push(hyp.as_ref());
            r.push(reference.as_ref());
        }
    }
    average(&h, &r, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn unigrams_and_bigrams_count_as_sets() {
        // hyp {the, red, red?} -> {the, red}; ref {the, red, ball}.
        let s = pair("the red red", "the red ball").unwrap();
        close(s.rouge_1.p, 1.0);
        close(s.rouge_1.r, 2.0 / 3.0);
        close(
            s.rouge_1.f,
            2.0 * ((1.0 * (2.0 / 3.0)) / (1.0 + 2.0 / 3.0 + 1e-8)),
        );
        // bigrams: {the red, red red} vs {the red, red ball}: one shared.
        close(s.rouge_2.p, 0.5);
        close(s.rouge_2.r, 0.5);
    }

    #[test]
    fn sentences_split_at_dots_and_words_cross_them() {
        assert_eq!(sentences("a b. c  d.. e"), ["a b", "c d", "e"]);
        assert_eq!(sentences(" . x"), ["", "x"]);
        assert_eq!(words(&sentences("a b. c")), ["a", "b", "c"]);
        // Bigrams cross the sentence boundary, as the package flattens words first.
        let s = pair("a. b", "a b").unwrap();
        close(s.rouge_2.f, 2.0 * ((1.0 * 1.0) / (2.0 + 1e-8)));
    }

    #[test]
    fn a_hypothesis_of_dots_raises_and_ignore_empty_only_drops_empty_strings() {
        assert!(matches!(
            pair("...", "a"),
            Err(RougeError::EmptyHypothesis { .. })
        ));
        assert!(matches!(
            pair("a", ""),
            Err(RougeError::EmptyReference { .. })
        ));
        assert_eq!(average(&[""], &["a"], true), Err(RougeError::NoPairs));
        let one = average(&["", "a b"], &["x", "a c"], true).unwrap();
        assert_eq!(one, pair("a b", "a c").unwrap());
        assert!(average(&["..", "a"], &["x", "a"], true).is_err());
    }

    #[test]
    fn rouge_l_takes_the_union_of_lcs_words_over_sentence_pairs() {
        // The package's docstring example: r = w1 w2 w3 w4 w5, C = {w1 w2 w6 w7 w8, w1 w3 w8 w9
        // w5}: the union LCS is {w1, w2, w3, w5}.
        let s = pair("w1 w2 w6 w7 w8. w1 w3 w8 w9 w5", "w1 w2 w3 w4 w5").unwrap();
        close(s.rouge_l.r, 4.0 / 5.0);
        close(s.rouge_l.p, 4.0 / 8.0);
    }

    #[test]
    fn backtracking_ties_follow_the_package() {
        // x = a b, y = b a: at (2, 2) both neighbours hold 1, so it steps to j - 1 and matches
        // "b"; the other LCS, "a", is not the one the package picks.
        assert_eq!(lcs_words(&["a", "b"], &["b", "a"]), ["b"]);
        assert_eq!(lcs_words(&["a", "b", "c"], &["a", "c"]), ["c", "a"]);
    }

    #[test]
    fn milan_pairs_each_prediction_with_each_non_empty_reference() {
        let got = milan(
            &["red", "blue"],
            &[vec!["red", ""], vec!["blue sky", "sky"]],
        )
        .unwrap();
        let want = average(&["red", "blue", "blue"], &["red", "blue sky", "sky"], true).unwrap();
        assert_eq!(got, want);
    }
}
