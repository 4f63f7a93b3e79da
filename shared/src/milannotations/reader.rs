//! Reading a MILANNOTATIONS model folder.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::ArrayView4;

use super::error::FormatError;
use super::npy::{LayerShape, U8Array};
use super::{
    ANNOTATIONS_FILE, DESCRIPTIONS_PER_UNIT, IDS_FILE, IMAGES_FILE, MASKS_FILE, OMITTED_FILE,
};
use crate::model_key::ModelKey;
use crate::neuron::NeuronId;

/// A unit with (at least) three descriptions; exactly the first three are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatedUnit {
    pub layer: String,
    pub unit: u32,
    pub descriptions: [String; DESCRIPTIONS_PER_UNIT],
}

/// A unit that annotations.csv describes fewer than three times, left out as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedUnit {
    pub layer: String,
    pub unit: u32,
    pub descriptions: usize,
}

/// One layer folder: its arrays (mapped) and its ids.
#[derive(Debug)]
pub struct Layer {
    name: String,
    masks: U8Array,
    images: Option<U8Array>,
    ids: Vec<Vec<u64>>,
    omitted: BTreeSet<usize>,
}

/// One unit's exemplars, borrowed from the mapped arrays.
#[derive(Debug)]
pub struct Exemplars<'a> {
    pub unit: usize,
    /// (k, 1, H, W), values 0 or 1.
    pub masks: ArrayView4<'a, u8>,
    /// (k, 3, H, W), when the layer has images.npy.
    pub images: Option<ArrayView4<'a, u8>>,
    /// Indices of the k exemplars in the source image dataset.
    pub ids: &'a [u64],
}

impl Layer {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> LayerShape {
        self.masks.shape()
    }

    pub fn units(&self) -> usize {
        self.masks.shape().units
    }

    pub fn masks(&self) -> &U8Array {
        &self.masks
    }

    pub fn images(&self) -> Option<&U8Array> {
        self.images.as_ref()
    }

    /// False for a unit an export left out (omitted.csv): its rows are zero, not exemplars.
    pub fn has_exemplars(&self, unit: usize) -> bool {
        unit < self.units() && !self.omitted.contains(&unit)
    }

    /// Units whose rows were left out by an export, ascending.
    pub fn omitted(&self) -> impl Iterator<Item = usize> + '_ {
        self.omitted.iter().copied()
    }

    pub fn ids(&self, unit: usize) -> &[u64] {
        &self.ids[unit]
    }

    /// One unit's exemplars. Panics if `unit >= self.units()`.
    pub fn exemplars(&self, unit: usize) -> Exemplars<'_> {
        Exemplars {
            unit,
            masks: self.masks.unit(unit),
            images: self.images.as_ref().map(|a| a.unit(unit)),
            ids: &self.ids[unit],
        }
    }

    /// Drops one unit's pages from the resident set (see [`U8Array::release`]).
    pub fn release(&self, unit: usize) {
        self.masks.release(unit);
        if let Some(images) = &self.images {
            images.release(unit);
        }
    }

    /// Every unit in order, releasing each unit's pages once the next one is asked for, so that a
    /// pass over the layer keeps memory flat however large the arrays are.
    pub fn iter(&self) -> ExemplarIter<'_> {
        ExemplarIter {
            layer: self,
            next: 0,
        }
    }
}

/// See [`Layer::iter`].
#[derive(Debug)]
pub struct ExemplarIter<'a> {
    layer: &'a Layer,
    next: usize,
}

impl<'a> Iterator for ExemplarIter<'a> {
    type Item = Exemplars<'a>;

    fn next(&mut self) -> Option<Exemplars<'a>> {
        if self.next > 0 {
            self.layer.release(self.next - 1);
        }
        if self.next >= self.layer.units() {
            return None;
        }
        self.next += 1;
        Some(self.layer.exemplars(self.next - 1))
    }
}

