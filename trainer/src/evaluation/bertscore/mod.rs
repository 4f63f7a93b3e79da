//! BERTScore (Zhang et al. 2020) as the `bert_score` package 0.3.x computes it.
//!
//! - [`model`]: a BERT or RoBERTa encoder in burn, built from a Hugging Face folder
//!   (config.json + model.safetensors; key mapping in [`loader`]).
//! - [`score`]: tokenisation with `tokenizers`, idf weights from the references, greedy cosine
//!   matching, several references per candidate, baseline rescaling;
//! - [`baseline`]: the rescale baseline of a model, computed from random pairs of crowd phrases;
//! - [`paper`]: roberta-large, the paper's model, fetched from the hub with bert_score's baseline.

pub mod baseline;
pub mod cpu;
pub mod loader;
pub mod model;
pub mod paper;
pub mod score;

pub use model::{BertConfig, BertModel};
pub use score::{BertScorer, ScorerOptions, Scores};

/// The layer bert_score uses for roberta-large (its `model2layers`), the paper's BERTScore.
pub const ROBERTA_LARGE_LAYER: usize = 17;
