//! `trainer catalog`: a Neuron Catalog (crate `milan-catalog`) from MILANNOTATIONS — its exemplar
//! sets and the human descriptions in it — and any number of description files, each shown under
//! its own name.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use milan_catalog::sheet::{self, Exemplar, Sizes};
use milan_catalog::write::{Written, write_site};
use milan_catalog::{At, Catalog, Text};
use milan_shared::milannotations::{Dataset, discover};

use crate::applications::analysis::{Described, read_lines};

/// The most exemplars a unit page shows (the sprite classes reach eight rows of five).
const MAX_EXEMPLARS: usize = 40;

/// Descriptions under a name: a file, or descriptions already in memory (`trainer describe
/// --catalog`).
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    /// Each description with its line in `file` (for errors).
    pub rows: Vec<(u64, Described)>,
    pub file: PathBuf,
    /// Whether the file names each row's model; without, its rows belong to the data's one model.
    pub model_column: bool,
}

impl Named {
    /// `NAME=FILE.csv`, or a bare `FILE.csv` named after the file.
    pub fn parse(spec: &str) -> Result<Named> {
        let (name, file) = match spec.split_once('=') {
            Some((name, file)) if !name.trim().is_empty() => (name.trim().to_owned(), file),
            _ => {
                let stem = Path::new(spec)
                    .file_stem()
                    .map_or_else(|| spec.to_owned(), |s| s.to_string_lossy().into_owned());
                (stem, spec)
            }
        };
        let file = PathBuf::from(file);
        let rows = read_lines(&file)?;
        let model_column = csv::Reader::from_path(&file)
            .and_then(|mut r| r.headers().map(|h| h.iter().any(|c| c.trim() == "model")))
            .with_context(|| format!("reading {}", file.display()))?;
        Ok(Named {
            name,
            rows,
            file,
            model_column,
        })
    }
}

/// A catalog ready to write: what it shows, and the MILANNOTATIONS it draws exemplars from.
#[derive(Debug)]
pub struct Built {
    pub catalog: Catalog,
    /// One per model of the catalog, in its order.
    pub datasets: Vec<Dataset>,
}

/// The catalog of `data` (a root or a model folder) with its human descriptions (shown as
/// `human`) and each named file's.
pub fn build(data: &Path, title: &str, human: &str, named: &[Named]) -> Result<Built> {
    let folders = discover(data)?;
    if human.trim().is_empty() {
        bail!("--human-name: empty");
    }
    let mut catalog = Catalog::new(title, Vec::new());
    let mut datasets = Vec::new();
    for folder in &folders {
        let dataset = Dataset::open(folder)?;
        let m = catalog.model(&dataset.key().to_string());
        for layer in dataset.layers() {
            let l = catalog.layer(m, layer.name());
            for unit in 0..layer.units() {
                let exemplars = if layer.images().is_some() && layer.has_exemplars(unit) {
                    layer.shape().k.min(MAX_EXEMPLARS)
                } else {
                    0
                };
                catalog.unit(m, l, unit as u32).exemplars = exemplars;
            }
        }
        let annotations = folder.join("annotations.csv");
        if !dataset.annotated().is_empty() || !dataset.skipped().is_empty() {
            // The file itself, not `annotated()`: units with fewer than three descriptions (which
            // training leaves out) are shown too.
            let human_source = catalog.source(human, true);
            for (line, d) in read_lines(&annotations)? {
                let l = known_layer(&catalog, m, &dataset, &d, &annotations, line)?;
                catalog.unit(m, l, d.unit).texts.push(Text {
                    source: human_source,
                    text: d.description,
                });
            }
        }
        datasets.push(dataset);
    }
    for n in named {
        let source = catalog.source(&n.name, false);
        let single = (datasets.len() == 1).then(|| datasets[0].key().to_string());
        for (line, d) in &n.rows {
            // A file without a model column describes the data's one model; with several
            // models, the file must say which.
            let model =
                if n.model_column && datasets.iter().any(|ds| ds.key().to_string() == d.model) {
                    d.model.clone()
                } else if let (Some(only), false) = (&single, n.model_column) {
                    only.clone()
                } else {
                    let why = if n.model_column {
                        format!("field model: {:?} is not in", d.model)
                    } else {
                        "no model column, and several models in".to_owned()
                    };
                    bail!(
                        "{}:{line}: {why} {} (it holds {})",
                        n.file.display(),
                        data.display(),
                        datasets
                            .iter()
                            .map(|ds| ds.key().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                };
            let m = catalog.model(&model);
            let l = known_layer(&catalog, m, &datasets[m], d, &n.file, *line)?;
            catalog.unit(m, l, d.unit).texts.push(Text {
                source,
                text: d.description.clone(),
            });
        }
    }
    Ok(Built { catalog, datasets })
}

/// The catalog's index of `d`'s layer, checked against the dataset: the layer exists and the
/// unit is within it.
fn known_layer(
    catalog: &Catalog,
    m: usize,
    dataset: &Dataset,
    d: &Described,
    file: &Path,
    line: u64,
) -> Result<usize> {
    let Some(layer) = dataset.layer(&d.layer) else {
        bail!(
            "{}:{line}: field layer: {:?} is not a layer of {} (its layers: {})",
            file.display(),
            d.layer,
            dataset.key(),
            dataset
                .layers()
                .iter()
                .map(|l| l.name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    if d.unit as usize >= layer.units() {
        bail!(
            "{}:{line}: field unit: {} is beyond {} / {}, which has {} units",
            file.display(),
            d.unit,
            dataset.key(),
            d.layer,
            layer.units()
        );
    }
    Ok(catalog.models[m]
        .layers
        .iter()
        .position(|l| l.name == d.layer)
        .expect("every layer of a dataset is in the catalog"))
}

/// Writes the built catalog to `out` with exemplar sheets of `sizes`, on `threads` threads.
pub fn write(built: &Built, out: &Path, sizes: Sizes, threads: usize) -> Result<Written> {
    let catalog = &built.catalog;
    write_site(catalog, out, threads, |at: At| {
        let (_, layer, unit) = catalog.get(at);
        let data = built.datasets[at.model]
            .layer(&layer.name)
            .context("a catalog layer without its dataset layer")?;
        let index = unit.unit as usize;
        let exemplars = data.exemplars(index);
        let Some(images) = exemplars.images else {
            return Ok(None);
        };
        let shape = data.shape();
        let (h, w) = (shape.height, shape.width);
        let images = images.as_standard_layout();
        let masks = exemplars.masks.as_standard_layout();
        let (images, masks) = (
            images.as_slice().context("image planes")?,
            masks.as_slice().context("mask planes")?,
        );
        let list: Vec<Exemplar> = (0..unit.exemplars)
            .map(|j| Exemplar {
                rgb: &images[j * 3 * h * w..(j + 1) * 3 * h * w],
                mask: &masks[j * h * w..(j + 1) * h * w],
                height: h,
                width: w,
            })
            .collect();
        let sheets = sheet::sheets(&list, sizes);
        // Pages of this unit's arrays are not needed again: keep the resident set flat.
        data.release(index);
        Ok(Some(sheets))
    })
}
