//! The authors' MILANNOTATIONS zips (`<url-base>/data/<arch>-<dataset>.zip`) fetched into a
//! MILANNOTATIONS root that `trainer fit --data` reads as it is.
//!
//! A zip holds, at its top, `annotations.csv` and one folder per layer with `masks.npy`,
//! `ids.csv` and, where the images are released, `images.npy`. Keys whose images are ImageNet's
//! carry only the ids: each indexes `ImageFolder(<imagenet>/val)` in its order (classes sorted,
//! files sorted within a class); [`resolve_pointers`] turns them into `images.npy` as the
//! authors' loader builds the images (resized to the mask size with Pillow's bilinear filter, no
//! crop; grayscale made RGB; `x/255*255` in float32, truncated to a byte).
//!
//! Nothing is half-written: a zip is unpacked and checked in `<root>/.downloads/` and renamed
//! into `<root>/<arch>/<dataset>` whole, and each resolved `images.npy` is written beside its
//! layer under a temporary name and renamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use milan_shared::ModelKey;
use milan_shared::milannotations::{Dataset, IMAGES_FILE, npy_header_for};
use milan_shared::progress::Progress;

use crate::assets::download::{self, Manifest};

/// The hidden folder of a root that holds downloads, unpacking and the manifest.
pub const DOWNLOADS: &str = ".downloads";
/// The manifest of every zip's SHA-256, under the root.
pub const MANIFEST: &str = "milannotations-sha256.json";

/// The keys a name stands for: `arch/dataset`, the authors' `arch-dataset`, or a group
/// (`base`, `cls`, `gen`, `imagenet`, `places365`, `alexnet`, `resnet152`, `biggan`, ...).
pub fn keys(name: &str) -> Result<Vec<ModelKey>> {
    if let Ok(key) = name.parse::<ModelKey>() {
        return Ok(vec![key]);
    }
    if let Ok(keys) = milan_shared::split::group(name) {
        return Ok(keys);
    }
    if let Some((arch, dataset)) = name.rsplit_once('-')
        && let Ok(key) = ModelKey::new(arch, dataset)
    {
        return Ok(vec![key]);
    }
    bail!(
        "{name:?} is neither a key (arch/dataset, e.g. alexnet/imagenet) nor a group (base, cls, \
         gen, imagenet, places365, alexnet, resnet152, biggan)"
    )
}

/// The authors' file name of a key's zip.
pub fn zip_name(key: &ModelKey) -> String {
    format!("{}-{}.zip", key.arch(), key.dataset())
}

/// What fetching one key did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded and unpacked.
    New,
    /// Already present; nothing downloaded.
    Present,
}

