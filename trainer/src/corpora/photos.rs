//! A real photo set for the demo, gathered from the package registries (`trainer assets fetch
//! photos`): Debian's tuxpaint-stamps-default (photographs of animals, plants, food, vehicles,
//! buildings, signs... cut out with transparency; GPL-2+) composited on plain, gradient and
//! textured backgrounds, plus the 20 ImageNet photos PyPI's foolbox ships (MIT). Both downloads are
//! pinned by SHA-256; the composites are drawn from a fixed seed, so every machine gets the same
//! images. Written to `<assets>/photos/` through a temporary folder renamed into place.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A background: a plain colour, a gradient, stripes, a checkerboard or smooth noise.
fn background(rng: &mut ChaCha8Rng) -> RgbImage {
    background_with_kind(rng).0
}

/// A background and which of [`PATTERNS`] it is.
pub(crate) fn background_with_kind(rng: &mut ChaCha8Rng) -> (RgbImage, usize) {
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
    let (ca, sa) = (angle.cos(), angle.sin());
    // Smooth noise: a coarse random grid, bilinearly interpolated.
    let grid: Vec<f32> = (0..64).map(|_| uniform(rng)).collect();
    let image = RgbImage::from_fn(SIZE, SIZE, |x, y| {
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
    });
    (image, kind)
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
    // Categories are drawn uniformly, then a stamp within: the alphabets would otherwise fill a
    // third of the set.
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
    let mut cache: std::collections::HashMap<usize, RgbaImage> = std::collections::HashMap::new();
    for i in 0..COMPOSITES {
        let mut canvas = background(&mut rng);
        let count = 1 + usize::from(uniform(&mut rng) < 0.35);
        let mut label = String::new();
        for _ in 0..count {
            let category = &categories[below(&mut rng, categories.len())];
            let first = stamps
                .iter()
                .position(|(c, _)| c == category)
                .expect("a stamp");
            let in_category = stamps[first..]
                .iter()
                .take_while(|(c, _)| c == category)
                .count();
            let s = first + below(&mut rng, in_category);
            if !cache.contains_key(&s) {
                let img = image::open(&stamps[s].1)
                    .with_context(|| format!("reading {}", stamps[s].1.display()))?
                    .to_rgba8();
                if cache.len() > 256 {
                    cache.clear();
                }
                cache.insert(s, img);
            }
            let side = (SIZE as f32 * (0.35 + 0.5 * uniform(&mut rng))) as u32;
            let x = (uniform(&mut rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
            let y = (uniform(&mut rng) * (SIZE - side / 2) as f32) as i64 - i64::from(side / 4);
            paste(&mut canvas, &cache[&s], side, x, y);
            if label.is_empty() {
                label.clone_from(&stamps[s].0);
            }
        }
        canvas.save(out.join("composites").join(format!("{i:04}-{label}.png")))?;
        bar.inc(1);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backgrounds_are_drawn_the_same_from_the_same_seed() {
        let a = background(&mut ChaCha8Rng::seed_from_u64(5));
        let b = background(&mut ChaCha8Rng::seed_from_u64(5));
        let c = background(&mut ChaCha8Rng::seed_from_u64(6));
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
}
