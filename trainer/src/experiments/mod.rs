//! The paper's experiments: `fit` (a generalization split's experiments over trials, with the
//! baselines), the systems' predictions and their files ([`systems`], [`predictions`]), run
//! summaries ([`summary`]), and what reads runs back: [`rescore`], [`report`], [`sweep_lambda`]
//! and [`compare_splits`] (each named after its command).

pub mod compare_splits;
pub mod fit;
pub mod predictions;
pub mod report;
pub mod rescore;
pub mod summary;
pub mod sweep_lambda;
pub mod systems;
