//! Exemplar sheets: a unit's exemplars as a worker sees them — the region where the unit fires at
//! full brightness, the rest dimmed to 25% (milan-reference.md §1) — with the region's edge drawn
//! in a colour-blind-safe yellow, five to a row, as one JPEG. The grid pages use a small sheet,
//! the unit page a large one whose tiles it shows one by one (CSS sprites: one file per unit,
//! not fifteen).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

/// Tiles per row of a sheet; a full set of 15 is three rows.
pub const PER_ROW: usize = 5;
/// Brightness of what lies outside the region (the worker page's).
pub const DIM: f32 = 0.25;
/// The region's edge: Okabe-Ito yellow.
pub const EDGE: [u8; 3] = [240, 228, 66];
/// JPEG quality of sheets: a unit's large sheet is about 30 KB at 112-pixel tiles.
pub const QUALITY: u8 = 82;

/// One exemplar: an RGB image in planes (3 x height x width, as MILANNOTATIONS stores it) and
/// its 0/1 mask (height x width).
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> {
    pub rgb: &'a [u8],
    pub mask: &'a [u8],
    pub height: usize,
    pub width: usize,
}

/// Sheet sizes: the tile side of the grid's sheet and of the unit page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub thumb: u32,
    pub full: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            thumb: 40,
            full: 112,
        }
    }
}

/// The two sheets of a unit, JPEG bytes: (grid, unit page).
pub fn sheets(exemplars: &[Exemplar], sizes: Sizes) -> (Vec<u8>, Vec<u8>) {
    // The large tiles never enlarge an image: a 64-pixel exemplar stays 64 pixels.
    let native = exemplars
        .iter()
        .map(|e| e.height.max(e.width) as u32)
        .max()
        .unwrap_or(sizes.full);
    let full_side = sizes.full.min(native).max(1);
    let thumb_side = sizes.thumb.min(full_side).max(1);
    (
        jpeg(&sheet(exemplars, thumb_side, 1)),
        jpeg(&sheet(exemplars, full_side, 0)),
    )
}

/// The exemplars as tiles of `side` pixels, five to a row (a short last row padded white),
/// `gap` pixels apart. The unit page's sheet has no gap: its tiles are cut out by percentages.
pub fn sheet(exemplars: &[Exemplar], side: u32, gap: u32) -> RgbImage {
    let rows = exemplars.len().div_ceil(PER_ROW).max(1) as u32;
    let cols = PER_ROW as u32;
    let mut out = RgbImage::from_pixel(
        cols * (side + gap) - gap,
        rows * (side + gap) - gap,
        Rgb([255, 255, 255]),
    );
    for (j, e) in exemplars.iter().enumerate() {
        let tile = tile(e, side);
        let (ox, oy) = (
            (j % PER_ROW) as u32 * (side + gap),
            (j / PER_ROW) as u32 * (side + gap),
        );
        image::imageops::replace(&mut out, &tile, i64::from(ox), i64::from(oy));
    }
    out
}

/// One exemplar at `side` x `side`: each tile pixel the mean of the source pixels it covers
/// (nearest when enlarging), the region lit, the rest dimmed, the region's edge drawn.
pub fn tile(e: &Exemplar, side: u32) -> RgbImage {
    let (h, w, s) = (e.height, e.width, side as usize);
    let plane = h * w;
    let span = |t: usize, n: usize| {
        let a = t * n / s;
        let b = ((t + 1) * n / s).max(a + 1).min(n);
        (a, b)
    };
    let mut lit = vec![false; s * s];
    let mut rgb = vec![[0f32; 3]; s * s];
    for ty in 0..s {
        let (y0, y1) = span(ty, h);
        for tx in 0..s {
            let (x0, x1) = span(tx, w);
            let mut sum = [0u32; 3];
            let mut inside = 0u32;
            for y in y0..y1 {
                let row = y * w;
                for x in x0..x1 {
                    let i = row + x;
                    for (c, total) in sum.iter_mut().enumerate() {
                        *total += u32::from(e.rgb[c * plane + i]);
                    }
                    inside += u32::from(e.mask[i] != 0);
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let at = ty * s + tx;
            lit[at] = inside * 2 >= n;
            rgb[at] = sum.map(|v| v as f32 / n as f32);
        }
    }
    let thickness = (s / 56).max(1);
    let mut out = RgbImage::new(side, side);
    for y in 0..s {
        for x in 0..s {
            let at = y * s + x;
            let edge = lit[at] && near_outside(&lit, s, x, y, thickness);
            let px = if edge {
                EDGE
            } else {
                let f = if lit[at] { 1.0 } else { DIM };
                rgb[at].map(|v| (v * f).round().clamp(0.0, 255.0) as u8)
            };
            out.put_pixel(x as u32, y as u32, Rgb(px));
        }
    }
    out
}

/// Whether a pixel outside the region lies within `d` steps (up, down, left, right) of (x, y).
fn near_outside(lit: &[bool], s: usize, x: usize, y: usize, d: usize) -> bool {
    (1..=d).any(|k| {
        (x >= k && !lit[y * s + x - k])
            || (x + k < s && !lit[y * s + x + k])
            || (y >= k && !lit[(y - k) * s + x])
            || (y + k < s && !lit[(y + k) * s + x])
    })
}

pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(image)
        .expect("encoding JPEG into memory cannot fail");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_lit_outlined_and_the_rest_dimmed() {
        // 8x8 grey 200 image; the mask is the 4x4 square at (2..6, 2..6).
        let (h, w) = (8, 8);
        let rgb = vec![200u8; 3 * h * w];
        let mask: Vec<u8> = (0..h * w)
            .map(|i| u8::from((2..6).contains(&(i / w)) && (2..6).contains(&(i % w))))
            .collect();
        let e = Exemplar {
            rgb: &rgb,
            mask: &mask,
            height: h,
            width: w,
        };
        let t = tile(&e, 8);
        assert_eq!(t.get_pixel(0, 0).0, [50, 50, 50], "outside: dimmed to 25%");
        assert_eq!(t.get_pixel(2, 2).0, EDGE, "the region's border");
        assert_eq!(t.get_pixel(3, 3).0, [200, 200, 200], "inside: as it is");
        // Halved: a 4x4 tile, each pixel the mean of a 2x2 block.
        let half = tile(&e, 4);
        assert_eq!(half.get_pixel(0, 0).0, [50, 50, 50]);
        assert_eq!(half.get_pixel(1, 1).0, EDGE);
        let s = sheet(&[e; 15], 8, 1);
        assert_eq!((s.width(), s.height()), (5 * 9 - 1, 3 * 9 - 1));
        let s = sheet(&[e; 7], 8, 0);
        assert_eq!(
            (s.width(), s.height()),
            (5 * 8, 2 * 8),
            "rows padded to five tiles"
        );
        let (thumb, full) = sheets(&[e; 15], Sizes::default());
        let full = image::load_from_memory(&full).unwrap();
        assert_eq!(
            full.width(),
            5 * 8,
            "never enlarged past the image's own size"
        );
        assert!(!thumb.is_empty());
    }
}
