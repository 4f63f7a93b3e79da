//! How descriptions are scored: BERTScore as bert_score computes it ([`bertscore`]), the
//! reference's scoring protocol and the BERTScore setting ([`scoring`]), intervals over trials and
//! units ([`bootstrap`]), and baseline labels as text ([`labels`]). Depends on `assets` and the
//! crates below; knows nothing of training.

pub mod bertscore;
pub mod bootstrap;
pub mod labels;
pub mod scoring;
