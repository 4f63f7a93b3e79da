//! A real photo set for the demo, gathered from the package registries (`trainer assets fetch
//! photos`): Debian's tuxpaint-stamps-default (photographs of animals, plants, food, vehicles,
//! buildings, signs... cut out with transparency; GPL-2+) composited on plain, gradient and
//! textured backgrounds, plus the 20 ImageNet photos PyPI's foolbox ships (MIT). Both downloads are
//! pinned by SHA-256; the composites are drawn from a fixed seed, so every machine gets the same
//! images. Written to `<assets>/photos/` through a temporary folder renamed into place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use image::{Rgb, RgbImage, RgbaImage};
use indicatif::{ProgressBar, ProgressStyle};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::assets::{assets_dir, download_wheel, sha256_file};

const STAMPS_PACKAGE: &str = "tuxpaint-stamps-default=2022.06.04-1";
const STAMPS_SHA256: &str = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34";
const FOOLBOX: (&str, &str, &str) = (
    "foolbox",
    "3.3.4",
    "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb",
);
/// Composites drawn; with the 20 ImageNet photos, the set the demo's exemplars come from.
pub const COMPOSITES: usize = 1200;
const SIZE: u32 = 224;
const SEED: u64 = 2022;
const COMPLETE: &str = ".complete";

pub fn dir() -> PathBuf {
    assets_dir().join("photos")
}

pub fn is_fetched() -> bool {
    dir().join(COMPLETE).is_file()
}

use milan_shared::random::{below_f32 as below, uniform_f32 as uniform};

/// The kinds of background [`background_with_kind`] draws, by index.
pub const PATTERNS: [&str; 5] = ["plain", "gradient", "stripes", "checkerboard", "noise"];

/// A background (a plain colour, a gradient, stripes, a checkerboard or smooth noise) and which
/// of [`PATTERNS`] it is.
#[cfg(feature = "train")]
pub(crate) fn background_with_kind(rng: &mut ChaCha8Rng) -> (RgbImage, usize) {
    let drawn = BackgroundDraw::draw(rng);
    (drawn.render(), drawn.kind)
}

/// Everything a background takes from the random stream, drawn before any pixel: the stream is
/// read in order, the pixels can then be rendered on any thread.
struct BackgroundDraw {
    a: [f32; 3],
    b: [f32; 3],
    kind: usize,
    period: f32,
    angle: f32,
    /// Smooth noise: a coarse random grid, bilinearly interpolated.
    grid: Vec<f32>,
}

impl BackgroundDraw {
    fn draw(rng: &mut ChaCha8Rng) -> Self {
        let colour = |rng: &mut ChaCha8Rng| -> [f32; 3] {
            [
                uniform(rng) * 255.0,
                uniform(rng) * 255.0,
                uniform(rng) * 255.0,
            ]
        };
        let (a, b) = (colour(rng), colour(rng));
        let kind = below(rng, 5);
        let period = 8.0 + uniform(rng) * 40.0;
        let angle = uniform(rng) * std::f32::consts::PI;
        let grid = (0..64).map(|_| uniform(rng)).collect();
        Self {
            a,
            b,
            kind,
            period,
            angle,
            grid,
        }
    }

    fn render(&self) -> RgbImage {
        let Self {
            a,
            b,
            kind,
            period,
            angle,
            ref grid,
        } = *self;
        let (ca, sa) = (angle.cos(), angle.sin());
        RgbImage::from_fn(SIZE, SIZE, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let t = match kind {
                0 => 0.0,
                1 => (fx * ca + fy * sa) / (SIZE as f32 * 1.5) + 0.25,
                2 => f32::from(u8::from(
                    ((fx * ca + fy * sa) / period).rem_euclid(2.0) < 1.0,
                )),
                3 => f32::from(u8::from(
                    ((fx / period).floor() as i32 + (fy / period).floor() as i32) % 2 == 0,
                )),
                _ => {
                    let gx = fx / SIZE as f32 * 7.0;
                    let gy = fy / SIZE as f32 * 7.0;
                    let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
                    let (dx, dy) = (gx - x0 as f32, gy - y0 as f32);
                    let g = |i: usize, j: usize| grid[(j.min(7)) * 8 + i.min(7)];
                    let top = g(x0, y0) * (1.0 - dx) + g(x0 + 1, y0) * dx;
                    let bottom = g(x0, y0 + 1) * (1.0 - dx) + g(x0 + 1, y0 + 1) * dx;
                    top * (1.0 - dy) + bottom * dy
                }
            }
            .clamp(0.0, 1.0);
            Rgb([0, 1, 2].map(|c| (a[c] * (1.0 - t) + b[c] * t) as u8))
        })
    }
}

