//! kill -9 under load, restart: every submission that got a 200 is stored. And SIGTERM stops the
//! server gracefully, also once its stdout is a closed pipe. On SQLite and on PostgreSQL.

use crate::common;

use std::time::Duration;

use milan_annotator::loadgen::{CrowdConfig, run};

fn crash_on(db: common::TestDb) {
    let token = common::seed_project(&db.db, 2000, 30 * 60 * 1000);
    let data = tempfile::tempdir().unwrap();
    let mut server = common::start_crowd_server(data.path(), &db.url);
    let base = server.base.clone();
    let report = std::thread::scope(|scope| {
        let crowd = scope.spawn(|| {
            let mut config = CrowdConfig::new(32, "load", &token);
            config.p_replay = 0.05;
            config.max_duration = Duration::from_secs(60);
            run(&base, &config)
        });
        std::thread::sleep(Duration::from_secs(3));
        server.kill_9();
        crowd.join().unwrap()
    });
    println!(
        "{}: {} submissions acknowledged before kill -9, {} requests cut off",
        db.name,
        report.acknowledged.len(),
        report.transport_errors.len()
    );
    assert!(
        report.acknowledged.len() > 50,
        "the crowd was working when killed"
    );
    assert!(
        !report.transport_errors.is_empty(),
        "the kill interrupted requests"
    );
    assert!(report.surprises.is_empty(), "{:?}", report.surprises);
    // Restart on the same database: everything acknowledged is there, and work goes on.
    let restarted = common::start_crowd_server(data.path(), &db.url);
    common::check_stored(&db.db, &report.acknowledged, None);
    let api = milan_client::Api::new(&restarted.base);
    let token = api.sign_in(&token, "after-crash").unwrap();
    let (status, _) = api
        .post(
            "/api/v1/projects/load/assignments",
            &token,
            None::<&()>,
            None,
        )
        .unwrap();
    assert_eq!(status, 201, "{}", db.name);
}

#[test]
fn kill_9_loses_nothing_acknowledged_on_sqlite() {
    crash_on(common::sqlite());
}

#[test]
fn kill_9_loses_nothing_acknowledged_on_postgres() {
    crash_on(common::postgres());
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let db = common::sqlite();
    let data = tempfile::tempdir().unwrap();
    let mut server = common::start_server(data.path(), &db.url);
    server
        .terminate(Duration::from_secs(60))
        .expect("a successful exit on SIGTERM");
}

/// The server's supervisor may die and close the server's stdout: SIGTERM must still stop it.
#[test]
fn sigterm_stops_the_server_whose_stdout_is_gone() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(["serve", "--bind", "127.0.0.1:0", "--no-demo", "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("annotator listening on ")),
        "no listening line"
    );
    drop(lines);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("annotator serve ignored SIGTERM once its stdout was closed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "exit status {exit:?}");
}
