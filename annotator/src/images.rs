//! Exemplar images on disk, content-addressed: `<data dir>/images/<first two hex>/<sha256>.png`.
//!
//! Import stores three PNGs per exemplar: the original image and its mask (lossless, so export
//! gives back the exact arrays) and the view a worker sees (mask region at full brightness, the
//! rest dimmed to 25%, milan-reference.md §1). Identical content is stored once.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{GrayImage, ImageFormat, RgbImage};
use sha2::{Digest, Sha256};

/// Brightness of what lies outside the mask in the worker's view.
pub const DIM: f32 = 0.25;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("image {0}: {1}")]
    Codec(String, String),
    #[error("no image {0}")]
    Missing(String),
}

#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// A content hash: 64 lowercase hex digits. Anything else never reaches the file system.
pub fn valid_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ImageStore {
    pub fn new(data_dir: &Path) -> Self {
        ImageStore {
            root: data_dir.join("images"),
        }
    }

    /// Where the image with this hash lives, or `None` for a string that is not a hash.
    pub fn path(&self, hash: &str) -> Option<PathBuf> {
        valid_hash(hash).then(|| self.root.join(&hash[..2]).join(format!("{hash}.png")))
    }

    /// Stores PNG bytes under their hash (written to a temp file and renamed: never half a file).
    pub fn put(&self, png: &[u8]) -> Result<String, ImageError> {
        let hash = hex::encode(Sha256::digest(png));
        let path = self.path(&hash).expect("sha256 hex is a valid hash");
        if path.exists() {
            return Ok(hash);
        }
        let dir = path.parent().expect("two levels under root");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |cause| ImageError::Io { path, cause }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        // Unique per call: import stores on several threads, and the same image (one photo among
        // the exemplars of many units) can be put by two at once.
        static PUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{hash}.{}-{n}.tmp", std::process::id()));
        fs::write(&tmp, png).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(hash)
    }

    pub fn read(&self, hash: &str) -> Result<Vec<u8>, ImageError> {
        let path = self
            .path(hash)
            .ok_or_else(|| ImageError::Missing(hash.to_owned()))?;
        fs::read(&path).map_err(|_| ImageError::Missing(hash.to_owned()))
    }

    /// The planar (3, H, W) pixels of a stored RGB image.
    pub fn read_rgb_planar(&self, hash: &str) -> Result<(Vec<u8>, u32, u32), ImageError> {
        let img = image::load_from_memory_with_format(&self.read(hash)?, ImageFormat::Png)
            .map_err(|e| ImageError::Codec(hash.to_owned(), e.to_string()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0u8; 3 * plane];
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = px.0[c];
            }
        }
        Ok((out, h, w))
    }

    /// The 0/1 values of a stored mask.
    pub fn read_mask(&self, hash: &str) -> Result<Vec<u8>, ImageError> {
        let img = image::load_from_memory_with_format(&self.read(hash)?, ImageFormat::Png)
            .map_err(|e| ImageError::Codec(hash.to_owned(), e.to_string()))?
            .to_luma8();
        Ok(img
            .into_raw()
            .into_iter()
            .map(|v| u8::from(v > 0))
            .collect())
    }
}

fn png(encode: impl FnOnce(&mut Cursor<Vec<u8>>) -> image::ImageResult<()>) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    encode(&mut out).expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

