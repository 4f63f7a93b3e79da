//! How images become an ONNX network's input: size, normalisation, prefix tokens, layout. Plain
//! data, outside `onnx` so that a build without the `onnx` feature still parses the
//! options that describe it.

use crate::layout::Layout;

/// How images become the network's input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Side of the square input; `None`: the model's own when its input declares one, else 224.
    pub size: Option<usize>,
    /// Per-channel mean and standard deviation of `x / 255` (torchvision's ImageNet values by
    /// default).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Tokens before the patch grid (class, registers); detected when `None`.
    pub prefix_tokens: Option<usize>,
    /// The layout of rank-4 outputs the graph does not settle ([`crate::layout`]); `None`: a
    /// square map decides, else the output is refused asking for it.
    pub layout: Option<Layout>,
}

impl Default for InputSpec {
    fn default() -> Self {
        InputSpec {
            size: None,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            prefix_tokens: None,
            layout: None,
        }
    }
}
