//! What an operator relies on: the probes, the metrics on the admin address only, and JSON logs
//! with a request id on every request line and no secret on any line.

use std::path::Path;
use std::process::Command;

use actix_web::http::StatusCode;
use actix_web::{App, test as at, web};
use milan_client::{Api, Serve};
use serde_json::{Value, json};

use crate::common;

fn annotator(args: &[&str], data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn probes_metrics_and_json_logs_without_a_secret_in_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let corpus = tmp.path().join("corpus");
    milan_synth::generate(
        &corpus,
        &milan_synth::SynthConfig {
            units_per_layer: 1,
            image_size: 16,
            seed: 0,
            keys: vec!["alexnet/imagenet".parse().unwrap()],
        },
        &|| {},
    )
    .unwrap();
    annotator(
        &["import", "--project", "p", corpus.to_str().unwrap()],
        &data,
    );
    let password = "correct horse battery staple 7";
    let password_file = tmp.path().join("pw");
    std::fs::write(&password_file, password).unwrap();
    annotator(
        &[
            "worker",
            "--id",
            "ann",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        &data,
    );
    let code = annotator(&["worker", "--id", "bob", "--code"], &data);
    let requester = annotator(&["requester-token"], &data);

    let admin = free_port();
    let log = tmp.path().join("serve.log");
    let server = Serve::new(Path::new(env!("CARGO_BIN_EXE_annotator")), &data)
        .args([
            "--log-format",
            "json",
            "--admin-bind",
            &format!("127.0.0.1:{admin}"),
        ])
        .env("RUST_LOG", "info")
        .log_to(&log)
        .start()
        .expect("start annotator serve");
    let api = Api::new(&server.base);

    // The probes, on the public address.
    assert_eq!(
        api.get("/healthz", "").unwrap(),
        (200, json!({"status": "alive"}))
    );
    let (status, ready) = api.get("/readyz", "").unwrap();
    assert_eq!(status, 200, "{ready}");
    for check in ["database", "writable", "migrations", "disk"] {
        assert_eq!(ready["checks"][check]["ok"], true, "{check}: {ready}");
    }

    // Work that carries every kind of secret: a password, a one-time code, the requester's
    // token, session tokens, and a forged bearer token.
    let mut secrets = vec![
        password.to_owned(),
        code.clone(),
        code.to_lowercase(),
        requester.clone(),
    ];
    let (status, by_password) = api
        .post(
            "/api/v1/workers/session",
            "",
            Some(&json!({"worker_id": "ann", "password": password})),
            None,
        )
        .unwrap();
    assert_eq!(status, 200, "{by_password}");
    let (status, by_code) = api
        .post(
            "/api/v1/workers/session",
            "",
            Some(&json!({"code": code})),
            None,
        )
        .unwrap();
    assert_eq!(status, 200, "{by_code}");
    let wrong = "not the password at all";
    secrets.push(wrong.to_owned());
    let (status, _) = api
        .post(
            "/api/v1/workers/session",
            "",
            Some(&json!({"worker_id": "ann", "password": wrong})),
            None,
        )
        .unwrap();
    assert_eq!(status, 401);
    let minted = api.sign_in(&requester, "carl").unwrap();
    for token in [&by_password["token"], &by_code["token"]] {
        secrets.push(token.as_str().unwrap().to_owned());
    }
    secrets.push(minted.clone());
    let (status, _) = api
        .post(
            "/api/v1/projects/p/assignments",
            &minted,
            None::<&Value>,
            None,
        )
        .unwrap();
    assert_eq!(status, 201);
    let forged = "ms_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    secrets.push(forged.to_owned());
    assert_eq!(
        api.post(
            "/api/v1/projects/p/assignments",
            forged,
            None::<&Value>,
            None
        )
        .unwrap()
        .0,
        401
    );
    assert_eq!(api.get("/api/v1/projects", &requester).unwrap().0, 200);

    // Metrics: on the admin address, never on the public one.
    let admin_api = Api::new(&format!("http://127.0.0.1:{admin}"));
    let (status, text) = admin_api.get("/metrics", "").unwrap();
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    for expected in [
        "annotator_http_requests_total{route=\"/api/v1/projects/{project}/assignments\",method=\"POST\",status=\"201\"} 1",
        "annotator_http_request_duration_seconds_bucket",
        "annotator_group_commit_batch_size_count",
        "annotator_group_commit_commit_seconds_sum",
        "annotator_wal_sync_seconds_sum",
        "annotator_assignments{state=\"accepted\"} 1",
        "annotator_live_leases 1",
        "annotator_signin_failures_total{kind=\"api\"} 1",
        "annotator_database_bytes",
        "annotator_last_write_age_seconds",
        "annotator_backup_age_seconds -1",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains("ms_"), "no token in a label");
    assert_eq!(api.get("/metrics", "").unwrap().0, 404);
    assert_eq!(admin_api.get("/healthz", "").unwrap().0, 200);
    drop(server);

    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "annotator::request")
        .collect();
    assert!(requests.len() >= 8, "a line per request: {log}");
    for line in &requests {
        let id = line["span"]["request_id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 32, "a request id on {line}");
        assert!(line["fields"]["route"].is_string() && line["fields"]["status"].is_number());
    }
    let ids: std::collections::BTreeSet<_> = requests
        .iter()
        .map(|l| l["span"]["request_id"].to_string())
        .collect();
    assert_eq!(ids.len(), requests.len(), "one id per request");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log: {secret}"
        );
    }
}

