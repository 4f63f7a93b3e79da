//! The user's network as ONNX (trainer::onnx on tract): EfficientNet-Lite0 exported from PyTorch
//! gives the native burn path's activations, exemplar ids and masks on the same photos; a small
//! vision transformer gives PyTorch's recorded activations for maps, tokens and features; bad
//! input is refused by name with nothing written.
//!
//! Needs the exports: `scripts/export-onnx` (PyTorch 2.9.0 and onnx from PyPI, the
//! EfficientNet-Lite0 asset); scripts/test runs it before the tests.

use crate::common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use milan_networks::efficientnet::EfficientNetLite0;
use milan_networks::onnx::{InputSpec, LayerKind, OnnxNetwork};
use milan_networks::{Network, SIZE};
use milan_shared::milannotations::Dataset;
use milan_trainer::probing::exemplars::{self, ExemplarConfig};

fn exports() -> PathBuf {
    common::onnx_exports()
}

/// The ten fixture photos (224x224) in a fresh folder.
fn photos(tmp: &Path) -> PathBuf {
    let photos = tmp.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            std::fs::copy(&p, photos.join(p.file_name().unwrap())).unwrap();
        }
    }
    photos
}

/// Every photo preprocessed for `net`, as one batch.
fn batch(net: &dyn Network, photos: &Path) -> (Vec<f32>, usize) {
    let files = exemplars::list_images(photos).unwrap();
    let mut input = Vec::new();
    for f in &files {
        input.extend(net.preprocess(&exemplars::load_image_at(f, net.input_size()).unwrap()));
    }
    (input, files.len())
}

/// A little-endian float32 .npy as numpy writes it: (shape, values).
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'") && header.contains("'fortran_order': False"));
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let values: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values.len(), shape.iter().product::<usize>());
    (shape, values)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn efficientnet_onnx() -> OnnxNetwork {
    let spec = InputSpec {
        mean: [0.5; 3],
        std: [0.5; 3],
        ..InputSpec::default()
    };
    OnnxNetwork::load(&exports().join("efficientnet-lite0.onnx"), &spec, 2).unwrap()
}

#[test]
fn efficientnet_from_onnx_gives_the_native_paths_activations_and_exemplars() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let native = EfficientNetLite0::load(&common::efficientnet_weights(), &device).unwrap();
    let onnx = efficientnet_onnx();
    assert_eq!(onnx.size(), 224, "the export declares 224x224");

    // The blocks by their PyTorch module paths; the native path names them the same.
    let layers = ["_blocks.5".to_owned(), "_blocks.15".to_owned()];
    let (input, n) = batch(&native, &photos);
    let (onnx_input, _) = batch(&onnx, &photos);
    assert_eq!(input, onnx_input, "the same preprocessing");
    let a = native.run(input.clone(), n, &layers, &device).unwrap();
    let b = onnx.run(input, n, &layers, &device).unwrap();
    for (layer, (x, y)) in layers.iter().zip(a.iter().zip(&b)) {
        assert_eq!(
            (x.units, x.height, x.width),
            (y.units, y.height, y.width),
            "{layer}"
        );
        let diff = max_abs_diff(&x.values, &y.values);
        let scale = x.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("{layer}: max |native - onnx| = {diff:.2e} (largest activation {scale:.1})");
        assert!(diff <= 1e-3, "{layer}: activations differ by {diff}");
    }

    // Exemplars through both paths: the same images, the same masks.
    let config = ExemplarConfig {
        layers: layers.to_vec(),
        k: 5,
        batch: 4,
        ..ExemplarConfig::default()
    };
    let key_native = "native/photos".parse().unwrap();
    let key_onnx = "onnx/photos".parse().unwrap();
    let out = tmp.path().join("out");
    exemplars::compute(&native, &key_native, &photos, &out, &config, &device).unwrap();
    let onnx_config = ExemplarConfig {
        uniform_size: true,
        ..config.clone()
    };
    exemplars::compute(&onnx, &key_onnx, &photos, &out, &onnx_config, &device).unwrap();
    let dn = Dataset::open(&out.join("native/photos")).unwrap();
    let do_ = Dataset::open(&out.join("onnx/photos")).unwrap();
    let mut flipped = 0usize;
    let mut pixels = 0usize;
    for layer in &layers {
        let (ln, lo) = (dn.layer(layer).unwrap(), do_.layer(layer).unwrap());
        assert_eq!(ln.units(), lo.units());
        for u in 0..ln.units() {
            let (un, uo) = (ln.exemplars(u), lo.exemplars(u));
            assert_eq!(un.ids, uo.ids, "{layer} unit {u}: exemplar images");
            flipped += un
                .masks
                .iter()
                .zip(uo.masks.iter())
                .filter(|(p, q)| p != q)
                .count();
            pixels += un.masks.len();
            assert_eq!(un.images, uo.images, "{layer} unit {u}: stored images");
        }
    }
    eprintln!("mask pixels that differ: {flipped} of {pixels}");
    // Activations agree to 1e-4, so only pixels that close to the threshold can flip (measured:
    // 7 of 100,352,000).
    assert!(
        flipped as f64 <= 1e-6 * pixels as f64,
        "{flipped} of {pixels} mask pixels differ"
    );
}

