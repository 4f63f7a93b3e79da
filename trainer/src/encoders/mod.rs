//! Image encoders in burn and the readers of their published weights.
//!
//! - [`torch_legacy`]: PyTorch state dicts in the pre-1.6 (non-zip) format;
//! - [`efficientnet`]: EfficientNet-Lite0 with its ImageNet weights;
//! - [`imagenet`]: the ImageNet class names;
//! - [`resnet`]: ResNet-18 to -152 in torchvision's layout, from safetensors;
//! - [`weights`]: checkpoints consumed key by key, batch norms folded.

pub mod efficientnet;
pub mod imagenet;
pub mod resnet;
pub mod torch_legacy;
pub mod weights;
