//! The authors' released MILAN: a checkpoint in their exact format (written by
//! scripts/fixtures/make_pretrained_milan.py with PyTorch 2.9.0) read without Python, and decoded
//! with the same words and log-probabilities as their decoding gives on the same features.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use milan_trainer::released::checkpoint::Pretrained;
use milan_trainer::released::decode;
use serde_json::Value;

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
    let expected = expected();
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
        let rows = csv_descriptions(&out);
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
        assert_eq!(rows, want, "{key}");
    }
}

#[test]
fn zip_format_state_dicts_are_read_with_their_layouts() {
    let tensors =
        milan_trainer::encoders::torch_zip::read_state_dict(&fixture("layouts.pth")).unwrap();
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
fn fixture_corpus() -> milan_trainer::data::Corpus {
    use milan_shared::{ModelKey, NeuronId};
    let key: ModelKey = "resnet152/imagenet".parse().unwrap();
    let mut neurons = Vec::new();
    for (layer, units) in [("conv1", 4), ("layer4", 3)] {
        let a: ndarray::Array3<f32> =
            ndarray_npy::read_npy(fixture(&format!("features/{layer}.npy"))).unwrap();
        for unit in 0..units {
            let text = ["red dogs", "blue text", "green grass and sky"][unit % 3];
            neurons.push(milan_trainer::data::Neuron {
                id: NeuronId::new(key.clone(), layer, unit as u32),
                features: a
                    .index_axis(ndarray::Axis(0), unit)
                    .iter()
                    .copied()
                    .collect(),
                descriptions: vec![text.to_owned(); 3],
                tokens: vec![milan_shared::tokenize::tokenize(text); 3],
            });
        }
    }
    milan_trainer::data::Corpus {
        neurons,
        k: 15,
        dims: 24,
        encoder: "resnet101".into(),
    }
}

#[test]
fn fine_tuning_starts_from_the_released_weights_and_vocabulary() {
    use milan_trainer::train::{InitFrom, MilanConfig, RunOptions, train};
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
    let init = InitFrom::prepare(pretrained, "tiny", &base, &tmp.path().join("init")).unwrap();
    assert_eq!(init.config.hidden, 32);
    assert_eq!(init.config.lm_hidden, 32);
    let config = init.config.clone();
    let corpus = fixture_corpus();
    let trained = train(
        &corpus,
        &[0, 1, 2, 4, 5],
        &[3, 6],
        &tmp.path().join("run"),
        &RunOptions {
            config,
            seed: 1,
            resume: false,
            backend: "flex".into(),
            quiet: true,
            init: Some(init),
        },
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
    let loaded = milan_trainer::train::load(&tmp.path().join("run"), &device).unwrap();
    assert_eq!(loaded.info.init_from.as_deref(), Some("tiny"));

    // Features of another width are refused by name.
    let pretrained = Pretrained::load(&fixture("milan-tiny.pth"), &device).unwrap();
    let init = InitFrom::prepare(pretrained, "tiny", &base, &tmp.path().join("init2")).unwrap();
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
        &RunOptions {
            config: init.config.clone(),
            seed: 1,
            resume: false,
            backend: "flex".into(),
            quiet: true,
            init: Some(init),
        },
        &device,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("24-wide"), "{err:#}");
}
