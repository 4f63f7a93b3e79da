//! Small utilities every stage may use: the tensor backend chosen at run time ([`backend`]),
//! the allocator's tuning ([`allocator`]),
//! file checksums ([`checksum`]), plots ([`plot`]) and the error of a build without ONNX
//! ([`onnx_feature`]). They depend on no other module of the
//! trainer. (Atomic files and seeded shuffles are `milan_shared::atomic` and `random`.)

pub mod allocator;
pub mod backend;
pub mod checksum;
pub mod onnx_feature;
#[cfg(feature = "train")]
pub mod plot;
