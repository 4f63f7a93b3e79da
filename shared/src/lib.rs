//! The data contract of milan-rs: what the annotator and the trainer agree on.
//!
//! - [`model_key`]: `arch/dataset` keys and the catalog of the seven MILANNOTATIONS networks;
//! - [`split`]: named groups of keys and the paper's generalization splits, with seeded hold-outs;
//! - [`roster`]: a corpus's own networks and split pairs (`roster.json`), for corpora beyond the paper's;
//! - [`milannotations`]: the on-disk dataset layout, read memory-mapped and written atomically;
//! - [`cleaning`]: the clean-up the reference applied to raw crowd descriptions;
//! - [`tokenize`]: word tokens for vocabularies, and back;
//! - [`lexicon`]: what descriptions name (objects, colours, ...), plurals folded, shares per group;
//! - [`wire`]: the annotator's JSON API as types, for the server and its clients;
//! - [`closed_pipe`]: both command lines end quietly when their reader closes the pipe;
//! - [`progress`]: bars on a terminal, log lines without one, for both command lines;
//! - [`atomic`]: files and folders that appear whole or not at all;
//! - [`random`]: seeded shuffles and draws that replay on every machine and release.
//!
//! This crate knows nothing of web servers, databases or tensors, and builds in seconds.
//!
//! ```
//! use milan_shared::split::Split;
//!
//! let across_arch = Split::AcrossArch.experiments();
//! assert_eq!(across_arch[0].name, "alexnet->resnet152");
//! assert_eq!(across_arch[0].test[0].to_string(), "resnet152/imagenet");
//! ```

pub mod atomic;
pub mod cleaning;
pub mod closed_pipe;
pub mod lexicon;
pub mod milannotations;
pub mod model_key;
pub mod neuron;
pub mod progress;
pub mod random;
pub mod roster;
pub mod split;
pub mod tokenize;
pub mod wire;

pub use model_key::{ModelKey, Task};
pub use neuron::NeuronId;
