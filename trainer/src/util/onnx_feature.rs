//! What a build without the `onnx` feature (scripts/demo's, which leaves tract out to build
//! faster) says when asked for an ONNX network.

/// The error for `what` (a model file or a command) in a build without ONNX support.
pub fn missing(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: this trainer was built without ONNX support (the default `onnx` feature; \
         scripts/demo leaves it out to build faster). Build it with `cargo build --release \
         --locked -p milan-trainer` and run the command again"
    )
}
