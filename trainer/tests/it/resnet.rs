//! ResNets in torchvision's layout from safetensors, with small random weights (real torchvision
//! weights are the user's to bring): every key is used, a missing or extra key is named, shapes of
//! logits and of conv1/layer1-4 are torchvision's, and the same input gives the same output.

use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::resnet::{Depth, LAYERS, ResNet};

use crate::common;
use common::{torchvision_keys, write_random};

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
fn torchvisions_pth_format_loads_as_its_safetensors_twin() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("r18.safetensors");
    write_random(&st, &torchvision_keys(Depth::R18.blocks(), false), 11);
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        milan_networks::formats::weights::read_safetensors_floats(&st)
            .unwrap()
            .into_iter()
            .map(|(k, (v, s))| (k, s, v))
            .collect();
    let pth = tmp.path().join("resnet18-random.pth");
    common::write_torch_zip(&pth, &tensors);
    let logits = |path: &std::path::Path| {
        ResNet::load(path, Depth::R18, &device)
            .unwrap()
            .forward(input(&device), &[])
            .logits
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(logits(&pth), logits(&st));
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
    use milan_trainer::probing::exemplars::{self, ExemplarConfig};
    use milan_trainer::probing::features::{self, LayerFeatures};
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

/// Switching a ResNet unit off zeroes exactly its channel of the layer's output, the rest of the
/// network sees the change, and a unit is named against its layer's width.
#[test]
fn ablating_a_resnet_unit_zeroes_exactly_its_channel() {
    use milan_trainer::applications::ablation::Classifier;
    use std::collections::BTreeMap;
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("r18.safetensors");
    write_random(&weights, &torchvision_keys(Depth::R18.blocks(), false), 5);
    let model = ResNet::load(&weights, Depth::R18, &device).unwrap();
    let x = input(&device);
    let intact = model.forward(x.clone(), &["layer2", "layer3"]);
    let ablated = model.forward_ablated(x, &["layer2", "layer3"], &BTreeMap::from([(2, vec![9])]));
    let values = values4;
    let [_, c, h, w] = intact.layers["layer2"].dims();
    let (before, after) = (
        values(&intact.layers["layer2"]),
        values(&ablated.layers["layer2"]),
    );
    let plane = h * w;
    for ch in 0..c {
        let (a, b) = (
            &before[ch * plane..(ch + 1) * plane],
            &after[ch * plane..(ch + 1) * plane],
        );
        if ch == 9 {
            assert!(b.iter().all(|v| *v == 0.0), "channel 9 is off");
        } else {
            assert_eq!(a, b, "channel {ch} untouched");
        }
    }
    assert_ne!(
        values(&intact.layers["layer3"]),
        values(&ablated.layers["layer3"])
    );
    let classifier =
        Classifier::load("resnet18", Some(&weights), &Default::default(), 1, &device).unwrap();
    // The classifier switches the unit off by its name: the network's own ablated logits.
    let off = classifier.units(&[("layer2".into(), 9)]).unwrap();
    let x = input(&device);
    let [n, ..] = x.dims();
    let (logits, classes) = classifier.logits(values4(&x), n, &off, &device).unwrap();
    assert_eq!(classes, 1000);
    assert_eq!(logits, values2(&ablated.logits));
    assert_ne!(logits, values2(&intact.logits));
    let err = classifier.units(&[("layer2".into(), 128)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer2 has 128 units; unit 128 is not one of them"
    );
    let err = classifier.units(&[("_blocks.3".into(), 0)]).unwrap_err();
    assert!(
        err.to_string()
            .contains("its layers are conv1, layer1, layer2, layer3, layer4"),
        "{err}"
    );
}

fn values4(t: &Tensor<4>) -> Vec<f32> {
    t.clone().into_data().try_to_vec::<f32>().unwrap()
}

fn values2(t: &Tensor<2>) -> Vec<f32> {
    t.clone().into_data().try_to_vec::<f32>().unwrap()
}
