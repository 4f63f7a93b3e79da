//! Exemplar computation checked against a direct computation: for each unit, the top-k images by
//! spatial maximum, masks from the bilinear (align corners) upsampled map thresholded at the exact
//! 0.99 quantile, and the stored images. Ten real photos through EfficientNet-Lite0 (needs the
//! weights: `trainer assets fetch efficientnet-lite0`).

use crate::common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::SIZE;
use milan_networks::efficientnet::{EfficientNetLite0, INPUT_SIZE, preprocess};
use milan_shared::milannotations::Dataset;
use milan_trainer::probing::exemplars::{self, ExemplarConfig, upsample_align_corners};

fn weights() -> PathBuf {
    common::efficientnet_weights()
}

fn exact_quantile(mut values: Vec<f32>, q: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    let t = (rank - lo as f64) as f32;
    values[lo] * (1.0 - t) + values[hi] * t
}

/// Exact quantiles (the default: the tails fit in memory).
#[test]
fn exemplars_match_a_direct_computation() {
    check(512 << 20);
}

/// The second pass and the histogram, forced by a zero memory budget: within the stated bound.
#[test]
fn exemplars_with_histogram_quantiles_stay_within_the_bound() {
    check(0);
}

fn check(exact_budget_bytes: usize) {
    let exact_mode = exact_budget_bytes > 0;
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    let mut names: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    names.sort();
    // Two in a subfolder: the listing is recursive and sorted by relative path.
    for (i, src) in names.iter().enumerate() {
        let dest = if i < 2 {
            photos.join("sub")
        } else {
            photos.clone()
        };
        std::fs::copy(src, dest.join(src.file_name().unwrap())).unwrap();
    }
    let files = exemplars::list_images(&photos).unwrap();
    assert_eq!(files.len(), 10);
    assert!(
        files[0].ends_with("imagenet_04_949.png") && files[9].ends_with("sub/imagenet_02_438.png")
    );

    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let layers = ["_blocks.5".to_owned(), "_blocks.15".to_owned()];
    let config = ExemplarConfig {
        layers: layers.to_vec(),
        k: 3,
        batch: 4, // 4 + 4 + 2: a short last batch
        exact_budget_bytes,
        ..ExemplarConfig::default()
    };
    let out = tmp.path().join("out");
    let key = "efficientnet-lite0/photos".parse().unwrap();
    let report = exemplars::compute(&model, &key, &photos, &out, &config, &device).unwrap();
    assert_eq!(
        report.layers,
        [("_blocks.5".to_owned(), 80), ("_blocks.15".to_owned(), 320)]
    );
    let dataset = Dataset::open(&out.join("efficientnet-lite0/photos")).unwrap();
    let quantiles =
        std::fs::read_to_string(out.join("efficientnet-lite0/photos/quantiles.csv")).unwrap();

    // The direct computation: every image alone.
    let mut maps: Vec<Vec<(Vec<f32>, [usize; 4])>> = Vec::new();
    let mut pixels: Vec<Vec<u8>> = Vec::new();
    for f in &files {
        let img = image::open(f).unwrap().to_rgb8();
        let plane = SIZE * SIZE;
        let mut chw = vec![0u8; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                chw[c * plane + i] = p[c];
            }
        }
        pixels.push(chw);
        let x = Tensor::<4>::from_data(
            TensorData::new(preprocess(&img), [1, 3, INPUT_SIZE, INPUT_SIZE]),
            &device,
        );
        let out = model.forward(x, &[5, 15]);
        maps.push(
            [5, 15]
                .iter()
                .map(|b| {
                    let t = out.blocks[b].clone();
                    let dims = t.dims();
                    (t.into_data().try_to_vec::<f32>().unwrap(), dims)
                })
                .collect(),
        );
    }
    let mut mask_pixels = 0usize;
    let mut near_threshold = 0usize;
    for (l, name) in layers.iter().enumerate() {
        let layer = dataset.layer(name).unwrap();
        let [_, units, h, w] = maps[0][l].1;
        for u in 0..units {
            let unit_map = |img: usize| maps[img][l].0[u * h * w..(u + 1) * h * w].to_vec();
            let mut by_max: Vec<(f32, usize)> = (0..files.len())
                .map(|i| (unit_map(i).into_iter().fold(f32::NEG_INFINITY, f32::max), i))
                .collect();
            by_max.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let expected: Vec<u64> = by_max[..3].iter().map(|(_, i)| *i as u64).collect();
            assert_eq!(
                layer.ids(u),
                expected.as_slice(),
                "{name} unit {u}: top images"
            );

            let all: Vec<f32> = (0..files.len()).flat_map(unit_map).collect();
            let (min, max) = all
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let exact = exact_quantile(all, 0.99);
            let stored: f32 = quantiles
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name},{u},")))
                .unwrap()
                .parse()
                .unwrap();
            // The rank bound: no more activations lie between the stored and the exact quantile
            // than the histogram bin that holds the stored one.
            let bins = 8192usize;
            let bin_of =
                |v: f32| ((((v - min) / (max - min)) * bins as f32) as usize).min(bins - 1);
            let all: Vec<f32> = (0..files.len()).flat_map(unit_map).collect();
            if exact_mode {
                // Batches of 4 against single images: float noise only.
                assert!(
                    (stored - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                    "{name} unit {u}: quantile {stored} vs exact {exact}"
                );
            }
            let between = all
                .iter()
                .filter(|&&v| v > stored.min(exact) && v < stored.max(exact))
                .count();
            let slack = 1e-4 * exact.abs().max(1.0);
            let (lo, hi) = (stored.min(exact) - slack, stored.max(exact) + slack);
            let in_bin = all.iter().filter(|&&v| bin_of(v) == bin_of(stored)).count();
            assert!(
                between <= in_bin.max(1),
                "{name} unit {u}: quantile {stored} vs exact {exact}: {between} values between, bin holds {in_bin}"
            );

            let masks = layer.masks().unit_bytes(u);
            let images = layer.images().unwrap().unit_bytes(u);
            for (e, &img) in expected.iter().enumerate() {
                let up = upsample_align_corners(&unit_map(img as usize), h, w, SIZE);
                let got = &masks[e * SIZE * SIZE..(e + 1) * SIZE * SIZE];
                for (p, v) in up.iter().enumerate() {
                    let want = u8::from(*v > exact);
                    if got[p] != want {
                        // Only where the value lies between the stored and the exact quantile.
                        assert!(
                            *v >= lo && *v <= hi,
                            "{name} unit {u} exemplar {e} pixel {p}"
                        );
                        near_threshold += 1;
                    }
                    mask_pixels += usize::from(got[p]);
                }
                assert_eq!(
                    &images[e * 3 * SIZE * SIZE..(e + 1) * 3 * SIZE * SIZE],
                    pixels[img as usize].as_slice(),
                    "{name} unit {u} exemplar {e}: stored image"
                );
            }
        }
    }
    assert!(mask_pixels > 0, "masks are not all empty");
    if exact_mode {
        assert_eq!(near_threshold, 0, "exact quantiles give the exact masks");
    }
}

#[test]
fn bad_requests_are_refused_clearly() {
    let device = Device::flex();
    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = "efficientnet-lite0/empty".parse().unwrap();
    let config = |layers: &[&str], k| ExemplarConfig {
        layers: layers.iter().map(|s| s.to_string()).collect(),
        k,
        ..ExemplarConfig::default()
    };
    let err = exemplars::compute(
        &model,
        &key,
        tmp.path(),
        tmp.path(),
        &config(&["_blocks.99"], 3),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown layer \"_blocks.99\""), "{err}");
    let err = exemplars::compute(
        &model,
        &key,
        tmp.path(),
        tmp.path(),
        &config(&["_blocks.1"], 3),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("0 images, fewer than k = 3"), "{err}");
}
