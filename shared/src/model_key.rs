//! Model keys (`arch/dataset`) and the catalog of the seven networks MILANNOTATIONS annotates.
//!
//! A [`ModelKey`] is any `arch/dataset` pair: keys for a user's own network come from data (the
//! folder names of a MILANNOTATIONS tree), so parsing never consults the catalog. The catalog
//! ([`KnownModel`], [`catalog`]) holds what the paper's Table 1 says of the seven annotated keys and
//! is consulted only where the paper's splits or layer names are needed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a network was trained to do; the across-task split separates classifiers from generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Classifier,
    Generator,
    SelfSupervised,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Classifier => "classifier",
            Task::Generator => "generator",
            Task::SelfSupervised => "self-supervised",
        })
    }
}

/// A network and the dataset it was trained on, written `arch/dataset` (e.g. `alexnet/imagenet`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelKey {
    arch: String,
    dataset: String,
}

/// Why a string is not a model key, or a key or layer is not one the catalog knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid model key {0:?}: expected arch/dataset, e.g. alexnet/imagenet")]
    Malformed(String),
    #[error("unknown model key {key}: known keys are {known}")]
    UnknownKey { key: String, known: String },
    #[error("unknown layer {layer:?} of {key}: its layers are {known}")]
    UnknownLayer {
        key: String,
        layer: String,
        known: String,
    },
}

fn valid_part(part: &str) -> bool {
    // Parts become folder names: forbid separators, dot-only names and control characters.
    !part.is_empty()
        && part != "."
        && part != ".."
        && !part
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control() || c.is_whitespace())
}

impl ModelKey {
    /// A key from its two parts, e.g. the two folder names of a MILANNOTATIONS model folder.
    pub fn new(arch: &str, dataset: &str) -> Result<Self, KeyError> {
        if valid_part(arch) && valid_part(dataset) {
            Ok(ModelKey {
                arch: arch.to_owned(),
                dataset: dataset.to_owned(),
            })
        } else {
            Err(KeyError::Malformed(format!("{arch}/{dataset}")))
        }
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// The catalog entry of this key, if it is one of the seven MILANNOTATIONS keys.
    pub fn known(&self) -> Option<&'static KnownModel> {
        catalog()
            .iter()
            .find(|m| m.arch == self.arch && m.dataset == self.dataset)
    }

    /// The catalog entry, or an error that lists the known keys.
    pub fn require_known(&self) -> Result<&'static KnownModel, KeyError> {
        self.known().ok_or_else(|| KeyError::UnknownKey {
            key: self.to_string(),
            known: known_keys_list(),
        })
    }
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.arch, self.dataset)
    }
}

impl FromStr for ModelKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((arch, dataset)) => {
                ModelKey::new(arch, dataset).map_err(|_| KeyError::Malformed(s.to_owned()))
            }
            None => Err(KeyError::Malformed(s.to_owned())),
        }
    }
}

impl TryFrom<String> for ModelKey {
    type Error = KeyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ModelKey> for String {
    fn from(key: ModelKey) -> String {
        key.to_string()
    }
}

/// One annotated layer of a catalog network and how many of its units MILANNOTATIONS describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    pub name: &'static str,
    pub units: u32,
}

/// A network of the paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    pub arch: &'static str,
    pub dataset: &'static str,
    pub task: Task,
    pub layers: &'static [LayerSpec],
}

impl KnownModel {
    pub fn key(&self) -> ModelKey {
        ModelKey {
            arch: self.arch.to_owned(),
            dataset: self.dataset.to_owned(),
        }
    }

    /// Total annotated units, the "units" column of Table 1.
    pub fn units(&self) -> u32 {
        self.layers.iter().map(|l| l.units).sum()
    }

