//! Switching units off: the paper's editing step. A classifier runs twice over the same images,
//! intact and with chosen units zeroed after their layer; accuracy and each class's change are
//! compared. Units come from the CSV `trainer describe` writes, optionally only those whose
//! descriptions mention some words (`--matching text,letters`), matched as
//! [`crate::applications::analysis::Concept`] does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use burn::tensor::{Device, Tensor, TensorData};

use crate::applications::analysis::{Concept, Described};
#[cfg(feature = "onnx")]
use milan_networks::Network;
use milan_networks::efficientnet::{EfficientNetLite0, block_channels};
use milan_networks::input_spec::InputSpec;
#[cfg(feature = "onnx")]
use milan_networks::onnx::OnnxNetwork;
use milan_networks::resnet::{Depth, LAYERS, ResNet};

/// The units of `described` to switch off: all of them, or those with a description that
/// mentions `matching`; each unit once, in file order.
pub fn chosen_units(described: &[Described], matching: Option<&Concept>) -> Vec<(String, u32)> {
    let mut units: Vec<(String, u32)> = Vec::new();
    for d in described {
        let key = (d.layer.clone(), d.unit);
        if units.contains(&key) {
            continue;
        }
        if matching.is_none_or(|c| !c.mentions(&d.description).is_empty()) {
            units.push(key);
        }
    }
    units
}

/// Units to switch off, by layer name, each checked against its layer by
/// [`Classifier::units`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Off(BTreeMap<String, Vec<usize>>);

impl Off {
    /// No unit off: the intact network.
    pub fn none() -> Off {
        Off::default()
    }

    /// Units in how many layers.
    pub fn layers(&self) -> usize {
        self.0.len()
    }
}

/// A classifier whose units can be switched off.
#[derive(Debug)]
pub enum Classifier {
    EfficientNet(Box<EfficientNetLite0>),
    ResNet(Box<ResNet>, Depth),
    /// Any ONNX model whose first output is [N, classes]; its layers are the nodes
    /// [`OnnxNetwork::resolve`] accepts.
    #[cfg(feature = "onnx")]
    Onnx(Box<OnnxNetwork>),
}

impl Classifier {
    /// `efficientnet-lite0` or `resnet18` ... `resnet152` with their ImageNet `weights`, or a
    /// `.onnx` file read with `input`.
    pub fn load(
        model: &str,
        weights: Option<&Path>,
        input: &InputSpec,
        threads: usize,
        device: &Device,
    ) -> Result<Classifier> {
        if model.ends_with(".onnx") {
            ensure!(
                weights.is_none(),
                "--weights is for the built-in networks; an ONNX model holds its own"
            );
            #[cfg(feature = "onnx")]
            {
                let net = OnnxNetwork::load(Path::new(model), input, threads)?;
                return Ok(Classifier::Onnx(Box::new(net)));
            }
            #[cfg(not(feature = "onnx"))]
            {
                let _ = (input, threads);
                return Err(crate::util::onnx_feature::missing(model));
            }
        }
        let weights = weights.with_context(|| format!("--model {model} needs its weights"))?;
        if model == "efficientnet-lite0" {
            let model = EfficientNetLite0::load(weights, device)?;
            return Ok(Classifier::EfficientNet(Box::new(model)));
        }
        let depth = Depth::parse(model).with_context(|| {
            format!(
                "--model {model}: use efficientnet-lite0, resnet18 ... resnet152 or a .onnx file"
            )
        })?;
        let model = ResNet::load(weights, depth, device)?;
        Ok(Classifier::ResNet(Box::new(model), depth))
    }

    /// The index and width of a built-in network's layer.
    fn layer_channels(&self, layer: &str) -> Option<(usize, usize)> {
        match self {
            Classifier::EfficientNet(_) => {
                let block = layer.strip_prefix("_blocks.")?.parse::<usize>().ok()?;
                Some((block, block_channels(block)?))
            }
            Classifier::ResNet(_, depth) => {
                let i = LAYERS.iter().position(|l| *l == layer)?;
                Some((i, depth.widths()[i]))
            }
            #[cfg(feature = "onnx")]
            Classifier::Onnx(_) => None,
        }
    }

