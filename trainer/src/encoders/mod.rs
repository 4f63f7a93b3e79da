//! Image encoders in burn and the readers of their published weights.
//!
//! - [`pickle`]: pickles decoded as data, running nothing (both PyTorch formats use it);
//! - [`torch_legacy`]: PyTorch state dicts in the pre-1.6 (non-zip) format;
//! - [`torch_zip`]: PyTorch's zip format (`torch.save` since 1.6), storages read on demand;
//! - [`efficientnet`]: EfficientNet-Lite0 with its ImageNet weights;
//! - [`imagenet`]: the ImageNet class names;
//! - [`resnet`]: ResNet-18 to -152 in torchvision's layout, from safetensors or torchvision's
//!   own `.pth`;
//! - [`weights`]: checkpoints consumed key by key, batch norms folded.

pub mod efficientnet;
pub mod imagenet;
pub mod pickle;
pub mod resnet;
pub mod torch_legacy;
pub mod torch_zip;
pub mod weights;