/// PNGs of one exemplar: (original, mask, worker view). `rgb` is planar (3, H, W), `mask` (H, W).
pub fn exemplar_pngs(rgb: &[u8], mask: &[u8], height: usize, width: usize) -> [Vec<u8>; 3] {
    let plane = height * width;
    // Every dimmed value from a table: the same `(v * DIM) as u8` for each of the 256 values.
    let dimmed: [u8; 256] = std::array::from_fn(|v| (v as f32 * DIM) as u8);
    let (red, rest) = rgb[..3 * plane].split_at(plane);
    let (green, blue) = rest.split_at(plane);
    // Plain indexing, no iterator adapters or array `map`: those are generic functions that a
    // build without link-time optimisation (scripts/demo's profile) does not inline across codegen
    // units, and this loop is most of an import's time (docs/performance.md, "First run").
    let (mut original, mut view) = (vec![0u8; 3 * plane], vec![0u8; 3 * plane]);
    for i in 0..plane {
        let (r, g, b) = (red[i], green[i], blue[i]);
        original[3 * i] = r;
        original[3 * i + 1] = g;
        original[3 * i + 2] = b;
        if mask[i] == 1 {
            view[3 * i] = r;
            view[3 * i + 1] = g;
            view[3 * i + 2] = b;
        } else {
            view[3 * i] = dimmed[usize::from(r)];
            view[3 * i + 1] = dimmed[usize::from(g)];
            view[3 * i + 2] = dimmed[usize::from(b)];
        }
    }
    let image = |raw| RgbImage::from_raw(width as u32, height as u32, raw).expect("3*H*W values");
    let (original, view) = (image(original), image(view));
    let mask_img = GrayImage::from_raw(width as u32, height as u32, mask.to_vec())
        .expect("mask has H*W values");
    [
        png(|out| original.write_to(out, ImageFormat::Png)),
        png(|out| mask_img.write_to(out, ImageFormat::Png)),
        png(|out| view.write_to(out, ImageFormat::Png)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pngs_round_trip_exactly_and_dim_outside_the_mask() {
        let (h, w) = (3, 4);
        let rgb: Vec<u8> = (0..3 * h * w).map(|i| (i * 7 + 40) as u8).collect();
        let mask: Vec<u8> = (0..h * w).map(|i| u8::from(i % 3 == 0)).collect();
        let [original, mask_png, view] = exemplar_pngs(&rgb, &mask, h, w);
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let (a, b, v) = (
            store.put(&original).unwrap(),
            store.put(&mask_png).unwrap(),
            store.put(&view).unwrap(),
        );
        assert_eq!(store.put(&original).unwrap(), a, "content-addressed");
        assert_eq!(store.read_rgb_planar(&a).unwrap(), (rgb.clone(), 3, 4));
        assert_eq!(store.read_mask(&b).unwrap(), mask);
        let (seen, _, _) = store.read_rgb_planar(&v).unwrap();
        assert_eq!(seen[0], rgb[0], "inside the mask: full brightness");
        assert_eq!(seen[1], (f32::from(rgb[1]) * DIM) as u8, "outside: 25%");
    }

    /// The PNG bytes (so the hashes a set stores) are those of the first implementation, pixel
    /// by pixel through `from_fn`: importing a folder again after an upgrade still finds its sets.
    #[test]
    fn pngs_are_byte_identical_to_the_per_pixel_construction() {
        let (h, w) = (17, 23);
        let rgb: Vec<u8> = (0..3 * h * w).map(|i| (i * 37 % 251) as u8).collect();
        let mask: Vec<u8> = (0..h * w).map(|i| u8::from(i % 5 < 2)).collect();
        let plane = h * w;
        let original = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let i = y as usize * w + x as usize;
            image::Rgb([rgb[i], rgb[plane + i], rgb[2 * plane + i]])
        });
        let view = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let i = y as usize * w + x as usize;
            image::Rgb(std::array::from_fn(|c| {
                let v = rgb[c * plane + i];
                if mask[i] == 1 {
                    v
                } else {
                    (f32::from(v) * DIM) as u8
                }
            }))
        });
        let [a, _, v] = exemplar_pngs(&rgb, &mask, h, w);
        assert_eq!(a, png(|out| original.write_to(out, ImageFormat::Png)));
        assert_eq!(v, png(|out| view.write_to(out, ImageFormat::Png)));
    }

    #[test]
    fn only_hashes_reach_the_file_system() {
        let store = ImageStore::new(Path::new("/data"));
        for bad in [
            "../../etc/passwd",
            "",
            "ABCDEF",
            &"g".repeat(64),
            &"a".repeat(63),
        ] {
            assert!(store.path(bad).is_none(), "{bad:?}");
        }
        assert!(store.path(&"a".repeat(64)).is_some());
    }
}
