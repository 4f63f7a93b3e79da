//! The authors' released MILAN: a checkpoint in their exact format (written by
//! scripts/fixtures/make_pretrained_milan.py with PyTorch 2.9.0) read without Python, and decoded
//! with the same words and log-probabilities as their decoding gives on the same features.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use milan_trainer::corpora::released::checkpoint::Pretrained;
use milan_trainer::corpora::released::decode;
use serde_json::Value;

use crate::common;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pretrained")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn features(layer: &str, device: &Device) -> Tensor<3> {
    let a: ndarray::Array3<f32> =
        ndarray_npy::read_npy(fixture(&format!("features/{layer}.npy"))).unwrap();
    let dims = a.dim();
    Tensor::from_data(
        TensorData::new(a.into_raw_vec_and_offset().0, [dims.0, dims.1, dims.2]),
        device,
    )
}

/// The authors' token ids (words 0..V, then start, stop, pad, unk) as ours.
fn ours(words: usize, ids: &Value) -> Vec<usize> {
    ids.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let i = i.as_u64().unwrap() as usize;
            match i.checked_sub(words) {
                None => i + 4,
                Some(0) => 1,
                Some(1) => 2,
                Some(2) => 0,
                Some(_) => 3,
            }
        })
        .collect()
}

fn close(a: f32, b: f64, what: &str) {
    assert!(
        (f64::from(a) - b).abs() < 1e-4,
        "{what}: ours {a}, theirs {b}"
    );
}

#[test]
fn a_released_checkpoint_decodes_as_the_authors_decoding_does() {
    let device = Device::flex();
    let model = Pretrained::load(&fixture("milan-tiny.pth"), &device).unwrap();
    let expected = expected();
    let words = model.vocab.len() - 4;
    assert_eq!(model.defaults.strategy, "rerank");
    assert_eq!(model.defaults.beam, 50);
    assert_eq!(model.defaults.length, 15);
    assert!((model.defaults.temperature - 0.2).abs() < 1e-7);
    assert_eq!(model.encoder.config, "resnet101");
    assert_eq!(model.vocab.token(4), "the");
    let mut compared = 0;
    for (layer, units) in expected["layers"].as_object().unwrap() {
        let units = units.as_array().unwrap();
        let f = features(layer, &device);
        let greedy = decode::greedy(&model.captioner, f.clone(), 15);
        let beams = decode::beam_search(&model.captioner, f.clone(), 50, 15);
        let reranked = decode::rerank(&model.captioner, &model.lm, f, 50, 15, 0.2);
        for (u, unit) in units.iter().enumerate() {
            let what = format!("{layer} unit {u}");
            let g = &unit["greedy"];
            assert_eq!(greedy[u].tokens, ours(words, &g["tokens"]), "{what} greedy");
            assert_eq!(
                decode::reconstruct(&model.vocab, &greedy[u].tokens),
                g["text"].as_str().unwrap(),
                "{what} greedy text"
            );
            close(greedy[u].score, g["score"].as_f64().unwrap(), &what);
            for (j, b) in unit["beam"].as_array().unwrap().iter().enumerate() {
                assert_eq!(
                    beams[u][j].tokens,
                    ours(words, &b["tokens"]),
                    "{what} beam hypothesis {j}"
                );
                close(beams[u][j].log_prob, b["score"].as_f64().unwrap(), &what);
            }
            let r = &unit["rerank"];
            assert_eq!(
                reranked[u].tokens,
                ours(words, &r["tokens"]),
                "{what} rerank"
            );
            assert_eq!(
                decode::reconstruct(&model.vocab, &reranked[u].tokens),
                r["text"].as_str().unwrap(),
                "{what} rerank text"
            );
            close(reranked[u].log_prob, r["log_prob"].as_f64().unwrap(), &what);
            close(reranked[u].score, r["score"].as_f64().unwrap(), &what);
            compared += 1;
        }
    }
    assert_eq!(compared, 7);
}

fn load_error(name: &str) -> String {
    format!(
        "{:#}",
        Pretrained::load(&fixture(name), &Device::flex()).unwrap_err()
    )
}