/// A MILANNOTATIONS model folder `<root>/<arch>/<dataset>`.
#[derive(Debug)]
pub struct Dataset {
    key: ModelKey,
    dir: PathBuf,
    layers: Vec<Layer>,
    has_annotations: bool,
    annotated: Vec<AnnotatedUnit>,
    skipped: Vec<SkippedUnit>,
}

impl Dataset {
    /// Opens a model folder. Its key comes from the last two path components. annotations.csv is
    /// optional (a folder of exemplars awaiting descriptions has none).
    pub fn open(dir: &Path) -> Result<Dataset, FormatError> {
        let dir = fs::canonicalize(dir).map_err(|e| FormatError::io(dir, e))?;
        let key = key_of(&dir)?;
        let layers = read_layers(&dir, &key)?;
        let annotations_path = dir.join(ANNOTATIONS_FILE);
        let (has_annotations, annotated, skipped) = if annotations_path.exists() {
            let (a, s) = read_annotations(&annotations_path, &layers)?;
            (true, a, s)
        } else {
            (false, Vec::new(), Vec::new())
        };
        Ok(Dataset {
            key,
            dir,
            layers,
            has_annotations,
            annotated,
            skipped,
        })
    }

    pub fn key(&self) -> &ModelKey {
        &self.key
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Layers in network order for catalog keys, else in natural order of their names.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    pub fn has_annotations(&self) -> bool {
        self.has_annotations
    }

    /// Units with three or more descriptions, by layer (in [`Dataset::layers`] order) then unit.
    pub fn annotated(&self) -> &[AnnotatedUnit] {
        &self.annotated
    }

    /// Units described fewer than three times; the reference loaders drop them, and so do we.
    pub fn skipped(&self) -> &[SkippedUnit] {
        &self.skipped
    }

    pub fn neurons(&self) -> Vec<NeuronId> {
        self.annotated
            .iter()
            .map(|a| NeuronId::new(self.key.clone(), a.layer.clone(), a.unit))
            .collect()
    }
}

/// The model folders under `path`: `path` itself when it is one (it has annotations.csv or a
/// layer folder with masks.npy), else every `<arch>/<dataset>` below it that is one, sorted.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, FormatError> {
    if is_model_folder(path)? {
        return Ok(vec![path.to_owned()]);
    }
    let mut found = Vec::new();
    for arch in sorted_subdirs(path)? {
        for dataset in sorted_subdirs(&arch)? {
            if is_model_folder(&dataset)? {
                found.push(dataset);
            }
        }
    }
    if found.is_empty() {
        return Err(FormatError::file(
            path,
            "no MILANNOTATIONS model folder here or in <arch>/<dataset> below \
             (a model folder holds annotations.csv or <layer>/masks.npy)",
        ));
    }
    Ok(found)
}

fn is_model_folder(path: &Path) -> Result<bool, FormatError> {
    if path.join(ANNOTATIONS_FILE).is_file() {
        return Ok(true);
    }
    Ok(sorted_subdirs(path)?
        .iter()
        .any(|d| d.join(MASKS_FILE).is_file()))
}

fn sorted_subdirs(path: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let entries = fs::read_dir(path).map_err(|e| FormatError::io(path, e))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FormatError::io(path, e))?;
        let name = entry.file_name();
        // Hidden folders are the writer's temporaries and editors' droppings, never layers.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn key_of(dir: &Path) -> Result<ModelKey, FormatError> {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_owned)
    };
    let dataset = name(Some(dir));
    let arch = name(dir.parent());
    match (arch, dataset) {
        (Some(arch), Some(dataset)) => ModelKey::new(&arch, &dataset).map_err(|e| {
            FormatError::file(dir, format!("folder names do not make a model key: {e}"))
        }),
        _ => Err(FormatError::file(
            dir,
            "a model folder must be <root>/<arch>/<dataset>",
        )),
    }
}

