//! A project as MILANNOTATIONS: one `<arch>/<dataset>` folder per model, the arrays rebuilt
//! exactly from the stored PNGs, annotations.csv with the approved, cleaned descriptions.
//!
//! A [`Plan`] reads the database once and checks everything that can be checked before a byte is
//! written (every unit of a layer present, one exemplar count and image size per layer); then
//! [`Plan::write_folder`] writes folders (the command line) or [`Plan::write_archive`] streams a
//! tar (a download), reading each PNG once.
//!
//! With [`Units::Annotated`] (the default) only units with an approved description carry
//! exemplars. A row's index is its unit number, so the other units keep their rows, zero, and
//! the layer's omitted.csv names them; layers and models without a described unit are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use milan_shared::ModelKey;
use milan_shared::milannotations::{
    ArchiveWriter, ArchivedLayer, Array, DatasetWriter, LayerShape, Rows,
};
use milan_shared::progress::Progress;

use super::{ExportError, load};
use crate::db::queries::SetRow;
use crate::engine::Engine;
use crate::images::ImageStore;
use crate::import::StoredExemplar;

/// Which units carry exemplars in an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    /// Units with at least one approved description (the others' rows are zero).
    #[default]
    Annotated,
    /// Every unit: what a model describing open sets needs (`trainer follow`).
    All,
}

impl std::str::FromStr for Units {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "annotated" => Ok(Units::Annotated),
            "all" => Ok(Units::All),
            other => Err(format!("unknown units {other:?}: use annotated or all")),
        }
    }
}

/// A layer's name and its sets by unit.
type LayerSets<'a> = (&'a str, BTreeMap<i32, &'a SetRow>);

/// What an export will write; see the module documentation.
#[derive(Debug)]
pub struct Plan {
    project: String,
    models: Vec<ModelPlan>,
}

#[derive(Debug)]
struct ModelPlan {
    key: ModelKey,
    layers: Vec<LayerPlan>,
    annotations: Vec<(String, u32, String)>,
}

#[derive(Debug)]
struct LayerPlan {
    name: String,
    shape: LayerShape,
    /// Every unit's exemplars, by unit number.
    exemplars: Vec<Vec<StoredExemplar>>,
    ids: Vec<Vec<u64>>,
    omitted: BTreeSet<usize>,
}

impl Plan {
    pub fn of(
        engine: &Engine,
        store: &ImageStore,
        project: &str,
        units: Units,
    ) -> Result<Plan, ExportError> {
        let (_, sets, work) = load(engine, project)?;
        // model -> layers in import order -> unit -> set
        let mut by_model: BTreeMap<&str, Vec<LayerSets>> = BTreeMap::new();
        for set in &sets {
            let layers = by_model.entry(&set.model).or_default();
            match layers.iter_mut().find(|(name, _)| *name == set.layer) {
                Some((_, units)) => {
                    units.insert(set.unit, set);
                }
                None => layers.push((&set.layer, BTreeMap::from([(set.unit, set)]))),
            }
        }
        let mut models = Vec::new();
        for (model, layers) in by_model {
            let key: ModelKey = model
                .parse()
                .map_err(|e| ExportError::Incomplete(format!("set model {model:?}: {e}")))?;
            let mut planned = Vec::new();
            for (layer, units_of_layer) in layers {
                if let Some(plan) = plan_layer(store, model, layer, &units_of_layer, units)? {
                    planned.push(plan);
                }
            }
            if planned.is_empty() {
                continue;
            }
            let annotations = work
                .iter()
                .filter(|(a, _, _, set)| set.model == model && a.state == "approved")
                .map(|(_, d, _, set)| (set.layer.clone(), set.unit as u32, d.cleaned.clone()))
                .collect();
            models.push(ModelPlan {
                key,
                layers: planned,
                annotations,
            });
        }
        if models.is_empty() {
            return Err(ExportError::Incomplete(match units {
                Units::Annotated if !sets.is_empty() => format!(
                    "no unit of project {project} has an approved description yet; export with \
                     units=all (--units all) for the exemplars alone"
                ),
                _ => format!("project {project} has no exemplar sets to export"),
            }));
        }
        Ok(Plan {
            project: project.to_owned(),
            models,
        })
    }

    /// Units whose exemplars are written (the rest are omitted rows).
    pub fn units_with_exemplars(&self) -> usize {
        self.layers().map(|l| l.shape.units - l.omitted.len()).sum()
    }

    /// Units in the exported layers, with exemplars or not.
    pub fn units(&self) -> usize {
        self.layers().map(|l| l.shape.units).sum()
    }

    fn layers(&self) -> impl Iterator<Item = &LayerPlan> {
        self.models.iter().flat_map(|m| &m.layers)
    }

    fn progress(&self, logged: bool) -> Progress {
        let what = format!("MILANNOTATIONS export of {}", self.project);
        let len = self.units_with_exemplars();
        if logged {
            Progress::logged(len, &what, "units")
        } else {
            Progress::new(len, &what, "units")
        }
    }

