//! BERTScore against bert_score 0.3.13 with all-MiniLM-L6-v2 (values in
//! metrics/tests/fixtures, computed with the reference tools): identical within 1e-4 per sentence
//! and in the mean, with idf on and off. And a tiny random RoBERTa: loading, key mapping, shapes.

use std::path::{Path, PathBuf};

use milan_metrics::normalize;
use milan_trainer::bertscore::{BertScorer, ScorerOptions, loader};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../metrics/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn minilm() -> PathBuf {
    let dir = milan_trainer::assets::path("minilm").unwrap();
    let dir = if dir.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
    } else {
        dir
    };
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not at {}: run `cargo run -p milan-trainer -- assets fetch minilm` \
         from the repository root (scripts/test does)",
        dir.display()
    );
    dir
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| normalize(s.as_str().unwrap()))
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(ours: &[f64], theirs: &[f64], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let mut worst: f64 = 0.0;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() < 1e-4, "{what}[{i}]: {a} vs {b}");
        worst = worst.max((a - b).abs());
    }
    println!(
        "{what}: {} values, largest difference {worst:.1e}",
        ours.len()
    );
}

#[test]
fn five_neurons_match_bert_score() {
    let scorer = BertScorer::load(
        &minilm(),
        &ScorerOptions::default(),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    assert_eq!(scorer.num_layers(), 6);
    let f = fixture("five-neurons.json");
    let cands = strings(&f["preds"]);
    let refs: Vec<Vec<String>> = f["refs"].as_array().unwrap().iter().map(strings).collect();
    for (idf, key) in [
        (true, "bertscore_minilm_L6_idf"),
        (false, "bertscore_minilm_L6_noidf"),
    ] {
        let s = scorer.score(&cands, &refs, idf).unwrap();
        let expected = &f[key];
        close(&s.p, &floats(&expected["P"]), &format!("{key} P"));
        close(&s.r, &floats(&expected["R"]), &format!("{key} R"));
        close(&s.f, &floats(&expected["F"]), &format!("{key} F"));
        assert!((s.means().2 - expected["mean_F"].as_f64().unwrap()).abs() < 1e-4);
    }
}

#[test]
fn real_crowd_phrases_match_bert_score() {
    let scorer = BertScorer::load(
        &minilm(),
        &ScorerOptions::default(),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    let f = fixture("zhou-imagenet-alexnet.json");
    for case in f["cases"].as_array().unwrap() {
        let cands = strings(&case["hyps"]);
        let refs: Vec<Vec<String>> = case["refs"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        for (idf, key) in [(true, "bertscore_idf"), (false, "bertscore_noidf")] {
            let s = scorer.score(&cands, &refs, idf).unwrap();
            let expected = &case[key];
            let name = format!("{} {key}", case["name"]);
            close(
                &s.f,
                &floats(&expected["F_each"]),
                &format!("{name} F_each"),
            );
            let (p, r, fm) = s.means();
            close(
                &[p, r, fm],
                &[
                    expected["P"].as_f64().unwrap(),
                    expected["R"].as_f64().unwrap(),
                    expected["F"].as_f64().unwrap(),
                ],
                &name,
            );
        }
    }
}

/// A RoBERTa config and random weights, written the way Hugging Face writes them.
fn tiny_roberta(dir: &Path, skip: Option<&str>, wrong_shape: Option<&str>) {
    let (v, h, i, layers, pos) = (50usize, 16usize, 32usize, 2usize, 40usize);
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({
            "model_type": "roberta", "vocab_size": v, "hidden_size": h, "num_hidden_layers": layers,
            "num_attention_heads": 2, "intermediate_size": i, "max_position_embeddings": pos,
            "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1, "hidden_act": "gelu"
        })
        .to_string(),
    )
    .unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "roberta.embeddings.word_embeddings.weight".into(),
            vec![v, h],
        ),
        (
            "roberta.embeddings.position_embeddings.weight".into(),
            vec![pos, h],
        ),
        (
            "roberta.embeddings.token_type_embeddings.weight".into(),
            vec![1, h],
        ),
        ("roberta.embeddings.LayerNorm.weight".into(), vec![h]),
        ("roberta.embeddings.LayerNorm.bias".into(), vec![h]),
        ("roberta.pooler.dense.weight".into(), vec![h, h]),
    ];
    for n in 0..layers {
        let p = format!("roberta.encoder.layer.{n}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            shapes.push((format!("{p}.{name}.weight"), vec![out, inp]));
            shapes.push((format!("{p}.{name}.bias"), vec![out]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{name}.weight"), vec![h]));
            shapes.push((format!("{p}.{name}.bias"), vec![h]));
        }
    }
    let mut seed = 12345u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2
    };
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, mut shape)| {
            if Some(k.as_str()) == wrong_shape {
                shape[0] += 1;
            }
            let n: usize = shape.iter().product();
            let bytes = (0..n).flat_map(|_| next().to_le_bytes()).collect();
            (k, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = buffers
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn a_tiny_random_roberta_loads_and_encodes() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_roberta(tmp.path(), None, None);
    let device = burn::tensor::Device::flex();
    let (config, model) = loader::load(tmp.path(), &device).unwrap();
    assert!(config.is_roberta());
    let ids = vec![vec![0u32, 7, 9, 2], vec![0, 5, 2]];
    let hidden = model.forward(&ids, 2, &device);
    assert_eq!(hidden.dims(), [2, 4, 16]);
    let values: Vec<f32> = hidden.into_data().try_to_vec::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // Padding does not change the real tokens' states.
    let alone = model.forward(&ids[1..], 2, &device);
    let alone: Vec<f32> = alone.into_data().try_to_vec::<f32>().unwrap();
    for (a, b) in alone.iter().zip(&values[4 * 16..4 * 16 + 3 * 16]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(
        model.forward(&ids, 0, &device).dims(),
        [2, 4, 16],
        "0 layers = embeddings"
    );

    let broken = tempfile::tempdir().unwrap();
    tiny_roberta(
        broken.path(),
        Some("roberta.encoder.layer.1.output.dense.bias"),
        None,
    );
    let err = loader::load(broken.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing weight encoder.layer.1.output.dense.bias"),
        "{err}"
    );
    let broken = tempfile::tempdir().unwrap();
    tiny_roberta(
        broken.path(),
        None,
        Some("roberta.encoder.layer.0.attention.self.key.weight"),
    );
    let err = loader::load(broken.path(), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "encoder.layer.0.attention.self.key.weight has shape [17, 16], expected [16, 16]"
        ),
        "{err}"
    );
}
