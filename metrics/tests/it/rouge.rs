//! Our ROUGE against the PyPI package rouge 1.0.1 itself, run on the same inputs: real crowd
//! phrases of AlexNet units (Zhou et al. 2015) as they are and normalised as MILAN normalises
//! them, every pair's scores and the averages MILAN reports, plus the package's odd corners
//! (dots, whitespace, repeats, empty sides). The package lives in the virtualenv
//! `scripts/install-python-metrics` makes (scripts/test runs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use milan_metrics::normalize;
use milan_metrics::rouge::{self, Prf, RougeScores};
use serde_json::{Value, json};

/// The virtualenv's Python, or a failure that says how to make it.
fn python() -> PathBuf {
    let venv = std::env::var_os("MILAN_PYTHON_METRICS").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/milan-rs/python-metrics")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        venv.join(".complete").is_file() && python.is_file(),
        "rouge 1.0.1 is not installed at {}: run scripts/install-python-metrics from the \
         repository root (scripts/test does)",
        venv.display()
    );
    python
}

/// Runs the package on `pairs` (each alone, then averaged with ignore_empty) and on MILAN's
/// pairing of `hyps` with `refs`, as `src/utils/metrics.py` calls it.
const SCRIPT: &str = r#"
import json, sys
from rouge import Rouge
task = json.load(sys.stdin)
scorer = Rouge()
each = []
for h, r in task["pairs"]:
    try:
        each.append(scorer.get_scores(h, r)[0])
    except Exception as e:
        each.append({"error": type(e).__name__})
valid = [(h, r) for (h, r), e in zip(task["pairs"], each) if "error" not in e]
average = scorer.get_scores([h for h, _ in valid], [r for _, r in valid], avg=True, ignore_empty=True)
hyps, refs = [], []
for prediction, annotations in zip(task["hyps"], task["refs"]):
    for annotation in annotations:
        if not annotation:
            continue
        hyps.append(prediction)
        refs.append(annotation)
milan = scorer.get_scores(hyps, refs, avg=True, ignore_empty=True)
print(json.dumps({"each": each, "average": average, "milan": milan}))
"#;

fn phrases() -> BTreeMap<(String, String), Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../shared/tests/fixtures/zhou2015-alexnet-units/imagenet-alexnet_unit_annotations.csv",
    );
    let mut reader = csv::Reader::from_path(&path).expect("the crowd phrases");
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.expect("a row");
        out.entry((row[0].to_owned(), row[1].to_owned()))
            .or_default()
            .push(row[2].to_owned());
    }
    out
}

fn prf(v: &Value) -> Prf {
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    Prf {
        r: f("r"),
        p: f("p"),
        f: f("f"),
    }
}

fn scores(v: &Value) -> RougeScores {
    RougeScores {
        rouge_1: prf(&v["rouge-1"]),
        rouge_2: prf(&v["rouge-2"]),
        rouge_l: prf(&v["rouge-l"]),
    }
}

/// The largest difference between two score sets.
fn worst(a: &RougeScores, b: &RougeScores) -> f64 {
    [
        (a.rouge_1, b.rouge_1),
        (a.rouge_2, b.rouge_2),
        (a.rouge_l, b.rouge_l),
    ]
    .iter()
    .flat_map(|(x, y)| [(x.r - y.r).abs(), (x.p - y.p).abs(), (x.f - y.f).abs()])
    .fold(0.0, f64::max)
}

#[test]
fn rouge_matches_the_rouge_package_on_real_crowd_phrases() {
    let python = python();
    let units: Vec<Vec<String>> = phrases().into_values().filter(|p| p.len() >= 2).collect();
    assert!(units.len() > 1000, "{} units", units.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        // One worker's phrase against another's, as written and as MILAN normalises them, and
        // against a phrase of an unrelated unit.
        pairs.push((unit[0].clone(), unit[1].clone()));
        pairs.push((normalize(&unit[1]), normalize(&unit[0])));
        let other = &units[(i * 7 + 3) % units.len()];
        pairs.push((unit[0].clone(), other[other.len() - 1].clone()));
    }
    for (h, r) in [
        ("the red red ball. the red", "a red ball"),
        ("a . . b", "a b"),
        ("x..y", "x y"),
        ("  spaced   out  ", "spaced out"),
        ("tab\tand\u{a0}nbsp\u{1c}sep", "tab and nbsp sep"),
        ("dog dog dog dog", "dog dog"),
        ("b a", "a b"),
        ("a b c d e", "e d c b a"),
        (". lead", "lead"),
        ("...", "anything"),
        ("anything", "..."),
        ("", "empty hypothesis"),
        ("empty reference", ""),
        ("Ünïcödé Wörds", "ünïcödé wörds"),
    ] {
        pairs.push((h.to_owned(), r.to_owned()));
    }
    let hyps: Vec<String> = units.iter().map(|u| normalize(&u[0])).collect();
    let refs: Vec<Vec<String>> = units
        .iter()
        .map(|u| u[1..].iter().map(|s| normalize(s)).collect())
        .collect();
    let task = json!({"pairs": pairs, "hyps": hyps, "refs": refs});

    let mut child = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    serde_json::to_writer(child.stdin.take().expect("stdin"), &task).expect("write the task");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "the rouge package failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("JSON from python");

    let mut largest: f64 = 0.0;
    let mut errors = 0;
    for (i, (h, r)) in pairs.iter().enumerate() {
        let expected = &theirs["each"][i];
        match rouge::pair(h, r) {
            Ok(ours) => {
                assert!(
                    expected.get("error").is_none(),
                    "pair {i} ({h:?}, {r:?}): the package raised {expected}, we scored"
                );
                let d = worst(&ours, &scores(expected));
                assert!(d <= 1e-6, "pair {i} ({h:?}, {r:?}): |d| = {d}");
                largest = largest.max(d);
            }
            Err(e) => {
                assert!(
                    expected.get("error").is_some(),
                    "pair {i} ({h:?}, {r:?}): we refused ({e}), the package scored {expected}"
                );
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 4, "'...' both ways and the two empty sides");
    // The average over every pair the package scored alone.
    let valid: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(h, r)| rouge::pair(h, r).is_ok())
        .collect();
    let average = rouge::average(
        &valid.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        &valid.iter().map(|p| p.1.as_str()).collect::<Vec<_>>(),
        true,
    )
    .expect("an average");
    let d = worst(&average, &scores(&theirs["average"]));
    assert!(d <= 1e-6, "the average: |d| = {d}");
    largest = largest.max(d);
    let milan = rouge::milan(&hyps, &refs).expect("MILAN's ROUGE");
    let d = worst(&milan, &scores(&theirs["milan"]));
    assert!(d <= 1e-6, "MILAN's pairing: |d| = {d}");
    largest = largest.max(d);
    println!(
        "{} pairs and MILAN's average over {} units: largest difference {largest:.1e}",
        pairs.len(),
        units.len()
    );
}
