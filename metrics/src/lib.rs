//! Scores of generated neuron descriptions against human ones, computed exactly as the reference
//! tools compute them, so that our figures are the paper's figures.
//!
//! - [`bleu`]: BLEU as sacrebleu 2.x computes it by default (13a tokenizer, exponential smoothing,
//!   4-grams, brevity penalty against the closest reference length, several reference streams).
//! - [`normalize`]: MILAN's normalisation before scoring (lowercase, strip '.' and ' ' at the ends).
//!
//! ```
//! use milan_metrics::bleu::{corpus_bleu, BleuConfig};
//! let hyps = ["red circles"];
//! let refs = [vec!["red circles", "round red shapes"]];
//! let score = corpus_bleu(&hyps, &refs, &BleuConfig::default());
//! assert!((score.score - 100.0).abs() < 1e-9);
//! ```

pub mod bleu;

/// MILAN's normalisation of predictions and references before scoring: lowercase, then strip
/// '.' and ' ' from both ends (Python's `s.lower().strip('. ')`).
pub fn normalize(text: &str) -> String {
    text.to_lowercase().trim_matches(['.', ' ']).to_owned()
}
