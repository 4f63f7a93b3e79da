//! BERTScore against bert_score 0.3.13 with all-MiniLM-L6-v2 (values in
//! metrics/tests/fixtures, computed with the reference tools): identical within 1e-4 per sentence
//! and in the mean, with idf on and off. And a tiny random RoBERTa: loading, key mapping, shapes,
//! and `trainer assets fetch roberta-large` against a local server standing in for the hub.

use std::path::{Path, PathBuf};

use milan_metrics::normalize;
use milan_trainer::evaluation::bertscore::{BertScorer, ScorerOptions, loader};
use serde_json::Value;

use crate::common;

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

/// Sentences encoded in many small batches, on as many threads as the machine has, score as in
/// one batch and as bert_score does.
#[test]
fn small_batches_on_several_threads_score_as_one_batch() {
    let load = |batch_size: usize| {
        BertScorer::load(
            &minilm(),
            &ScorerOptions {
                batch_size,
                ..ScorerOptions::default()
            },
            &burn::tensor::Device::flex(),
        )
        .unwrap()
    };
    let f = fixture("five-neurons.json");
    let cands = strings(&f["preds"]);
    let refs: Vec<Vec<String>> = f["refs"].as_array().unwrap().iter().map(strings).collect();
    let one = load(256).score(&cands, &refs, true).unwrap();
    let many = load(2).score(&cands, &refs, true).unwrap();
    let expected = &f["bertscore_minilm_L6_idf"];
    close(&many.f, &floats(&expected["F"]), "batches of 2, F");
    for (a, b) in one.f.iter().zip(&many.f) {
        assert!((a - b).abs() < 1e-6, "one batch {a} vs batches of 2 {b}");
    }
}

