//! The integration tests of the trainer, one binary (`cargo test -p milan-trainer --test it`), a
//! module per area; `common` finds the fetched assets and makes small networks.

mod backends;
mod bertscore;
mod catalog;
mod cli;
mod common;
mod decoding;
mod efficientnet;
mod exemplars;
mod features;
mod fit;
mod follow;
mod generated;
mod grounded;
mod model_passes;
mod onnx;
mod released;
mod resnet;
mod train;