/// Fetches `key` into `root` from `url_base`, then resolves its image pointers when `imagenet`
/// is given (also for a key fetched before).
pub fn fetch(
    key: &ModelKey,
    root: &Path,
    url_base: &str,
    imagenet: Option<&Path>,
) -> Result<Fetched> {
    let target = root.join(key.arch()).join(key.dataset());
    let fetched = if target.is_dir() {
        Fetched::Present
    } else {
        let downloads = root.join(DOWNLOADS);
        let mut manifest = Manifest::load(&root.join(MANIFEST))?;
        let name = zip_name(key);
        let url = format!("{}/data/{name}", url_base.trim_end_matches('/'));
        eprintln!("{key}: {url}");
        let (zip, sha) = download::fetch(&url, &downloads, &name, &manifest)?;
        let scratch = downloads.join(format!("unpack-{}", std::process::id()));
        let result = (|| {
            let folder = scratch.join(key.arch()).join(key.dataset());
            unpack(&zip, &folder)?;
            let dataset = Dataset::open(&folder)
                .with_context(|| format!("{}: not a MILANNOTATIONS folder", zip.display()))?;
            ensure!(
                !dataset.layers().is_empty(),
                "{}: no layers in the zip",
                zip.display()
            );
            if let Some(imagenet) = imagenet {
                resolve_pointers(&folder, imagenet)?;
            }
            std::fs::create_dir_all(root.join(key.arch()))?;
            std::fs::rename(&folder, &target)
                .with_context(|| format!("moving the unpacked key to {}", target.display()))
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        // Unpacked and checked, or not usable: either way the zip goes (a damaged one must be
        // downloaded again, not unpacked again); a good one is kept as its hash in the manifest.
        let _ = std::fs::remove_file(&zip);
        result?;
        manifest.record(&name, &sha)?;
        Fetched::New
    };
    if fetched == Fetched::Present
        && let Some(imagenet) = imagenet
    {
        resolve_pointers(&target, imagenet)?;
    }
    Ok(fetched)
}

/// Extracts the MILANNOTATIONS files of `zip` into `folder` (created), refusing entries that
/// would land outside it.
pub fn unpack(zip: &Path, folder: &Path) -> Result<()> {
    let file = File::open(zip).with_context(|| format!("reading {}", zip.display()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a zip archive (damaged download?)", zip.display()))?;
    // Entries are at the top of the authors' zips; accept one enclosing folder as well.
    let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    let prefix = if names.iter().any(|n| n == "annotations.csv") {
        String::new()
    } else {
        names
            .iter()
            .find_map(|n| n.strip_suffix("annotations.csv"))
            .filter(|p| p.matches('/').count() == 1)
            .unwrap_or("")
            .to_owned()
    };
    std::fs::create_dir_all(folder)?;
    let total: u64 = (0..archive.len())
        .filter_map(|i| archive.by_index_raw(i).ok().map(|e| e.size()))
        .sum();
    let bar = Progress::bytes(total, &format!("unpacking {}", zip.display()));
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .with_context(|| format!("{}: entry #{i} is damaged", zip.display()))?;
        let name = entry.name().to_owned();
        let Some(path) = entry.enclosed_name() else {
            bail!(
                "{}: entry {name:?} points outside the folder; refused",
                zip.display()
            )
        };
        ensure!(
            !entry.is_symlink(),
            "{}: entry {name} is a symbolic link; refused",
            zip.display()
        );
        let Ok(relative) = path.strip_prefix(&prefix) else {
            continue;
        };
        let out = folder.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut dest = BufWriter::new(
            File::create(&out).with_context(|| format!("writing {}", out.display()))?,
        );
        std::io::copy(&mut bar.reader(&mut entry), &mut dest)
            .with_context(|| format!("{}: entry {name} is damaged", zip.display()))?;
        dest.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    bar.finish();
    Ok(())
}

/// The images of `ImageFolder(<dir>)` in torchvision's order: class folders sorted, then every
/// image file under each (sub-folders walked in sorted order, files sorted by name).
pub fn image_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) =
            entries.into_iter().partition(|p| p.is_dir());
        out.extend(files.into_iter().filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "ppm" | "bmp" | "pgm" | "tif" | "tiff" | "webp"
                )
            })
        }));
        for d in dirs {
            walk(&d, out)?;
        }
        Ok(())
    }
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "reading {} (--imagenet must hold ImageNet's val/ with one folder per synset)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut out = Vec::new();
    for class in classes {
        walk(&class, &mut out)?;
    }
    Ok(out)
}

/// Writes `images.npy` for every layer of `folder` that has ids but no images, from
/// `<imagenet>/val`, one unit at a time.
pub fn resolve_pointers(folder: &Path, imagenet: &Path) -> Result<()> {
    let dataset = Dataset::open(folder)?;
    let pending: Vec<_> = dataset
        .layers()
        .iter()
        .filter(|l| l.images().is_none())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let val = imagenet.join("val");
    let images = image_folder(&val)?;
    ensure!(!images.is_empty(), "{}: no images", val.display());
    let units: usize = pending.iter().map(|l| l.units()).sum();
    let bar = Progress::new(
        units,
        &format!("{}: images from {}", dataset.key(), val.display()),
        "units",
    );
    for layer in pending {
        let shape = layer.shape();
        let (k, h, w) = (shape.k, shape.height, shape.width);
        let dir = folder.join(layer.name());
        let final_path = dir.join(IMAGES_FILE);
        let tmp = dir.join(format!(".{IMAGES_FILE}.tmp-{}", std::process::id()));
        let result = (|| -> Result<()> {
            let mut out = BufWriter::new(File::create(&tmp)?);
            out.write_all(&npy_header_for("|u1", &[layer.units(), k, 3, h, w]))?;
            for unit in 0..layer.units() {
                let ids = layer.ids(unit);
                ensure!(
                    ids.len() == k,
                    "{}/ids.csv: unit {unit} has {} ids, expected {k}",
                    dir.display(),
                    ids.len()
                );
                for (j, &id) in ids.iter().enumerate() {
                    let path = images.get(id as usize).with_context(|| {
                        format!(
                            "{}/ids.csv: unit {unit}, exemplar {j} wants image #{id} of {}, \
                             which holds {} images (is it ImageNet's validation set?)",
                            dir.display(),
                            val.display(),
                            images.len()
                        )
                    })?;
                    let img = image::open(path)
                        .with_context(|| {
                            format!(
                                "{}/ids.csv: unit {unit} wants {} (image #{id}), which cannot be \
                                 read",
                                dir.display(),
                                path.display()
                            )
                        })?
                        .to_rgb8();
                    let resized = pil_bilinear(&img, w, h);
                    out.write_all(&to_chw_bytes(&resized, w, h))?;
                }
                bar.inc(1);
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &final_path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("resolving the images of {}", dir.display()))?;
    }
    bar.finish();
    Ok(())
}

/// HWC RGB bytes to CHW, through the loader's float round trip (`v / 255` then `* 255` in
/// float32, truncated), which moves a few values down by one.
fn to_chw_bytes(rgb: &[u8], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; 3 * w * h];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let v = (f32::from(px[c]) / 255.0) * 255.0;
            out[c * w * h + i] = v as u8;
        }
    }
    out
}

