//! SQLite's group commit (annotator/src/db/group_commit.rs): requests sharing one commit are
//! isolated from each other's failures, and none is answered before its batch is durable.

use crate::common;

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use milan_annotator::db::queries::{self as q, NewSet};
use milan_annotator::db::{Database, DatabaseUrl};
use milan_annotator::domain::ProjectSettings;
use milan_annotator::engine::{Engine, EngineError};

const T0: i64 = 1_800_000_000_000;
const LEASE_MS: i64 = 60_000;

fn new_set(project_id: i64, unit: i32) -> NewSet<'static> {
    NewSet {
        project_id,
        model: "alexnet/imagenet",
        layer: "conv1",
        unit,
        exemplars: "[]",
        created_at: T0,
    }
}

/// Waits (a bounded time) until `n` requests queue behind the writer.
fn wait_for_queue(db: &Database, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.commit_stats().expect("SQLite").waiting < n {
        assert!(Instant::now() < deadline, "{n} requests never queued");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_batch_commits_its_good_requests_and_nothing_of_the_failed_ones() {
    let db = common::sqlite();
    let engine = Engine::new(db.db.clone());
    let mut settings = ProjectSettings::new("p", "Describe neurons");
    settings.lease_ms = LEASE_MS;
    let project = engine.create_project(&settings, T0).unwrap();
    db.db
        .write(|c| -> Result<(), EngineError> {
            for unit in 0..4 {
                q::insert_set(c, &new_set(project.id, unit), 3)?;
            }
            Ok(())
        })
        .unwrap();
    let live = engine.accept_next("p", "alice", T0).unwrap().unwrap();
    let expired = engine.accept_next("p", "bob", T0).unwrap().unwrap();
    let before = db.db.commit_stats().unwrap();
    let inside = AtomicBool::new(false);
    let members = 5;
    let (submitted, late, constraint, accepted, panicked) = std::thread::scope(|s| {
        // The first request holds the writer until the others queue behind it: all of them
        // then share its batch.
        let holder = s.spawn(|| {
            db.db.write(|c| -> Result<(), EngineError> {
                inside.store(true, Ordering::SeqCst);
                wait_for_queue(&db.db, members);
                Ok(q::insert_setting(c, "held", "1")?)
            })
        });
        while !inside.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let submitted = s.spawn(|| {
            engine.submit(
                &live.assignment.public_id,
                "alice",
                "red and white stripes",
                None,
                T0 + 1000,
            )
        });
        let late = s.spawn(|| {
            engine.submit(
                &expired.assignment.public_id,
                "bob",
                "blue sky over water",
                None,
                T0 + LEASE_MS + 1,
            )
        });
        // Writes, then fails on a foreign key: its first write must not survive.
        let constraint = s.spawn(|| {
            db.db.write(|c| -> Result<(), EngineError> {
                q::insert_setting(c, "partial", "1")?;
                q::insert_set(c, &new_set(project.id + 1000, 0), 3)?;
                Ok(())
            })
        });
        let accepted = s.spawn(|| engine.accept_next("p", "carol", T0 + 1000));
        let panicked = s.spawn(|| {
            db.db.write(|c| -> Result<(), EngineError> {
                q::insert_setting(c, "panicked", "1")?;
                panic!("a handler's bug");
            })
        });
        holder.join().unwrap().unwrap();
        (
            submitted.join().unwrap(),
            late.join().unwrap(),
            constraint.join().unwrap(),
            accepted.join().unwrap(),
            panicked.join(),
        )
    });
    let after = db.db.commit_stats().unwrap();
    assert_eq!(
        (
            after.commits - before.commits,
            after.requests - before.requests
        ),
        (1, members as u64 + 1),
        "every request shared one commit"
    );
    assert_eq!(submitted.unwrap().status, "submitted");
    assert!(
        matches!(&late, Err(EngineError::Conflict(m)) if m.contains("lease ended")),
        "{late:?}"
    );
    assert!(constraint.is_err(), "{constraint:?}");
    let carol = accepted.unwrap().expect("a set for carol");
    assert!(panicked.is_err(), "the panic reaches its own caller");
    // What the good requests did is stored; nothing of the failed ones is.
    let setting = |name: &str| {
        db.db
            .read(|c| -> Result<_, EngineError> { Ok(q::setting(c, name)?) })
            .unwrap()
    };
    assert_eq!(setting("held").as_deref(), Some("1"));
    assert_eq!(setting("partial"), None, "a failed request's first write");
    assert_eq!(setting("panicked"), None, "a panicking request's write");
    assert_eq!(
        engine
            .description_of(&live.assignment.public_id)
            .unwrap()
            .as_deref(),
        Some("red and white stripes")
    );
    assert_eq!(
        engine
            .description_of(&expired.assignment.public_id)
            .unwrap(),
        None
    );
    assert_eq!(
        engine
            .assignment(&carol.assignment.public_id)
            .unwrap()
            .state,
        "accepted"
    );
    // And the writer goes on.
    engine
        .submit(
            &carol.assignment.public_id,
            "carol",
            "green leaves in sunlight",
            None,
            T0 + 2000,
        )
        .unwrap();
}

/// Run as a child process (by the test below): 16 threads write rows as fast as they can and
/// print each acknowledged row; the parent kills it with SIGKILL mid-batch.
fn writer_child(path: &str) {
    let db = Database::open(&DatabaseUrl::Sqlite(path.into())).unwrap();
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..16 {
            let (db, stdout) = (&db, &stdout);
            s.spawn(move || {
                for i in 0.. {
                    let name = format!("row-{t}-{i}");
                    db.write(|c| -> Result<(), EngineError> {
                        Ok(q::insert_setting(c, &name, "x")?)
                    })
                    .unwrap();
                    let stats = db.commit_stats().unwrap();
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "acked {name} {} {}", stats.commits, stats.requests).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn kill_9_during_batches_loses_no_acknowledged_write_and_acknowledges_none_lost() {
    if let Ok(path) = std::env::var("MILAN_GROUP_COMMIT_CHILD") {
        writer_child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.sqlite3");
    drop(Database::open(&DatabaseUrl::Sqlite(path.clone())).unwrap());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            // Its full name in the crate's one test binary (tests/it/main.rs).
            "group_commit::kill_9_during_batches_loses_no_acknowledged_write_and_acknowledges_none_lost",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MILAN_GROUP_COMMIT_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let mut last_stats = (0u64, 0u64);
    // Kill it once it has answered a good number of writes, in the middle of its work.
    for line in lines.by_ref() {
        let line = line.unwrap();
        // Not `strip_prefix`: the test harness's "test NAME ... " has no newline of its own, so
        // the first acknowledgement shares its line.
        let Some((_, rest)) = line.split_once("acked ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        acked.push(fields[0].to_owned());
        last_stats = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        if acked.len() == 3000 {
            child.kill().unwrap();
            break;
        }
    }
    // Lines already written before the kill are acknowledgements too.
    for line in lines {
        match line {
            Ok(line) => {
                if let Some((_, rest)) = line.split_once("acked ") {
                    acked.push(rest.split_whitespace().next().unwrap().to_owned());
                }
            }
            Err(_) => break,
        }
    }
    child.wait().unwrap();
    assert!(acked.len() >= 3000, "the child wrote {} rows", acked.len());
    let (commits, requests) = last_stats;
    assert!(
        requests > commits,
        "writes were batched ({requests} writes in {commits} commits)"
    );
    let db = Database::open(&DatabaseUrl::Sqlite(path)).unwrap();
    for name in &acked {
        assert_eq!(
            db.read(|c| -> Result<_, EngineError> { Ok(q::setting(c, name)?) })
                .unwrap()
                .as_deref(),
            Some("x"),
            "acknowledged write {name} lost"
        );
    }
    // Rows stored without an acknowledgement: at most the writes in flight (16 threads), whose
    // answer the kill cut off; never a write of a batch that did not commit.
    let stored: i64 = {
        use diesel::prelude::*;
        use milan_annotator::db::schema::settings;
        settings::table
            .filter(settings::name.like("row-%"))
            .count()
            .get_result(&mut db.conn().unwrap())
            .unwrap()
    };
    let unanswered = stored - acked.len() as i64;
    assert!(
        (0..=16).contains(&unanswered),
        "{stored} rows stored, {} acknowledged",
        acked.len()
    );
}

/// The bundled SQLite is built with the query planner stability guarantee (.cargo/config.toml):
/// without it every cached statement with a `LIMIT ?` or a `state = ?` beside a partial index is
/// compiled again at each use.
#[test]
fn sqlite_is_built_with_the_query_planner_stability_guarantee() {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }
    let db = common::sqlite();
    let options: Vec<CompileOption> = diesel::sql_query("PRAGMA compile_options")
        .load(&mut db.db.conn().unwrap())
        .unwrap();
    assert!(
        options.iter().any(|o| o.compile_options == "ENABLE_QPSG"),
        "SQLite was built without SQLITE_ENABLE_QPSG: build through this workspace, whose \
         .cargo/config.toml sets LIBSQLITE3_FLAGS"
    );
}
