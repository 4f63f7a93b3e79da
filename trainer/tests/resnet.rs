//! ResNets in torchvision's layout from safetensors, with small random weights (real torchvision
//! weights are the user's to bring): every key is used, a missing or extra key is named, shapes of
//! logits and of conv1/layer1-4 are torchvision's, and the same input gives the same output.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use milan_trainer::encoders::resnet::{Depth, LAYERS, ResNet};
use safetensors::tensor::{Dtype, TensorView};

/// torchvision's state-dict keys and shapes, written out independently of the loader.
fn torchvision_keys(blocks: [usize; 4], bottleneck: bool) -> Vec<(String, Vec<usize>)> {
    let mut keys = Vec::new();
    let bn = |keys: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
        for s in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{p}.{s}"), vec![c]));
        }
        keys.push((format!("{p}.num_batches_tracked"), vec![]));
    };
    keys.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
    bn(&mut keys, "bn1", 64);
    let mut inp = 64;
    for (s, &n) in blocks.iter().enumerate() {
        let mid = 64 << s;
        let out = if bottleneck { mid * 4 } else { mid };
        for b in 0..n {
            let p = format!("layer{}.{b}", s + 1);
            if bottleneck {
                keys.push((format!("{p}.conv1.weight"), vec![mid, inp, 1, 1]));
                bn(&mut keys, &format!("{p}.bn1"), mid);
                keys.push((format!("{p}.conv2.weight"), vec![mid, mid, 3, 3]));
                bn(&mut keys, &format!("{p}.bn2"), mid);
                keys.push((format!("{p}.conv3.weight"), vec![out, mid, 1, 1]));
                bn(&mut keys, &format!("{p}.bn3"), out);
            } else {
                keys.push((format!("{p}.conv1.weight"), vec![out, inp, 3, 3]));
                bn(&mut keys, &format!("{p}.bn1"), out);
                keys.push((format!("{p}.conv2.weight"), vec![out, out, 3, 3]));
                bn(&mut keys, &format!("{p}.bn2"), out);
            }
            if b == 0 && (s > 0 || inp != out) {
                keys.push((format!("{p}.downsample.0.weight"), vec![out, inp, 1, 1]));
                bn(&mut keys, &format!("{p}.downsample.1"), out);
            }
            inp = out;
        }
    }
    keys.push(("fc.weight".into(), vec![1000, inp]));
    keys.push(("fc.bias".into(), vec![1000]));
    keys
}

/// Small random weights (variances positive), as a safetensors file.
fn write_random(path: &std::path::Path, keys: &[(String, Vec<usize>)], seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut buffers: BTreeMap<String, (Vec<u8>, Vec<usize>, Dtype)> = BTreeMap::new();
    for (name, shape) in keys {
        if name.ends_with("num_batches_tracked") {
            buffers.insert(
                name.clone(),
                (0i64.to_le_bytes().to_vec(), shape.clone(), Dtype::I64),
            );
            continue;
        }
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let u = next();
                // Batch-norm variances and gammas positive, the rest centred.
                if name.ends_with("running_var") || (name.ends_with(".weight") && shape.len() == 1)
                {
                    0.5 + u
                } else {
                    (u - 0.5) * 2.0 * (3.0 / fan_in as f32).sqrt()
                }
            })
            .collect();
        buffers.insert(
            name.clone(),
            (
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape.clone(),
                Dtype::F32,
            ),
        );
    }
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(k, (b, s, d))| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn input(device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..2 * 3 * 224 * 224)
        .map(|i| ((i as u64 * 7919) % 255) as f32 / 127.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [2, 3, 224, 224]), device)
}

#[test]
fn resnets_load_torchvision_keys_and_give_torchvisions_shapes() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    for (depth, expected) in [
        (
            Depth::R18,
            [[64, 112], [64, 56], [128, 28], [256, 14], [512, 7]],
        ),
        (
            Depth::R50,
            [[64, 112], [256, 56], [512, 28], [1024, 14], [2048, 7]],
        ),
    ] {
        let keys = torchvision_keys(depth.blocks(), depth.bottleneck());
        let path = tmp.path().join(format!("{depth:?}.safetensors"));
        write_random(&path, &keys, 7);
        let model = ResNet::load(&path, depth, &device).unwrap();
        let out = model.forward(input(&device), &LAYERS);
        assert_eq!(out.logits.dims(), [2, 1000]);
        for (layer, [c, hw]) in LAYERS.iter().zip(expected) {
            assert_eq!(
                out.layers[layer].dims(),
                [2, c, hw, hw],
                "{depth:?} {layer}"
            );
        }
        // Deterministic: the same input twice gives the same logits, bit for bit.
        let a = out.logits.into_data().try_to_vec::<f32>().unwrap();
        let b = model
            .forward(input(&device), &[])
            .logits
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.is_finite()));
        // Other weights give other logits (the weights are really used).
        let other = tmp.path().join(format!("{depth:?}-other.safetensors"));
        write_random(&other, &keys, 99);
        let c = ResNet::load(&other, depth, &device)
            .unwrap()
            .forward(input(&device), &[])
            .logits
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_ne!(a, c);
    }
}

