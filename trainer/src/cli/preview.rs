//! PNG contact sheets of exemplar sets as a worker sees them: each exemplar with its mask region
//! at full brightness and the rest dimmed to 25%, five to a row, the unit's descriptions in the
//! file name's companion text file.

use std::path::Path;

use anyhow::{Context, Result};
use image::{Rgb, RgbImage};
use milan_shared::milannotations::{Dataset, Layer};
use milan_synth::Summary;

/// Brightness of what lies outside the mask (milan-reference.md §1).
const DIM: f32 = 0.25;
const PER_ROW: usize = 5;
const GAP: usize = 2;

/// Writes `<dir>/<arch>-<dataset>-<layer>-<unit>.png` for `per_key` units of every key, spread over
/// its layers,
/// and a `.txt` beside each with the descriptions. Returns how many were written.
pub fn write_previews(summary: &Summary, per_key: usize, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for key in &summary.keys {
        let dataset = Dataset::open(&key.dir)?;
        // Unit 0 of every layer first, then unit 1 of every layer, ...: a spread over depth.
        let widest = dataset
            .layers()
            .iter()
            .map(|l| l.units())
            .max()
            .unwrap_or(0);
        let picks = (0..widest)
            .flat_map(|unit| dataset.layers().iter().map(move |layer| (layer, unit)))
            .filter(|(layer, unit)| layer.has_exemplars(*unit))
            .take(per_key);
        {
            for (layer, unit) in picks {
                let Some(sheet) = sheet(layer, unit) else {
                    continue;
                };
                let stem = format!(
                    "{}-{}-{}-{unit}",
                    key.key.arch(),
                    key.key.dataset(),
                    layer.name()
                );
                let png = dir.join(format!("{stem}.png"));
                sheet
                    .save(&png)
                    .with_context(|| format!("writing {}", png.display()))?;
                let text: Vec<&str> = dataset
                    .annotated()
                    .iter()
                    .filter(|a| a.layer == layer.name() && a.unit as usize == unit)
                    .flat_map(|a| a.descriptions.iter().map(String::as_str))
                    .collect();
                std::fs::write(dir.join(format!("{stem}.txt")), text.join("\n") + "\n")?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// One unit's exemplars as a worker sees them, five to a row; None for a layer without images or
/// a unit an export left out.
pub fn sheet(layer: &Layer, unit: usize) -> Option<RgbImage> {
    if !layer.has_exemplars(unit) {
        return None;
    }
    let exemplars = layer.exemplars(unit);
    let images = exemplars.images?;
    let shape = layer.shape();
    let (h, w) = (shape.height, shape.width);
    let rows = shape.k.div_ceil(PER_ROW);
    let mut sheet = RgbImage::from_pixel(
        (PER_ROW * (w + GAP) - GAP) as u32,
        (rows * (h + GAP) - GAP) as u32,
        Rgb([255, 255, 255]),
    );
    for j in 0..shape.k {
        let (ox, oy) = ((j % PER_ROW) * (w + GAP), (j / PER_ROW) * (h + GAP));
        for y in 0..h {
            for x in 0..w {
                let lit = exemplars.masks[[j, 0, y, x]] == 1;
                let px = Rgb(std::array::from_fn(|c| {
                    let v = f32::from(images[[j, c, y, x]]);
                    (if lit { v } else { v * DIM }) as u8
                }));
                sheet.put_pixel((ox + x) as u32, (oy + y) as u32, px);
            }
        }
    }
    Some(sheet)
}