#[test]
fn the_reference_protocol_scores_systems_against_all_references_and_annotators_apart() {
    use milan_trainer::evaluation::scoring::{BertScoreChoice, Protocol, Scorer};
    let scorer = Scorer::load(
        &BertScoreChoice::Custom {
            dir: minilm(),
            layers: None,
        },
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    assert!(!scorer.paper && scorer.setting.contains("NOT the paper's"));
    let f = fixture("five-neurons.json");
    let cands = strings(&f["preds"]);
    let refs: Vec<Vec<String>> = f["refs"].as_array().unwrap().iter().map(strings).collect();
    let mut hyps = std::collections::BTreeMap::new();
    hyps.insert("milan-pmi".to_owned(), cands.clone());
    let scores = milan_trainer::evaluation::scoring::score(&hyps, &refs, &scorer).unwrap();
    let system = &scores["milan-pmi"];
    assert_eq!(system.protocol, Protocol::AllReferences);
    // BLEU: sacrebleu with the three references as streams.
    assert!(
        (system.bleu - f["sacrebleu"]["score"].as_f64().unwrap()).abs() < 1e-9,
        "{}",
        system.bleu
    );
    // BERTScore: bert_score with idf on all references and the best F over them, rescaled.
    let (b, unscaled): (f64, Vec<f64>) = (
        scorer.baseline.2,
        system
            .per_neuron
            .iter()
            .map(|x| x * (1.0 - scorer.baseline.2) + scorer.baseline.2)
            .collect(),
    );
    assert!(b > 0.0);
    close(
        &unscaled,
        &floats(&f["bertscore_minilm_L6_idf"]["F"]),
        "protocol F",
    );
    // ROUGE: each prediction with each reference.
    let pairs = milan_metrics::rouge::milan(&cands, &refs).unwrap();
    assert_eq!(system.rouge, Some(pairs));
    // Per unit, the mean over its three pairs: their mean is the pooled average.
    let units: Vec<f64> = system
        .per_neuron_rouge_l
        .iter()
        .map(|x| x.unwrap())
        .collect();
    assert!((units.iter().sum::<f64>() / 5.0 - pairs.rouge_l.f).abs() < 1e-12);
    // The annotators: each description against the other two, idf still from all three,
    // the rounds averaged.
    let annotators = &scores["annotators"];
    assert_eq!(annotators.protocol, Protocol::LeaveOneAnnotatorOut);
    let flat: Vec<&str> = refs.iter().flatten().map(String::as_str).collect();
    let mut per_unit = vec![0.0; refs.len()];
    let mut bleu = 0.0;
    for held in 0..3 {
        let h: Vec<String> = refs.iter().map(|r| r[held].clone()).collect();
        let others: Vec<Vec<String>> = refs
            .iter()
            .map(|r| {
                (0..3)
                    .filter(|&j| j != held)
                    .map(|j| r[j].clone())
                    .collect()
            })
            .collect();
        let mut s = scorer.bert.score_with_idf(&h, &others, &flat).unwrap();
        s.rescale(scorer.baseline);
        for (acc, x) in per_unit.iter_mut().zip(&s.f) {
            *acc += x / 3.0;
        }
        bleu += milan_metrics::bleu::corpus_bleu(&h, &others, &Default::default()).score / 3.0;
    }
    close(&annotators.per_neuron, &per_unit, "annotators");
    assert!((annotators.bleu - bleu).abs() < 1e-9);
    assert_eq!(scores.len(), 2, "the system and the annotators");
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

/// A tiny RoBERTa with a byte-level BPE tokenizer, and what bert_score 0.3.13 computes with it
/// (scripts/fixtures/make_tiny_roberta_bertscore.py): the path `--bertscore paper` runs with
/// roberta-large, held to bert_score as MILAN's reference calls it.
#[test]
fn a_tiny_roberta_scores_as_bert_score_does_as_the_reference_calls_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta");
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cands: Vec<String> = f["cands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let refs: Vec<Vec<String>> = f["refs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            g.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    let device = burn::tensor::Device::flex();
    let protocol = BertScorer::load(
        &dir,
        &ScorerOptions {
            num_layers: Some(2),
            pair_batch_size: 16,
            ..ScorerOptions::default()
        },
        &device,
    )
    .unwrap();
    // The fast tokenizer's ids, special tokens included (no prefix space, as bert_score's fast
    // path encodes).
    for (i, expected) in f["tokens"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = expected
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(protocol.encode(&cands[i]).unwrap(), want, "{:?}", cands[i]);
    }
    let mut s = protocol.score(&cands, &refs, true).unwrap();
    s.rescale(
        milan_trainer::evaluation::bertscore::score::read_baseline(
            &dir.join("bertscore-baseline.csv"),
            2,
        )
        .unwrap(),
    );
    let expected = &f["idf_layer2_rescaled"];
    close(&s.p, &floats(&expected["P"]), "idf, layer 2, rescaled: P");
    close(&s.r, &floats(&expected["R"]), "idf, layer 2, rescaled: R");
    close(&s.f, &floats(&expected["F"]), "idf, layer 2, rescaled: F");
    let plain = BertScorer::load(&dir, &ScorerOptions::default(), &device).unwrap();
    assert_eq!(plain.num_layers(), 3);
    let s = plain.score(&cands, &refs, false).unwrap();
    let expected = &f["noidf_layer3"];
    close(&s.f, &floats(&expected["F"]), "no idf, every layer: F");
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

/// A word-level tokenizer with RoBERTa's special tokens, for the tiny RoBERTa.
fn tiny_tokenizer(dir: &Path) {
    let words = [
        "<s>", "<pad>", "</s>", "<unk>", "red", "blue", "dogs", "cars", "and", "the", "sky",
    ];
    let vocab: serde_json::Map<String, Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| ((*w).to_owned(), serde_json::json!(i)))
        .collect();
    let added: Vec<Value> = words[..4]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({"id": i, "content": w, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0],
            "trim_offsets": true, "add_prefix_space": false},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Git's blob id: the SHA-1 of `blob <size>\0` and the bytes.
fn git_blob(bytes: &[u8]) -> String {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

#[test]
fn roberta_large_is_fetched_from_a_hub_checked_and_resumed() {
    let hub = milan_trainer::evaluation::bertscore::paper::ROBERTA_LARGE_HUB;
    let model = tempfile::tempdir().unwrap();
    tiny_roberta(model.path(), None, None);
    tiny_tokenizer(model.path());
    let read = |name: &str| std::fs::read(model.path().join(name)).unwrap();
    let (config, tokenizer, weights) = (
        read("config.json"),
        read("tokenizer.json"),
        read("model.safetensors"),
    );
    let listing = |weights_sha: &str| {
        serde_json::json!({
            "id": hub.repo, "sha": hub.revision,
            "siblings": [
                {"rfilename": "config.json", "blobId": git_blob(&config), "size": config.len()},
                {"rfilename": "tokenizer.json", "blobId": git_blob(&tokenizer),
                    "size": tokenizer.len()},
                {"rfilename": "model.safetensors", "blobId": "0".repeat(40),
                    "size": weights.len(),
                    "lfs": {"sha256": weights_sha, "size": weights.len(), "pointerSize": 134}},
                {"rfilename": "pytorch_model.bin", "blobId": "1".repeat(40), "size": 9}
            ]
        })
        .to_string()
        .into_bytes()
    };
    let files = |listing: Vec<u8>| {
        let mut f = std::collections::HashMap::new();
        f.insert(
            format!(
                "/api/models/{}/revision/{}?blobs=true",
                hub.repo, hub.revision
            ),
            listing,
        );
        for (name, bytes) in [
            ("config.json", &config),
            ("tokenizer.json", &tokenizer),
            ("model.safetensors", &weights),
        ] {
            f.insert(
                format!("/{}/resolve/{}/{name}", hub.repo, hub.revision),
                bytes.clone(),
            );
        }
        f
    };
    let assets = tempfile::tempdir().unwrap();
    let fetch = |base: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .env("MILAN_ASSETS", assets.path())
            .args(["assets", "fetch", "roberta-large", "--url-base", base])
            .output()
            .unwrap()
    };
    let target = assets.path().join("roberta-large");

    // A server whose weights do not match the hash it lists: refused, nothing kept.
    let (base, _) = common::site::serve(files(listing(&"ab".repeat(32))), None);
    let out = fetch(&base);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("model.safetensors") && err.contains("refused"),
        "{err}"
    );
    assert!(!target.exists(), "no half-made model");

    // The real hashes, and the connection dropped halfway through the weights: resumed with a
    // range request, every file checked, bert_score's baseline beside them (pip, from PyPI).
    let cut = format!("/{}/resolve/{}/model.safetensors", hub.repo, hub.revision);
    let (base, log) = common::site::serve(
        files(listing(&sha256_hex(&weights))),
        Some((cut.clone(), weights.len() / 2)),
    );
    let out = fetch(&base);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = log.lock().unwrap().clone();
    assert!(
        asked.iter().any(|(p, range)| *p == cut
            && range.as_deref() == Some(&format!("bytes={}-", weights.len() / 2)[..])),
        "{asked:?}"
    );
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            read(name),
            "{name}"
        );
    }
    let baseline = milan_trainer::evaluation::bertscore::score::read_baseline(
        &target.join("bertscore-baseline.csv"),
        17,
    )
    .unwrap();
    // bert_score 0.3.13's roberta-large row 17.
    assert!((baseline.2 - 0.83122575).abs() < 1e-9, "{baseline:?}");
    let record: Value =
        serde_json::from_slice(&std::fs::read(target.join(".complete")).unwrap()).unwrap();
    assert_eq!(record["revision"], hub.revision);
    assert_eq!(
        record["files"]["model.safetensors"],
        format!("sha256:{}", sha256_hex(&weights))
    );
    // What was fetched is a model the scorer loads and runs.
    let scorer = BertScorer::load(
        &target,
        &ScorerOptions::default(),
        &burn::tensor::Device::flex(),
    )
    .unwrap();
    let s = scorer
        .score(&["red dogs".into()], &[vec!["blue cars".into()]], true)
        .unwrap();
    assert!(s.f[0].is_finite());

    // Fetched once: a second run asks nothing.
    let before = log.lock().unwrap().len();
    let out = fetch(&base);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already in"));
    assert_eq!(log.lock().unwrap().len(), before);
}
