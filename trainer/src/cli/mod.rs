//! The `trainer` command line: one module per command, named after it (`sweep-lambda` is
//! `sweep_lambda`), and the arguments they share (`args`); `preview` draws contact sheets for
//! `synth` and `audit`. Binary-only: the library (`milan_trainer`) knows nothing of it.

pub mod ablate;
pub mod analyze;
pub mod args;
pub mod assets;
pub mod audit;
pub mod bench;
pub mod bench_encoders;
pub mod bench_model;
pub mod catalog;
pub mod classify;
pub mod compare_splits;
pub mod data;
pub mod describe;
pub mod edit;
pub mod exemplars;
pub mod features;
pub mod fit;
pub mod follow;
pub mod grounded;
pub mod latents;
pub mod layers;
pub mod plot_gain;
pub mod preview;
pub mod report;
pub mod rescore;
pub mod score;
pub mod simulate_active;
pub mod sweep_lambda;
pub mod synth;
