//! The trainer's library: what the `trainer` binary runs, usable from tests and other tools.
//! The MILAN model itself is the `milan-model` crate, the networks and weight formats the
//! `milan-networks` crate; this crate is the pipeline around them, one folder per stage:
//!
//! - [`util`]: the backend, checksums, plots (depends on no other module here);
//! - [`assets`]: what is fetched from the registries and the hub, and resumable downloads;
//! - [`probing`]: exemplar sets and masked features of a network's units;
//! - [`corpora`]: photos, lettering, the grounded corpus, the authors' released material;
//! - [`corpus`]: a MILANNOTATIONS root as the model reads it (`milan_model::Units`);
//! - [`evaluation`]: BERTScore, the scoring protocol, bootstrap intervals, baseline labels;
//! - [`experiments`]: `fit` and the commands that read runs back;
//! - [`applications`]: analysis, ablation and editing;
//! - [`follow`]: training while the annotator collects descriptions.
//!
//! ARCHITECTURE.md states which stage may use which.

pub mod applications;
pub mod assets;
pub mod corpora;
#[cfg(feature = "train")]
pub mod corpus;
#[cfg(feature = "train")]
pub mod evaluation;
#[cfg(feature = "train")]
pub mod experiments;
#[cfg(feature = "train")]
pub mod follow;
pub mod probing;
pub mod util;
