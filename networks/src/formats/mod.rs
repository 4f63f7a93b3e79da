//! Weight formats: what PyTorch and Hugging Face write, read without Python.

pub mod pickle;
pub mod torch_legacy;
pub mod torch_zip;
pub mod weights;
