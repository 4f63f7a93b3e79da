//! MILANNOTATIONS in: every unit of every layer becomes an exemplar set of a project.
//!
//! The whole folder is read and checked before anything is written; images are stored
//! content-addressed; the project and all its sets are created in one transaction. Importing the
//! same folder again changes nothing; a folder whose unit already exists with other exemplars is
//! refused as a whole.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use milan_shared::milannotations::{Dataset, Exemplars, FormatError, LayerShape, discover};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::queries::{self as q, NewEvent, NewSet};
use crate::db::{DbError, RetryHint};
use crate::domain::{Millis, ProjectSettings};
use crate::engine::{Engine, EngineError};
use crate::images::{ImageError, ImageStore, exemplar_pngs};

/// One exemplar as a set stores it: the hashes of its three PNGs and its source-image id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredExemplar {
    /// What the worker sees.
    pub view: String,
    /// The original image, lossless.
    pub image: String,
    /// The 0/1 mask, lossless.
    pub mask: String,
    /// Index into the source image dataset (ids.csv).
    pub id: u64,
}

impl StoredExemplar {
    /// A set's exemplars: the one reader of the column import writes. A list that does not parse
    /// was not written by this server and is refused, naming the set. (A list may be empty: the
    /// load benchmark's sets have no images.)
    pub fn of_set(set: &crate::db::queries::SetRow) -> Result<Vec<StoredExemplar>, EngineError> {
        let corrupt = |why: String| {
            EngineError::Corrupt(format!(
                "exemplar set {}/{}/{} (id {}): {why}",
                set.model, set.layer, set.unit, set.id
            ))
        };
        serde_json::from_str(&set.exemplars).map_err(|e| corrupt(e.to_string()))
    }

    /// The URL of the view a worker sees.
    pub fn view_url(&self) -> String {
        format!("/images/{}.png", self.view)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{0}: no images.npy; workers need to see the exemplar images")]
    NoImages(String),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        ImportError::Db(DbError::Query(e))
    }
}

impl RetryHint for ImportError {
    fn retryable(&self) -> bool {
        matches!(self, ImportError::Db(e) if e.retryable())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub project: String,
    pub project_created: bool,
    pub models: Vec<String>,
    pub sets_added: usize,
    pub sets_present: usize,
}

struct Pending {
    model: String,
    layer: String,
    unit: i32,
    exemplars: String,
}

/// One unit of the folder being imported, read but not yet rendered.
struct Unit<'a> {
    model: String,
    layer: &'a str,
    shape: LayerShape,
    exemplars: Exemplars<'a>,
}