#[test]
fn damaged_checkpoints_are_refused_naming_the_file_and_the_entry() {
    let missing = load_error("missing-weight.pth");
    assert!(
        missing.contains("missing-weight.pth")
            && missing.contains("missing weight lm.output.0.bias"),
        "{missing}"
    );
    let misshapen = load_error("misshapen-weight.pth");
    assert!(
        misshapen.contains("misshapen-weight.pth")
            && misshapen.contains("init_c.0.weight has shape [32, 25], expected [32, 24]"),
        "{misshapen}"
    );
    let code = load_error("runs-code.pth");
    assert!(
        code.contains("runs-code.pth")
            && code.contains("decoder/data.pkl")
            && code.contains("posix.system")
            && code.contains("refused"),
        "{code}"
    );

    // A download cut short: the zip's directory at its end is gone.
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("milan-tiny.pth")).unwrap();
    let cut = tmp.path().join("milan-cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", Pretrained::load(&cut, &Device::flex()).unwrap_err());
    assert!(
        err.contains("milan-cut.pth") && err.contains("truncated"),
        "{err}"
    );
    // Not a checkpoint at all.
    let other = tmp.path().join("other.pth");
    std::fs::write(&other, b"not a checkpoint").unwrap();
    let err = format!(
        "{:#}",
        Pretrained::load(&other, &Device::flex()).unwrap_err()
    );
    assert!(err.contains("other.pth"), "{err}");
}

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

/// Runs `cmd`, which must succeed.
fn succeeds(cmd: &mut Command) -> std::process::Output {
    let run = cmd.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    run
}

/// Runs `cmd`, which must fail, and returns what it said.
fn fails(cmd: &mut Command) -> String {
    let run = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{err}");
    err
}

/// A synthetic alexnet/imagenet folder of 64-pixel exemplars.
fn synth(dir: &Path, units: usize) -> PathBuf {
    succeeds(
        trainer()
            .args(["synth", "--image-size", "64", "--keys", "alexnet/imagenet"])
            .args(["--units-per-layer", &units.to_string(), "--out"])
            .arg(dir),
    );
    dir.join("alexnet/imagenet")
}

/// `trainer assets fetch resnet18 --from file` into `assets`.
fn register_resnet18(assets: &Path, file: &Path) -> Command {
    let mut cmd = trainer();
    cmd.env("MILAN_ASSETS", assets)
        .args(["assets", "fetch", "resnet18", "--from"])
        .arg(file);
    cmd
}

fn csv_descriptions(path: &Path) -> Vec<(String, String, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["layer", "unit", "description"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].to_owned(), rec[1].to_owned(), rec[2].to_owned())
        })
        .collect()
}

#[test]
fn describe_writes_the_authors_descriptions_of_precomputed_features() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, key) in [(None, "rerank"), (Some("--greedy"), "greedy")] {
        let out = tmp.path().join(format!("{key}.csv"));
        let mut cmd = trainer();
        cmd.arg("describe")
            .arg("--pretrained")
            .arg(fixture("milan-tiny.pth"))
            .arg("--features")
            .arg(fixture("features"))
            .arg("--out")
            .arg(&out);
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let run = cmd.output().unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(csv_descriptions(&out), expected_rows(key), "{key}");
        // The decoding speed is reported.
        let said = String::from_utf8_lossy(&run.stderr);
        let units = expected_rows(key).len();
        assert!(
            said.contains(&format!("decoded {units} units in ")) && said.contains(" neurons/s ("),
            "{said}"
        );
    }
}

#[test]
fn zip_format_state_dicts_are_read_with_their_layouts() {
    let tensors =
        milan_networks::formats::torch_zip::read_state_dict(&fixture("layouts.pth")).unwrap();
    let expected =
        serde_json::from_str::<Value>(&std::fs::read_to_string(fixture("layouts.json")).unwrap())
            .unwrap();
    let expected = expected.as_object().unwrap();
    assert_eq!(tensors.len(), expected.len());
    for (name, t) in &tensors {
        let want = &expected[name.as_str()];
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let values: Vec<f32> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        assert_eq!(t.values, values, "{name}");
    }
}

