//! Scores of generated neuron descriptions against human ones, computed exactly as the reference
//! tools compute them, so that our figures are the paper's figures.
//!
//! - [`bleu`]: BLEU as sacrebleu 2.x computes it by default (13a tokenizer, exponential smoothing,
//!   4-grams, brevity penalty against the closest reference length, several reference streams).
//! - [`rouge`]: ROUGE-1, -2 and -L as the PyPI package `rouge` 1.0.1 computes them (MILAN's
//!   reference code reports it beside BLEU and BERTScore).
//! - [`normalize`]: MILAN's normalisation before scoring (lowercase, strip '.' and ' ' at the ends).
//!
//! ```
//! use milan_metrics::bleu::{corpus_bleu, BleuConfig};
//! let hyps = ["red circles on the left"];
//! let refs = [vec!["red circles on the left", "round red shapes at left"]];
//! let score = corpus_bleu(&hyps, &refs, &BleuConfig::default());
//! assert!((score.score - 100.0).abs() < 1e-9);
//! // Shorter than 4 words: no 4-grams, so corpus BLEU is 0 (sentence BLEU uses fewer orders).
//! let short = corpus_bleu(&["red circles"], &[vec!["red circles"]], &BleuConfig::default());
//! assert_eq!(short.score, 0.0);
//! assert!((milan_metrics::bleu::sentence_bleu("red circles", &["red circles"]).score - 100.0).abs() < 1e-9);
//! ```

pub mod bleu;
pub mod rouge;

/// MILAN's normalisation of predictions and references before scoring: lowercase, then strip
/// '.' and ' ' from both ends (Python's `s.lower().strip('. ')`).
pub fn normalize(text: &str) -> String {
    text.to_lowercase().trim_matches(['.', ' ']).to_owned()
}