    /// Writes `<out>/<arch>/<dataset>/` for every model (each appears whole or not at all, see
    /// [`DatasetWriter`]) with a progress bar; returns the folders written.
    pub fn write_folder(
        &self,
        store: &ImageStore,
        out: &Path,
    ) -> Result<Vec<PathBuf>, ExportError> {
        let progress = self.progress(false);
        let mut written = Vec::new();
        for model in &self.models {
            let mut writer = DatasetWriter::create(out, &model.key)?;
            for layer in &model.layers {
                let mut layer_writer = writer.layer(&layer.name, layer.shape, true)?;
                let mut images = Vec::with_capacity(layer.shape.unit_len(3));
                let mut masks = Vec::with_capacity(layer.shape.unit_len(1));
                for (unit, exemplars) in layer.exemplars.iter().enumerate() {
                    if layer.omitted.contains(&unit) {
                        layer_writer.omit(unit, &layer.ids[unit])?;
                        continue;
                    }
                    images.clear();
                    masks.clear();
                    for e in exemplars {
                        images.extend(store.read_rgb_planar(&e.image)?.0);
                        masks.extend(store.read_mask(&e.mask)?);
                    }
                    layer_writer.write_unit(unit, &masks, Some(&images), &layer.ids[unit])?;
                    progress.inc(1);
                }
                layer_writer.finish()?;
            }
            for (layer, unit, summary) in &model.annotations {
                writer.describe(layer, *unit, summary);
            }
            written.push(writer.finish()?);
        }
        progress.finish();
        Ok(written)
    }

    /// Streams the export as a tar into `out` (logging progress, for a server) and gives `out`
    /// back. An error part-way leaves `out` with a truncated archive: callers abort the download.
    pub fn write_archive<W: Write>(&self, store: &ImageStore, out: W) -> Result<W, ExportError> {
        let progress = self.progress(true);
        let mut archive = ArchiveWriter::new(out);
        for model in &self.models {
            for layer in &model.layers {
                let mut rows = StoredRows {
                    store,
                    layer,
                    progress: &progress,
                };
                archive.layer(
                    &model.key,
                    ArchivedLayer {
                        name: &layer.name,
                        shape: layer.shape,
                        with_images: true,
                        ids: &layer.ids,
                        omitted: &layer.omitted,
                    },
                    &mut rows,
                )?;
            }
            if !model.annotations.is_empty() {
                archive.annotations(&model.key, &model.annotations)?;
            }
        }
        let out = archive.finish()?;
        progress.finish();
        Ok(out)
    }
}

/// One layer's plan, or None when `units` leaves every unit of it out.
fn plan_layer(
    store: &ImageStore,
    model: &str,
    layer: &str,
    sets: &BTreeMap<i32, &SetRow>,
    units: Units,
) -> Result<Option<LayerPlan>, ExportError> {
    let last = *sets.keys().next_back().expect("a layer has a set");
    if let Some(missing) = (0..=last).find(|u| !sets.contains_key(u)) {
        return Err(ExportError::Incomplete(format!(
            "{model} {layer}: unit {missing} is missing; MILANNOTATIONS needs every unit of a \
             layer from 0 to {last}"
        )));
    }
    let omitted: BTreeSet<usize> = match units {
        Units::All => BTreeSet::new(),
        Units::Annotated => sets
            .iter()
            .filter(|(_, set)| set.approved_count == 0)
            .map(|(&unit, _)| unit as usize)
            .collect(),
    };
    if omitted.len() == sets.len() {
        return Ok(None);
    }
    let exemplars = sets
        .values()
        .map(|set| exemplars_of(set))
        .collect::<Result<Vec<_>, _>>()?;
    let first = (0..exemplars.len())
        .find(|u| !omitted.contains(u))
        .expect("a unit with exemplars");
    let (_, height, width) = store.read_rgb_planar(&exemplars[first][0].image)?;
    let k = exemplars[first].len();
    if let Some((unit, e)) = exemplars.iter().enumerate().find(|(_, e)| e.len() != k) {
        return Err(ExportError::Incomplete(format!(
            "{model} {layer}: unit {unit} has {} exemplars, unit {first} has {k}; a layer's units \
             need the same number",
            e.len()
        )));
    }
    let ids = exemplars
        .iter()
        .map(|e| e.iter().map(|x| x.id).collect())
        .collect();
    Ok(Some(LayerPlan {
        name: layer.to_owned(),
        shape: LayerShape {
            units: sets.len(),
            k,
            height: height as usize,
            width: width as usize,
        },
        exemplars,
        ids,
        omitted,
    }))
}

fn exemplars_of(set: &SetRow) -> Result<Vec<StoredExemplar>, ExportError> {
    let exemplars = StoredExemplar::of_set(set)?;
    if exemplars.is_empty() {
        return Err(ExportError::Incomplete(format!(
            "set {} has no exemplars",
            set.id
        )));
    }
    Ok(exemplars)
}

/// A layer's rows read from the image store as the archive asks for them.
struct StoredRows<'a> {
    store: &'a ImageStore,
    layer: &'a LayerPlan,
    progress: &'a Progress,
}

impl Rows for StoredRows<'_> {
    fn row(&mut self, array: Array, unit: usize, out: &mut Vec<u8>) -> io::Result<()> {
        for e in &self.layer.exemplars[unit] {
            match array {
                Array::Masks => {
                    out.extend(self.store.read_mask(&e.mask).map_err(io::Error::other)?)
                }
                Array::Images => out.extend(
                    self.store
                        .read_rgb_planar(&e.image)
                        .map_err(io::Error::other)?
                        .0,
                ),
            }
        }
        if array == Array::Images {
            self.progress.inc(1);
        }
        Ok(())
    }
}