/// The fixture's features as a corpus of 7 neurons described with the checkpoint's words.
fn fixture_corpus() -> milan_trainer::corpus::Corpus {
    use milan_shared::{ModelKey, NeuronId};
    let key: ModelKey = "resnet152/imagenet".parse().unwrap();
    let mut neurons = Vec::new();
    for (layer, units) in [("conv1", 4), ("layer4", 3)] {
        let a: ndarray::Array3<f32> =
            ndarray_npy::read_npy(fixture(&format!("features/{layer}.npy"))).unwrap();
        for unit in 0..units {
            let text = ["red dogs", "blue text", "green grass and sky"][unit % 3];
            neurons.push(milan_trainer::corpus::Neuron {
                id: NeuronId::new(key.clone(), layer, unit as u32),
                features: a
                    .index_axis(ndarray::Axis(0), unit)
                    .iter()
                    .copied()
                    .collect(),
                descriptions: vec![text.to_owned(); 3],
                tokens: vec![milan_shared::tokenize::tokenize(text); 3],
                label: None,
            });
        }
    }
    milan_trainer::corpus::Corpus {
        neurons,
        k: 15,
        dims: 24,
        encoder: "resnet101".into(),
    }
}

/// A quiet seeded run on flex that starts from `init`.
fn starting_from(
    init: milan_model::train::InitFrom,
    config: milan_model::train::MilanConfig,
) -> milan_model::train::RunOptions {
    milan_model::train::RunOptions {
        config,
        seed: 1,
        resume: false,
        backend: "flex".into(),
        quiet: true,
        init: Some(init),
    }
}

#[test]
fn fine_tuning_starts_from_the_released_weights_and_vocabulary() {
    use milan_model::train::{MilanConfig, train};
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let pretrained = Pretrained::load(&fixture("milan-tiny.pth"), &device).unwrap();
    let base = MilanConfig {
        // A zero step leaves the weights where they started: what was trained is what was read.
        learning_rate: 0.0,
        max_epochs: 1,
        lm_max_epochs: 1,
        batch: 8,
        lm_batch: 8,
        ..MilanConfig::default()
    };
    let init = pretrained
        .into_init("tiny", &base, &tmp.path().join("init"))
        .unwrap();
    assert_eq!(init.config.hidden, 32);
    assert_eq!(init.config.lm_hidden, 32);
    let config = init.config.clone();
    let corpus = fixture_corpus();
    let trained = train(
        &corpus,
        &[0, 1, 2, 4, 5],
        &[3, 6],
        &tmp.path().join("run"),
        &starting_from(init, config),
        &device,
    )
    .unwrap();
    let reference = Pretrained::load(&fixture("milan-tiny.pth"), &device).unwrap();
    assert_eq!(trained.vocab, reference.vocab);
    assert_eq!(trained.info.init_from.as_deref(), Some("tiny"));
    let f = features("conv1", &device);
    let ours = decode::rerank(&trained.captioner, &trained.lm, f.clone(), 50, 15, 0.2);
    let theirs = decode::rerank(&reference.captioner, &reference.lm, f, 50, 15, 0.2);
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a.tokens, b.tokens);
        assert!(
            (a.score - b.score).abs() < 1e-5,
            "{} vs {}",
            a.score,
            b.score
        );
    }
    // The run is a checkpoint like any other: describe --checkpoint loads it.
    let loaded = milan_model::train::load(&tmp.path().join("run"), &device).unwrap();
    assert_eq!(loaded.info.init_from.as_deref(), Some("tiny"));

    // Features of another width are refused by name.
    let pretrained = Pretrained::load(&fixture("milan-tiny.pth"), &device).unwrap();
    let init = pretrained
        .into_init("tiny", &base, &tmp.path().join("init2"))
        .unwrap();
    let mut narrow = fixture_corpus();
    narrow.dims = 12;
    for n in &mut narrow.neurons {
        n.features.truncate(15 * 12);
    }
    let err = train(
        &narrow,
        &[0, 1],
        &[2],
        &tmp.path().join("narrow"),
        &starting_from(init.clone(), init.config),
        &device,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("24-wide"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------
// Released MILANNOTATIONS: a local server stands in for the authors' site (common::site).

use common::site;

const UNITS: usize = 2;
const K: usize = 4;
const SIDE: usize = 16;

/// An ImageNet-like val/ folder of the Pillow fixture's images, in ImageFolder order:
/// n01/a.png (wide), n01/z.png (gray), n02/b.png (tall), n02/c.png (same).
fn imagenet(dir: &Path) -> Vec<&'static str> {
    for (class, file, from) in [
        ("n02", "c.png", "same.png"),
        ("n01", "z.png", "gray.png"),
        ("n02", "b.png", "tall.png"),
        ("n01", "a.png", "wide.png"),
    ] {
        let d = dir.join("val").join(class);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pil")
                .join(from),
            d.join(file),
        )
        .unwrap();
    }
    vec!["wide.png", "gray.png", "tall.png", "same.png"]
}