    /// The units grouped by layer, each checked against its layer's width.
    pub fn units(&self, units: &[(String, u32)]) -> Result<Off> {
        let mut off: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (layer, unit) in units {
            let channels = match self {
                #[cfg(feature = "onnx")]
                Classifier::Onnx(net) => net
                    .resolve(layer)?
                    .kind
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .units(),
                _ => {
                    let (_, channels) = self.layer_channels(layer).with_context(|| {
                        let layers = match self {
                            Classifier::ResNet(..) => LAYERS.join(", "),
                            _ => "_blocks.0 to _blocks.15".to_owned(),
                        };
                        format!("the model has no layer {layer:?}: its layers are {layers}")
                    })?;
                    channels
                }
            };
            if *unit as usize >= channels {
                bail!("{layer} has {channels} units; unit {unit} is not one of them");
            }
            let list = off.entry(layer.clone()).or_default();
            if !list.contains(&(*unit as usize)) {
                list.push(*unit as usize);
            }
        }
        Ok(Off(off))
    }

    /// Side of the square input.
    pub fn input_size(&self) -> usize {
        match self {
            #[cfg(feature = "onnx")]
            Classifier::Onnx(net) => net.size(),
            _ => milan_networks::SIZE,
        }
    }

    /// One image (input_size x input_size) as the network's input.
    pub fn preprocess(&self, img: &image::RgbImage) -> Vec<f32> {
        match self {
            Classifier::EfficientNet(_) => milan_networks::efficientnet::preprocess(img),
            Classifier::ResNet(..) => milan_networks::resnet::preprocess(img),
            #[cfg(feature = "onnx")]
            Classifier::Onnx(net) => net.preprocess(img),
        }
    }

    /// Image files as one input batch, each resized to the input and preprocessed; an
    /// unreadable file is named.
    pub fn batch(&self, paths: &[PathBuf]) -> Result<Vec<f32>> {
        let mut input = Vec::new();
        for path in paths {
            input.extend(self.preprocess(&crate::probing::exemplars::load_image_at(
                path,
                self.input_size(),
            )?));
        }
        Ok(input)
    }

    /// Logits [n, classes] (row-major, and `classes`) of `n` preprocessed images with the units
    /// `off` (from [`Classifier::units`]) switched off.
    pub fn logits(
        &self,
        input: Vec<f32>,
        n: usize,
        off: &Off,
        device: &Device,
    ) -> Result<(Vec<f32>, usize)> {
        let by_index = || -> BTreeMap<usize, Vec<usize>> {
            off.0
                .iter()
                .map(|(layer, units)| {
                    let (i, _) = self.layer_channels(layer).expect("checked by units()");
                    (i, units.clone())
                })
                .collect()
        };
        let logits = match self {
            #[cfg(feature = "onnx")]
            Classifier::Onnx(net) => {
                let off: Vec<(String, Vec<usize>)> =
                    off.0.iter().map(|(l, u)| (l.clone(), u.clone())).collect();
                let out = net.forward_ablated(&input, n, &off)?;
                return Ok((out.logits, out.classes));
            }
            Classifier::EfficientNet(m) => {
                m.forward_ablated(tensor(input, n, device), &[], &by_index())
                    .logits
            }
            Classifier::ResNet(m, _) => {
                m.forward_ablated(tensor(input, n, device), &[], &by_index())
                    .logits
            }
        };
        let [_, classes] = logits.dims();
        let values = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
        Ok((values, classes))
    }

    /// Each image's top-1 class with the units `off` switched off.
    pub fn top1(
        &self,
        input: Vec<f32>,
        n: usize,
        off: &Off,
        device: &Device,
    ) -> Result<Vec<usize>> {
        let (values, classes) = self.logits(input, n, off, device)?;
        Ok(top1(&values, classes))
    }
}

fn tensor(input: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
    let side = milan_networks::SIZE;
    Tensor::<4>::from_data(TensorData::new(input, [n, 3, side, side]), device)
}

