//! A synthetic MILANNOTATIONS corpus: the test bed of milan-rs.
//!
//! Real MILANNOTATIONS are not in any package registry, so every part of the project that reads
//! them is exercised on this corpus. It has the seven model keys with their real layer names.
//! Every unit has a latent concept from a compositional grammar ([`concept`]); its exemplars are
//! procedurally drawn scenes that show the concept among distractors, with masks over the
//! concept; three simulated workers with their own habits ([`annotators`]) describe it. What
//! concepts a network's units get depends on its task, dataset, architecture and the layer's depth
//! ([`profile`]), so that the across-network splits are harder than within-network.
//!
//! Everything is a pure function of the seed: a unit's content depends on (seed, key, layer, unit)
//! alone.
//!
//! ```no_run
//! use milan_synth::{SynthConfig, generate};
//! let summary = generate(std::path::Path::new("data/synth"), &SynthConfig::default(), &|| {})?;
//! println!("{} units", summary.units());
//! # Ok::<(), milan_synth::SynthError>(())
//! ```

pub mod annotators;
pub mod concept;
pub mod profile;
mod random;
mod render;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use milan_shared::ModelKey;
use milan_shared::milannotations::{DatasetWriter, EXEMPLARS_PER_UNIT, FormatError, LayerShape};
use milan_shared::model_key::catalog;
use rand_chacha::ChaCha8Rng;

use crate::concept::{Concept, Kind, Position, Relation, Texture};
use crate::profile::{Profile, profile};
use crate::random::{Draw, unit_rng};

/// The file beside annotations.csv that records each unit's concept (the ground truth).
pub const CONCEPTS_FILE: &str = "concepts.csv";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// Units per layer, capped at the layer's real width.
    pub units_per_layer: usize,
    /// Side of the square exemplar images (MILANNOTATIONS uses 224).
    pub image_size: usize,
    pub seed: u64,
    /// Which keys to generate; the seven MILANNOTATIONS keys by default.
    pub keys: Vec<ModelKey>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            units_per_layer: 20,
            image_size: 64,
            seed: 0,
            keys: catalog().iter().map(|m| m.key()).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}")]
    Config(String),
}

/// The layers of a key and how many units each gets. Keys outside the catalog get five layers
/// named `layer1`..`layer5`.
pub fn layers_of(key: &ModelKey, units_per_layer: usize) -> Vec<(String, usize)> {
    match key.known() {
        Some(model) => model
            .layers
            .iter()
            .map(|l| (l.name.to_owned(), units_per_layer.min(l.units as usize)))
            .collect(),
        None => (1..=5)
            .map(|i| (format!("layer{i}"), units_per_layer))
            .collect(),
    }
}

/// Number of units `config` generates, for progress bars.
pub fn total_units(config: &SynthConfig) -> usize {
    config
        .keys
        .iter()
        .flat_map(|k| layers_of(k, config.units_per_layer))
        .map(|(_, n)| n)
        .sum()
}

/// One generated unit.
#[derive(Debug, Clone)]
pub struct UnitSample {
    pub concept: Concept,
    /// (k, 3, S, S)
    pub images: Vec<u8>,
    /// (k, 1, S, S), 0/1
    pub masks: Vec<u8>,
    /// Three descriptions with the index of the worker ([`annotators::PERSONAS`]) who wrote each.
    pub descriptions: [(usize, String); 3],
}

fn sample_concept(profile: &Profile, rng: &mut ChaCha8Rng) -> Concept {
    let kind = Kind::ALL[rng.weighted(&profile.kind_weights)];
    let colour = |rng: &mut ChaCha8Rng| rng.pick(profile.colours);
    let shape = |rng: &mut ChaCha8Rng| rng.pick(profile.shapes);
    match kind {
        Kind::Colour => Concept::Colour(colour(rng)),
        Kind::Pattern => Concept::Pattern(rng.pick(&Texture::PATTERNS), colour(rng)),
        Kind::Shape => Concept::Shape(shape(rng)),
        Kind::ColouredShape => Concept::ColouredShape(colour(rng), shape(rng)),
        Kind::TexturedShape => {
            Concept::TexturedShape(colour(rng), rng.pick(&Texture::PATTERNS), shape(rng))
        }
        Kind::PlacedShape => {
            Concept::PlacedShape(colour(rng), shape(rng), rng.pick(&Position::ALL))
        }
        Kind::Relation => {
            let (c1, s1) = (colour(rng), shape(rng));
            let (mut c2, mut s2) = (colour(rng), shape(rng));
            while (c2, s2) == (c1, s1) {
                c2 = colour(rng);
                s2 = shape(rng);
            }
            Concept::Relation(c1, s1, rng.pick(&Relation::ALL), c2, s2)
        }
    }
}

/// Generates one unit: a pure function of its arguments.
pub fn sample_unit(
    key: &ModelKey,
    layer: &str,
    layer_index: usize,
    layers: usize,
    unit: usize,
    image_size: usize,
    seed: u64,
) -> UnitSample {
    let profile = profile(key, layer_index, layers);
    let mut rng = unit_rng(seed, &key.to_string(), layer, unit);
    let concept = sample_concept(&profile, &mut rng);
    let descriptions = annotators::describe(&concept, &mut rng);
    let plane = image_size * image_size;
    let mut images = Vec::with_capacity(EXEMPLARS_PER_UNIT * 3 * plane);
    let mut masks = Vec::with_capacity(EXEMPLARS_PER_UNIT * plane);
    for _ in 0..EXEMPLARS_PER_UNIT {
        let exemplar = render::render(&concept, &profile, image_size, &mut rng);
        images.extend_from_slice(&exemplar.rgb);
        masks.extend_from_slice(&exemplar.mask);
    }
    UnitSample {
        concept,
        images,
        masks,
        descriptions,
    }
}

