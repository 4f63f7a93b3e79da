//! The trainer's view of MILANNOTATIONS: every neuron of one or more model folders with its
//! exemplar features (from the feature cache) and its cleaned, tokenized descriptions.
//!
//! Features are copied into memory (units x 15 x dims floats: 78 MB for the synthetic corpus
//! with EfficientNet-Lite0, about 4.7 GB for all of MILANNOTATIONS with ResNet-152's 3904 dims).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use burn::tensor::{Device, Tensor, TensorData};
use milan_shared::NeuronId;
use milan_shared::cleaning::clean;
use milan_shared::milannotations::{Dataset, discover};
use milan_shared::tokenize::tokenize;

use crate::probing::features::{self, Featurizer, LayerFeatures};

/// One neuron: its exemplars' features and (when annotated) its descriptions.
#[derive(Debug, Clone)]
pub struct Neuron {
    pub id: NeuronId,
    /// k x dims, row-major.
    pub features: Vec<f32>,
    /// Cleaned as the reference cleans MILANNOTATIONS (three per annotated neuron, none for a
    /// neuron to describe).
    pub descriptions: Vec<String>,
    pub tokens: Vec<Vec<String>>,
    /// The unit's NetDissect and CompExp labels, where its folder has them (`labels.csv`,
    /// written by `trainer grounded`).
    pub label: Option<crate::corpora::grounded::UnitLabels>,
}

/// Where features come from.
#[derive(Debug, Clone)]
pub struct FeatureSource {
    pub encoder: String,
    pub weights: Option<PathBuf>,
    pub cache: PathBuf,
    /// Exemplar images per encoder pass.
    pub batch: usize,
}

impl Default for FeatureSource {
    fn default() -> Self {
        FeatureSource {
            encoder: "efficientnet-lite0".into(),
            weights: None,
            cache: features::default_cache(),
            batch: 30,
        }
    }
}

/// Neurons with features, from one or many model folders.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub neurons: Vec<Neuron>,
    /// Exemplars per neuron.
    pub k: usize,
    pub dims: usize,
    pub encoder: String,
}

impl Corpus {
    /// Every annotated neuron (three descriptions or more) of every model folder at or under
    /// `root`; with `all_units`, every unit of every layer instead, described or not (but not
    /// the units an export left out: omitted.csv, zero rows).
    pub fn load(
        root: &Path,
        source: &FeatureSource,
        all_units: bool,
        device: &Device,
    ) -> Result<Corpus> {
        let (featurizer, weights) =
            features::load_featurizer(&source.encoder, source.weights.as_deref(), device)?;
        let mut corpus = Corpus {
            neurons: Vec::new(),
            k: 0,
            dims: featurizer.dims(),
            encoder: source.encoder.clone(),
        };
        for folder in discover(root)? {
            corpus.add_folder(
                &folder,
                featurizer.as_ref(),
                &weights,
                source,
                all_units,
                device,
            )?;
        }
        ensure!(
            !corpus.neurons.is_empty(),
            "{}: no {} neurons",
            root.display(),
            if all_units { "" } else { "annotated" }
        );
        Ok(corpus)
    }

    fn add_folder(
        &mut self,
        folder: &Path,
        featurizer: &dyn Featurizer,
        weights: &Path,
        source: &FeatureSource,
        all_units: bool,
        device: &Device,
    ) -> Result<()> {
        let dataset = Dataset::open(folder)?;
        let set = features::compute(
            featurizer,
            weights,
            folder,
            &source.cache,
            source.batch,
            device,
        )?;
        let key = dataset.key().clone();
        let labels = crate::corpora::grounded::read_labels(folder)?;
        let mut described: HashMap<(String, u32), &[String]> = HashMap::new();
        for a in dataset.annotated() {
            described.insert((a.layer.clone(), a.unit), &a.descriptions[..]);
        }
        for layer in dataset.layers() {
            let cached = LayerFeatures::open(&set, layer.name())?;
            let view = cached.view()?;
            let [units, k, dims] = [view.shape()[0], view.shape()[1], view.shape()[2]];
            ensure!(
                dims == self.dims,
                "{}: {dims} feature dims, expected {}",
                set.dir.display(),
                self.dims
            );
            ensure!(
                self.k == 0 || self.k == k,
                "{}/{}: {k} exemplars per unit, other folders have {}",
                folder.display(),
                layer.name(),
                self.k
            );
            self.k = k;
            for unit in 0..units {
                let texts = described.get(&(layer.name().to_owned(), unit as u32));
                // An omitted unit's rows are zero: there is nothing to describe it from.
                if texts.is_none() && (!all_units || !layer.has_exemplars(unit)) {
                    continue;
                }
                let descriptions: Vec<String> = texts
                    .map(|t| t.iter().map(|d| clean(d)).collect())
                    .unwrap_or_default();
                let tokens = descriptions.iter().map(|d| tokenize(d)).collect();
                let features = view
                    .index_axis(ndarray::Axis(0), unit)
                    .iter()
                    .copied()
                    .collect();
                let label = labels
                    .as_ref()
                    .and_then(|l| l.get(&(layer.name().to_owned(), unit as u32)))
                    .cloned();
                self.neurons.push(Neuron {
                    id: NeuronId::new(key.clone(), layer.name(), unit as u32),
                    features,
                    descriptions,
                    tokens,
                    label,
                });
            }
        }
        Ok(())
    }

    /// Position of every neuron by id.
    pub fn index(&self) -> HashMap<NeuronId, usize> {
        self.neurons
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect()
    }

    /// Positions of `ids`, which must all be in the corpus.
    pub fn positions(&self, ids: &[NeuronId]) -> Result<Vec<usize>> {
        let index = self.index();
        ids.iter()
            .map(|id| {
                index
                    .get(id)
                    .copied()
                    .with_context(|| format!("{id}: not in the corpus"))
            })
            .collect()
    }

    /// The features of the neurons at `positions`: [n, k, dims].
    pub fn features(&self, positions: &[usize], device: &Device) -> Tensor<3> {
        let mut data = Vec::with_capacity(positions.len() * self.k * self.dims);
        for &p in positions {
            data.extend_from_slice(&self.neurons[p].features);
        }
        Tensor::from_data(
            TensorData::new(data, [positions.len(), self.k, self.dims]),
            device,
        )
    }

    /// Mean exemplar feature of a neuron (for the nearest-neighbour baseline).
    pub fn mean_feature(&self, position: usize) -> Vec<f32> {
        let f = &self.neurons[position].features;
        let mut mean = vec![0f32; self.dims];
        for row in f.chunks(self.dims) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / self.k as f32;
            }
        }
        mean
    }
}

impl milan_model::Units for Corpus {
    fn count(&self) -> usize {
        self.neurons.len()
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoder(&self) -> &str {
        &self.encoder
    }

    fn features(&self, positions: &[usize], device: &Device) -> Tensor<3> {
        Corpus::features(self, positions, device)
    }

    fn descriptions(&self, position: usize) -> &[String] {
        &self.neurons[position].descriptions
    }

    fn tokens(&self, position: usize) -> &[Vec<String>] {
        &self.neurons[position].tokens
    }
}
