//! What descriptions are for (milan-reference.md section 7): [`analysis`] (what descriptions
//! name, per layer; also the concepts `trainer audit` searches), [`ablation`] (units switched
//! off, intact against ablated), [`editing`] (the paper's editing case end to end) and
//! [`catalog`] (every described unit as a browsable, searchable site).

pub mod ablation;
pub mod analysis;
pub mod catalog;
#[cfg(feature = "train")]
pub mod editing;