#[test]
fn a_missing_or_extra_key_is_named() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let mut keys = torchvision_keys(Depth::R18.blocks(), false);
    keys.retain(|(k, _)| k != "layer3.1.bn2.running_var");
    let path = tmp.path().join("missing.safetensors");
    write_random(&path, &keys, 1);
    let err = format!(
        "{:#}",
        ResNet::load(&path, Depth::R18, &device).unwrap_err()
    );
    assert!(
        err.contains("missing weight layer3.1.bn2.running_var"),
        "{err}"
    );

    let mut keys = torchvision_keys(Depth::R18.blocks(), false);
    keys.push(("layer5.0.conv1.weight".into(), vec![1, 1, 1, 1]));
    let path = tmp.path().join("extra.safetensors");
    write_random(&path, &keys, 1);
    let err = format!(
        "{:#}",
        ResNet::load(&path, Depth::R18, &device).unwrap_err()
    );
    assert!(
        err.contains("unexpected weights layer5.0.conv1.weight"),
        "{err}"
    );

    // ResNet-50 weights are not a ResNet-18.
    let path = tmp.path().join("r50.safetensors");
    write_random(&path, &torchvision_keys(Depth::R50.blocks(), true), 1);
    let err = format!(
        "{:#}",
        ResNet::load(&path, Depth::R18, &device).unwrap_err()
    );
    assert!(err.contains("has shape"), "{err}");
    assert_eq!(Depth::parse("resnet152").unwrap().blocks(), [3, 8, 36, 3]);
    assert!(Depth::parse("resnet42").is_err());
}

/// Exemplars and features work for a ResNet as for EfficientNet (random weights: shapes only).
#[test]
fn exemplars_and_features_work_for_a_resnet() {
    use milan_trainer::exemplars::{self, ExemplarConfig};
    use milan_trainer::features::{self, LayerFeatures};
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("r18.safetensors");
    write_random(&weights, &torchvision_keys(Depth::R18.blocks(), false), 3);
    let model = ResNet::load(&weights, Depth::R18, &device).unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    for e in std::fs::read_dir(&fixtures).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            std::fs::copy(&p, photos.join(p.file_name().unwrap())).unwrap();
        }
    }
    let config = ExemplarConfig {
        layers: vec!["conv1".into(), "layer4".into()],
        k: 2,
        ..ExemplarConfig::default()
    };
    let key = "resnet18/photos".parse().unwrap();
    let out = tmp.path().join("out");
    let report = exemplars::compute(&model, &key, &photos, &out, &config, &device).unwrap();
    assert_eq!(
        report.layers,
        [("conv1".to_owned(), 64), ("layer4".to_owned(), 512)]
    );
    // Features of the first two units of layer4 (a small folder: features cost a forward pass
    // per exemplar).
    let dataset = milan_shared::milannotations::Dataset::open(&report.folder).unwrap();
    let layer = dataset.layer("layer4").unwrap();
    let mut writer =
        milan_shared::milannotations::DatasetWriter::create(&tmp.path().join("small"), &key)
            .unwrap();
    let shape = milan_shared::milannotations::LayerShape {
        units: 2,
        ..layer.shape()
    };
    let mut lw = writer.layer("layer4", shape, true).unwrap();
    for u in 0..2 {
        let images = layer.images().unwrap().unit_bytes(u);
        lw.write_unit(u, layer.masks().unit_bytes(u), Some(images), layer.ids(u))
            .unwrap();
    }
    lw.finish().unwrap();
    let small = writer.finish().unwrap();
    let set = features::compute(
        &model,
        &weights,
        &small,
        &tmp.path().join("cache"),
        16,
        &device,
    )
    .unwrap();
    assert_eq!(set.dims, 1024);
    let f = LayerFeatures::open(&set, "layer4").unwrap();
    assert_eq!(f.view().unwrap().shape(), &[2, 2, 1024]);
}