#[test]
fn a_vision_transformer_gives_pytorchs_maps_tokens_and_features() {
    let dir = exports();
    let net = OnnxNetwork::load(&dir.join("vit-tiny.onnx"), &InputSpec::default(), 1).unwrap();
    let (shape, input) = read_npy(&dir.join("vit-tiny.input.npy"));
    let n = shape[0];
    let device = Device::flex();
    let modules = ["patch_embed", "blocks.0", "blocks.1", "pre_logits"].map(String::from);
    let kinds: Vec<LayerKind> = modules
        .iter()
        .map(|m| net.resolve(m).unwrap().kind.clone().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            LayerKind::Conv {
                channels: 64,
                height: 14,
                width: 14
            },
            LayerKind::Tokens {
                channels: 64,
                prefix: 1,
                grid: 14
            },
            LayerKind::Tokens {
                channels: 64,
                prefix: 1,
                grid: 14
            },
            LayerKind::Features { channels: 64 },
        ]
    );
    let got = net.run(input, n, &modules, &device).unwrap();
    for (m, act) in modules.iter().zip(&got) {
        let (shape, recorded) = read_npy(&dir.join(format!("vit-tiny.{m}.npy")));
        // PyTorch's layout, laid out as units x map: tokens (N, T, C) -> (N, C, grid²) without
        // the class token; maps and features are already (N, C, ...).
        let expected: Vec<f32> = match shape[..] {
            [n, t, c] => {
                let mut v = Vec::with_capacity(n * c * (t - 1));
                for i in 0..n {
                    for ch in 0..c {
                        for tok in 1..t {
                            v.push(recorded[(i * t + tok) * c + ch]);
                        }
                    }
                }
                v
            }
            _ => recorded,
        };
        let diff = max_abs_diff(&act.values, &expected);
        eprintln!("{m}: max |tract - pytorch| = {diff:.2e}");
        assert!(diff <= 1e-4, "{m}: differs from PyTorch by {diff}");
    }

    // Exemplars of token and feature layers end to end: top images by the grid's maximum (the
    // class token left out), and whole-image masks for features.
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let layers = ["blocks.1".to_owned(), "pre_logits".to_owned()];
    let config = ExemplarConfig {
        layers: layers.to_vec(),
        k: 3,
        batch: 4,
        uniform_size: true,
        ..ExemplarConfig::default()
    };
    let out = tmp.path().join("out");
    let key = "vit-tiny/photos".parse().unwrap();
    exemplars::compute(&net, &key, &photos, &out, &config, &device).unwrap();
    let (all, count) = batch(&net, &photos);
    let acts = net.run(all, count, &layers, &device).unwrap();
    let data = Dataset::open(&out.join("vit-tiny/photos")).unwrap();
    for (layer, act) in layers.iter().zip(&acts) {
        let stored = data.layer(layer).unwrap();
        assert_eq!(stored.units(), 64);
        let plane = act.height * act.width;
        for u in 0..64 {
            let mut by_max: Vec<(f32, u64)> = (0..count)
                .map(|i| {
                    let map = &act.values[(i * 64 + u) * plane..(i * 64 + u + 1) * plane];
                    (
                        map.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                        i as u64,
                    )
                })
                .collect();
            by_max.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let unit = stored.exemplars(u);
            let top: Vec<u64> = by_max.iter().take(3).map(|p| p.1).collect();
            assert_eq!(unit.ids, top, "{layer} unit {u}");
            if layer == "pre_logits" {
                assert!(unit.masks.iter().all(|&m| m == 1), "features: whole image");
            } else {
                let lit = unit.masks.iter().filter(|&&m| m == 1).count();
                assert!(lit > 0 && lit < 3 * SIZE * SIZE, "{layer} unit {u}: {lit}");
            }
        }
    }
}

