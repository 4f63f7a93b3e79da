//! Masked pyramid features against a direct computation (the mask resized with half-pixel
//! bilinear interpolation, normalised, a weighted sum per stage), and the cache: reused with the
//! same inputs, recomputed when any input changes. Needs `trainer assets fetch efficientnet-lite0`.

use crate::common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::efficientnet::{EfficientNetLite0, INPUT_SIZE, preprocess};
use milan_shared::ModelKey;
use milan_shared::milannotations::{DatasetWriter, LayerShape};
use milan_trainer::probing::features::{self, EFFICIENTNET_STAGES, Featurizer, LayerFeatures};

fn weights() -> PathBuf {
    common::efficientnet_weights()
}

/// PyTorch's bilinear resize with align_corners=False (no antialiasing).
fn resize_half_pixel(src: &[f32], size: usize, out: usize) -> Vec<f32> {
    let scale = size as f32 / out as f32;
    let coord = |i: usize| {
        let x = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let x0 = (x.floor() as usize).min(size - 1);
        let x1 = (x0 + 1).min(size - 1);
        (x0, x1, x - x0 as f32)
    };
    let mut dst = vec![0f32; out * out];
    for y in 0..out {
        let (y0, y1, dy) = coord(y);
        for x in 0..out {
            let (x0, x1, dx) = coord(x);
            let top = src[y0 * size + x0] * (1.0 - dx) + src[y0 * size + x1] * dx;
            let bottom = src[y1 * size + x0] * (1.0 - dx) + src[y1 * size + x1] * dx;
            dst[y * out + x] = top * (1.0 - dy) + bottom * dy;
        }
    }
    dst
}

fn pool(feature: &[f32], c: usize, hw: usize, weights: &[f32]) -> Vec<f32> {
    let total: f32 = weights.iter().sum();
    (0..c)
        .map(|ch| {
            let map = &feature[ch * hw * hw..(ch + 1) * hw * hw];
            if total > 0.0 {
                map.iter().zip(weights).map(|(f, w)| f * w / total).sum()
            } else {
                map.iter().sum::<f32>() / (hw * hw) as f32
            }
        })
        .collect()
}

#[test]
fn features_match_a_direct_computation_and_are_cached() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    let mut photos: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    photos.sort();
    let imgs: Vec<image::RgbImage> = photos[..4]
        .iter()
        .map(|p| image::open(p).unwrap().to_rgb8())
        .collect();
    let plane = INPUT_SIZE * INPUT_SIZE;
    let chw = |img: &image::RgbImage| {
        let mut v = vec![0u8; 3 * plane];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                v[c * plane + i] = p[c];
            }
        }
        v
    };
    // Masks: a square, the left half, empty (pools uniformly), a single pixel.
    let masks: Vec<Vec<u8>> = vec![
        (0..plane)
            .map(|i| {
                u8::from(
                    (i / 224) % 224 >= 60 && (i / 224) < 140 && (i % 224) >= 30 && (i % 224) < 100,
                )
            })
            .collect(),
        (0..plane).map(|i| u8::from(i % 224 < 112)).collect(),
        vec![0; plane],
        (0..plane).map(|i| u8::from(i == 224 * 200 + 17)).collect(),
    ];
    // Two units of two exemplars each.
    let data_root = tmp.path().join("data");
    let key: ModelKey = "efficientnet-lite0/photos".parse().unwrap();
    let mut writer = DatasetWriter::create(&data_root, &key).unwrap();
    let mut layer = writer
        .layer(
            "_blocks.15",
            LayerShape {
                units: 2,
                k: 2,
                height: 224,
                width: 224,
            },
            true,
        )
        .unwrap();
    for u in 0..2 {
        let m: Vec<u8> = masks[2 * u..2 * u + 2].concat();
        let px: Vec<u8> = imgs[2 * u..2 * u + 2].iter().flat_map(chw).collect();
        layer
            .write_unit(u, &m, Some(&px), &[2 * u as u64, 2 * u as u64 + 1])
            .unwrap();
    }
    layer.finish().unwrap();
    let data = writer.finish().unwrap();

    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let cache = tmp.path().join("cache");
    let set = features::compute(&model, &weights(), &data, &cache, 3, &device).unwrap();
    assert!(!set.reused);
    assert_eq!(set.dims, 1472);
    let stored = LayerFeatures::open(&set, "_blocks.15").unwrap();
    let view = stored.view().unwrap();
    assert_eq!(view.shape(), &[2, 2, 1472]);

    for e in 0..4 {
        let x = Tensor::<4>::from_data(
            TensorData::new(preprocess(&imgs[e]), [1, 3, INPUT_SIZE, INPUT_SIZE]),
            &device,
        );
        let out = model.forward(x, &EFFICIENTNET_STAGES);
        let mask: Vec<f32> = masks[e].iter().map(|&m| f32::from(m)).collect();
        let mut expected = Vec::new();
        let maps: Vec<Tensor<4>> = EFFICIENTNET_STAGES
            .iter()
            .map(|b| out.blocks[b].clone())
            .chain([out.head.clone()])
            .collect();
        for map in maps {
            let [_, c, h, _] = map.dims();
            let values = map.into_data().try_to_vec::<f32>().unwrap();
            expected.extend(pool(&values, c, h, &resize_half_pixel(&mask, 224, h)));
        }
        let got = view.slice(ndarray::s![e / 2, e % 2, ..]).to_vec();
        let diff = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "exemplar {e}: features differ by {diff}");
    }

    // Same inputs: reused. Another mask byte: a new cache entry.
    let again = features::compute(&model, &weights(), &data, &cache, 3, &device).unwrap();
    assert!(again.reused);
    assert_eq!(again.dir, set.dir);
    let masks_file = data.join("_blocks.15/masks.npy");
    let mut bytes = std::fs::read(&masks_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 1 - bytes[last];
    std::fs::write(&masks_file, bytes).unwrap();
    let changed = features::compute(&model, &weights(), &data, &cache, 3, &device).unwrap();
    assert!(!changed.reused);
    assert_ne!(changed.dir, set.dir);
    assert_eq!(model.name(), "efficientnet-lite0");

    // Unit 0 left out by an export (omitted.csv): a new entry, zero features for it, the same
    // features for unit 1.
    std::fs::write(data.join("_blocks.15/omitted.csv"), "unit\n0\n").unwrap();
    let partial = features::compute(&model, &weights(), &data, &cache, 3, &device).unwrap();
    assert!(!partial.reused, "omitted.csv is part of the cache key");
    let before = LayerFeatures::open(&changed, "_blocks.15").unwrap();
    let after = LayerFeatures::open(&partial, "_blocks.15").unwrap();
    let (before, after) = (before.view().unwrap(), after.view().unwrap());
    assert!(
        after
            .slice(ndarray::s![0, .., ..])
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(
        after.slice(ndarray::s![1, .., ..]),
        before.slice(ndarray::s![1, .., ..])
    );
}