    pub fn layer(&self, name: &str) -> Result<&'static LayerSpec, KeyError> {
        self.layers
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| KeyError::UnknownLayer {
                key: format!("{}/{}", self.arch, self.dataset),
                layer: name.to_owned(),
                known: self
                    .layers
                    .iter()
                    .map(|l| l.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

const fn l(name: &'static str, units: u32) -> LayerSpec {
    LayerSpec { name, units }
}

// Per-layer widths come from each architecture (their sums are Table 1's unit counts, which a test
// pins): AlexNet as trained on ImageNet (64-192-384-256-256) and the Caffe AlexNet of Places365
// (96-256-384-384-256); ResNet-152 stem and stages (64-256-512-1024-2048), its Places365 copy with
// numbered children; BigGAN-256 (ch=96) and BigGAN-Places365 (ch=128) block outputs
// (16-8-8-4-2-1 x ch); the first 100 units of each DINO ViT-S/8 block's fc1.
const ALEXNET_IMAGENET: &[LayerSpec] = &[
    l("conv1", 64),
    l("conv2", 192),
    l("conv3", 384),
    l("conv4", 256),
    l("conv5", 256),
];
const ALEXNET_PLACES: &[LayerSpec] = &[
    l("conv1", 96),
    l("conv2", 256),
    l("conv3", 384),
    l("conv4", 384),
    l("conv5", 256),
];
const RESNET152_IMAGENET: &[LayerSpec] = &[
    l("conv1", 64),
    l("layer1", 256),
    l("layer2", 512),
    l("layer3", 1024),
    l("layer4", 2048),
];
const RESNET152_PLACES: &[LayerSpec] = &[
    l("0", 64),
    l("4", 256),
    l("5", 512),
    l("6", 1024),
    l("7", 2048),
];
const BIGGAN_IMAGENET: &[LayerSpec] = &[
    l("layer0", 1536),
    l("layer1", 768),
    l("layer2", 768),
    l("layer3", 384),
    l("layer4", 192),
    l("layer5", 96),
];
const BIGGAN_PLACES: &[LayerSpec] = &[
    l("layer0", 2048),
    l("layer1", 1024),
    l("layer2", 1024),
    l("layer3", 512),
    l("layer4", 256),
    l("layer5", 128),
];
const DINO_VITS8: &[LayerSpec] = &[
    l("blocks.0.mlp.fc1", 100),
    l("blocks.1.mlp.fc1", 100),
    l("blocks.2.mlp.fc1", 100),
    l("blocks.3.mlp.fc1", 100),
    l("blocks.4.mlp.fc1", 100),
    l("blocks.5.mlp.fc1", 100),
    l("blocks.6.mlp.fc1", 100),
    l("blocks.7.mlp.fc1", 100),
    l("blocks.8.mlp.fc1", 100),
    l("blocks.9.mlp.fc1", 100),
    l("blocks.10.mlp.fc1", 100),
    l("blocks.11.mlp.fc1", 100),
];

static CATALOG: [KnownModel; 7] = [
    KnownModel {
        arch: "alexnet",
        dataset: "imagenet",
        task: Task::Classifier,
        layers: ALEXNET_IMAGENET,
    },
    KnownModel {
        arch: "alexnet",
        dataset: "places365",
        task: Task::Classifier,
        layers: ALEXNET_PLACES,
    },
    KnownModel {
        arch: "resnet152",
        dataset: "imagenet",
        task: Task::Classifier,
        layers: RESNET152_IMAGENET,
    },
    KnownModel {
        arch: "resnet152",
        dataset: "places365",
        task: Task::Classifier,
        layers: RESNET152_PLACES,
    },
    KnownModel {
        arch: "biggan",
        dataset: "imagenet",
        task: Task::Generator,
        layers: BIGGAN_IMAGENET,
    },
    KnownModel {
        arch: "biggan",
        dataset: "places365",
        task: Task::Generator,
        layers: BIGGAN_PLACES,
    },
    KnownModel {
        arch: "dino_vits8",
        dataset: "imagenet",
        task: Task::SelfSupervised,
        layers: DINO_VITS8,
    },
];

/// The seven MILANNOTATIONS keys, in the order of the paper's Table 1.
pub fn catalog() -> &'static [KnownModel] {
    &CATALOG
}

fn known_keys_list() -> String {
    catalog()
        .iter()
        .map(|m| format!("{}/{}", m.arch, m.dataset))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_counts_match_table_1() {
        let counts: Vec<(String, u32)> = catalog()
            .iter()
            .map(|m| (m.key().to_string(), m.units()))
            .collect();
        let expected = [
            ("alexnet/imagenet", 1152),
            ("alexnet/places365", 1376),
            ("resnet152/imagenet", 3904),
            ("resnet152/places365", 3904),
            ("biggan/imagenet", 3744),
            ("biggan/places365", 4992),
            ("dino_vits8/imagenet", 1200),
        ];
        assert_eq!(
            counts,
            expected
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn keys_parse_and_print() {
        let key: ModelKey = "resnet152/places365".parse().unwrap();
        assert_eq!(key.arch(), "resnet152");
        assert_eq!(key.dataset(), "places365");
        assert_eq!(key.to_string(), "resnet152/places365");
        assert_eq!(key.require_known().unwrap().task, Task::Classifier);
    }

    #[test]
    fn user_keys_are_accepted_but_not_known() {
        let key: ModelKey = "my_net/my_photos".parse().unwrap();
        assert!(key.known().is_none());
        let err = key.require_known().unwrap_err().to_string();
        assert!(err.contains("unknown model key my_net/my_photos"), "{err}");
        assert!(err.contains("alexnet/imagenet") && err.contains("dino_vits8/imagenet"));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "alexnet",
            "alexnet/",
            "/imagenet",
            "a/b/c",
            "../x",
            "a b/c",
            "",
        ] {
            assert!(bad.parse::<ModelKey>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn unknown_layer_lists_the_known_ones() {
        let model = "alexnet/imagenet"
            .parse::<ModelKey>()
            .unwrap()
            .require_known()
            .unwrap();
        assert_eq!(model.layer("conv3").unwrap().units, 384);
        let err = model.layer("conv9").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown layer \"conv9\" of alexnet/imagenet: its layers are conv1, conv2, conv3, conv4, conv5"
        );
    }

    #[test]
    fn keys_round_trip_through_serde_as_strings() {
        let key: ModelKey = "biggan/imagenet".parse().unwrap();
        let s: String = key.clone().into();
        assert_eq!(ModelKey::try_from(s).unwrap(), key);
    }
}
