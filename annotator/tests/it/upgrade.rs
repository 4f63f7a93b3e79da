//! Upgrades keep data: a database made by every earlier schema version, with that version's data
//! in it (`tests/fixtures/upgrade/v<N>.sql`), migrates to the current schema with every row kept,
//! on SQLite and PostgreSQL; `annotator migrate --check` says what is pending without applying it.

use std::path::Path;

use diesel::{Connection, QueryableByName, RunQueryDsl, connection::SimpleConnection};
use milan_annotator::db::{self, Database, DatabaseUrl, Db};
use milan_annotator::domain::now_ms;
use milan_annotator::engine::Engine;

use crate::common;

/// The tables each schema version has (cumulative), as the fixtures fill them.
const TABLES: [&[&str]; 6] = [
    &[
        "projects",
        "exemplar_sets",
        "slots",
        "workers",
        "assignments",
        "descriptions",
        "ledger",
        "events",
        "requester_tokens",
    ],
    &[
        "worker_codes",
        "requesters",
        "qualifications",
        "qualification_attempts",
    ],
    &["model_descriptions"],
    &["sessions", "mturk_assignments", "prolific_sessions"],
    &[],
    &["qualification_openings"],
];

fn fixture(version: usize) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(format!("v{version}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An empty database nobody has migrated: (url, what keeps it alive).
fn empty(backend: &str) -> (DatabaseUrl, Option<tempfile::TempDir>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        std::fs::File::create(&path).unwrap();
        return (DatabaseUrl::Sqlite(path), Some(dir));
    }
    let admin = common::postgres_admin_url();
    let name = format!("milan_upgrade_{}", uuid::Uuid::new_v4().simple());
    let mut conn = diesel::pg::PgConnection::establish(&admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    (DatabaseUrl::Postgres(format!("{base}/{name}")), None)
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn counts(conn: &mut Db, tables: &[&str]) -> Vec<(String, i64)> {
    tables
        .iter()
        .map(|t| {
            let n = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {t}"))
                .get_result::<N>(conn)
                .unwrap()
                .n;
            (t.to_string(), n)
        })
        .collect()
}

#[test]
fn every_earlier_schema_version_upgrades_with_nothing_lost() {
    for backend in ["sqlite", "postgres"] {
        let all = db::migration_names(backend == "postgres");
        assert_eq!(all.len(), TABLES.len() + 1, "a fixture per earlier version");
        for version in 1..=TABLES.len() {
            let (url, _dir) = empty(backend);
            let mut conn = db::connect_as_is(&url).unwrap().unwrap();
            assert_eq!(
                db::migrate_steps(&mut conn, version).unwrap(),
                all[..version]
            );
            assert_eq!(db::pending_migrations(&mut conn).unwrap(), all[version..]);
            for v in 1..=version {
                conn.batch_execute(&fixture(v))
                    .unwrap_or_else(|e| panic!("{backend}: v{v}.sql at version {version}: {e}"));
            }
            let tables: Vec<&str> = TABLES[..version]
                .iter()
                .flat_map(|t| t.iter().copied())
                .collect();
            let before = counts(&mut conn, &tables);
            assert!(
                before.iter().all(|(_, n)| *n > 0),
                "every table has data: {before:?}"
            );
            drop(conn);

            // The server's own start migrates it.
            let database = Database::open(&url).unwrap();
            let mut conn = database.conn().unwrap();
            assert_eq!(
                db::pending_migrations(&mut conn).unwrap(),
                Vec::<String>::new()
            );
            assert_eq!(
                counts(&mut conn, &tables),
                before,
                "{backend}, version {version}"
            );
            drop(conn);

            // What the rows meant, they still mean.
            let engine = Engine::new(database.clone());
            let context = format!("{backend}, from version {version}");
            let project = engine.project("old").unwrap();
            assert_eq!(project.title, "Described before the upgrade", "{context}");
            assert_eq!(
                engine.description_of("a-approved").unwrap().as_deref(),
                Some("Red stripes on the left"),
                "{context}"
            );
            assert_eq!(
                engine.earnings("w1").unwrap(),
                (10, if version >= 4 { 25 } else { 0 }),
                "{context}"
            );
            assert!(engine.worker("w2", now_ms()).unwrap().blocked, "{context}");
            assert!(!project.catalog_public, "{context}: catalogs start private");
            if version >= 4 {
                // It had MTurk work, so its MTurk entry stays open after 000006.
                assert!(project.mturk_enabled, "{context}");
                assert_eq!(
                    engine.description_of("a-mturk").unwrap().as_deref(),
                    Some("Blue sky above trees")
                );
            } else {
                assert!(!project.mturk_enabled, "{context}");
            }
            // And the server goes on working on it: a new worker takes and describes a set.
            let taken = engine
                .accept_next("old", "w-new", now_ms())
                .unwrap_or_else(|e| panic!("{context}: {e}"));
            let a = taken.expect("a slot is open").assignment;
            engine
                .submit(
                    &a.public_id,
                    "w-new",
                    "yellow circles in a row",
                    None,
                    now_ms(),
                )
                .unwrap_or_else(|e| panic!("{context}: {e}"));
        }
    }
}

#[test]
fn migrate_check_says_what_is_pending_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bin = env!("CARGO_BIN_EXE_annotator");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    // No database yet: everything is pending, and no file is made.
    let fresh = run(&["migrate", "--check"]);
    assert_eq!(fresh.status.code(), Some(2));
    let text = String::from_utf8_lossy(&fresh.stdout);
    assert!(text.contains("7 migration(s) pending"), "{text}");
    assert!(!data.exists() || std::fs::read_dir(&data).unwrap().next().is_none());
    // An old database: the rest is pending; --check leaves it old.
    std::fs::create_dir_all(&data).unwrap();
    let url = DatabaseUrl::Sqlite(data.join("annotator.sqlite3"));
    std::fs::File::create(data.join("annotator.sqlite3")).unwrap();
    let mut conn = db::connect_as_is(&url).unwrap().unwrap();
    db::migrate_steps(&mut conn, 4).unwrap();
    drop(conn);
    let old = run(&["migrate", "--check"]);
    assert_eq!(old.status.code(), Some(2));
    let text = String::from_utf8_lossy(&old.stdout);
    assert!(
        text.contains("3 migration(s) pending") && text.contains("000007_catalog"),
        "{text}"
    );
    assert_eq!(
        run(&["migrate", "--check"]).status.code(),
        Some(2),
        "unchanged"
    );
    assert!(run(&["migrate"]).status.success());
    let now = run(&["migrate", "--check"]);
    assert_eq!(now.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&now.stdout).contains("is up to date"));
}