/// Pillow's bilinear resize of an RGB image (`Image.resize((w, h), BILINEAR)`, Pillow 13): a
/// triangle filter widened by the scale when shrinking, coefficients in 22-bit fixed point, two
/// passes with the first pass's result rounded to bytes. The horizontal pass goes first unless
/// the height shrinks by more than twice as many pixels as the width (Pillow's rule since it
/// learnt to order the passes; older releases always went horizontal first, which moves a few
/// values by one level). Returns HWC bytes.
///
/// Written here because the authors' pointers are resolved through Pillow, and no Rust crate
/// reproduces its rounding (image's and fast_image_resize's filters differ by a level here and
/// there); trainer/tests/released.rs holds it to Pillow's bytes.
pub fn pil_bilinear(img: &image::RgbImage, out_w: usize, out_h: usize) -> Vec<u8> {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let shrink_h = in_h as i64 - out_h as i64;
    let vertical_first = shrink_h > 0 && shrink_h > (in_w as i64 - out_w as i64) * 2;
    let src = img.as_raw().clone();
    if vertical_first {
        let v = vertical(&src, in_w, in_h, out_h);
        horizontal(&v, in_w, out_h, out_w)
    } else {
        let h = horizontal(&src, in_w, in_h, out_w);
        vertical(&h, out_w, in_h, out_h)
    }
}

/// One horizontal pass over HWC bytes `w` wide and `h` high, to `out_w` wide.
fn horizontal(src: &[u8], w: usize, h: usize, out_w: usize) -> Vec<u8> {
    if w == out_w {
        return src.to_vec();
    }
    let (bounds, ksize, kk) = coefficients(w, out_w);
    let mut out = vec![0u8; out_w * h * 3];
    for y in 0..h {
        for x in 0..out_w {
            let (xmin, xn) = bounds[x];
            let k = &kk[x * ksize..x * ksize + xn];
            for c in 0..3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &kv) in k.iter().enumerate() {
                    ss += i64::from(src[(y * w + xmin + i) * 3 + c]) * i64::from(kv);
                }
                out[(y * out_w + x) * 3 + c] = clip8(ss);
            }
        }
    }
    out
}

/// One vertical pass over HWC bytes `w` wide and `h` high, to `out_h` high.
fn vertical(src: &[u8], w: usize, h: usize, out_h: usize) -> Vec<u8> {
    if h == out_h {
        return src.to_vec();
    }
    let (bounds, ksize, kk) = coefficients(h, out_h);
    let mut out = vec![0u8; w * out_h * 3];
    for y in 0..out_h {
        let (ymin, yn) = bounds[y];
        let k = &kk[y * ksize..y * ksize + yn];
        for x in 0..w {
            for c in 0..3 {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &kv) in k.iter().enumerate() {
                    ss += i64::from(src[((ymin + i) * w + x) * 3 + c]) * i64::from(kv);
                }
                out[(y * w + x) * 3 + c] = clip8(ss);
            }
        }
    }
    out
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `precompute_coeffs` for the bilinear filter (support 1), normalised to fixed point:
/// per output pixel its first input pixel and count, the kernel width, and the coefficients.
fn coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, usize, Vec<i32>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut k = vec![0f64; xmax];
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate() {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let w = (1.0 - t.abs()).max(0.0);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate() {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + v * f64::from(1u32 << PRECISION_BITS)) as i32
            } else {
                (0.5 + v * f64::from(1u32 << PRECISION_BITS)) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, ksize, kk)
}

/// Whether a key's folder has layers whose images are still pointers into ImageNet.
pub fn has_pointers(folder: &Path) -> Result<bool> {
    Ok(Dataset::open(folder)?
        .layers()
        .iter()
        .any(|l| l.images().is_none()))
}

/// One present key of a root: its folder, size on disk, layers, units, and whether every layer
/// has its images.
#[derive(Debug)]
pub struct Present {
    pub key: ModelKey,
    pub dir: PathBuf,
    pub bytes: u64,
    pub layers: usize,
    pub units: usize,
    pub annotated: usize,
    pub images: bool,
}

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Every key present under `root`.
pub fn list(root: &Path) -> Result<Vec<Present>> {
    let mut out = Vec::new();
    for dir in milan_shared::milannotations::discover(root)? {
        let dataset = Dataset::open(&dir)?;
        out.push(Present {
            key: dataset.key().clone(),
            bytes: du(&dir),
            layers: dataset.layers().len(),
            units: dataset.layers().iter().map(|l| l.units()).sum(),
            annotated: dataset.annotated().len(),
            images: dataset.layers().iter().all(|l| l.images().is_some()),
            dir,
        });
    }
    Ok(out)
}
