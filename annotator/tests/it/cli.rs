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

/// A data folder (not made yet) and a small synthetic corpus of one network (five sets) in `dir`.
fn data_and_corpus(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let corpus = dir.join("corpus");
    let config = milan_synth::SynthConfig {
        units_per_layer: 1,
        image_size: 16,
        seed: 0,
        keys: vec!["resnet152/places365".parse().unwrap()],
    };
    milan_synth::generate(&corpus, &config, &|| {}).unwrap();
    (dir.join("data"), corpus)
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
    let (data, corpus) = data_and_corpus(tmp.path());
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
    let export = |units: &[&str]| {
        let mut args = vec![
            "export",
            "--project",
            "places",
            "--format",
            "milannotations",
            "--out",
            folder.to_str().unwrap(),
        ];
        args.extend(units);
        annotator(&args, &data)
    };
    // Nothing is described yet: the default (described units) has nothing, and says what to do.
    let nothing = export(&[]);
    assert!(!nothing.status.success());
    let said = String::from_utf8_lossy(&nothing.stderr);
    assert!(
        said.contains("no unit of project places has an approved description"),
        "{said}"
    );
    assert!(said.contains("--units all"), "{said}");
    assert!(!folder.exists(), "nothing written");
    let out = stdout(&export(&["--units", "all"]));
    assert!(
        out.contains("exporting 5 of 5 units with their exemplars"),
        "{out}"
    );
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
    let units_of_csv = annotator(
        &[
            "export",
            "--project",
            "places",
            "--format",
            "jsonl",
            "--units",
            "all",
            "--out",
            "x",
        ],
        &data,
    );
    assert!(
        String::from_utf8_lossy(&units_of_csv.stderr)
            .contains("--units applies to --format milannotations only")
    );
}

