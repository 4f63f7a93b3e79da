//! A project's Neuron Catalog, live: the pages of crate `milan-catalog` built from the database —
//! every exemplar set with its approved human descriptions and the newest model description of
//! each system `trainer follow` posted. The web layer (`http::catalog`) serves them and decides
//! who may read them.
//!
//! A project's catalog is rebuilt when it is more than [`FRESH`] old, so an approval shows within
//! seconds without rebuilding per request. Exemplar sheets are drawn from the stored PNGs once
//! and kept under `<data dir>/catalog-sheets/`, named by a hash of what they show.
//!
//! Nothing here carries a worker's id: the catalog holds texts and their source ("crowd" or the
//! model's system), so a public catalog cannot leak who wrote what.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use milan_catalog::sheet::{self, Exemplar, Sizes};
use milan_catalog::{At, Catalog, Text};
use sha2::{Digest, Sha256};

use crate::db::queries as q;
use crate::db::{Database, DbError};
use crate::engine::EngineError;
use crate::images::{ImageError, ImageStore};
use crate::import::StoredExemplar;

/// How long a built catalog is served before it is built again.
pub const FRESH: Duration = Duration::from_secs(5);

/// The source name of approved human descriptions.
pub const CROWD: &str = "crowd";

/// One project's catalog as built: the pages' data, the search index, each unit's exemplars.
#[derive(Debug)]
pub struct Built {
    pub catalog: Catalog,
    /// `search-index.js`.
    pub index: String,
    exemplars: HashMap<At, Vec<StoredExemplar>>,
}