/// The index of each row's largest value (the first of equals).
pub fn top1(values: &[f32], classes: usize) -> Vec<usize> {
    values
        .chunks(classes.max(1))
        .map(|row| {
            (0..row.len())
                .rev()
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0)
        })
        .collect()
}

/// Image labels: a CSV `image,label` (the image's file name, a class index).
pub fn read_labels(path: &Path) -> Result<BTreeMap<String, usize>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut labels = BTreeMap::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("reading {}", path.display()))?;
        let line = record.position().map_or(0, csv::Position::line);
        let (Some(image), Some(label)) = (record.get(0), record.get(1)) else {
            bail!("{}:{line}: expected image,label", path.display());
        };
        let label: usize = label.trim().parse().with_context(|| {
            format!(
                "{}:{line}: field label: {label:?} is not a class index",
                path.display()
            )
        })?;
        labels.insert(image.trim().to_owned(), label);
    }
    Ok(labels)
}

/// One class's images and how many of them each network got right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassChange {
    pub class: usize,
    pub images: usize,
    pub intact_correct: usize,
    pub ablated_correct: usize,
}

/// Intact against ablated over one set of images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub images: usize,
    /// Against the labels, or (without labels) against the intact network's own top-1, so
    /// `intact_accuracy` is 1 and `ablated_accuracy` is the share of unchanged predictions.
    pub against_labels: bool,
    pub intact_accuracy: f64,
    pub ablated_accuracy: f64,
    /// Images whose top-1 class changed.
    pub changed: usize,
    pub per_class: Vec<ClassChange>,
}

impl Outcome {
    /// From each image's (label, intact top-1, ablated top-1); the label is the intact top-1
    /// when there are no labels.
    pub fn of(rows: &[(usize, usize, usize)], against_labels: bool) -> Outcome {
        let mut per_class: BTreeMap<usize, ClassChange> = BTreeMap::new();
        for &(label, intact, ablated) in rows {
            let c = per_class.entry(label).or_insert(ClassChange {
                class: label,
                images: 0,
                intact_correct: 0,
                ablated_correct: 0,
            });
            c.images += 1;
            c.intact_correct += usize::from(intact == label);
            c.ablated_correct += usize::from(ablated == label);
        }
        let n = rows.len().max(1) as f64;
        Outcome {
            images: rows.len(),
            against_labels,
            intact_accuracy: rows.iter().filter(|r| r.1 == r.0).count() as f64 / n,
            ablated_accuracy: rows.iter().filter(|r| r.2 == r.0).count() as f64 / n,
            changed: rows.iter().filter(|r| r.1 != r.2).count(),
            per_class: per_class.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(layer: &str, unit: u32, text: &str) -> Described {
        Described {
            model: "m".into(),
            layer: layer.into(),
            unit,
            description: text.into(),
        }
    }

    #[test]
    fn units_are_chosen_by_their_words_once_each() {
        let described = [
            d("_blocks.3", 1, "letters on signs"),
            d("_blocks.3", 1, "text"),
            d("_blocks.3", 2, "red circles"),
            d("_blocks.15", 7, "words"),
        ];
        let text = Concept::new("text", &[]);
        let chosen = chosen_units(&described, Some(&text));
        assert_eq!(
            chosen,
            [("_blocks.3".to_owned(), 1), ("_blocks.15".to_owned(), 7)]
        );
        assert_eq!(chosen_units(&described, None).len(), 3);
    }

    #[test]
    fn outcomes_count_accuracy_changes_and_classes() {
        // (label, intact, ablated)
        let o = Outcome::of(&[(0, 0, 0), (0, 0, 1), (1, 1, 1), (1, 2, 1)], true);
        assert_eq!(o.images, 4);
        assert!((o.intact_accuracy - 0.75).abs() < 1e-12);
        assert!((o.ablated_accuracy - 0.75).abs() < 1e-12);
        assert_eq!(o.changed, 2);
        assert_eq!(
            o.per_class,
            [
                ClassChange {
                    class: 0,
                    images: 2,
                    intact_correct: 2,
                    ablated_correct: 1
                },
                ClassChange {
                    class: 1,
                    images: 2,
                    intact_correct: 1,
                    ablated_correct: 2
                },
            ]
        );
    }
}