/// Runs `f`, expects an error containing every one of `needles`, and checks nothing was written.
fn refused(out: &Path, needles: &[&str], f: impl FnOnce() -> anyhow::Result<()>) {
    let err = format!("{:#}", f().expect_err("refused"));
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    let written: Vec<_> = std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "written after {err:?}: {written:?}");
}

#[test]
fn bad_models_layers_and_images_are_refused_by_name_with_nothing_written() {
    let dir = exports();
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let device = Device::flex();

    // Not ONNX.
    let fake = tmp.path().join("notes.onnx");
    std::fs::write(&fake, "these are notes, not a network\n").unwrap();
    refused(&out, &["notes.onnx", "not an ONNX model"], || {
        OnnxNetwork::load(&fake, &InputSpec::default(), 1).map(|_| ())
    });
    // An operator tract lacks (the export script writes one): named, with its node.
    refused(
        &out,
        &["unsupported-op.onnx", "Det", "the_determinant"],
        || {
            OnnxNetwork::load(&dir.join("unsupported-op.onnx"), &InputSpec::default(), 1)
                .map(|_| ())
        },
    );

    let net = OnnxNetwork::load(&dir.join("vit-tiny.onnx"), &InputSpec::default(), 1).unwrap();
    let run = |layers: &[&str], photos: &Path| {
        let config = ExemplarConfig {
            layers: layers.iter().map(|s| s.to_string()).collect(),
            k: 3,
            uniform_size: true,
            ..ExemplarConfig::default()
        };
        exemplars::compute(
            &net,
            &"vit-tiny/photos".parse().unwrap(),
            photos,
            &out,
            &config,
            &device,
        )
        .map(|_| ())
    };
    // An unknown layer: the error offers close names.
    refused(
        &out,
        &[
            "no node \"blocks.7\"",
            "close names",
            "\"blocks.0\"",
            "\"blocks.1\"",
        ],
        || run(&["blocks.1", "blocks.7"], &photos),
    );
    // A node whose output is none of the three kinds (the attention's (N, heads, T, T) scores
    // are maps, but the (3, N, heads, T, d) split of q, k, v is not).
    let odd = net
        .nodes()
        .iter()
        .find(|n| n.shape.len() == 5)
        .expect("a rank-5 node in the attention");
    let name = odd.name.clone();
    refused(&out, &[&name, "cannot be described"], || {
        run(&[name.as_str()], &photos)
    });
    // Images of mixed sizes.
    let small = image::imageops::resize(
        &image::open(photos.join("imagenet_00_243.png"))
            .unwrap()
            .to_rgb8(),
        100,
        80,
        image::imageops::FilterType::Triangle,
    );
    small.save(photos.join("zz_small.png")).unwrap();
    refused(&out, &["mixed sizes", "zz_small.png", "100x80"], || {
        run(&["blocks.1"], &photos)
    });
}

#[test]
fn the_command_line_lists_layers_and_writes_exemplars_of_an_onnx_model() {
    let dir = exports();
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let trainer = || std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
    let model = dir.join("vit-tiny.onnx");
    let listed = trainer()
        .args(["layers", "--model"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("blocks.1 ")
            && l.contains("/blocks.1/Add_2")
            && l.contains("tokens: 64 units, 14x14 patches, 1 prefix")),
        "{text}"
    );
    let out = tmp.path().join("out");
    let made = trainer()
        .args(["exemplars", "--model"])
        .arg(&model)
        .args([
            "--layers",
            "blocks.1,/blocks.0/Add_2",
            "--k",
            "3",
            "--batch",
            "4",
        ])
        .arg("--images")
        .arg(&photos)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // Node names become folder names with dots for slashes.
    let data = Dataset::open(&out.join("vit-tiny/photos")).unwrap();
    let mut names: Vec<&str> = data.layers().iter().map(|l| l.name()).collect();
    names.sort();
    assert_eq!(names, ["blocks.0.Add_2", "blocks.1"]);
    // A bad --mean is refused before any work.
    let bad = trainer()
        .args(["exemplars", "--model"])
        .arg(&model)
        .args(["--layers", "blocks.1", "--mean", "0.5,0.5,x"])
        .arg("--images")
        .arg(&photos)
        .arg("--out")
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mean"));
    assert!(!tmp.path().join("bad").exists());
}