/// A zip in the released layout (entries at its top): `conv1` with its images, `layer2` with
/// pointers only (ids into the ImageNet folder above).
fn released_zip(scratch: &Path, ids: [[u64; K]; UNITS]) -> Vec<u8> {
    use milan_shared::milannotations::{DatasetWriter, LayerShape};
    let key: milan_shared::ModelKey = "alexnet/imagenet".parse().unwrap();
    let mut w = DatasetWriter::create(scratch, &key).unwrap();
    let shape = LayerShape {
        units: UNITS,
        k: K,
        height: SIDE,
        width: SIDE,
    };
    let masks = vec![1u8; K * SIDE * SIDE];
    let images = vec![7u8; K * 3 * SIDE * SIDE];
    let mut l = w.layer("conv1", shape, true).unwrap();
    for u in 0..UNITS {
        l.write_unit(u, &masks, Some(&images), &[u as u64; K])
            .unwrap();
    }
    l.finish().unwrap();
    let mut l = w.layer("layer2", shape, false).unwrap();
    for (u, ids) in ids.iter().enumerate() {
        l.write_unit(u, &masks, None, ids).unwrap();
    }
    l.finish().unwrap();
    for layer in ["conv1", "layer2"] {
        for u in 0..UNITS as u32 {
            for d in ["red dogs", "blue text", "green grass"] {
                w.describe(layer, u, d);
            }
        }
    }
    let folder = w.finish().unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for name in [
        "annotations.csv",
        "conv1/masks.npy",
        "conv1/images.npy",
        "conv1/ids.csv",
        "layer2/masks.npy",
        "layer2/ids.csv",
    ] {
        zip.start_file(name, options).unwrap();
        std::io::Write::write_all(&mut zip, &std::fs::read(folder.join(name)).unwrap()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn run_trainer(args: &[&str]) -> (bool, String, String) {
    let out = trainer().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(zip: Vec<u8>) -> std::collections::HashMap<String, Vec<u8>> {
    [("/data/alexnet-imagenet.zip".to_owned(), zip)].into()
}

#[test]
fn fetch_resumes_a_dropped_download_unpacks_it_and_resolves_imagenet_pointers() {
    let tmp = tempfile::tempdir().unwrap();
    let order = imagenet(&tmp.path().join("imagenet"));
    let ids = [[0, 1, 2, 3], [3, 3, 0, 2]];
    let zip = released_zip(&tmp.path().join("scratch"), ids);
    let (base, log) = site::serve(
        files(zip.clone()),
        Some(("/data/alexnet-imagenet.zip".into(), zip.len() / 3)),
    );
    let root = tmp.path().join("root");
    let root_s = root.to_str().unwrap();
    let (ok, stdout, stderr) = fetch(&root, &base, Some(&tmp.path().join("imagenet")));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("alexnet/imagenet: fetched into"),
        "{stdout}"
    );
    // Without a terminal, each long step says where it is in log lines: the resumed download
    // (from a third of the file), the unpacking, the images resolved.
    for step in [
        "alexnet-imagenet.zip: ",
        "unpacking ",
        "alexnet/imagenet: images from ",
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(step) && l.contains("(100%")),
            "{step}: {stderr}"
        );
    }
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, None);
    assert_eq!(
        requests[1].1.as_deref(),
        Some(format!("bytes={}-", zip.len() / 3).as_str()),
        "the second request resumes where the first stopped"
    );

    // The key reads as it is, its pointers resolved as the authors' loader builds images.
    let dataset =
        milan_shared::milannotations::Dataset::open(&root.join("alexnet/imagenet")).unwrap();
    assert_eq!(dataset.annotated().len(), 2 * UNITS);
    let pil: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pil/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = dataset.layer("layer2").unwrap();
    let images = layer.images().expect("images.npy resolved");
    for (u, unit_ids) in ids.iter().enumerate() {
        let bytes = images.unit_bytes(u);
        for (j, &id) in unit_ids.iter().enumerate() {
            let want: Vec<u8> = pil[order[id as usize]]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u8)
                .collect();
            let per = 3 * SIDE * SIDE;
            assert_eq!(
                &bytes[j * per..(j + 1) * per],
                want.as_slice(),
                "unit {u} exemplar {j} ({})",
                order[id as usize]
            );
        }
    }
    // The released images are kept as they are.
    assert!(
        dataset
            .layer("conv1")
            .unwrap()
            .images()
            .unwrap()
            .unit_bytes(0)
            .iter()
            .all(|&b| b == 7)
    );

    // The manifest recorded the zip's hash; the zip itself is gone.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("milannotations-sha256.json")).unwrap(),
    )
    .unwrap();
    let sha = milan_trainer::assets::sha256_file(&{
        let p = tmp.path().join("zip");
        std::fs::write(&p, &zip).unwrap();
        p
    })
    .unwrap();
    assert_eq!(manifest["sha256"]["alexnet-imagenet.zip"], sha.as_str());
    assert!(!root.join(".downloads/alexnet-imagenet.zip").exists());

    let (ok, stdout, _) = run_trainer(&["data", "list", "--root", root_s]);
    assert!(
        ok && stdout.contains("alexnet/imagenet") && stdout.contains("yes"),
        "{stdout}"
    );
    let (ok, stdout, _) = fetch(&root, &base, None);
    assert!(ok && stdout.contains("already in"), "{stdout}");
    assert_eq!(log.lock().unwrap().len(), 2, "nothing downloaded again");
}

