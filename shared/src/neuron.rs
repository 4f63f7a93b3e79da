//! The identity of one neuron: a model key, a layer name and a unit index.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model_key::ModelKey;

/// One unit of one layer of one network; the granularity at which MILAN splits data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NeuronId {
    pub key: ModelKey,
    pub layer: String,
    pub unit: u32,
}

impl NeuronId {
    pub fn new(key: ModelKey, layer: impl Into<String>, unit: u32) -> Self {
        NeuronId {
            key,
            layer: layer.into(),
            unit,
        }
    }
}

impl fmt::Display for NeuronId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.key, self.layer, self.unit)
    }
}