/// Switching units off in an ONNX model (a mask node inserted after the layer): the layer's output
/// as the next nodes see it is the network's own with exactly those channels zeroed, and the logits
/// are those of the native network with the same units off.
#[test]
fn units_switched_off_in_an_onnx_model_match_the_native_network() {
    use burn::tensor::{Tensor, TensorData};
    use milan_trainer::applications::ablation::{Classifier, Off, top1};
    use std::collections::BTreeMap;
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let native = EfficientNetLite0::load(&common::efficientnet_weights(), &device).unwrap();
    let onnx = efficientnet_onnx();
    let (input, n) = batch(&onnx, &photos);
    let (input, n) = (input[..4 * 3 * SIZE * SIZE].to_vec(), n.min(4));

    let layer = "_blocks.5".to_owned();
    let intact = onnx
        .run(input.clone(), n, std::slice::from_ref(&layer), &device)
        .unwrap();
    let off = [(layer.clone(), vec![3, 17])];
    let ablated = onnx.forward_ablated(&input, n, &off).unwrap();
    let (a, b) = (&intact[0], &ablated.layers[0]);
    assert_eq!((a.units, a.height, a.width), (b.units, b.height, b.width));
    let plane = a.height * a.width;
    for i in 0..n {
        for c in 0..a.units {
            let at = (i * a.units + c) * plane;
            let (x, y) = (&a.values[at..at + plane], &b.values[at..at + plane]);
            if c == 3 || c == 17 {
                assert!(y.iter().all(|v| *v == 0.0), "image {i} channel {c} is off");
                assert!(x.iter().any(|v| *v != 0.0), "image {i} channel {c} was on");
            } else {
                assert_eq!(x, y, "image {i} channel {c} untouched");
            }
        }
    }

    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [n, 3, SIZE, SIZE]), &device);
    let logits = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    let native_off = logits(
        native
            .forward_ablated(x.clone(), &[], &BTreeMap::from([(5, vec![3, 17])]))
            .logits,
    );
    let native_intact = logits(native.forward_ablated(x, &[], &BTreeMap::new()).logits);
    assert_eq!(ablated.classes, 1000);
    let diff = max_abs_diff(&ablated.logits, &native_off);
    eprintln!("max |native - onnx| logits with units off: {diff:.2e}");
    assert!(diff <= 1e-3, "ablated logits differ by {diff}");
    let none = onnx.forward_ablated(&input, n, &[]).unwrap();
    assert!(max_abs_diff(&none.logits, &native_intact) <= 1e-3);
    assert!(
        max_abs_diff(&none.logits, &ablated.logits) > 1e-3,
        "switching units off changes the logits"
    );

    // Through the classifier, by module path; units checked against the node's width.
    let classifier = Classifier::load(
        exports().join("efficientnet-lite0.onnx").to_str().unwrap(),
        None,
        &InputSpec {
            mean: [0.5; 3],
            std: [0.5; 3],
            ..InputSpec::default()
        },
        2,
        &device,
    )
    .unwrap();
    let units = classifier
        .units(&[(layer.clone(), 17), (layer.clone(), 3), (layer.clone(), 3)])
        .unwrap();
    assert_eq!(units.layers(), 1);
    let (values, classes) = classifier
        .logits(input.clone(), n, &units, &device)
        .unwrap();
    assert_eq!(
        values, ablated.logits,
        "the same switch, whatever the order"
    );
    assert_eq!(
        classifier
            .top1(input.clone(), n, &Off::none(), &device)
            .unwrap(),
        top1(&native_intact, classes)
    );
    let width = milan_networks::efficientnet::block_channels(5).unwrap();
    assert_eq!(a.units, width);
    let err = classifier
        .units(&[(layer.clone(), width as u32)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("_blocks.5 has {width} units; unit {width} is not one of them")
    );
    let err = classifier.units(&[("_blocks.55".into(), 0)]).unwrap_err();
    assert!(err.to_string().contains("no node \"_blocks.55\""), "{err}");
}

