//! A full disk loses nothing: when the database cannot grow (SQLite's `max_page_count`, set by
//! `serve --max-database-mb`), accepts and submits get 503 with a clear message, never a 500 and
//! never half a row; every acknowledged description is kept; and once pages are free again the
//! same server takes work again by itself.

use std::path::Path;

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use milan_annotator::bench::crowd_invariants;
use milan_annotator::db::queries as q;
use milan_annotator::db::{Database, DatabaseUrl};
use milan_annotator::domain::now_ms;
use milan_annotator::engine::EngineError;
use milan_annotator::sessions::{Entry, Sessions, Via};
use milan_client::{Api, Serve};
use serde_json::{Value, json};

use crate::common;

/// One worker's accept and submit: `Ok(Some(id))` when the description was acknowledged,
/// `Ok(None)` when nothing is left, `Err(status, body)` for any other answer.
fn one_task(api: &Api, token: &str, n: usize) -> Result<Option<(String, String)>, (u16, Value)> {
    let (status, body) = api
        .post(
            "/api/v1/projects/load/assignments",
            token,
            None::<&Value>,
            None,
        )
        .unwrap();
    match status {
        201 | 200 => {}
        204 => return Ok(None),
        _ => return Err((status, body)),
    }
    let id = body["assignment_id"].as_str().unwrap().to_owned();
    let text = format!("stripes of colour number {n} across the image");
    let (status, body) = api
        .post(
            &format!("/api/v1/assignments/{id}/submit"),
            token,
            Some(&json!({ "description": text })),
            None,
        )
        .unwrap();
    if status == 200 {
        Ok(Some((id, text)))
    } else {
        // The lease is given back so that the slot is not held when the disk fills mid-task.
        let _ = api.post(
            &format!("/api/v1/assignments/{id}/return"),
            token,
            None::<&Value>,
            None,
        );
        Err((status, body))
    }
}

#[test]
fn a_full_database_refuses_writes_with_503_loses_nothing_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("annotator.sqlite3");
    let url = DatabaseUrl::Sqlite(path.clone());
    let db = Database::open(&url).unwrap();
    let requester = common::seed_project(&db, 2000, 60_000);
    // Filler rows whose pages the test frees later, as an operator frees disk space.
    let sessions = Sessions::new(db.clone());
    for i in 0..1500 {
        sessions
            .start_worker(
                &format!("filler{i}"),
                Via::Requester,
                &Entry::Local,
                now_ms(),
            )
            .unwrap();
    }
    db.conn()
        .unwrap()
        .batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(sessions);
    drop(db);
    let size = std::fs::metadata(&path).unwrap().len();
    // Room for a few dozen descriptions beyond what is there.
    let cap_mb = (size + 48 * 1024) as f64 / 1_048_576.0;
    let server = Serve::new(Path::new(env!("CARGO_BIN_EXE_annotator")), &data)
        .args(url.serve_args())
        .args(milan_client::Serve::NO_RATE_LIMITS)
        .args(["--max-database-mb", &cap_mb.to_string()])
        .start()
        .expect("start annotator serve");
    let api = Api::new(&server.base);
    let tokens: Vec<String> = (0..8)
        .map(|w| api.sign_in(&requester, &format!("w{w}")).unwrap())
        .collect();

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut n = 0;
    while refused.len() < 10 {
        n += 1;
        assert!(
            n < 5000,
            "the database never filled ({} acknowledged)",
            acknowledged.len()
        );
        match one_task(&api, &tokens[n % tokens.len()], n) {
            Ok(Some(done)) => acknowledged.push(done),
            Ok(None) => panic!("ran out of sets before the database filled"),
            Err((503, body)) => refused.push(body),
            Err((status, body)) => panic!("{status}: {body} (only 503 may refuse a write here)"),
        }
    }
    assert!(
        acknowledged.len() > 5,
        "{} stored before it filled",
        acknowledged.len()
    );
    for body in &refused {
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("disk is full")
                && message.contains("nothing of this request was stored"),
            "{message}"
        );
    }
    let (status, ready) = api.get("/readyz", "").unwrap();
    assert_eq!(status, 200, "reads and the empty write still work: {ready}");

    // Space returns: the filler sessions are deleted (their pages go to SQLite's free list).
    {
        let mut c = diesel::sqlite::SqliteConnection::establish_with_timeout(&path);
        diesel::sql_query(
            "DELETE FROM sessions WHERE worker_id IN \
             (SELECT id FROM workers WHERE external_id LIKE 'filler%')",
        )
        .execute(&mut c)
        .unwrap();
    }
    let mut after = 0;
    for m in 0..20 {
        match one_task(&api, &tokens[m % tokens.len()], 10_000 + m) {
            Ok(Some(done)) => {
                acknowledged.push(done);
                after += 1;
            }
            other => panic!("the same server should take work again: {other:?}"),
        }
    }
    assert_eq!(after, 20);
    drop(server);

    // Every acknowledged description is stored as sent; nothing else is; no half-written rows.
    let db = Database::open(&url).unwrap();
    let project = q::project_by_name(&mut db.conn().unwrap(), "load")
        .unwrap()
        .unwrap();
    let (work, states) = db
        .read(|c| -> Result<_, EngineError> {
            Ok((
                q::submitted_work(c, project.id)?,
                q::assignment_states(c, project.id)?,
            ))
        })
        .unwrap();
    assert_eq!(
        work.len(),
        acknowledged.len(),
        "stored descriptions = acknowledged submits"
    );
    for (id, text) in &acknowledged {
        assert!(
            work.iter()
                .any(|(a, d, _, _)| &a.public_id == id && &d.raw == text),
            "{id} lost"
        );
    }
    let submitted = states.iter().filter(|(_, _, s)| s == "submitted").count();
    assert_eq!(
        submitted,
        work.len(),
        "every submitted assignment has its description"
    );
    crowd_invariants(&states).unwrap();
}

trait Establish {
    fn establish_with_timeout(path: &Path) -> Self;
}

impl Establish for diesel::sqlite::SqliteConnection {
    fn establish_with_timeout(path: &Path) -> Self {
        use diesel::Connection;
        let mut c = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        c.batch_execute("PRAGMA busy_timeout = 30000;").unwrap();
        c
    }
}
