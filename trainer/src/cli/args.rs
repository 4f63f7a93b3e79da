//! Arguments several commands share: features, training and the BERTScore model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use milan_model::train::MilanConfig;
use milan_trainer::corpus::FeatureSource;
use milan_trainer::evaluation::scoring::BertScoreChoice;

/// Feature options: the image encoder, its weights, the cache and the backend.
#[derive(Debug, Clone, clap::Args)]
pub struct FeatureArgs {
    /// Image encoder for the exemplar features: efficientnet-lite0, or resnet18..152 with
    /// torchvision's weights (--weights, or registered). Default for `fit`: the reference's
    /// encoder on the paper's model keys (ResNet-50, as experiments/generalization.py takes
    /// `milan.encoder()`), EfficientNet-Lite0 on a corpus with its own roster (grounded);
    /// elsewhere EfficientNet-Lite0, or the run's own encoder.
    #[arg(long)]
    pub encoder: Option<String>,
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

/// The encoder the reference's generalization and baseline experiments use: `milan.encoder()`,
/// a `PyramidConvEncoder` whose default config is torchvision's ImageNet ResNet-50 (conv1 and
/// layer1..layer4, 3904 dims). The released checkpoints were trained on ResNet-101 instead.
pub const REFERENCE_ENCODER: &str = "resnet50";

/// The encoder when none is named.
pub const DEFAULT_ENCODER: &str = "efficientnet-lite0";

impl FeatureArgs {
    /// The named encoder, or `default`.
    pub fn encoder_or(&self, default: &str) -> String {
        self.encoder.clone().unwrap_or_else(|| default.to_owned())
    }

    /// Where features come from, with `default` as the encoder when none is named.
    pub fn source_with(&self, default: &str) -> FeatureSource {
        FeatureSource {
            encoder: self.encoder_or(default),
            weights: self.weights.clone(),
            cache: self
                .cache
                .clone()
                .unwrap_or_else(milan_trainer::probing::features::default_cache),
            ..FeatureSource::default()
        }
    }

    /// Where features come from, EfficientNet-Lite0 unless an encoder is named.
    pub fn source(&self) -> FeatureSource {
        self.source_with(DEFAULT_ENCODER)
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

/// Which BERTScore setting `--bertscore` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BertScoreArg {
    /// The paper's when roberta-large is fetched, else all-MiniLM-L6-v2, said loudly.
    Auto,
    /// The paper's: roberta-large layer 17, idf, bert_score 0.3.13's baseline.
    Paper,
    /// all-MiniLM-L6-v2 (all six layers), idf, a baseline computed from crowd phrases.
    Minilm,
}

/// The BERTScore model of `fit`, `rescore`, `follow`, `simulate-active` and `sweep-lambda`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScorerArgs {
    /// The BERTScore setting: auto (the paper's when `trainer assets fetch roberta-large` has
    /// run, else MiniLM with a warning), paper or minilm.
    #[arg(long, value_enum, default_value = "auto")]
    pub bertscore: BertScoreArg,
    /// A BERTScore model folder of your own (Hugging Face BERT or RoBERTa) instead; rescaled with
    /// its bertscore-baseline.csv, computed there when missing.
    #[arg(long, conflicts_with = "bertscore")]
    pub bertscore_model: Option<PathBuf>,
    /// Layers of the BERTScore model to run (bert_score's num_layers; default: all); with the
    /// default setting it means all-MiniLM-L6-v2 cut to that many layers.
    #[arg(long = "num-layers")]
    pub bertscore_layers: Option<usize>,
}

impl ScorerArgs {
    /// The setting these arguments name.
    pub fn choice(&self) -> Result<BertScoreChoice> {
        if let Some(dir) = &self.bertscore_model {
            return Ok(BertScoreChoice::Custom {
                dir: dir.clone(),
                layers: self.bertscore_layers,
            });
        }
        Ok(match (self.bertscore, self.bertscore_layers) {
            (BertScoreArg::Paper, Some(n))
                if n != milan_trainer::evaluation::scoring::PAPER_LAYERS =>
            {
                bail!(
                    "--bertscore paper is layer {}; --num-layers {n} is another setting (use                  --bertscore-model DIR --num-layers {n})",
                    milan_trainer::evaluation::scoring::PAPER_LAYERS
                )
            }
            (BertScoreArg::Paper, _) => BertScoreChoice::Paper,
            (BertScoreArg::Minilm, None) => BertScoreChoice::MiniLm,
            (BertScoreArg::Auto, None) => BertScoreChoice::Auto,
            (BertScoreArg::Minilm | BertScoreArg::Auto, Some(n)) => BertScoreChoice::Custom {
                dir: milan_trainer::assets::path("minilm")?,
                layers: Some(n),
            },
        })
    }
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
