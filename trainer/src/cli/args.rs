//! Arguments several commands share: features, training and the BERTScore model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use milan_trainer::data::FeatureSource;
use milan_trainer::train::MilanConfig;

/// Feature options: the image encoder, its weights, the cache and the backend.
#[derive(Debug, Clone, clap::Args)]
pub struct FeatureArgs {
    /// Image encoder for the exemplar features: efficientnet-lite0, or resnet18..152 with
    /// --weights (MILAN used ResNet-152).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub encoder: String,
    /// The encoder's weights (default: its fetched or registered asset).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Feature cache folder (default: $MILAN_CACHE or ./cache).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Backend: flex (CPU, default) or, in a build with the `tch` feature, tch / tch-cuda[:N].
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

impl FeatureArgs {
    pub fn source(&self) -> FeatureSource {
        FeatureSource {
            encoder: self.encoder.clone(),
            weights: self.weights.clone(),
            cache: self
                .cache
                .clone()
                .unwrap_or_else(milan_trainer::features::default_cache),
            ..FeatureSource::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct TrainingArgs {
    /// A JSON file overriding numbers of the configuration (see `trainer config`), e.g.
    /// {"hidden": 256, "max_epochs": 20}.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub scorer: ScorerArgs,
}

/// The BERTScore model of `fit`, `follow`, `simulate-active` and `sweep-lambda`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScorerArgs {
    /// BERTScore model folder (default: all-MiniLM-L6-v2 from `trainer assets fetch minilm`);
    /// a Hugging Face roberta-large folder with `--num-layers 17` is the paper's setting (put
    /// bert_score's roberta-large baseline there as bertscore-baseline.csv to rescale as it did).
    #[arg(long)]
    pub bertscore_model: Option<PathBuf>,
    /// Layers of the BERTScore model to run (bert_score's num_layers; default: all).
    #[arg(long = "num-layers")]
    pub bertscore_layers: Option<usize>,
}

impl TrainingArgs {
    pub fn config(&self) -> Result<MilanConfig> {
        read_config(self.config.as_deref())
    }
}

pub fn read_config(path: Option<&Path>) -> Result<MilanConfig> {
    let Some(path) = path else {
        return Ok(MilanConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let known = serde_json::to_value(MilanConfig::default())?;
    if let (Some(given), Some(known)) = (value.as_object(), known.as_object()) {
        for key in given.keys() {
            if !known.contains_key(key) {
                bail!(
                    "{}: unknown field {key:?}; the fields are {}",
                    path.display(),
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    serde_json::from_value(value)
        .with_context(|| format!("{}: a field has the wrong type", path.display()))
}
