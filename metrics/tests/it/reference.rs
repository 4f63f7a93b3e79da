//! Our BLEU against values sacrebleu 2.6.0 computed on the same inputs (fixtures from
//! ../shared/fixtures/metrics, made with the reference tools): identical to 1e-9.

use milan_metrics::bleu::{BleuConfig, corpus_bleu, signature};
use milan_metrics::normalize;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn check(
    hyps: &[String],
    refs: &[Vec<String>],
    score: f64,
    precisions: &[f64],
    bp: f64,
    line: &str,
) {
    let hyps: Vec<String> = hyps.iter().map(|h| normalize(h)).collect();
    let refs: Vec<Vec<String>> = refs
        .iter()
        .map(|r| r.iter().map(|s| normalize(s)).collect())
        .collect();
    let ours = corpus_bleu(&hyps, &refs, &BleuConfig::default());
    assert!(
        (ours.score - score).abs() < 1e-9,
        "score {} vs {score}",
        ours.score
    );
    for (a, b) in ours.precisions.iter().zip(precisions) {
        assert!(
            (a - b).abs() < 1e-9,
            "precisions {:?} vs {precisions:?}",
            ours.precisions
        );
    }
    assert!((ours.bp - bp).abs() < 1e-9, "bp {} vs {bp}", ours.bp);
    assert_eq!(ours.line(), line);
}

#[test]
fn five_neurons_match_sacrebleu() {
    let f = fixture("five-neurons.json");
    let refs: Vec<Vec<String>> = f["refs"].as_array().unwrap().iter().map(strings).collect();
    let s = &f["sacrebleu"];
    let precisions: Vec<f64> = s["precisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    check(
        &strings(&f["preds"]),
        &refs,
        s["score"].as_f64().unwrap(),
        &precisions,
        s["bp"].as_f64().unwrap(),
        s["signature"].as_str().unwrap(),
    );
    assert_eq!(
        signature(&BleuConfig::default(), 3),
        "nrefs:3|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
}

#[test]
fn real_crowd_phrases_match_sacrebleu() {
    let f = fixture("zhou-imagenet-alexnet.json");
    for case in f["cases"].as_array().unwrap() {
        let refs: Vec<Vec<String>> = case["refs"]
            .as_array()
            .unwrap()
            .iter()
            .map(strings)
            .collect();
        let precisions: Vec<f64> = case["bleu_precisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        check(
            &strings(&case["hyps"]),
            &refs,
            case["bleu"].as_f64().unwrap(),
            &precisions,
            case["bp"].as_f64().unwrap(),
            case["bleu_signature"].as_str().unwrap(),
        );
    }
}
