//! The worker and requester pages in a real browser: Debian's headless Chromium driven by
//! playwright-core (npm), from `e2e/browser.test.mjs`. This test prepares the data (projects,
//! accounts, a qualification test), starts `annotator serve`, and runs the script against it: on
//! SQLite, then on PostgreSQL.
//!
//! Needs `/usr/bin/chromium` and `e2e/node_modules` (scripts/test installs both: `apt-get install
//! chromium` and `npm ci --prefix e2e`). Screenshots go to `target/browser-screenshots/`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use milan_annotator::domain::{ProjectSettings, now_ms};
use milan_annotator::http::server::open_state;
use milan_annotator::http::state::AppState;
use milan_annotator::import::import;

const WORKER_PASSWORD: &str = "alice-password-1";
const REQUESTER_PASSWORD: &str = "requester-password-1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn corpus(dir: &Path, key: &str, units: usize, seed: u64) -> PathBuf {
    let out = dir.join(format!("corpus-{seed}"));
    let config = milan_synth::SynthConfig {
        units_per_layer: units,
        image_size: 64,
        seed,
        keys: vec![key.parse().unwrap()],
    };
    milan_synth::generate(&out, &config, &|| {}).unwrap();
    out
}

fn add_project(state: &AppState, settings: &ProjectSettings, corpus: &Path) {
    import(
        &state.engine,
        &state.images,
        settings,
        corpus,
        now_ms(),
        &|| {},
    )
    .unwrap();
}

/// The qualification test: two neurons of the "pool" project; the right answers are given to the
/// browser script, which first answers wrong, then right.
fn qualification(state: &AppState) -> (String, String) {
    let layers = milan_synth::layers_of(&"resnet152/imagenet".parse().unwrap(), 2);
    let layer = &layers[0].0;
    let toml = format!(
        r#"pass_mark = 2
retry_delay_s = 2

[[question]]
project = "pool"
model = "resnet152/imagenet"
layer = "{layer}"
unit = 0
choices = ["the sky above a city", "the right answer one", "letters of text"]
answer = "the right answer one"

[[question]]
project = "pool"
model = "resnet152/imagenet"
layer = "{layer}"
unit = 1
choices = ["the right answer two", "wheels", "faces of dogs"]
answer = "the right answer two"
"#
    );
    state
        .qualifications()
        .set_test("gated", &toml, now_ms())
        .unwrap();
    (toml, "the right answer one|the right answer two".to_owned())
}

/// The same browser script against a server on SQLite, then on PostgreSQL (one after the other:
/// two Chromiums at once on a small machine make timings flaky).
#[test]
fn the_pages_work_in_a_real_browser() {
    pages_in_a_browser(None, "");
    pages_in_a_browser(Some(common::postgres().url), "postgres");
}

fn pages_in_a_browser(database: Option<milan_annotator::db::DatabaseUrl>, shots_sub: &str) {
    let root = repo_root();
    let chromium = std::env::var("MILAN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "browser tests need Chromium at {chromium}: `apt-get install chromium` (scripts/test does it), \
         or set MILAN_CHROMIUM"
    );
    assert!(
        root.join("e2e/node_modules/playwright-core").exists(),
        "browser tests need playwright-core: run `npm ci --prefix e2e` (scripts/test does it)"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database_url = database.as_ref().map(|u| match u {
        milan_annotator::db::DatabaseUrl::Postgres(u) => u.clone(),
        milan_annotator::db::DatabaseUrl::Sqlite(p) => p.display().to_string(),
    });
    let state = open_state(&data, database_url.as_deref()).unwrap();
    let solo_corpus = corpus(dir.path(), "alexnet/imagenet", 1, 0);
    let demo_corpus = corpus(dir.path(), "alexnet/imagenet", 2, 7);
    let pool_corpus = corpus(dir.path(), "resnet152/imagenet", 2, 3);

    // solo: one description per set, so a rejected set can only go to someone else.
    let mut solo = ProjectSettings::new("solo", "Describe neurons (one per set)");
    solo.assignments_per_set = 1;
    solo.reward_cents = 10;
    add_project(&state, &solo, &solo_corpus);
    let mut demo = ProjectSettings::new("demo", "Describe neurons");
    demo.prolific_completion_code = Some("C0MPL3TE".into());
    demo.mturk = true;
    add_project(&state, &demo, &demo_corpus);
    add_project(
        &state,
        &ProjectSettings::new("pool", "Qualification pool"),
        &pool_corpus,
    );
    let mut gated = ProjectSettings::new("gated", "Describe neurons (qualified workers)");
    gated.qualification_required = true;
    add_project(&state, &gated, &demo_corpus);
    let (_, answers) = qualification(&state);
    // The trainer's description of every solo set has markup in it: the review page must show it
    // as text (workers' descriptions cannot carry markup any more).
    let items: Vec<milan_annotator::engine::ModelDescription> =
        milan_synth::layers_of(&"alexnet/imagenet".parse().unwrap(), 1)
            .into_iter()
            .map(|(layer, _)| milan_annotator::engine::ModelDescription {
                model: "alexnet/imagenet".into(),
                layer,
                unit: 0,
                description: Some("<script>alert('m')</script> stripes".into()),
                priority: None,
            })
            .collect();
    state
        .engine
        .post_model_descriptions("solo", 1, "milan-pmi", &items, now_ms())
        .unwrap();

    let accounts = state.accounts();
    accounts
        .set_worker_password("alice", WORKER_PASSWORD, now_ms())
        .unwrap();
    accounts
        .set_requester_password("boss", REQUESTER_PASSWORD, now_ms())
        .unwrap();
    let bob_code = accounts.issue_worker_code("bob", now_ms()).unwrap();
    let quinn_code = accounts.issue_worker_code("quinn", now_ms()).unwrap();
    drop(state);

    let url = milan_annotator::http::server::database_url(&data, database_url.as_deref());
    let server = common::start_server(&data, &url);

    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("browser-screenshots")
        .join(shots_sub);
    std::fs::create_dir_all(&shots).unwrap();
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(root.join("e2e/browser.test.mjs"))
        .env("BASE_URL", &server.base)
        .env("CHROMIUM", &chromium)
        .env("WORKER_PASSWORD", WORKER_PASSWORD)
        .env("REQUESTER_PASSWORD", REQUESTER_PASSWORD)
        .env("BOB_CODE", &bob_code)
        .env("QUINN_CODE", &quinn_code)
        .env("QUAL_ANSWERS", &answers)
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .expect("run node (install Node.js 20 or newer)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(output.status.success(), "browser tests failed:\n{text}");
    for name in [
        "task-laptop.png",
        "task-phone.png",
        "review.png",
        "dashboard.png",
        "mturk-start.png",
        "prolific-start.png",
        "catalog-live.png",
    ] {
        assert!(shots.join(name).exists(), "screenshot {name} missing");
    }
}
