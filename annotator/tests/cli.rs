//! The `annotator` binary as a requester runs it.

use std::path::Path;
use std::process::{Command, Output};

fn annotator(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn prints_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in [
        "Usage: annotator",
        "serve",
        "import",
        "export",
        "migrate",
        "requester-token",
        "bench",
    ] {
        assert!(text.contains(word), "{word}: {text}");
    }
}

#[test]
fn migrate_import_export_and_tokens_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = tmp.path().join("corpus");
    let config = milan_synth::SynthConfig {
        units_per_layer: 1,
        image_size: 16,
        seed: 0,
        keys: vec!["resnet152/places365".parse().unwrap()],
    };
    milan_synth::generate(&corpus, &config, &|| {}).unwrap();
    assert!(stdout(&annotator(&["migrate"], &data)).contains("is up to date"));
    let corpus_arg = corpus.to_str().unwrap();
    let first = stdout(&annotator(
        &["import", "--project", "places", corpus_arg],
        &data,
    ));
    assert!(
        first.contains("project places (new): 5 sets added, 0 already present"),
        "{first}"
    );
    let again = stdout(&annotator(
        &["import", "--project", "places", corpus_arg],
        &data,
    ));
    assert!(again.contains("0 sets added, 5 already present"), "{again}");
    let bad = annotator(&["import", "--project", "places", "/nonexistent"], &data);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("/nonexistent") && err.contains("nothing was imported"),
        "{err}"
    );
    let token = stdout(&annotator(&["requester-token"], &data));
    assert!(
        token.trim().starts_with("req_") && token.trim().len() == 68,
        "{token}"
    );
    let csv = tmp.path().join("batch.csv");
    let out = stdout(&annotator(
        &[
            "export",
            "--project",
            "places",
            "--format",
            "mturk-csv",
            "--out",
            csv.to_str().unwrap(),
        ],
        &data,
    ));
    assert!(out.contains("wrote"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("HITId,HITTypeId,Title,Reward,AssignmentId,WorkerId"),
        "{text}"
    );
    let folder = tmp.path().join("milannotations");
    stdout(&annotator(
        &[
            "export",
            "--project",
            "places",
            "--format",
            "milannotations",
            "--out",
            folder.to_str().unwrap(),
        ],
        &data,
    ));
    let dataset =
        milan_shared::milannotations::Dataset::open(&folder.join("resnet152/places365")).unwrap();
    assert_eq!(dataset.layers().len(), 5);
    let bad_format = annotator(
        &[
            "export",
            "--project",
            "places",
            "--format",
            "xml",
            "--out",
            "x",
        ],
        &data,
    );
    assert!(String::from_utf8_lossy(&bad_format.stderr).contains("unknown export format"));
}

#[test]
fn bench_runs_and_prints_its_tables() {
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args([
            "bench",
            "--http-sets",
            "300",
            "--http-seconds",
            "1",
            "--large-sets",
            "20000",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("cycles/s") && text.contains("20000"),
        "{text}"
    );
    let rows = |first: &str| {
        text.lines()
            .filter(|l| l.split_whitespace().next() == Some(first))
            .count()
    };
    // Three HTTP cases (1, 16, 64 workers) and two database sizes.
    assert_eq!((rows("1"), rows("16"), rows("64")), (1, 1, 1), "{text}");
    assert_eq!((rows("10000"), rows("20000")), (1, 1), "{text}");
}