#[test]
fn bench_runs_its_cases_checks_the_guarantees_and_says_how() {
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args([
            "bench",
            "--sets",
            "300",
            "--workers",
            "1,4",
            "--seconds",
            "1",
            "--large-sets",
            "2000",
            "--generator",
            "builtin,wrk",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("rate limits off (--no-rate-limits)"),
        "{text}"
    );
    assert!(
        text.contains("loops/s") && text.contains("sub p99"),
        "{text}"
    );
    assert!(text.contains("guarantees held in every case"), "{text}");
    // One row per case and generator: 1 process x (1, 4 workers) on 300 sets, by our crowd and
    // by wrk (scripts/test installs it), then 4 workers on 2000 sets by ours.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 13 && w[0] == "1")
        .collect();
    let cases: Vec<(&str, &str, &str)> = rows.iter().map(|w| (w[1], w[2], w[12])).collect();
    assert_eq!(
        cases,
        [
            ("1", "300", "builtin"),
            ("1", "300", "wrk"),
            ("4", "300", "builtin"),
            ("4", "300", "wrk"),
            ("4", "2000", "builtin")
        ],
        "{text}"
    );
    for row in &rows {
        let loops: f64 = row[3].parse().unwrap();
        assert!(loops > 0.0, "{text}");
    }
    assert!(text.contains("accept p99 at 2000 sets is"), "{text}");
    // Several processes on one SQLite file are refused, naming what to use instead.
    let refused = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(["bench", "--processes", "2", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("need PostgreSQL"),
        "{}",
        stderr(&refused)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Requester tokens are listed and revoked, sessions listed and ended, a new password ends a
/// worker's sessions, MTurk and Prolific work is reconciled from the platforms' files, and
/// out-of-range settings are errors, all from the command line.
#[test]
fn tokens_sessions_and_reconciliation_from_the_command_line() {
    use milan_annotator::domain::now_ms;
    use milan_annotator::engine::external::MturkEntry;
    use milan_annotator::sessions::{Entry, Via};
    let tmp = tempfile::tempdir().unwrap();
    let (data, corpus) = data_and_corpus(tmp.path());
    let corpus_arg = corpus.to_str().unwrap();
    let huge = annotator(
        &[
            "import",
            "--project",
            "x",
            "--lease-minutes",
            "9223372036854775807",
            corpus_arg,
        ],
        &data,
    );
    assert!(!huge.status.success());
    assert!(
        stderr(&huge).contains("--lease-minutes is out of range"),
        "{}",
        stderr(&huge)
    );
    let huge = annotator(
        &[
            "import",
            "--project",
            "x",
            "--reward-cents",
            "9223372036854775807",
            corpus_arg,
        ],
        &data,
    );
    assert!(stderr(&huge).contains("reward_cents"), "{}", stderr(&huge));
    stdout(&annotator(
        &[
            "import",
            "--project",
            "places",
            "--prolific-code",
            "DONE1",
            "--mturk",
            corpus_arg,
        ],
        &data,
    ));

    // Tokens: made with a label, listed, revoked once.
    let made = annotator(&["requester-token", "--label", "trainer follow"], &data);
    assert!(
        stderr(&made).contains("requester token 1"),
        "{}",
        stderr(&made)
    );
    let list = stdout(&annotator(&["requester-token", "--list"], &data));
    assert!(
        list.contains("trainer follow") && !list.contains("req_"),
        "{list}"
    );
    assert!(stdout(&annotator(&["requester-token", "--revoke", "1"], &data)).contains("revoked"));
    let again = annotator(&["requester-token", "--revoke", "1"], &data);
    assert!(!again.status.success() && stderr(&again).contains("no live requester token"));

    // Work from MTurk and Prolific, and a local worker's session.
    let state = milan_annotator::http::server::open_state(&data, None).unwrap();
    let a = state
        .engine
        .mturk_start(
            &MturkEntry {
                project: "places".into(),
                assignment_id: "A1".into(),
                hit_id: "H1".into(),
                worker_id: "W1".into(),
                submit_to: "https://workersandbox.mturk.com".into(),
            },
            now_ms(),
        )
        .unwrap();
    state
        .engine
        .submit(
            &a.assignment.public_id,
            "mturk:W1",
            "red circles here",
            None,
            now_ms(),
        )
        .unwrap();
    state
        .engine
        .prolific_start("places", "P1", "S1", "X1", now_ms())
        .unwrap();
    state
        .sessions
        .start_worker("ann", Via::Password, &Entry::Local, now_ms())
        .unwrap();
    drop(state);

    let sessions = stdout(&annotator(&["sessions", "--worker", "ann"], &data));
    assert!(
        sessions.contains("ann") && sessions.contains("password"),
        "{sessions}"
    );
    // A new password ends them.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "a brand new password\n").unwrap();
    stdout(&annotator(
        &[
            "worker",
            "--id",
            "ann",
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &data,
    ));
    let sessions = stdout(&annotator(&["sessions", "--worker", "ann"], &data));
    assert_eq!(sessions.lines().count(), 1, "only the header: {sessions}");
    let refused = annotator(&["worker", "--id", "mturk:W1", "--code"], &data);
    assert!(stderr(&refused).contains("mturk:"), "{}", stderr(&refused));

    // MTurk's batch results: A1 matches; A7 was paid on MTurk but never done here.
    let results = tmp.path().join("results.csv");
    std::fs::write(
        &results,
        "\"HITId\",\"AssignmentId\",\"WorkerId\",\"Answer.description\"\n\
         \"H1\",\"A1\",\"W1\",\"red circles here\"\n\
         \"H1\",\"A7\",\"W7\",\"words\"\n",
    )
    .unwrap();
    let out = stdout(&annotator(
        &[
            "mturk",
            "reconcile",
            "--project",
            "places",
            results.to_str().unwrap(),
        ],
        &data,
    ));
    assert!(
        out.starts_with("1 verified, 0 flagged, 1 on the platform but not here"),
        "{out}"
    );
    assert!(out.contains("not here A7"), "{out}");
    std::fs::write(&results, "AssignmentId,WorkerId\nA1\n").unwrap();
    let bad = annotator(
        &[
            "mturk",
            "reconcile",
            "--project",
            "places",
            results.to_str().unwrap(),
        ],
        &data,
    );
    assert!(!bad.status.success(), "a short row is an error");
    assert!(stderr(&bad).contains("results.csv"), "{}", stderr(&bad));
    // Prolific's export as a plain list of participants.
    let export = tmp.path().join("participants.txt");
    std::fs::write(&export, "P2\n").unwrap();
    let out = stdout(&annotator(
        &[
            "prolific",
            "reconcile",
            "--project",
            "places",
            "--study",
            "S1",
            export.to_str().unwrap(),
        ],
        &data,
    ));
    assert!(
        out.starts_with("0 verified, 1 flagged, 1 on the platform but not here"),
        "{out}"
    );
}

/// The requests `scripts/demo` prints (from `scripts/demo-requests`) work as printed, pasted line
/// by line into a shell, against a live server with a project named `demo`.
#[test]
fn the_demos_printed_requests_work_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, corpus) = data_and_corpus(tmp.path());
    stdout(&annotator(
        &["import", "--project", "demo", corpus.to_str().unwrap()],
        &data,
    ));
    let token = stdout(&annotator(&["requester-token"], &data));
    let server = milan_client::Serve::new(Path::new(env!("CARGO_BIN_EXE_annotator")), &data)
        .start()
        .expect("start annotator serve");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let printed = Command::new(root.join("scripts/demo-requests"))
        .args([token.trim(), server.base.as_str(), "demo"])
        .output()
        .unwrap();
    let lines = stdout(&printed);
    assert_eq!(lines.lines().count(), 5, "{lines}");
    // The base URL the demo prints for the address it was told to bind is where the server is.
    let bind = server.base.trim_start_matches("http://");
    let base = stdout(
        &Command::new(root.join("scripts/demo-url"))
            .args(["--bind", bind])
            .output()
            .unwrap(),
    );
    assert_eq!(base.trim(), server.base);
    let ran = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &lines])
        .output()
        .expect("bash and curl (scripts/test installs curl)");
    let out = stdout(&ran);
    for expected in ["\"assignment_id\"", "\"in_progress\":1", "\"openapi\""] {
        assert!(out.contains(expected), "{expected} in: {out}");
    }
}

/// `scripts/demo` prints links that follow the `annotator serve` arguments it is given.
#[test]
fn the_demos_links_follow_its_serve_arguments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases: [(&[&str], &str); 6] = [
        (&[], "http://127.0.0.1:8080"),
        (&["--bind", "0.0.0.0:9000"], "http://127.0.0.1:9000"),
        (
            &["--workers", "4", "--bind=10.0.0.5:8081"],
            "http://10.0.0.5:8081",
        ),
        (
            &[
                "--bind",
                "[::]:8443",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
            "https://[::1]:8443",
        ),
        (
            &[
                "--bind",
                "0.0.0.0:80",
                "--public-url",
                "https://milan.example.org/",
            ],
            "https://milan.example.org",
        ),
        (&["--bind", "127.0.0.1:0"], "http://127.0.0.1:PORT"),
    ];
    for (args, expected) in cases {
        let out = Command::new(root.join("scripts/demo-url"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(stdout(&out).trim(), expected, "{args:?}");
    }
}
