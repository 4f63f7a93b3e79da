//! A catalog written as a static site: every page, the search index and the exemplar sheets,
//! built in a temporary sibling folder and renamed into place whole.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use milan_shared::lexicon::Lexicon;
use milan_shared::progress::Progress;

use crate::pages;
use crate::search;
use crate::site::{At, Catalog};

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub units: usize,
    pub pages: usize,
    pub images: usize,
    /// Bytes of everything written.
    pub bytes: u64,
    /// Bytes of the exemplar sheets alone.
    pub image_bytes: u64,
    pub index_bytes: u64,
}

/// The site's stylesheet: the fixed one and the sprite classes.
pub fn stylesheet() -> String {
    format!("{}\n{}", pages::CSS, pages::sprite_css())
}

/// Writes the site to `out` (replaced whole when it exists). `sheets(at)` gives a unit's two
/// exemplar sheets (grid, unit page) as JPEG bytes, or `None` when it has no images; it runs on
/// `threads` threads at once.
pub fn write_site<F>(catalog: &Catalog, out: &Path, threads: usize, sheets: F) -> Result<Written>
where
    F: Fn(At) -> Result<Option<(Vec<u8>, Vec<u8>)>> + Sync,
{
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a folder name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    let root = tmp.path();
    let mut written = Written::default();
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<()> {
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.bytes += bytes.len() as u64;
        Ok(())
    };
    put(root.join("catalog.css"), stylesheet().as_bytes())?;
    put(root.join("catalog.js"), pages::JS.as_bytes())?;
    let lexicon = Lexicon::default();
    put(
        root.join("index.html"),
        pages::home(catalog, &lexicon).as_bytes(),
    )?;
    put(
        root.join("search.html"),
        pages::search_page(catalog).as_bytes(),
    )?;
    let index = search::index_script(catalog);
    written.index_bytes = index.len() as u64;
    put(root.join("search-index.js"), index.as_bytes())?;
    written.pages += 2;
    for (m, model) in catalog.models.iter().enumerate() {
        for (l, layer) in model.layers.iter().enumerate() {
            let dir = root.join(&model.slug).join(&layer.slug);
            std::fs::create_dir_all(dir.join("img"))
                .with_context(|| format!("creating {}", dir.display()))?;
            for page in 0..layer.pages() {
                put(
                    dir.join(pages::layer_file(page)),
                    pages::layer_page(catalog, m, l, page).as_bytes(),
                )?;
                written.pages += 1;
            }
        }
    }

    // Unit pages and sheets: the long part, shared among threads, one unit at a time.
    let places: Vec<At> = catalog.places().collect();
    let progress = Progress::new(places.len(), "catalog", "units");
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((0usize, 0u64, 0u64)); // images, image bytes, page bytes
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= places.len() || failure.lock().expect("not poisoned").is_some() {
                        break;
                    }
                    let at = places[i];
                    match write_unit(catalog, root, at, &sheets) {
                        Ok((images, image_bytes, page_bytes)) => {
                            let mut t = totals.lock().expect("not poisoned");
                            t.0 += images;
                            t.1 += image_bytes;
                            t.2 += page_bytes;
                        }
                        Err(e) => {
                            *failure.lock().expect("not poisoned") = Some(e);
                            break;
                        }
                    }
                    progress.inc(1);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("not poisoned") {
        progress.abandon();
        return Err(e);
    }
    progress.finish();
    let (images, image_bytes, page_bytes) = totals.into_inner().expect("not poisoned");
    written.units = places.len();
    written.pages += places.len();
    written.images = images;
    written.image_bytes = image_bytes;
    written.bytes += image_bytes + page_bytes;
    let finished = tmp.keep();
    milan_shared::atomic::publish_dir(&finished, out).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&finished);
    })?;
    Ok(written)
}

/// A unit's page and sheets: (images written, their bytes, the page's bytes).
fn write_unit<F>(catalog: &Catalog, root: &Path, at: At, sheets: &F) -> Result<(usize, u64, u64)>
where
    F: Fn(At) -> Result<Option<(Vec<u8>, Vec<u8>)>>,
{
    let (model, layer, unit) = catalog.get(at);
    let dir = root.join(&model.slug).join(&layer.slug);
    let mut images = (0, 0);
    if unit.exemplars > 0
        && let Some((thumb, full)) = sheets(at)?
    {
        for (file, bytes) in [
            (format!("{}.jpg", unit.unit), &thumb),
            (format!("{}-full.jpg", unit.unit), &full),
        ] {
            let path = dir.join("img").join(file);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            images.0 += 1;
            images.1 += bytes.len() as u64;
        }
    }
    let page = pages::unit_page(catalog, at);
    let path = dir.join(format!("{}.html", unit.unit));
    std::fs::write(&path, &page).with_context(|| format!("writing {}", path.display()))?;
    Ok((images.0, images.1, page.len() as u64))
}
