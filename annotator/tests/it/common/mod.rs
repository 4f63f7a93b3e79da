//! Test databases: a fresh SQLite file, or a fresh database on the PostgreSQL server that
//! scripts/test starts (MILAN_TEST_POSTGRES_URL). Every storage test runs on both.
#![allow(dead_code)]

use diesel::Connection;
use diesel::RunQueryDsl;
use diesel::pg::PgConnection;
use milan_annotator::db::{Database, DatabaseUrl};

pub struct TestDb {
    pub db: Database,
    pub url: DatabaseUrl,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
}

pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("test.sqlite3"));
    TestDb {
        db: Database::open(&url).unwrap(),
        url,
        name: "sqlite",
        _dir: Some(dir),
    }
}

/// The admin URL of the test server, or a failure that says how to get one.
pub fn postgres_admin_url() -> String {
    std::env::var("MILAN_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "PostgreSQL tests need MILAN_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5433/postgres). \
             scripts/test installs PostgreSQL and starts a private server for them; or run \
             `source scripts/postgres-test-server` first"
        )
    })
}

/// A new, empty database on the test server.
pub fn postgres() -> TestDb {
    let admin = postgres_admin_url();
    let name = format!("milan_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::establish(&admin).expect("connect to the test PostgreSQL server");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .unwrap();
    let (base, _) = admin.rsplit_once('/').expect("URL ends in /database");
    let url = DatabaseUrl::Postgres(format!("{base}/{name}"));
    TestDb {
        db: Database::open(&url).unwrap(),
        url,
        name: "postgres",
        _dir: None,
    }
}

/// Runs `test` on a fresh SQLite database and on a fresh PostgreSQL database.
pub fn on_both(test: impl Fn(&TestDb)) {
    for make in [sqlite as fn() -> TestDb, postgres] {
        let db = make();
        test(&db);
    }
}

/// The `annotator serve` binary of this build on a free loopback port; killed when dropped.
pub type Server = milan_client::ServerProcess;

/// `annotator serve` of this build on `data_dir` and `url`, sweeping leases every 200 ms.
pub fn serve(data_dir: &std::path::Path, url: &DatabaseUrl) -> milan_client::Serve {
    milan_client::Serve::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_annotator")),
        data_dir,
    )
    .args(url.serve_args())
    .args(["--sweep-interval-ms", "200"])
}

pub fn start_server(data_dir: &std::path::Path, url: &DatabaseUrl) -> Server {
    serve(data_dir, url).start().expect("start annotator serve")
}

/// A server for a simulated crowd: all of it on one address, far faster than people, so the
/// API's rate limits are off.
pub fn start_crowd_server(data_dir: &std::path::Path, url: &DatabaseUrl) -> Server {
    serve(data_dir, url)
        .args(milan_client::Serve::NO_RATE_LIMITS)
        .start()
        .expect("start annotator serve")
}

/// A project `load` with `sets` sets of 3, written straight into the database; returns a
/// requester token (the crowd's sessions are minted with it).
pub fn seed_project(db: &Database, sets: usize, lease_ms: i64) -> String {
    use milan_annotator::db::queries as q;
    use milan_annotator::domain::ProjectSettings;
    use milan_annotator::engine::{Engine, EngineError};
    let engine = Engine::new(db.clone());
    let mut settings = ProjectSettings::new("load", "Load test");
    settings.lease_ms = lease_ms;
    let project = engine.create_project(&settings, 1).unwrap();
    db.write(|c| -> Result<(), EngineError> {
        for unit in 0..sets {
            q::insert_set(
                c,
                &q::NewSet {
                    project_id: project.id,
                    model: "alexnet/imagenet",
                    layer: "conv1",
                    unit: unit as i32,
                    exemplars: "[]",
                    created_at: 1,
                },
                3,
            )?;
        }
        Ok(())
    })
    .unwrap();
    milan_annotator::auth::Auth::load(db)
        .unwrap()
        .create_requester_token("crowd", 1)
        .unwrap()
        .1
}

/// Every acknowledged submission is stored with its text, and nothing else is; every set has
/// exactly three descriptions from three distinct workers when `complete`.
pub fn check_stored(
    db: &Database,
    acknowledged: &[milan_annotator::loadgen::Acknowledged],
    complete: Option<usize>,
) {
    use milan_annotator::db::queries as q;
    use milan_annotator::engine::EngineError;
    use std::collections::{BTreeMap, BTreeSet};
    let project = q::project_by_name(&mut db.conn().unwrap(), "load")
        .unwrap()
        .unwrap();
    let stored = db
        .read(|c| -> Result<_, EngineError> { Ok(q::submitted_work(c, project.id)?) })
        .unwrap();
    let by_assignment: BTreeMap<&str, (&str, &str)> = stored
        .iter()
        .map(|(a, d, w, _)| (a.public_id.as_str(), (d.raw.as_str(), w.as_str())))
        .collect();
    assert_eq!(
        by_assignment.len(),
        stored.len(),
        "one description per assignment"
    );
    for ack in acknowledged {
        let found = by_assignment.get(ack.assignment.as_str());
        assert_eq!(
            found,
            Some(&(ack.description.as_str(), ack.worker.as_str())),
            "acknowledged submission {} lost or changed",
            ack.assignment
        );
    }
    if let Some(sets) = complete {
        assert_eq!(
            stored.len(),
            acknowledged.len(),
            "no description without an acknowledgement"
        );
        let mut per_set: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
        for (a, _, w, _) in &stored {
            assert!(
                per_set.entry(a.set_id).or_default().insert(w.as_str()),
                "a worker twice on a set"
            );
        }
        assert_eq!(per_set.len(), sets, "every set was described");
        assert!(
            per_set.values().all(|w| w.len() == 3),
            "every set has exactly 3 workers"
        );
    }
}
