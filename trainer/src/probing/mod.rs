//! What a network's units look like, measured on images: exemplar sets (the top-k images and
//! masks of every unit, [`exemplars`]) and MILAN's masked pyramid features of exemplars, cached
//! ([`features`]); and the latent datasets generators are probed with ([`latents`]), their
//! exemplars drawn over them ([`generated`]). Depends on `assets` (weights) and the `milan-networks` crate.

pub mod exemplars;
pub mod features;
#[cfg(feature = "onnx")]
pub mod generated;
pub mod latents;
