//! EfficientNet-Lite0 against PyTorch: all 1000 logits and the per-channel means of three blocks,
//! for ten ImageNet photos (fixtures computed with the reference implementation; see
//! tests/fixtures/efficientnet-lite0). Needs the weights: `trainer assets fetch efficientnet-lite0`.

use crate::common;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use milan_networks::efficientnet::{EfficientNetLite0, INPUT_SIZE, preprocess};

fn weights() -> PathBuf {
    common::efficientnet_weights()
}

struct Case {
    name: String,
    input: Vec<f32>,
    logits: Vec<f32>,
    means: Vec<(usize, Vec<f32>)>,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|png| {
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(png.with_extension("json")).unwrap())
                    .unwrap();
            let floats = |v: &serde_json::Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            let means = ["_blocks.0", "_blocks.7", "_blocks.15"]
                .iter()
                .map(|b| (b[8..].parse().unwrap(), floats(&json["block_means"][*b])))
                .collect();
            Case {
                name: png.file_name().unwrap().to_string_lossy().into_owned(),
                input: preprocess(&image::open(&png).unwrap().to_rgb8()),
                logits: floats(&json["logits"]),
                means,
            }
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// All ten photos in one batch: every logit and every block's channel mean within 1e-3.
#[test]
fn logits_and_block_means_match_pytorch() {
    let device = Device::flex();
    let cases = cases();
    assert_eq!(cases.len(), 10);
    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let n = cases.len();
    let input: Vec<f32> = cases.iter().flat_map(|c| c.input.iter().copied()).collect();
    let x = Tensor::<4>::from_data(
        TensorData::new(input, [n, 3, INPUT_SIZE, INPUT_SIZE]),
        &device,
    );
    let out = model.forward(x, &[0, 7, 15]);
    let logits = out.logits.into_data().try_to_vec::<f32>().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let got = &logits[i * 1000..(i + 1) * 1000];
        let diff = max_diff(got, &case.logits);
        assert!(diff < 1e-3, "{}: logits differ by {diff}", case.name);
        for (block, expected) in &case.means {
            let t = out.blocks[block].clone();
            let [_, c, h, w] = t.dims();
            let means = t
                .narrow(0, i, 1)
                .reshape([c, h * w])
                .mean_dim(1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let diff = max_diff(&means, expected);
            assert!(
                diff < 1e-3,
                "{}: _blocks.{block} means differ by {diff}",
                case.name
            );
        }
    }
}

/// The top class is the photo's ImageNet label for most photos (a sanity check of the whole
/// pipeline, including the preprocessing).
#[test]
fn it_recognises_the_photos() {
    let device = Device::flex();
    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let mut right = 0;
    for case in cases() {
        let label: usize = case
            .name
            .split('_')
            .nth(2)
            .unwrap()
            .trim_end_matches(".png")
            .parse()
            .unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(case.input, [1, 3, INPUT_SIZE, INPUT_SIZE]),
            &device,
        );
        let logits = model
            .forward(x, &[])
            .logits
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let top = (0..1000)
            .max_by(|a, b| logits[*a].total_cmp(&logits[*b]))
            .unwrap();
        right += usize::from(top == label);
    }
    assert!(right >= 7, "top-1 right on {right} of 10 photos");
}

/// `trainer classify --json` as a user runs it: any image size, all 1000 logits, the top 5; a
/// missing file is named.
#[test]
fn classify_prints_top5_and_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet-lite0/imagenet_04_949.png");
    let small = image::imageops::resize(
        &image::open(&src).unwrap().to_rgb8(),
        448,
        448,
        image::imageops::FilterType::Triangle,
    );
    let small_path = tmp.path().join("strawberry-448.png");
    small.save(&small_path).unwrap();
    let assets = weights().parent().unwrap().parent().unwrap().to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("MILAN_ASSETS", &assets)
        .args(["classify", "--json"])
        .arg(&src)
        .arg(&small_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["logits"].as_array().unwrap().len(), 1000);
        assert_eq!(line["top5"].as_array().unwrap().len(), 5);
        // strawberry is class 949, resized or not.
        assert_eq!(line["top5"][0]["class"], 949, "{}", line["image"]);
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .env("MILAN_ASSETS", &assets)
        .args(["classify", "no-such-photo.jpg"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading no-such-photo.jpg"));
}

/// Switching a unit off zeroes exactly its channel of the block's output (the network's own
/// activations elsewhere unchanged) and changes what comes after it.
#[test]
fn ablating_a_unit_zeroes_exactly_its_channel() {
    use std::collections::BTreeMap;
    let device = Device::flex();
    let model = EfficientNetLite0::load(&weights(), &device).unwrap();
    let case = &cases()[0];
    let x = Tensor::<4>::from_data(
        TensorData::new(case.input.clone(), [1, 3, INPUT_SIZE, INPUT_SIZE]),
        &device,
    );
    let (block, unit) = (5, 7);
    let intact = model.forward(x.clone(), &[block, block + 1]);
    let off = BTreeMap::from([(block, vec![unit])]);
    let ablated = model.forward_ablated(x, &[block, block + 1], &off);
    let values = |t: &Tensor<4>| t.clone().into_data().try_to_vec::<f32>().unwrap();
    let [_, c, h, w] = intact.blocks[&block].dims();
    let (before, after) = (
        values(&intact.blocks[&block]),
        values(&ablated.blocks[&block]),
    );
    let plane = h * w;
    for ch in 0..c {
        let (a, b) = (
            &before[ch * plane..(ch + 1) * plane],
            &after[ch * plane..(ch + 1) * plane],
        );
        if ch == unit {
            assert!(a.iter().any(|v| *v != 0.0), "the unit was active before");
            assert!(b.iter().all(|v| *v == 0.0), "channel {ch} is off");
        } else {
            assert_eq!(a, b, "channel {ch} untouched");
        }
    }
    assert_ne!(
        values(&intact.blocks[&(block + 1)]),
        values(&ablated.blocks[&(block + 1)]),
        "the next block sees the change"
    );
}
