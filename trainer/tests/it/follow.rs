//! `trainer follow` against a real `annotator serve` process: simulated workers write the
//! synthetic corpus' descriptions over HTTP, the requester approves some, rejects one, and the
//! follower trains round after round. On the way the annotator goes away and comes back, and the
//! follower is killed in the middle of a round and restarted.
//!
//! Needs the `annotator` binary beside `trainer` (any `cargo test --workspace` or `cargo build`
//! builds it) and the EfficientNet-Lite0 and MiniLM assets (scripts/test fetches them).

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use milan_client::{Api, Serve, ServerProcess};
use milan_shared::milannotations::Dataset;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.env("MILAN_ASSETS", root().join("assets"));
    c
}

fn annotator() -> Command {
    let exe = Path::new(env!("CARGO_BIN_EXE_trainer")).with_file_name("annotator");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build -p milan-annotator` first (scripts/test builds it)",
        exe.display()
    );
    Command::new(exe)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `annotator serve` on a fixed port, so that a restarted server is where the follower left it.
fn start_server(data: &Path, port: u16) -> ServerProcess {
    Serve::new(annotator().get_program().as_ref(), data)
        .bind(&format!("127.0.0.1:{port}"))
        .args(Serve::NO_RATE_LIMITS)
        .quiet()
        .start()
        .expect("annotator serve starts")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A call that must reach the annotator: its status and JSON answer.
fn post(http: &Api, path: &str, token: &str, body: Value) -> (u16, Value) {
    http.post(path, token, Some(&body), None)
        .expect("the annotator answers")
}

/// A simulated worker describes every set it is offered with what synthetic annotator `index`
/// wrote for that unit; returns (assignment id, layer, unit) of each submission.
fn describe_all(
    http: &Api,
    requester: &str,
    worker: &str,
    index: usize,
    truth: &HashMap<(String, u32), [String; 3]>,
) -> Vec<(String, String, u32)> {
    // A session minted with the requester's token, as an integration signs its crowd in.
    let token = http.sign_in(requester, worker).expect("a worker session");
    let mut done = Vec::new();
    loop {
        let (status, accepted) = post(http, "/api/v1/projects/p/assignments", &token, json!({}));
        if status == 204 {
            return done;
        }
        assert_eq!(status, 201, "accept: {accepted}");
        let id = accepted["assignment_id"].as_str().expect("id").to_owned();
        let layer = accepted["set"]["layer"].as_str().expect("layer").to_owned();
        let unit = accepted["set"]["unit"].as_u64().expect("unit") as u32;
        let text = &truth[&(layer.clone(), unit)][index % 3];
        // The task server asks for two words at least, as it asks people.
        let submit = |t: &str| {
            post(
                http,
                &format!("/api/v1/assignments/{id}/submit"),
                &token,
                json!({ "description": t }),
            )
        };
        let (mut status, mut body) = submit(text);
        if status == 422 {
            (status, body) = submit(&format!("{text} regions"));
        }
        assert_eq!(status, 200, "submit {text:?}: {body}");
        done.push((id, layer, unit));
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("json")
}

fn follower(base: &str, token: &str, out: &Path, config: &Path, cache: &Path) -> Command {
    follower_every(base, token, out, config, cache, "8")
}

fn follower_every(
    base: &str,
    token: &str,
    out: &Path,
    config: &Path,
    cache: &Path,
    every: &str,
) -> Command {
    let token_file = out.with_extension("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let mut c = trainer();
    c.args([
        "follow",
        "--annotator",
        base,
        "--project",
        "p",
        "--token-file",
    ])
    .arg(&token_file)
    .args([
        "--every",
        every,
        "--until-idle",
        "--give-up-after",
        "120",
        "--poll",
        "0.2",
    ])
    .arg("--out")
    .arg(out)
    .arg("--config")
    .arg(config)
    .arg("--cache")
    .arg(cache);
    c
}

#[test]
fn follows_rounds_through_rejections_outages_and_a_kill() {
    common::assets_present();
    let tmp = tempfile::tempdir().expect("tempdir");
    let corpus = tmp.path().join("synth");
    run(trainer().args(["synth", "--out"]).arg(&corpus).args([
        "--units-per-layer",
        "4",
        "--keys",
        "alexnet/imagenet",
    ]));
    let truth: HashMap<(String, u32), [String; 3]> =
        Dataset::open(&corpus.join("alexnet").join("imagenet"))
            .expect("the synthetic corpus")
            .annotated()
            .iter()
            .map(|u| ((u.layer.clone(), u.unit), u.descriptions.clone()))
            .collect();
    assert_eq!(truth.len(), 20);

    let data = tmp.path().join("annotator");
    run(annotator()
        .args(["import", "--project", "p", "--data-dir"])
        .arg(&data)
        .arg(&corpus));
    let requester = String::from_utf8(
        run(annotator()
            .args(["requester-token", "--data-dir"])
            .arg(&data))
        .stdout,
    )
    .expect("utf-8")
    .trim()
    .to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(&data, port);
    let http = Api::new(&base);

    // Three workers describe all 20 sets; one description is rejected and a fourth worker fills
    // its slot. The requester approves the sets of conv1..conv3 (12 neurons) only.
    let mut submitted = Vec::new();
    for (i, w) in ["ann", "bea", "cem"].iter().enumerate() {
        submitted.extend(describe_all(&http, &requester, w, i, &truth));
    }
    assert_eq!(submitted.len(), 60);
    let (rejected, rejected_layer, rejected_unit) = submitted
        .iter()
        .find(|(_, layer, _)| layer == "conv5")
        .cloned()
        .expect("a conv5 submission");
    let (status, body) = post(
        &http,
        &format!("/api/v1/assignments/{rejected}/reject"),
        &requester,
        json!({ "feedback": "say what the regions share" }),
    );
    assert_eq!(status, 200, "{body}");
    let filled = describe_all(&http, &requester, "dov", 0, &truth);
    assert_eq!(
        filled
            .iter()
            .map(|(_, l, u)| (l.as_str(), *u))
            .collect::<Vec<_>>(),
        [(rejected_layer.as_str(), rejected_unit)]
    );
    submitted.extend(filled);
    let approve = |ids: &mut dyn Iterator<Item = &(String, String, u32)>| {
        for (id, _, _) in ids {
            let (status, body) = post(
                &http,
                &format!("/api/v1/assignments/{id}/approve"),
                &requester,
                json!({}),
            );
            assert_eq!(status, 200, "{body}");
        }
    };
    let early = |layer: &str| ["conv1", "conv2", "conv3"].contains(&layer);
    let config = tmp.path().join("small.json");
    std::fs::write(
        &config,
        r#"{"hidden": 32, "lm_hidden": 32, "embedding": 16, "lm_embedding": 16,
            "max_epochs": 60, "patience": 100, "lm_max_epochs": 3,
            "decode": {"beam": 4, "lambda": 0.2, "neurons_per_batch": 8}}"#,
    )
    .expect("config");
    let out = tmp.path().join("run");
    let cache = tmp.path().join("cache");

    // One complete neuron cannot be split into train, validation and test: no round starts (a
    // round that could not be scored would fail again after every restart).
    let first_set = |(_, l, u): &&(String, String, u32)| l == "conv1" && *u == 0;
    approve(&mut submitted.iter().filter(|s| first_set(s) && s.0 != rejected));
    let waiting = run(&mut follower_every(
        &base,
        &requester,
        &tmp.path().join("early"),
        &config,
        &cache,
        "1",
    ));
    let log = String::from_utf8_lossy(&waiting.stderr);
    assert!(log.contains("1 annotated neurons give"), "{log}");
    assert!(!tmp.path().join("early/history.json").exists());

    approve(
        &mut submitted
            .iter()
            .filter(|s| early(&s.1) && !first_set(s) && s.0 != rejected),
    );

    // Round 1: 12 annotated neurons; then nothing is due and the follower stops.
    let first = run(&mut follower(&base, &requester, &out, &config, &cache));
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(log.contains("round 1: 12 annotated neurons"), "{log}");
    let history = read_json(&out.join("history.json"));
    assert_eq!(history.as_array().expect("rounds").len(), 1);
    assert_eq!(history[0]["annotated_neurons"], 12);
    for system in [
        "milan-pmi",
        "captioner-greedy",
        "nearest-neighbour",
        "annotators",
    ] {
        let bleu = history[0]["results"][system]["bleu"]
            .as_f64()
            .expect("bleu");
        assert!((0.0..=100.0).contains(&bleu), "{system}: {bleu}");
    }
    assert!(
        milan_trainer::util::plot::font_available(),
        "the plots need a TrueType font: apt-get install fonts-dejavu-core (scripts/test does)"
    );
    assert!(out.join("history.png").is_file());
    assert!(out.join("rounds/round-001/predictions.csv").is_file());
    // The 8 sets not yet complete got the captioner's descriptions and priorities.
    assert_eq!(history[0]["posted"], 8);
    let state = read_json(&out.join("follow.json"));
    assert!(state["cursor"].as_i64().expect("cursor") > 0);
    let seen = state["descriptions"].as_object().expect("descriptions");
    assert_eq!(
        seen.len(),
        61,
        "every submission, the rejected one as a tombstone"
    );
    assert_eq!(seen[&rejected]["status"], "rejected");
    let approved = seen.values().filter(|e| e["status"] == "approved").count();
    assert_eq!(approved, 36);

    // The rest is approved while the annotator is away: the follower waits for it.
    approve(
        &mut submitted
            .iter()
            .filter(|(id, l, _)| !early(l) && *id != rejected),
    );
    server.kill_9();
    let mut second = follower(&base, &requester, &out, &config, &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow starts");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        second.try_wait().expect("status").is_none(),
        "the follower waits for the annotator"
    );
    let _server = start_server(&data, port);

    // Killed in the middle of round 2, as soon as its captioner has a checkpoint.
    let states = out.join("rounds/round-002/state");
    let started = Instant::now();
    loop {
        let has_checkpoint = std::fs::read_dir(&states).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("captioner-"))
        });
        if has_checkpoint {
            break;
        }
        assert!(
            second.try_wait().expect("status").is_none(),
            "round 2 ended before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "no round 2");
        std::thread::sleep(Duration::from_millis(20));
    }
    second.kill().expect("kill -9");
    second.wait().expect("reaped");
    assert_eq!(read_json(&out.join("follow.json"))["round"]["index"], 2);

    let third = run(follower(&base, &requester, &out, &config, &cache)
        .env("RUST_LOG", "milan_trainer=info,milan_model=info"));
    let log = String::from_utf8_lossy(&third.stderr);
    assert!(log.contains("resuming"), "the round resumes: {log}");
    let history = read_json(&out.join("history.json"));
    let rounds: Vec<(u64, u64)> = history
        .as_array()
        .expect("rounds")
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().expect("round"),
                r["annotated_neurons"].as_u64().expect("n"),
            )
        })
        .collect();
    assert_eq!(rounds, [(1, 12), (2, 20)]);
    assert_eq!(history[1]["posted"], 0, "nothing left to describe");
    // Round 1's descriptions of conv4 and conv5, now complete, are scored against the humans.
    let (status, agreement) = http
        .get("/api/v1/projects/p/model-agreement", &requester)
        .expect("the annotator answers");
    assert_eq!(status, 200, "{agreement}");
    let scored: Vec<(&str, u64)> = agreement
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["layer"].as_str().expect("layer"),
                r["sets"].as_u64().expect("sets"),
            )
        })
        .collect();
    assert_eq!(scored, [("conv4", 4), ("conv5", 4)]);
    let state = read_json(&out.join("follow.json"));
    assert!(state["round"].is_null());
    assert_eq!(state["rounds_done"], 2);
    let seen = state["descriptions"].as_object().expect("map");
    assert_eq!(
        seen.values().filter(|e| e["status"] == "approved").count(),
        60
    );

    // --num-layers reaches the scorer (issue 40). The run's curve was scored with all six of
    // MiniLM's layers: going on with two is refused, nothing written.
    assert!(
        history[1]["bertscore"]
            .as_str()
            .unwrap()
            .contains("layer 6,")
    );
    let mixed = follower(&base, &requester, &out, &config, &cache)
        .args(["--num-layers", "2"])
        .output()
        .expect("trainer runs");
    let said = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        !mixed.status.success() && said.contains("was scored with BERTScore"),
        "{said}"
    );
    assert_eq!(read_json(&out.join("history.json")), history);
    // A new run with two layers scores the same 20 neurons' held-out figures with them.
    let two = tmp.path().join("two-layers");
    run(follower(&base, &requester, &two, &config, &cache).args(["--num-layers", "2"]));
    let layered = read_json(&two.join("history.json"));
    let last = &layered[layered.as_array().expect("rounds").len() - 1];
    assert_eq!(last["annotated_neurons"], 20);
    assert_eq!(last["test_neurons"], history[1]["test_neurons"]);
    assert!(
        last["bertscore"].as_str().unwrap().contains("layer 2,"),
        "{last}"
    );
    assert_ne!(
        last["results"]["annotators"]["bertscore_f"],
        history[1]["results"]["annotators"]["bertscore_f"]
    );
}

/// `trainer simulate-active` end to end, tiny: both conditions run, are scored on the same
/// held-out neurons, and the results are written.
#[test]
fn the_active_ordering_simulation_runs_both_conditions() {
    common::assets_present();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("tiny.json");
    std::fs::write(
        &config,
        r#"{"hidden": 32, "lm_hidden": 32, "embedding": 16, "lm_embedding": 16, "max_epochs": 3,
            "lm_max_epochs": 2, "decode": {"beam": 4, "lambda": 0.2, "neurons_per_batch": 8}}"#,
    )
    .expect("config");
    let out = tmp.path().join("sim");
    let annotator_bin = Path::new(env!("CARGO_BIN_EXE_trainer")).with_file_name("annotator");
    let simulate = |seeds: &str| {
        run(trainer()
            .args(["simulate-active", "--keys", "alexnet/imagenet"])
            .args(["--units-per-layer", "8", "--batch", "4", "--rounds", "2"])
            .args(["--seed", seeds])
            .arg("--out")
            .arg(&out)
            .arg("--annotator-bin")
            .arg(&annotator_bin)
            .arg("--config")
            .arg(&config)
            .arg("--cache")
            .arg(tmp.path().join("cache")))
    };
    let output = simulate("0,1");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("| round | training neurons |") && table.contains(" of 2 |"),
        "the summary over both seeds: {table}"
    );
    let summary = read_json(&out.join("simulation.json"));
    assert_eq!(summary["seeds"], json!([0, 1]));
    // A seed already simulated with the same settings is reused, a new one simulated.
    let again = simulate("0,1,2");
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains("seed 0: reusing") && log.contains("seed 1: reusing"),
        "{log}"
    );
    assert!(!log.contains("seed 2: reusing"), "{log}");
    let summary = read_json(&out.join("simulation.json"));
    assert_eq!(summary["seeds"], json!([0, 1, 2]));
    assert_eq!(summary["rounds"].as_array().expect("rounds").len(), 2);
    assert!(out.join("simulation.png").is_file());
    let seed = |n: u32| read_json(&out.join(format!("seed-{n}")).join("simulation.json"));
    assert_ne!(
        seed(0)["random"][0]["results"]["annotators"],
        seed(1)["random"][0]["results"]["annotators"],
        "each seed its own corpus"
    );
    let results = seed(0);
    // --num-layers reaches the scorer (issue 40): the seed is simulated again, not reused, and
    // its held-out figures are scored with two of MiniLM's six layers.
    let all_layers = results["random"][0]["results"]["annotators"]["bertscore_f"].clone();
    assert!(
        results["random"][0]["bertscore"]
            .as_str()
            .unwrap()
            .contains("layer 6,"),
        "{}",
        results["random"][0]
    );
    let layered = run(trainer()
        .args(["simulate-active", "--keys", "alexnet/imagenet"])
        .args(["--units-per-layer", "8", "--batch", "4", "--rounds", "2"])
        .args(["--seed", "0", "--num-layers", "2"])
        .arg("--out")
        .arg(out.join("seed-0"))
        .arg("--annotator-bin")
        .arg(&annotator_bin)
        .arg("--config")
        .arg(&config)
        .arg("--cache")
        .arg(tmp.path().join("cache")));
    let log = String::from_utf8_lossy(&layered.stderr);
    assert!(
        !log.contains("reusing"),
        "another scorer, another outcome: {log}"
    );
    let two = read_json(&out.join("seed-0/simulation.json"));
    assert!(
        two["random"][0]["bertscore"]
            .as_str()
            .unwrap()
            .contains("layer 2,"),
        "{}",
        two["random"][0]
    );
    assert_eq!(
        two["random"][0]["test_neurons"],
        results["random"][0]["test_neurons"]
    );
    assert_ne!(
        two["random"][0]["results"]["annotators"]["bertscore_f"],
        all_layers
    );
    for condition in ["random", "active"] {
        let rounds = results[condition].as_array().expect("rounds");
        assert_eq!(rounds.len(), 2, "{condition}");
        assert_eq!(
            rounds[1]["annotated_neurons"].as_u64().expect("n")
                - rounds[0]["annotated_neurons"].as_u64().expect("n"),
            4,
            "{condition}: a batch of four sets between rounds"
        );
    }
    assert_eq!(
        results["random"][0]["test_neurons"], results["active"][0]["test_neurons"],
        "the same held-out neurons"
    );
    assert_eq!(
        results["random"][0]["results"]["annotators"],
        results["active"][0]["results"]["annotators"],
        "the same held-out neurons, so the same human agreement"
    );
}
