//! The MILAN model (milan-reference.md section 3), independent of where its data comes from:
//!
//! - [`vocab`]: the vocabulary and padded token batches;
//! - [`model`]: the captioner p(d|E) (show, attend and tell over exemplar features) and the
//!   language model p(d), and both built from weights in their PyTorch names;
//! - [`lstm`]: an LSTM cell step and a whole LSTM layer, with their own backward passes under
//!   autodiff;
//! - [`decoding`]: greedy, AllenNLP's beam search and MILAN's PMI reranking;
//! - [`train`]: the run's configuration, the early-stopped AdamW loop for both models,
//!   checkpoints and `--resume`, loading a trained run;
//! - [`history`]: per-epoch records and the best epoch;
//! - [`units`]: what training and describing read of a corpus ([`Units`]).
//!
//! It knows nothing of MILANNOTATIONS folders, features caches, scoring or commands: the trainer
//! gives it [`Units`].

pub mod decoding;
pub mod history;
pub mod lstm;
pub mod model;
pub mod train;
pub mod units;
pub mod vocab;

pub use units::Units;