/// Pastes `stamp` scaled to `side` pixels (longest side) at (x, y), blending by its alpha.
fn paste(canvas: &mut RgbImage, stamp: &RgbaImage, side: u32, x: i64, y: i64) {
    paste_with(canvas, stamp, side, x, y, |_, _, _| {});
}

/// [`paste`], telling `covered` each canvas pixel the stamp touches and its alpha there.
pub(crate) fn paste_with(
    canvas: &mut RgbImage,
    stamp: &RgbaImage,
    side: u32,
    x: i64,
    y: i64,
    mut covered: impl FnMut(u32, u32, f32),
) {
    let (w, h) = stamp.dimensions();
    let scale = side as f32 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale) as u32).max(1),
        ((h as f32 * scale) as u32).max(1),
    );
    let small = image::imageops::resize(stamp, nw, nh, image::imageops::FilterType::Triangle);
    for (sx, sy, p) in small.enumerate_pixels() {
        let (cx, cy) = (x + i64::from(sx), y + i64::from(sy));
        if cx < 0 || cy < 0 || cx >= i64::from(SIZE) || cy >= i64::from(SIZE) {
            continue;
        }
        let alpha = f32::from(p[3]) / 255.0;
        covered(cx as u32, cy as u32, alpha);
        let dst = canvas.get_pixel_mut(cx as u32, cy as u32);
        for c in 0..3 {
            dst[c] = (f32::from(p[c]) * alpha + f32::from(dst[c]) * (1.0 - alpha)) as u8;
        }
    }
}

/// The stamps of the unpacked package: photographic ones (drawings named "cartoon" and the sign
/// language alphabet are left out), sorted so that the draw is the same everywhere.
pub(crate) fn stamps(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "png") {
                out.push(p);
            }
        }
        Ok(())
    }
    let base = root.join("usr/share/tuxpaint/stamps");
    let mut files = Vec::new();
    walk(&base, &mut files)?;
    files.sort();
    Ok(files
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&base).ok()?.to_string_lossy().into_owned();
            if rel.contains("cartoon") || rel.contains("/asl/") {
                return None;
            }
            let category = rel.split('/').next()?.to_owned();
            Some((category, p))
        })
        .collect())
}

