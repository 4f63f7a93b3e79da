//! What training and describing read of a corpus: per unit, its exemplars' features and its
//! descriptions. The trainer's `Corpus` (a MILANNOTATIONS root with cached features) is one.

use burn::tensor::{Device, Tensor};

/// Units addressed by position, `0..count()`.
pub trait Units {
    /// How many units there are.
    fn count(&self) -> usize;
    /// The width of every exemplar feature.
    fn dims(&self) -> usize;
    /// The image encoder the features come from (recorded with a run).
    fn encoder(&self) -> &str;
    /// The exemplar features of the units at `positions`: [n, exemplars, dims].
    fn features(&self, positions: &[usize], device: &Device) -> Tensor<3>;
    /// A unit's descriptions, cleaned (none for a unit to describe).
    fn descriptions(&self, position: usize) -> &[String];
    /// A unit's descriptions as word tokens.
    fn tokens(&self, position: usize) -> &[Vec<String>];
}
