//! The `trainer` command line: one module per command (or family of commands), and the arguments
//! they share (`args`). Binary-only: the library (`milan_trainer`) knows nothing of it.

pub mod ablate;
pub mod analyze;
pub mod args;
pub mod audit;
pub mod bench;
pub mod bench_model;
pub mod classify;
pub mod data;
pub mod edit;
pub mod exemplars;
pub mod features;
pub mod fit;
pub mod follow;
pub mod grounded;
pub mod pretrained;
pub mod preview;
pub mod report;
pub mod score;
pub mod simulate;