/// Renders and stores the three PNGs of each exemplar of every unit (the slow part of an import)
/// on every core, and gives back the units in their order, whatever order they finished in.
/// `progress` is called on this thread once per unit; the first error stops the others.
fn render_all(
    store: &ImageStore,
    units: &[Unit<'_>],
    progress: &dyn Fn(),
) -> Result<Vec<Pending>, ImportError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(units.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut rendered: Vec<Option<String>> = vec![None; units.len()];
    let mut failure = None;
    std::thread::scope(|scope| {
        let (done, results) = mpsc::channel();
        for _ in 0..threads {
            let done = done.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(unit) = units.get(i) else { break };
                    if done.send((i, render(store, unit))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done);
        for (i, result) in results {
            match result {
                Ok(json) => {
                    rendered[i] = Some(json);
                    progress();
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(e);
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(units
        .iter()
        .zip(rendered)
        .map(|(unit, json)| Pending {
            model: unit.model.clone(),
            layer: unit.layer.to_owned(),
            unit: unit.exemplars.unit as i32,
            exemplars: json.expect("every unit was rendered"),
        })
        .collect())
}

/// One unit's exemplars stored as PNGs: the set's `exemplars` column.
fn render(store: &ImageStore, unit: &Unit<'_>) -> Result<String, ImportError> {
    let shape = &unit.shape;
    let plane = shape.height * shape.width;
    let exemplars = &unit.exemplars;
    let images = exemplars.images.as_ref().expect("checked before rendering");
    let images = images.as_slice().expect("mapped arrays are contiguous");
    let masks = exemplars
        .masks
        .as_slice()
        .expect("mapped arrays are contiguous");
    let mut stored = Vec::with_capacity(shape.k);
    for j in 0..shape.k {
        let rgb = &images[j * 3 * plane..(j + 1) * 3 * plane];
        let mask = &masks[j * plane..(j + 1) * plane];
        let [image, mask, view] = exemplar_pngs(rgb, mask, shape.height, shape.width);
        stored.push(StoredExemplar {
            view: store.put(&view)?,
            image: store.put(&image)?,
            mask: store.put(&mask)?,
            id: exemplars.ids[j],
        });
    }
    Ok(serde_json::to_string(&stored).expect("plain data serializes"))
}

/// Units in `path` (a model folder or a root of several), for progress bars.
pub fn count_units(path: &Path) -> Result<usize, ImportError> {
    let mut n = 0;
    for dir in discover(path)? {
        n += Dataset::open(&dir)?
            .layers()
            .iter()
            .map(|l| l.units())
            .sum::<usize>();
    }
    Ok(n)
}

/// Imports `path` into the project `settings.name`, creating the project with `settings` when it
/// does not exist. `progress` is called once per unit rendered.
pub fn import(
    engine: &Engine,
    store: &ImageStore,
    settings: &ProjectSettings,
    path: &Path,
    now: Millis,
    progress: &dyn Fn(),
) -> Result<ImportReport, ImportError> {
    settings
        .validate()
        .map_err(|e| ImportError::Engine(EngineError::Invalid(e)))?;
    // Read and check everything first: a bad folder imports nothing.
    let datasets = discover(path)?
        .iter()
        .map(|dir| Dataset::open(dir))
        .collect::<Result<Vec<_>, _>>()?;
    for dataset in &datasets {
        for layer in dataset.layers() {
            if layer.images().is_none() {
                return Err(ImportError::NoImages(
                    dataset.dir().join(layer.name()).display().to_string(),
                ));
            }
        }
    }
    let mut units = Vec::new();
    for dataset in &datasets {
        for layer in dataset.layers() {
            for exemplars in layer.iter() {
                units.push(Unit {
                    model: dataset.key().to_string(),
                    layer: layer.name(),
                    shape: layer.shape(),
                    exemplars,
                });
            }
        }
    }
    let pending = render_all(store, &units, progress)?;
    let models: Vec<String> = datasets.iter().map(|d| d.key().to_string()).collect();
    engine.db().write(|c| {
        let (project, project_created) = match q::project_by_name(c, &settings.name)? {
            Some(p) => (p, false),
            None => {
                let p = q::insert_project(c, &crate::engine::new_project(settings, now))?;
                (p, true)
            }
        };
        let mut report = ImportReport {
            project: project.name.clone(),
            project_created,
            models: models.clone(),
            ..ImportReport::default()
        };
        for p in &pending {
            match q::set_by_key(c, project.id, &p.model, &p.layer, p.unit)? {
                Some(existing) if existing.exemplars == p.exemplars => report.sets_present += 1,
                Some(_) => {
                    return Err(ImportError::Conflict(format!(
                        "{} {} unit {} is already in project {} with other exemplars; \
                         import it into another project",
                        p.model, p.layer, p.unit, project.name
                    )));
                }
                None => {
                    q::insert_set(
                        c,
                        &NewSet {
                            project_id: project.id,
                            model: &p.model,
                            layer: &p.layer,
                            unit: p.unit,
                            exemplars: &p.exemplars,
                            created_at: now,
                        },
                        project.assignments_per_set,
                    )?;
                    report.sets_added += 1;
                }
            }
        }
        q::log(
            c,
            &NewEvent {
                at: now,
                kind: "imported",
                project_id: Some(project.id),
                detail: json!({
                    "path": path.display().to_string(),
                    "added": report.sets_added,
                    "present": report.sets_present,
                })
                .to_string(),
                ..NewEvent::default()
            },
        )?;
        Ok(report)
    })
}