/// Orders names so that `blocks.2` comes before `blocks.10`.
fn natural_key(name: &str) -> Vec<(u8, u64, String)> {
    let mut parts = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            let (d, r) = rest.split_at(digits);
            parts.push((0, d.parse().unwrap_or(u64::MAX), d.to_owned()));
            rest = r;
        } else {
            let len = rest
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit())
                .map_or(rest.len(), |(i, _)| i);
            let (t, r) = rest.split_at(len);
            parts.push((1, 0, t.to_owned()));
            rest = r;
        }
    }
    parts
}

fn read_layers(dir: &Path, key: &ModelKey) -> Result<Vec<Layer>, FormatError> {
    let mut layers = Vec::new();
    for layer_dir in sorted_subdirs(dir)? {
        let name = layer_dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| FormatError::file(&layer_dir, "layer folder name is not UTF-8"))?
            .to_owned();
        layers.push(read_layer(&layer_dir, name)?);
    }
    let order = |name: &str| {
        key.known()
            .and_then(|m| m.layers.iter().position(|l| l.name == name))
            .unwrap_or(usize::MAX)
    };
    layers.sort_by_cached_key(|l| (order(&l.name), natural_key(&l.name)));
    Ok(layers)
}

fn read_layer(layer_dir: &Path, name: String) -> Result<Layer, FormatError> {
    let masks_path = layer_dir.join(MASKS_FILE);
    if !masks_path.is_file() {
        return Err(FormatError::file(
            &masks_path,
            "missing: every layer folder needs masks.npy",
        ));
    }
    let masks = U8Array::open(&masks_path)?;
    if masks.channels() != 1 {
        return Err(FormatError::file(
            &masks_path,
            format!(
                "masks must have 1 channel, shape (units, k, 1, H, W); found shape {:?}",
                masks.dims()
            ),
        ));
    }
    let images_path = layer_dir.join(IMAGES_FILE);
    let images = if images_path.is_file() {
        let images = U8Array::open(&images_path)?;
        if images.channels() != 3 || images.shape() != masks.shape() {
            return Err(FormatError::file(
                &images_path,
                format!(
                    "masks/images shape mismatch: images {:?} should be {:?} to match {}",
                    images.dims(),
                    masks.shape().dims(3),
                    masks_path.display()
                ),
            ));
        }
        Some(images)
    } else {
        None
    };
    let ids = read_ids(&layer_dir.join(IDS_FILE), masks.shape())?;
    let omitted_path = layer_dir.join(OMITTED_FILE);
    let omitted = if omitted_path.is_file() {
        read_omitted(&omitted_path, masks.shape().units)?
    } else {
        BTreeSet::new()
    };
    Ok(Layer {
        name,
        masks,
        images,
        ids,
        omitted,
    })
}

fn csv_line(err: &csv::Error) -> Option<u64> {
    err.position().map(csv::Position::line)
}

/// A CSV error at its line, when it has one.
fn csv_error(path: &Path, err: &csv::Error) -> FormatError {
    match csv_line(err) {
        Some(line) => FormatError::line(path, line, err.to_string()),
        None => FormatError::file(path, err.to_string()),
    }
}

fn read_ids(path: &Path, shape: LayerShape) -> Result<Vec<Vec<u64>>, FormatError> {
    let file = fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut ids = Vec::with_capacity(shape.units);
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, &e))?;
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != shape.k {
            return Err(FormatError::line(
                path,
                line,
                format!("expected {} ids, found {}", shape.k, record.len()),
            ));
        }
        let row = record
            .iter()
            .enumerate()
            .map(|(i, field)| {
                field.trim().parse::<u64>().map_err(|_| {
                    FormatError::line(
                        path,
                        line,
                        format!("field {}: {field:?} is not a non-negative integer", i + 1),
                    )
                })
            })
            .collect::<Result<Vec<u64>, _>>()?;
        ids.push(row);
    }
    if ids.len() != shape.units {
        return Err(FormatError::file(
            path,
            format!(
                "{} rows, but masks.npy has {} units (one row per unit)",
                ids.len(),
                shape.units
            ),
        ));
    }
    Ok(ids)
}

