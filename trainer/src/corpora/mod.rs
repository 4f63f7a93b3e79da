//! Corpora of exemplar sets with descriptions, and the images they are drawn from: the real
//! photo set of the demo ([`photos`]), words drawn on images ([`lettering`]), the grounded corpus
//! of real networks' units described from per-pixel truth ([`grounded`]) and the MILAN authors'
//! released material ([`released`]). Depends on `probing`, `assets`, `util` and the crates below.

#[cfg(feature = "train")]
pub mod grounded;
pub mod lettering;
pub mod photos;
pub mod released;
