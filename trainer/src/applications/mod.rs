//! What descriptions are for (milan-reference.md section 7): [`analysis`] (what descriptions
//! name, per layer; also the concepts `trainer audit` searches), [`ablation`] (units switched
//! off, intact against ablated) and [`editing`] (the paper's editing case end to end).

pub mod ablation;
pub mod analysis;
pub mod editing;