/// What one key's folder holds.
#[derive(Debug, Clone)]
pub struct KeySummary {
    pub key: ModelKey,
    pub dir: PathBuf,
    pub layers: usize,
    pub units: usize,
    pub kinds: BTreeMap<Kind, usize>,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub keys: Vec<KeySummary>,
}

impl Summary {
    pub fn units(&self) -> usize {
        self.keys.iter().map(|k| k.units).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.keys.iter().map(|k| k.bytes).sum()
    }

    /// A table: one row per key with its layers, units, descriptions and concept kinds.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{:<22} {:>6} {:>6} {:>6}",
            "key", "layers", "units", "descr"
        );
        for kind in Kind::ALL {
            let _ = write!(out, " {:>7}", short(kind));
        }
        out.push('\n');
        for k in &self.keys {
            let _ = write!(
                out,
                "{:<22} {:>6} {:>6} {:>6}",
                k.key.to_string(),
                k.layers,
                k.units,
                k.units * 3
            );
            for kind in Kind::ALL {
                let n = k.kinds.get(&kind).copied().unwrap_or(0);
                let _ = write!(out, " {:>6.0}%", 100.0 * n as f64 / k.units.max(1) as f64);
            }
            out.push('\n');
        }
        out
    }
}

fn short(kind: Kind) -> &'static str {
    match kind {
        Kind::Colour => "colour",
        Kind::Pattern => "pattern",
        Kind::Shape => "shape",
        Kind::ColouredShape => "col+shp",
        Kind::TexturedShape => "tex+shp",
        Kind::PlacedShape => "placed",
        Kind::Relation => "relat.",
    }
}

fn validate(config: &SynthConfig) -> Result<(), SynthError> {
    if config.units_per_layer == 0 {
        return Err(SynthError::Config(
            "--units-per-layer must be at least 1".into(),
        ));
    }
    if !(16..=1024).contains(&config.image_size) {
        return Err(SynthError::Config(format!(
            "--image-size {} is out of range: use 16 to 1024 (MILANNOTATIONS uses 224)",
            config.image_size
        )));
    }
    Ok(())
}

/// Writes one key's folder `<root>/<arch>/<dataset>`, calling `progress` after every unit.
pub fn generate_key(
    root: &Path,
    key: &ModelKey,
    config: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<KeySummary, SynthError> {
    validate(config)?;
    let layers = layers_of(key, config.units_per_layer);
    let mut writer = DatasetWriter::create(root, key)?;
    let mut concepts = String::from("layer,unit,kind,concept\n");
    let mut kinds = BTreeMap::new();
    let mut units = 0;
    let mut source_index = 0u64;
    for (layer_index, (layer, n_units)) in layers.iter().enumerate() {
        let shape = LayerShape {
            units: *n_units,
            k: EXEMPLARS_PER_UNIT,
            height: config.image_size,
            width: config.image_size,
        };
        let mut layer_writer = writer.layer(layer, shape, true)?;
        for unit in 0..*n_units {
            let sample = sample_unit(
                key,
                layer,
                layer_index,
                layers.len(),
                unit,
                config.image_size,
                config.seed,
            );
            // Ids index a virtual source dataset in which every exemplar image is its own.
            let ids: Vec<u64> = (source_index..source_index + EXEMPLARS_PER_UNIT as u64).collect();
            source_index += EXEMPLARS_PER_UNIT as u64;
            layer_writer.write_unit(unit, &sample.masks, Some(&sample.images), &ids)?;
            for (_, text) in &sample.descriptions {
                writer.describe(layer, unit as u32, text);
            }
            let _ = writeln!(
                concepts,
                "{layer},{unit},{},{}",
                sample.concept.kind().name(),
                sample.concept
            );
            *kinds.entry(sample.concept.kind()).or_insert(0) += 1;
            units += 1;
            progress();
        }
        layer_writer.finish()?;
    }
    writer.write_extra(CONCEPTS_FILE, concepts.as_bytes())?;
    let dir = writer.finish()?;
    let bytes = dir_size(&dir);
    Ok(KeySummary {
        key: key.clone(),
        dir,
        layers: layers.len(),
        units,
        kinds,
        bytes,
    })
}

/// Writes every key of `config` under `root`, two keys at a time.
pub fn generate(
    root: &Path,
    config: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<Summary, SynthError> {
    validate(config)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(config.keys.len().max(1));
    let results: Vec<Result<KeySummary, SynthError>> = std::thread::scope(|scope| {
        let chunks: Vec<Vec<(usize, &ModelKey)>> = (0..threads)
            .map(|t| {
                config
                    .keys
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % threads == t)
                    .collect()
            })
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, key)| (i, generate_key(root, key, config, progress)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Result<KeySummary, SynthError>)> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("a generator thread panicked"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    Ok(Summary {
        keys: results.into_iter().collect::<Result<_, _>>()?,
    })
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}
