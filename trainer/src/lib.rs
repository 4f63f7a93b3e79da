//! The trainer's library: what the `trainer` binary runs, usable from tests and other tools.
//!
//! - [`bertscore`]: BERTScore as bert_score 0.3.x computes it, with a BERT/RoBERTa encoder in burn;
//! - [`assets`]: models and data fetched from the package registries into an assets dir;
//!   [`hub`]: roberta-large from the Hugging Face Hub at a pinned revision;
//! - [`exemplars`]: exemplar sets (top images and masks per unit) for any network;
//! - [`features`]: MILAN's masked pyramid features of exemplars, cached;
//! - [`photos`]: the real photo set of the demo, from Debian and PyPI packages;
//! - [`grounded`]: a corpus of real neurons with descriptions grounded in per-pixel truth;
//! - [`data`]: neurons with their features and cleaned descriptions;
//! - [`vocab`]: the captioner's vocabulary and padded token batches;
//! - [`model`]: the MILAN captioner p(d|E) and language model p(d);
//! - [`decoding`]: greedy, beam search and PMI reranking;
//! - [`train`]: the training loop, checkpoints and the run configuration;
//! - [`scoring`]: the reference's scoring protocol (BLEU, ROUGE, BERTScore against all
//!   references; annotators leave-one-out) and the BERTScore setting;
//! - [`fit`]: the generalization splits' experiments, baselines and summary;
//! - [`rescore`]: a fit run's predictions scored again (`trainer rescore`);
//! - [`report`]: fit runs as the paper's table (`trainer report`);
//! - [`compexp`]: compositional explanations (Mu & Andreas 2020), a baseline;
//! - [`by_network`]: one system's score per test network across runs of different splits;
//! - [`pmi_sweep`]: MILAN-PMI re-decoded at several weights λ from a fit run's trials;
//! - [`history`]: per-epoch records and the best epoch;
//! - [`checksum`]: SHA-256 of files;
//! - [`plot`]: learning-curve PNGs;
//! - [`analysis`]: what descriptions name (a lexicon of feature classes), for `trainer analyze`
//!   and `trainer audit`; [`ablation`]: units switched off, intact against ablated;
//! - [`backend`]: the tensor backend chosen at run time.

pub mod ablation;
pub mod analysis;
pub mod assets;
pub mod backend;
pub mod bertscore;
pub mod by_network;
pub mod checksum;
pub mod compexp;
pub mod data;
pub mod editing;
pub mod exemplars;
pub mod features;
pub mod fit;
pub mod follow;
pub mod grounded;
pub mod hub;
pub mod lettering;
pub mod photos;
pub mod plot;
pub mod pmi_sweep;
pub mod released;
pub mod report;
pub mod rescore;
pub mod scoring;