/// Runs `f` in a fresh scratch folder `<assets>/.<name>.download-<pid>`, removed afterwards
/// whatever `f` returns.
fn in_scratch<T>(name: &str, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let root = assets_dir();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let scratch = root.join(format!(".{name}.download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let result = f(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Fetches and builds the photo set (once).
pub fn fetch() -> Result<PathBuf> {
    let target = dir();
    if is_fetched() {
        println!("photos: already in {}", target.display());
        return Ok(target);
    }
    in_scratch("photos", |scratch| build(scratch, &target))?;
    Ok(target)
}

/// Downloads the stamps package into `scratch`, checks its SHA-256 and unpacks it; returns the
/// unpacked root (its stamps are listed by [`stamps`]).
fn download_stamps(scratch: &Path) -> Result<PathBuf> {
    println!("photos: downloading {STAMPS_PACKAGE} from Debian");
    let status = Command::new("apt-get")
        .args(["download", STAMPS_PACKAGE])
        .current_dir(scratch)
        .status()
        .context("running apt-get: the photo set needs Debian's package tools")?;
    if !status.success() {
        bail!("apt-get download {STAMPS_PACKAGE} failed ({status}); run `apt-get update` first");
    }
    let deb = std::fs::read_dir(scratch)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get downloaded no .deb")?;
    let hash = sha256_file(&deb)?;
    ensure!(
        hash == STAMPS_SHA256,
        "{}: SHA-256 {hash} does not match the pinned {STAMPS_SHA256}",
        deb.display()
    );
    let unpacked = scratch.join("deb");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .context("running dpkg-deb")?;
    ensure!(status.success(), "dpkg-deb -x {} failed", deb.display());
    std::fs::remove_file(&deb)?;
    Ok(unpacked)
}

/// The unpacked stamps package (`trainer assets fetch stamps`), kept for the grounded corpus,
/// which composes its own scenes and needs the cut-outs themselves.
pub fn stamps_dir() -> PathBuf {
    assets_dir().join("tuxpaint-stamps")
}

/// Fetches and unpacks the stamps package (once); returns its folder.
pub fn fetch_stamps() -> Result<PathBuf> {
    let target = stamps_dir();
    if target.join(COMPLETE).is_file() {
        return Ok(target);
    }
    in_scratch("stamps", |scratch| {
        let unpacked = download_stamps(scratch)?;
        std::fs::write(unpacked.join(COMPLETE), STAMPS_SHA256)?;
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        std::fs::rename(&unpacked, &target)
            .with_context(|| format!("moving into {}", target.display()))?;
        Ok(())
    })?;
    println!("stamps: {}", target.display());
    Ok(target)
}

fn build(scratch: &Path, target: &Path) -> Result<()> {
    let unpacked = download_stamps(scratch)?;
    let stamps = stamps(&unpacked)?;
    ensure!(
        stamps.len() >= 100,
        "only {} stamps in the package",
        stamps.len()
    );
    let mut categories: Vec<String> = stamps.iter().map(|(c, _)| c.clone()).collect();
    categories.dedup();

    let out = scratch.join("photos");
    std::fs::create_dir_all(out.join("composites"))?;
    std::fs::create_dir_all(out.join("imagenet"))?;

    println!("photos: downloading {}=={} from PyPI", FOOLBOX.0, FOOLBOX.1);
    let wheels = scratch.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    let wheel = download_wheel(FOOLBOX.0, FOOLBOX.1, FOOLBOX.2, &wheels)?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)?;
    let names: Vec<String> = archive
        .file_names()
        .filter(|n| n.starts_with("foolbox/data/imagenet_") && n.ends_with(".jpg"))
        .map(str::to_owned)
        .collect();
    for name in &names {
        let mut entry = archive.by_name(name)?;
        let file = out
            .join("imagenet")
            .join(name.rsplit('/').next().expect("a name"));
        std::io::copy(&mut entry, &mut std::fs::File::create(&file)?)?;
    }

    let bar = ProgressBar::new(COMPOSITES as u64).with_style(
        ProgressStyle::with_template("{spinner} composing photos {bar:40} {pos}/{len}")
            .expect("valid template"),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let plans: Vec<Composite> = (0..COMPOSITES)
        .map(|_| Composite::draw(&mut rng, &stamps, &categories))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    compose_all(&plans, &stamps, &out.join("composites"), threads, &bar)?;
    bar.finish_and_clear();
    std::fs::write(
        out.join("SOURCES.txt"),
        format!(
            "composites/: {COMPOSITES} images, photographs from Debian's {STAMPS_PACKAGE} (Tux Paint \
             stamps, GPL-2+) on drawn backgrounds, seed {SEED}\nimagenet/: {} ImageNet validation \
             photos from PyPI foolbox {} (MIT)\n",
            names.len(),
            FOOLBOX.1
        ),
    )?;
    std::fs::write(out.join(COMPLETE), STAMPS_SHA256)?;
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(&out, target).with_context(|| format!("moving into {}", target.display()))?;
    println!(
        "photos: {COMPOSITES} composites and {} ImageNet photos in {}",
        names.len(),
        target.display()
    );
    Ok(())
}

/// One stamp of a composite: which, how large (longest side, pixels) and where.
struct Placement {
    stamp: usize,
    side: u32,
    x: i64,
    y: i64,
}

/// One composite as drawn from the seed: its background, its one or two stamps and its label
/// (the first stamp's category, which names the file).
struct Composite {
    background: BackgroundDraw,
    placements: Vec<Placement>,
    label: String,
}

impl Composite {
    /// Draws one composite. Categories are drawn uniformly, then a stamp within: the alphabets
    /// would otherwise fill a third of the set.
    fn draw(rng: &mut ChaCha8Rng, stamps: &[(String, PathBuf)], categories: &[String]) -> Self {
        let background = BackgroundDraw::draw(rng);
        let count = 1 + usize::from(uniform(rng) < 0.35);
        let placements: Vec<Placement> = (0..count)
            .map(|_| {
                let category = &categories[below(rng, categories.len())];
                let first = stamps
                    .iter()
                    .position(|(c, _)| c == category)
                    .expect("a stamp");
                let in_category = stamps[first..]
                    .iter()
                    .take_while(|(c, _)| c == category)
                    .count();
                let stamp = first + below(rng, in_category);
                let side = (SIZE as f32 * (0.35 + 0.5 * uniform(rng))) as u32;
                let x = (uniform(rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
                let y = (uniform(rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
                Placement { stamp, side, x, y }
            })
            .collect();
        let label = stamps[placements[0].stamp].0.clone();
        Self {
            background,
            placements,
            label,
        }
    }

    /// The composite's pixels: its background with its stamps pasted on, the stamps decoded
    /// through `cache` (kept while small: most composites reuse a stamp seen shortly before).
    fn compose(
        &self,
        stamps: &[(String, PathBuf)],
        cache: &mut HashMap<usize, RgbaImage>,
    ) -> Result<RgbImage> {
        let mut canvas = self.background.render();
        for p in &self.placements {
            if !cache.contains_key(&p.stamp) {
                let path = &stamps[p.stamp].1;
                let img = image::open(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .to_rgba8();
                if cache.len() > 256 {
                    cache.clear();
                }
                cache.insert(p.stamp, img);
            }
            paste(&mut canvas, &cache[&p.stamp], p.side, p.x, p.y);
        }
        Ok(canvas)
    }
}

/// Renders and saves the composites `plans` into `out` (`NNNN-label.png`) on `threads` threads:
/// each composite's draws were taken in order beforehand, so the files do not depend on them.
fn compose_all(
    plans: &[Composite],
    stamps: &[(String, PathBuf)],
    out: &Path,
    threads: usize,
    bar: &ProgressBar,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let work = || -> Result<()> {
        let mut cache: HashMap<usize, RgbaImage> = HashMap::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(plan) = plans.get(i) else {
                return Ok(());
            };
            let result = plan.compose(stamps, &mut cache).and_then(|canvas| {
                let file = out.join(format!("{i:04}-{}.png", plan.label));
                canvas
                    .save(&file)
                    .with_context(|| format!("writing {}", file.display()))
            });
            if result.is_err() {
                // The other threads stop at their next composite.
                next.store(plans.len(), Ordering::Relaxed);
                return result;
            }
            bar.inc(1);
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a composing thread panicked"))
            .collect::<Result<Vec<()>>>()
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backgrounds_are_drawn_the_same_from_the_same_seed() {
        let background = |seed| BackgroundDraw::draw(&mut ChaCha8Rng::seed_from_u64(seed)).render();
        let (a, b, c) = (background(5), background(5), background(6));
        assert_eq!(a.dimensions(), (SIZE, SIZE));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn stamps_blend_by_their_alpha_and_are_clipped_at_the_edges() {
        let mut canvas = RgbImage::from_pixel(SIZE, SIZE, Rgb([0, 0, 0]));
        // Left half opaque white, right half transparent.
        let stamp = RgbaImage::from_fn(10, 10, |x, _| {
            image::Rgba([255, 255, 255, if x < 5 { 255 } else { 0 }])
        });
        paste(&mut canvas, &stamp, 10, -3, SIZE as i64 - 5);
        assert_eq!(canvas.get_pixel(0, SIZE - 1), &Rgb([255, 255, 255]));
        assert_eq!(canvas.get_pixel(4, SIZE - 1), &Rgb([0, 0, 0]));
        assert_eq!(canvas.get_pixel(0, SIZE - 6), &Rgb([0, 0, 0]));
    }

    #[test]
    fn composites_are_the_same_files_on_one_thread_or_several() {
        let dir = tempfile::tempdir().unwrap();
        let mut stamps = Vec::new();
        for (k, category) in ["bird", "bird", "car", "tree"].iter().enumerate() {
            let path = dir.path().join(format!("{category}{k}.png"));
            RgbaImage::from_fn(40 + 7 * k as u32, 30, |x, y| {
                image::Rgba([
                    (x * 5) as u8,
                    (y * 8) as u8,
                    40 * k as u8,
                    (x * y % 256) as u8,
                ])
            })
            .save(&path)
            .unwrap();
            stamps.push((category.to_string(), path));
        }
        let mut categories: Vec<String> = stamps.iter().map(|(c, _)| c.clone()).collect();
        categories.dedup();
        let draw = || {
            let mut rng = ChaCha8Rng::seed_from_u64(SEED);
            (0..9)
                .map(|_| Composite::draw(&mut rng, &stamps, &categories))
                .collect::<Vec<_>>()
        };
        let files = |threads: usize| {
            let out = dir.path().join(format!("out-{threads}"));
            std::fs::create_dir_all(&out).unwrap();
            compose_all(&draw(), &stamps, &out, threads, &ProgressBar::hidden()).unwrap();
            let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| {
                    let path = e.unwrap().path();
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read(&path).unwrap())
                })
                .collect();
            files.sort();
            files
        };
        let one = files(1);
        assert_eq!(one.len(), 9);
        assert!(one[0].0.starts_with("0000-") && one[8].0.starts_with("0008-"));
        assert_eq!(files(3), one);
        // A composite is its background with the stamps on it: never the bare background.
        let plans = draw();
        let bare = plans[0].background.render();
        let composed = image::load_from_memory(&one[0].1).unwrap().to_rgb8();
        assert_ne!(composed, bare);
    }
}