#[test]
fn a_download_a_killed_run_left_is_resumed_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    imagenet(&tmp.path().join("imagenet"));
    let zip = released_zip(&tmp.path().join("scratch"), [[0, 1, 2, 3], [0, 0, 0, 0]]);
    let (base, log) = site::serve(files(zip.clone()), None);
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join(".downloads")).unwrap();
    std::fs::write(
        root.join(".downloads/alexnet-imagenet.zip.part"),
        &zip[..zip.len() / 2],
    )
    .unwrap();
    let (ok, stdout, stderr) = fetch(&root, &base, None);
    assert!(ok, "{stdout}\n{stderr}");
    let requests = log.lock().unwrap().clone();
    assert_eq!(
        requests,
        vec![(
            "/data/alexnet-imagenet.zip".to_owned(),
            Some(format!("bytes={}-", zip.len() / 2))
        )]
    );
    // Without --imagenet the pointers stay pointers, and the user is told how to resolve them.
    assert!(stdout.contains("run again with --imagenet"), "{stdout}");
    let dataset =
        milan_shared::milannotations::Dataset::open(&root.join("alexnet/imagenet")).unwrap();
    assert!(dataset.layer("layer2").unwrap().images().is_none());
}

/// `trainer data fetch alexnet/imagenet` from `base` into `root`.
fn fetch(root: &Path, base: &str, imagenet: Option<&Path>) -> (bool, String, String) {
    let mut args = vec![
        "data".to_owned(),
        "fetch".into(),
        "alexnet/imagenet".into(),
        "--root".into(),
        root.to_str().unwrap().into(),
        "--url-base".into(),
        base.into(),
    ];
    if let Some(i) = imagenet {
        args.extend(["--imagenet".into(), i.to_str().unwrap().into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_trainer(&args)
}

/// Runs a fetch that must fail, and checks it left no key folder and no unpacking behind.
fn failed_fetch(root: &Path, base: &str, imagenet: Option<&Path>) -> String {
    let (ok, stdout, stderr) = fetch(root, base, imagenet);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(!root.join("alexnet/imagenet").exists(), "{stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(root.join(".downloads"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("unpack-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    stderr
}

#[test]
fn damaged_zips_wrong_checksums_and_missing_images_leave_nothing_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let imagenet_dir = tmp.path().join("imagenet");
    imagenet(&imagenet_dir);
    let good = released_zip(&tmp.path().join("scratch"), [[0, 1, 2, 3], [0, 0, 0, 0]]);

    // A damaged zip: one byte of an entry's data flipped, so its CRC fails.
    let mut bad = good.clone();
    let at = bad.windows(12).position(|w| w == b"layer2/masks").unwrap() + 200;
    bad[at] ^= 0xff;
    let (base, _) = site::serve(files(bad), None);
    let root = tmp.path().join("damaged");
    let err = failed_fetch(&root, &base, None);
    assert!(
        err.contains("alexnet-imagenet.zip") && err.contains("layer2/masks.npy"),
        "{err}"
    );
    // Nothing of it is kept or trusted: the next run downloads a good copy and records that.
    assert!(!root.join(".downloads/alexnet-imagenet.zip").exists());
    assert!(!root.join("milannotations-sha256.json").exists());
    let (base, _) = site::serve(files(good.clone()), None);
    let (ok, stdout, stderr) = fetch(&root, &base, None);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(root.join("milannotations-sha256.json").exists());

    // A checksum that differs from the one recorded at the first download.
    let (base, _) = site::serve(files(good.clone()), None);
    let root = tmp.path().join("checksum");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("milannotations-sha256.json"),
        format!(
            r#"{{"sha256": {{"alexnet-imagenet.zip": "{}"}}}}"#,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let err = failed_fetch(&root, &base, None);
    assert!(
        err.contains("alexnet-imagenet.zip") && err.contains("differs from"),
        "{err}"
    );
    assert!(!root.join(".downloads/alexnet-imagenet.zip").exists());

    // A pointer past the end of the ImageNet folder names the ids.csv row and the count.
    let far = released_zip(&tmp.path().join("scratch2"), [[0, 1, 2, 3], [0, 9, 0, 0]]);
    let (base, _) = site::serve(files(far), None);
    let root = tmp.path().join("pointer");
    let err = failed_fetch(&root, &base, Some(&imagenet_dir));
    assert!(
        err.contains("layer2/ids.csv")
            && err.contains("unit 1, exemplar 1 wants image #9")
            && err.contains("holds 4 images"),
        "{err}"
    );

    // An image that is not one.
    std::fs::write(imagenet_dir.join("val/n01/a.png"), b"not a png").unwrap();
    let (base, _) = site::serve(files(good), None);
    let root = tmp.path().join("unreadable");
    let err = failed_fetch(&root, &base, Some(&imagenet_dir));
    assert!(
        err.contains("n01/a.png") && err.contains("cannot be read"),
        "{err}"
    );

    // An entry that would land outside the key's folder.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("../../escaped.txt", options).unwrap();
    std::io::Write::write_all(&mut zip, b"outside").unwrap();
    let (base, _) = site::serve(files(zip.finish().unwrap().into_inner()), None);
    let root = tmp.path().join("slip");
    let err = failed_fetch(&root, &base, None);
    assert!(
        err.contains("escaped.txt") && err.contains("outside"),
        "{err}"
    );
    assert!(!tmp.path().join("escaped.txt").exists() && !root.join("escaped.txt").exists());

    // A key the site does not have.
    let (base, _) = site::serve(std::collections::HashMap::new(), None);
    let root = tmp.path().join("absent");
    let err = failed_fetch(&root, &base, None);
    assert!(
        err.contains("404") && err.contains("/data/alexnet-imagenet.zip"),
        "{err}"
    );
}

/// The expected `layer,unit,description` rows of the fixture's features for `key` (rerank or
/// greedy).
fn expected_rows(key: &str) -> Vec<(String, String, String)> {
    let expected = expected();
    let mut want = Vec::new();
    for (layer, units) in expected["layers"].as_object().unwrap() {
        for (u, unit) in units.as_array().unwrap().iter().enumerate() {
            want.push((
                layer.clone(),
                u.to_string(),
                unit[key]["text"].as_str().unwrap().to_owned(),
            ));
        }
    }
    want
}

#[test]
fn a_released_name_is_downloaded_once_resumed_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let pth = std::fs::read(fixture("milan-tiny.pth")).unwrap();
    let (base, log) = site::serve(
        [("/models/milan-base.pth".to_owned(), pth.clone())].into(),
        Some(("/models/milan-base.pth".into(), pth.len() / 2)),
    );
    let assets = tmp.path().join("assets");
    let out = tmp.path().join("base.csv");
    let describe = || {
        trainer()
            .env("MILAN_ASSETS", &assets)
            .args(["describe", "--pretrained", "base", "--url-base", &base])
            .arg("--features")
            .arg(fixture("features"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let run = describe();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(csv_descriptions(&out), expected_rows("rerank"));
    let requests = log.lock().unwrap().clone();
    assert_eq!(
        requests.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        vec![None, Some(format!("bytes={}-", pth.len() / 2))]
    );
    assert_eq!(
        std::fs::read(assets.join("milan/milan-base.pth")).unwrap(),
        pth
    );
    let manifest = std::fs::read_to_string(assets.join("milan/milan-sha256.json")).unwrap();
    assert!(manifest.contains("milan-base.pth"), "{manifest}");

    // Once there, it is checked, not fetched again; a file changed since is refused.
    let run = describe();
    assert!(run.status.success());
    assert_eq!(log.lock().unwrap().len(), 2);
    let mut changed = pth.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(assets.join("milan/milan-base.pth"), &changed).unwrap();
    let run = describe();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("differs from"),
        "{err}"
    );
    // ... and removed, so the next run downloads a good copy.
    assert!(!assets.join("milan/milan-base.pth").exists());
    let run = describe();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Names that are neither files nor released models are refused by name.
    let run = trainer()
        .env("MILAN_ASSETS", &assets)
        .args(["describe", "--pretrained", "bigger", "--url-base", &base])
        .arg("--features")
        .arg(fixture("features"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("bigger") && err.contains("base, cls"),
        "{err}"
    );
}

#[test]
fn describe_runs_the_checkpoints_encoder_on_exemplar_images() {
    let tmp = tempfile::tempdir().unwrap();
    let assets = tmp.path().join("assets");
    // torchvision's ResNet-18 layout with small random weights, registered as the asset.
    let weights = tmp.path().join("resnet18.safetensors");
    common::write_random(&weights, &common::torchvision_keys([2, 2, 2, 2], false), 3);
    succeeds(&mut register_resnet18(&assets, &weights));
    assert_eq!(
        milan_trainer::assets::sha256_file(&assets.join("resnet18/resnet18.safetensors")).unwrap(),
        milan_trainer::assets::sha256_file(&weights).unwrap()
    );
    // A file whose name carries another hash than its own (torchvision's naming) is refused.
    let misnamed = tmp.path().join("resnet18-deadbeef.pth");
    std::fs::copy(&weights, &misnamed).unwrap();
    let err = fails(&mut register_resnet18(&assets, &misnamed));
    assert!(err.contains("deadbeef"), "{err}");

    let data = synth(&tmp.path().join("synth"), 2);
    let out = tmp.path().join("described.csv");
    let describe = |checkpoint: &str| {
        let mut cmd = trainer();
        cmd.env("MILAN_ASSETS", &assets)
            .arg("describe")
            .arg("--pretrained")
            .arg(fixture(checkpoint))
            .arg("--data")
            .arg(&data)
            .arg("--cache")
            .arg(tmp.path().join("cache"))
            .args(["--beam", "5"])
            .arg("--out")
            .arg(&out);
        cmd
    };
    succeeds(&mut describe("milan-resnet18.pth"));
    let rows = csv_descriptions(&out);
    let units: Vec<(String, String)> = rows.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    let want: Vec<(String, String)> = ["conv1", "conv2", "conv3", "conv4", "conv5"]
        .iter()
        .flat_map(|l| (0..2).map(move |u| (l.to_string(), u.to_string())))
        .collect();
    assert_eq!(units, want);

    // The 24-wide decoder cannot read a ResNet-18 pyramid; said before any image is read.
    let err = fails(&mut describe("milan-tiny.pth"));
    assert!(err.contains("24-wide"), "{err}");

    // The one-command path (issue 40): an ONNX network, its layers and a folder of photos to
    // the authors' descriptions, the same as the two steps it stands for (`trainer exemplars`,
    // then `describe --data`), every unit of both layers described.
    let model = common::onnx_exports().join("tiny-cnn.onnx");
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/efficientnet-lite0");
    let mut n = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "png") {
            // Each photo and its mirror image: 15 exemplars need at least 15 images.
            let img = image::open(&p).unwrap().to_rgb8();
            img.save(photos.join(format!("{n:02}.png"))).unwrap();
            image::imageops::flip_horizontal(&img)
                .save(photos.join(format!("{n:02}-mirrored.png")))
                .unwrap();
            n += 1;
        }
    }
    assert!(2 * n >= 15, "{n} fixture photos");
    let layers = "/Relu,/Relu_1";
    // The authors' checkpoint on the registered ResNet-18, into `name`.csv.
    let described = |name: &str, source: &[&std::ffi::OsStr]| {
        let out = tmp.path().join(format!("{name}.csv"));
        succeeds(
            trainer()
                .env("MILAN_ASSETS", &assets)
                .arg("describe")
                .arg("--pretrained")
                .arg(fixture("milan-resnet18.pth"))
                .args(source)
                .arg("--cache")
                .arg(tmp.path().join(format!("cache-{name}")))
                .args(["--beam", "5", "--out"])
                .arg(&out),
        );
        out
    };
    let one = described(
        "one",
        &[
            "--model".as_ref(),
            model.as_os_str(),
            "--layers".as_ref(),
            layers.as_ref(),
            "--images".as_ref(),
            photos.as_os_str(),
        ],
    );
    let exemplars = tmp.path().join("exemplars");
    succeeds(
        trainer()
            .args(["exemplars", "--model"])
            .arg(&model)
            .args(["--layers", layers, "--key", "tiny/photos", "--images"])
            .arg(&photos)
            .arg("--out")
            .arg(&exemplars),
    );
    let folder = exemplars.join("tiny/photos");
    let two = described("two", &["--data".as_ref(), folder.as_os_str()]);
    let rows = csv_descriptions(&one);
    assert_eq!(rows.len(), 6 + 4, "every unit of both layers: {rows:?}");
    assert_eq!(rows, csv_descriptions(&two));
}

#[test]
fn fit_init_from_fine_tunes_a_released_checkpoint_on_its_encoders_features() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let minilm = root.join("assets/minilm");
    assert!(
        minilm.join("model.safetensors").is_file(),
        "run `cargo run -p milan-trainer -- assets fetch minilm` in the repository root \
         (scripts/test does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let weights = tmp.path().join("resnet18.safetensors");
    common::write_random(&weights, &common::torchvision_keys([2, 2, 2, 2], false), 5);
    let data = synth(&tmp.path().join("synth"), 4);
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"max_epochs": 1, "lm_max_epochs": 1, "decode": {"beam": 5, "lambda": 0.2, "neurons_per_batch": 8}}"#,
    )
    .unwrap();
    let out = tmp.path().join("run");
    let run = trainer()
        .args([
            "fit",
            "--split",
            "within-network",
            "--direction",
            "alexnet/imagenet",
        ])
        .args(["--trials", "1", "--init-from"])
        .arg(fixture("milan-resnet18.pth"))
        .arg("--weights")
        .arg(&weights)
        .arg("--bertscore-model")
        .arg(&minilm)
        .arg("--config")
        .arg(&config)
        .arg("--cache")
        .arg(tmp.path().join("cache"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // The checkpoint's encoder was used, not the default EfficientNet.
    assert!(stderr.contains("resnet18"), "{stderr}");
    let trial = out.join("alexnet_imagenet").join("trial-0");
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(trial.join("config.json")).unwrap()).unwrap();
    assert_eq!(info["encoder"], "resnet18");
    assert_eq!(info["feature_dim"], 1024);
    assert_eq!(info["config"]["hidden"], 8);
    assert!(
        info["init_from"]
            .as_str()
            .unwrap()
            .ends_with("milan-resnet18.pth")
    );
    // Its vocabulary is the checkpoint's, in our order: specials first, then the words.
    let vocab: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(trial.join("vocab.json")).unwrap()).unwrap();
    assert_eq!(&vocab[..5], ["<pad>", "<start>", "<stop>", "<unk>", "the"]);
}
