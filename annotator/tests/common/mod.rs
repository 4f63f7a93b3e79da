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
