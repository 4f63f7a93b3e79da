//! Image encoders in burn and the readers of their published weights.
//!
//! - [`torch_legacy`]: PyTorch state dicts in the pre-1.6 (non-zip) format;
//! - [`efficientnet`]: EfficientNet-Lite0 with its ImageNet weights;
//! - [`imagenet`]: the ImageNet class names.

pub mod efficientnet;
pub mod imagenet;
pub mod torch_legacy;