impl Built {
    /// The place of `unit` of layer slug `layer` of model slug `model`.
    pub fn find(&self, model: &str, layer: &str, unit: Option<u32>) -> Option<(At, usize)> {
        let m = self.catalog.models.iter().position(|x| x.slug == model)?;
        let l = self.catalog.models[m]
            .layers
            .iter()
            .position(|x| x.slug == layer)?;
        let units = &self.catalog.models[m].layers[l].units;
        let index = match unit {
            Some(u) => units.binary_search_by_key(&u, |x| x.unit).ok()?,
            None => 0,
        };
        Some((
            At {
                model: m,
                layer: l,
                index,
            },
            units.len(),
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("writing {0}: {1}")]
    Io(PathBuf, String),
}

impl From<diesel::result::Error> for CatalogError {
    fn from(e: diesel::result::Error) -> Self {
        CatalogError::Db(DbError::Query(e))
    }
}

/// The catalogs of every project, built on demand.
#[derive(Debug)]
pub struct Catalogs {
    db: Database,
    images: ImageStore,
    sheets: PathBuf,
    built: Mutex<HashMap<String, (Instant, Arc<Built>)>>,
    /// One build at a time: many requests that find a catalog stale wait for one rebuild instead
    /// of each starting their own (a public catalog is open to anyone's requests).
    building: Mutex<()>,
}

impl Catalogs {
    pub fn new(db: Database, images: ImageStore, data_dir: &std::path::Path) -> Self {
        Catalogs {
            db,
            images,
            sheets: data_dir.join("catalog-sheets"),
            built: Mutex::new(HashMap::new()),
            building: Mutex::new(()),
        }
    }

    /// Whether anyone may read the project's catalog; `None`: no such project. Read at every
    /// request, never cached: a catalog made private is private at once.
    pub fn public(&self, project: &str) -> Result<Option<bool>, CatalogError> {
        Ok(self
            .db
            .read(|c| q::project_by_name(c, project).map_err(CatalogError::from))?
            .map(|p| p.catalog_public))
    }

    /// The project's catalog (built again when older than [`FRESH`]); `None`: no such project.
    pub fn get(&self, project: &str) -> Result<Option<Arc<Built>>, CatalogError> {
        if let Some(built) = self.fresh(project) {
            return Ok(Some(built));
        }
        let _one_build = self.building.lock().expect("not poisoned");
        // Another request may have rebuilt it while this one waited.
        if let Some(built) = self.fresh(project) {
            return Ok(Some(built));
        }
        let Some(built) = self.build(project)? else {
            return Ok(None);
        };
        let built = Arc::new(built);
        self.built
            .lock()
            .expect("not poisoned")
            .insert(project.to_owned(), (Instant::now(), built.clone()));
        Ok(Some(built))
    }

    fn fresh(&self, project: &str) -> Option<Arc<Built>> {
        let built = self.built.lock().expect("not poisoned");
        let (at, catalog) = built.get(project)?;
        (at.elapsed() < FRESH).then(|| catalog.clone())
    }

    fn build(&self, project: &str) -> Result<Option<Built>, CatalogError> {
        let read = self.db.read(|c| -> Result<_, CatalogError> {
            let Some(p) = q::project_by_name(c, project)? else {
                return Ok(None);
            };
            let sets = q::sets_of_project(c, p.id)?;
            let texts = q::approved_texts_of_project(c, p.id)?;
            let models = q::model_descriptions_of_project(c, p.id)?;
            Ok(Some((p, sets, texts, models)))
        })?;
        let Some((project_row, sets, texts, models)) = read else {
            return Ok(None);
        };
        let mut catalog = Catalog::new(&project_row.title, Vec::new());
        let mut places: HashMap<i64, (usize, usize, u32)> = HashMap::new();
        let mut exemplars = Vec::new();
        for set in &sets {
            let stored = StoredExemplar::of_set(set)?;
            let m = catalog.model(&set.model);
            let l = catalog.layer(m, &set.layer);
            let unit = set.unit as u32;
            catalog.unit(m, l, unit).exemplars = stored.len().min(40);
            places.insert(set.id, (m, l, unit));
            exemplars.push(((m, l, unit), stored));
        }
        if !texts.is_empty() {
            let crowd = catalog.source(CROWD, true);
            for (set_id, text) in texts {
                if let Some(&(m, l, u)) = places.get(&set_id) {
                    catalog.unit(m, l, u).texts.push(Text {
                        source: crowd,
                        text,
                    });
                }
            }
        }
        // The newest round of each system for each set (rows come by round, so later wins).
        let mut newest: BTreeMap<(i64, String), (i32, String)> = BTreeMap::new();
        for row in models {
            newest.insert((row.set_id, row.system), (row.round, row.description));
        }
        for ((set_id, system), (_, text)) in newest {
            let source = catalog.source(&system, false);
            if let Some(&(m, l, u)) = places.get(&set_id) {
                catalog.unit(m, l, u).texts.push(Text { source, text });
            }
        }
        // Places are known only once every unit is in (units are kept sorted).
        let mut by_place = HashMap::new();
        for ((m, l, unit), stored) in exemplars {
            let index = catalog.models[m].layers[l]
                .units
                .binary_search_by_key(&unit, |u| u.unit)
                .expect("every set's unit is in the catalog");
            by_place.insert(
                At {
                    model: m,
                    layer: l,
                    index,
                },
                stored,
            );
        }
        let index = milan_catalog::search::index_script(&catalog);
        Ok(Some(Built {
            catalog,
            index,
            exemplars: by_place,
        }))
    }

    /// A unit's sheet (JPEG): the grid's small one, or the unit page's (`full`); `None` when the
    /// unit has no exemplars. Drawn once, then read from the sheet folder.
    pub fn sheet(
        &self,
        built: &Built,
        at: At,
        full: bool,
    ) -> Result<Option<Vec<u8>>, CatalogError> {
        let Some(stored) = built.exemplars.get(&at).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let stored = &stored[..stored.len().min(40)];
        let sizes = Sizes::default();
        let mut hasher = Sha256::new();
        hasher.update(format!("v1 {} {}", sizes.thumb, sizes.full));
        for e in stored {
            hasher.update(&e.image);
            hasher.update(&e.mask);
        }
        let key = hex::encode(hasher.finalize());
        let path = |kind: &str| {
            self.sheets
                .join(&key[..2])
                .join(format!("{key}-{kind}.jpg"))
        };
        let wanted = path(if full { "full" } else { "thumb" });
        if let Ok(bytes) = std::fs::read(&wanted) {
            return Ok(Some(bytes));
        }
        let mut planes = Vec::with_capacity(stored.len());
        for e in stored {
            let (rgb, h, w) = self.images.read_rgb_planar(&e.image)?;
            let mask = self.images.read_mask(&e.mask)?;
            planes.push((rgb, mask, h as usize, w as usize));
        }
        let list: Vec<Exemplar> = planes
            .iter()
            .map(|(rgb, mask, h, w)| Exemplar {
                rgb,
                mask,
                height: *h,
                width: *w,
            })
            .collect();
        let (thumb, large) = sheet::sheets(&list, sizes);
        for (kind, bytes) in [("thumb", &thumb), ("full", &large)] {
            let target = path(kind);
            let dir = target.parent().expect("a sheet has a folder");
            std::fs::create_dir_all(dir)
                .map_err(|e| CatalogError::Io(dir.to_owned(), e.to_string()))?;
            milan_shared::atomic::write(&target, bytes)
                .map_err(|e| CatalogError::Io(target.clone(), e.to_string()))?;
        }
        Ok(Some(if full { large } else { thumb }))
    }
}