#[actix_web::test]
async fn readiness_fails_with_the_check_that_failed() {
    let db = common::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let engine = milan_annotator::engine::Engine::new(db.db.clone());
    let auth = milan_annotator::auth::Auth::load(&db.db).unwrap();
    let images = milan_annotator::images::ImageStore::new(dir.path());
    let mut state =
        milan_annotator::http::state::AppState::new(engine, auth, images, dir.path().into());
    for (min_free, expected) in [
        (0, StatusCode::OK),
        (u64::MAX, StatusCode::SERVICE_UNAVAILABLE),
    ] {
        state.min_free_bytes = min_free;
        let app = at::init_service(
            App::new()
                .app_data(web::Data::new(state.clone()))
                .configure(milan_annotator::http::ops::configure_probes),
        )
        .await;
        let res = at::call_service(&app, at::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(res.status(), expected);
        let body: Value = at::read_body_json(res).await;
        assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
        assert_eq!(body["checks"]["disk"]["ok"], min_free == 0, "{body}");
        if min_free > 0 {
            assert!(
                body["checks"]["disk"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("--min-free-disk-mb")
            );
        }
    }
}

/// `--tls-cert/--tls-key`: the server speaks HTTPS itself, with a certificate a client checks
/// (a self-signed one here, trusted by the test's curl), and not plain HTTP on that port.
#[test]
fn the_server_serves_https_with_its_own_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
    let server = Serve::new(
        Path::new(env!("CARGO_BIN_EXE_annotator")),
        &tmp.path().join("data"),
    )
    .args([
        "--tls-cert",
        cert_pem.to_str().unwrap(),
        "--tls-key",
        key_pem.to_str().unwrap(),
    ])
    .start()
    .expect("start annotator serve with TLS");
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let port = server.base.rsplit(':').next().unwrap();
    let curl = |args: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .expect("curl (scripts/test installs it)")
    };
    let ok = curl(&[
        "--cacert",
        cert_pem.to_str().unwrap(),
        &format!("https://localhost:{port}/healthz"),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&ok.stdout).unwrap(),
        json!({"status": "alive"})
    );
    // Without trusting the certificate, a client refuses it; plain HTTP gets no page.
    assert!(
        !curl(&[&format!("https://localhost:{port}/healthz")])
            .status
            .success()
    );
    let plain = curl(&[&format!("http://localhost:{port}/healthz")]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("alive"));
    // A key that does not go with the certificate is refused at start, by name.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&key_pem, other.key_pair.serialize_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(["serve", "--no-demo", "--bind", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert_pem)
        .arg("--tls-key")
        .arg(&key_pem)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not go together"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped systemd unit is one systemd accepts, and its command line starts a server that
/// answers on both addresses (its paths and ports moved into a temporary folder).
#[test]
fn the_shipped_systemd_unit_verifies_and_its_command_runs() {
    use std::io::BufRead;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let unit = std::fs::read_to_string(root.join("deploy/annotator.service")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_annotator");
    let local = unit.replace("/usr/local/bin/annotator", bin);
    let unit_file = tmp.path().join("annotator.service");
    std::fs::write(&unit_file, &local).unwrap();
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_file)
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(
        verified.status.success() && !said.contains("Unknown"),
        "systemd-analyze verify: {said}"
    );

    // ExecStart, its continuation lines joined, with the host's paths and ports swapped out.
    let exec: String = local
        .split("ExecStart=")
        .nth(1)
        .unwrap()
        .lines()
        .scan(true, |more, line| {
            let take = *more;
            *more = line.trim_end().ends_with('\\');
            take.then(|| line.trim_end().trim_end_matches('\\').to_owned())
        })
        .collect::<Vec<_>>()
        .join(" ");
    let admin = free_port();
    let exec = exec
        .replace("/var/lib/annotator", tmp.path().to_str().unwrap())
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{admin}"));
    let words: Vec<&str> = exec.split_whitespace().collect();
    let mut child = Command::new(words[0])
        .args(&words[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("annotator listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let healthy = Api::new(&base).get("/healthz", "").unwrap().0;
    let ready = Api::new(&format!("http://127.0.0.1:{admin}"))
        .get("/readyz", "")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(healthy, 200);
    assert_eq!(ready.0, 200, "{}", ready.1);
}