fn read_omitted(path: &Path, units: usize) -> Result<BTreeSet<usize>, FormatError> {
    let file = fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| FormatError::file(path, e.to_string()))?;
    if headers.iter().collect::<Vec<_>>() != ["unit"] {
        return Err(FormatError::line(
            path,
            1,
            format!("the header must be `unit`, found {:?}", headers.as_slice()),
        ));
    }
    let mut omitted = BTreeSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, &e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = record.get(0).unwrap_or("");
        let unit = field
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&u| u < units)
            .ok_or_else(|| {
                FormatError::line(
                    path,
                    line,
                    format!("{field:?} is not a unit of this layer (0 to {})", units - 1),
                )
            })?;
        omitted.insert(unit);
    }
    Ok(omitted)
}

type Annotations = (Vec<AnnotatedUnit>, Vec<SkippedUnit>);

fn read_annotations(path: &Path, layers: &[Layer]) -> Result<Annotations, FormatError> {
    let file = fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let to_error = |e: csv::Error| match csv_line(&e) {
        Some(line) => FormatError::line(path, line, csv_message(&e)),
        None => FormatError::file(path, csv_message(&e)),
    };
    let headers = reader.headers().map_err(to_error)?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(layer_col), Some(unit_col), Some(summary_col)) =
        (column("layer"), column("unit"), column("summary"))
    else {
        return Err(FormatError::line(
            path,
            1,
            format!(
                "missing header: expected the columns layer,unit,summary, found {:?}",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    };

    let mut by_unit: BTreeMap<(usize, u32), Vec<String>> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(to_error)?;
        let line = record.position().map_or(0, csv::Position::line);
        let layer_name = &record[layer_col];
        let layer_index = layers
            .iter()
            .position(|l| l.name == layer_name)
            .ok_or_else(|| {
                FormatError::line(
                    path,
                    line,
                    format!(
                        "field layer: unknown layer {layer_name:?}; the layer folders here are {}",
                        layers
                            .iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        let unit_text = &record[unit_col];
        let unit: u32 = unit_text.trim().parse().map_err(|_| {
            FormatError::line(
                path,
                line,
                format!("field unit: {unit_text:?} is not a non-negative integer"),
            )
        })?;
        let layer = &layers[layer_index];
        if unit as usize >= layer.units() {
            return Err(FormatError::line(
                path,
                line,
                format!(
                    "field unit: unit {unit} out of range: layer {} has {} units in {}",
                    layer.name,
                    layer.units(),
                    layer.masks.path().display()
                ),
            ));
        }
        if layer.omitted.contains(&(unit as usize)) {
            return Err(FormatError::line(
                path,
                line,
                format!(
                    "field unit: unit {unit} of layer {} is described, but {OMITTED_FILE} of that \
                     layer says its exemplars were left out",
                    layer.name
                ),
            ));
        }
        let summary = record[summary_col].trim();
        if summary.is_empty() {
            return Err(FormatError::line(path, line, "field summary: empty"));
        }
        by_unit
            .entry((layer_index, unit))
            .or_default()
            .push(summary.to_owned());
    }

    let mut annotated = Vec::new();
    let mut skipped = Vec::new();
    for ((layer_index, unit), descriptions) in by_unit {
        let layer = layers[layer_index].name.clone();
        match <[String; DESCRIPTIONS_PER_UNIT]>::try_from(
            descriptions
                .iter()
                .take(DESCRIPTIONS_PER_UNIT)
                .cloned()
                .collect::<Vec<_>>(),
        ) {
            Ok(descriptions) => annotated.push(AnnotatedUnit {
                layer,
                unit,
                descriptions,
            }),
            Err(_) => skipped.push(SkippedUnit {
                layer,
                unit,
                descriptions: descriptions.len(),
            }),
        }
    }
    Ok((annotated, skipped))
}

fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "bad UTF-8 in field {}: the file must be UTF-8 encoded",
            err.field() + 1
        ),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        _ => e.to_string(),
    }
}