/// A channels-last model (issue 40): TinyCNN's weights with its first layer carried as
/// (N, H, W, C). Its channels-last nodes, one settled by a transpose in the graph and one only by
/// its square shape, give the same units, maps and exemplars as the channels-first export; the
/// listing says which is which, and the attention scores of the vision transformer are named as
/// such and refused.
#[test]
fn channels_last_outputs_give_the_channels_first_exports_exemplars() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let photos = photos(tmp.path());
    let load =
        |name: &str| OnnxNetwork::load(&exports().join(name), &InputSpec::default(), 1).unwrap();
    let first = load("tiny-cnn.onnx");
    let last = load("tiny-cnn-nhwc.onnx");
    let kind = |net: &OnnxNetwork, layer: &str| net.resolve(layer).unwrap().kind.clone().unwrap();
    let maps = LayerKind::ChannelsLast {
        channels: 6,
        height: 56,
        width: 56,
    };
    assert_eq!(kind(&last, "act"), maps, "settled by the transpose");
    assert_eq!(kind(&last, "regrid"), maps, "settled by the square map");
    assert_eq!(
        kind(&first, "/Relu"),
        LayerKind::Conv {
            channels: 6,
            height: 56,
            width: 56
        }
    );
    let (input, n) = batch(&first, &photos);
    let reference = first
        .run(input.clone(), n, &["/Relu".to_owned()], &device)
        .unwrap();
    for layer in ["act", "regrid"] {
        let a = last
            .run(input.clone(), n, &[layer.to_owned()], &device)
            .unwrap();
        assert_eq!(
            (a[0].units, a[0].height, a[0].width),
            (6, 56, 56),
            "{layer}"
        );
        let diff = max_abs_diff(&a[0].values, &reference[0].values);
        assert!(diff <= 1e-5, "{layer}: {diff}");
    }

    let config = |layers: &[&str]| ExemplarConfig {
        layers: layers.iter().map(|l| (*l).to_owned()).collect(),
        k: 5,
        batch: 4,
        uniform_size: true,
        ..ExemplarConfig::default()
    };
    let out = tmp.path().join("out");
    exemplars::compute(
        &first,
        &"first/photos".parse().unwrap(),
        &photos,
        &out,
        &config(&["/Relu"]),
        &device,
    )
    .unwrap();
    exemplars::compute(
        &last,
        &"last/photos".parse().unwrap(),
        &photos,
        &out,
        &config(&["act", "regrid"]),
        &device,
    )
    .unwrap();
    let a = Dataset::open(&out.join("first/photos")).unwrap();
    let b = Dataset::open(&out.join("last/photos")).unwrap();
    let reference = &a.layers()[0];
    for (i, layer) in ["act", "regrid"].iter().enumerate() {
        let l = &b.layers()[i];
        assert_eq!(l.units(), 6);
        for u in 0..6 {
            let (x, y) = (reference.exemplars(u), l.exemplars(u));
            assert_eq!(x.ids, y.ids, "{layer} unit {u}");
            assert_eq!(x.masks, y.masks, "{layer} unit {u}");
        }
    }

    // An output the graph does not settle and whose shape could be either is refused by name
    // unless --layout says; the same file read with --layout nchw reads `regrid` so.
    let forced = OnnxNetwork::load(
        &exports().join("tiny-cnn-nhwc.onnx"),
        &InputSpec {
            layout: Some(milan_networks::layout::Layout::Nchw),
            ..InputSpec::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(
        kind(&forced, "regrid"),
        LayerKind::Conv {
            channels: 56,
            height: 56,
            width: 6
        },
        "--layout decides where the graph does not"
    );
    assert_eq!(
        kind(&forced, "act"),
        maps,
        "the graph still decides where it says"
    );

    let vit = load("vit-tiny.onnx");
    let err = vit
        .resolve("/blocks.0/attn/Softmax")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("attention scores: 4 heads over 197 tokens"),
        "{err}"
    );
    assert!(
        !vit.layers().iter().any(|l| l.contains("Softmax")),
        "attention scores are not offered as layers"
    );
}
