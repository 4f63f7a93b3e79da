//! Backups of a live database: taken while a crowd submits, they hold every description
//! acknowledged before they began, restore into a database that keeps the crowd guarantees, and
//! a restore never overwrites a database a server has open. Scheduled backups rotate.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use milan_annotator::bench::crowd_invariants;
use milan_annotator::db::queries as q;
use milan_annotator::db::{Database, DatabaseUrl};
use milan_annotator::engine::EngineError;
use milan_annotator::loadgen::{self, CrowdConfig};

use crate::common;

fn annotator(args: &[&str], url: &DatabaseUrl, data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annotator"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(url.serve_args())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Assignment -> (description, worker), of every submitted description.
type Work = std::collections::HashMap<String, (String, String)>;

/// Descriptions and assignment states (set, worker, state) of project `load`.
fn stored(db: &Database) -> (Work, Vec<(i64, i64, String)>) {
    let project = q::project_by_name(&mut db.conn().unwrap(), "load")
        .unwrap()
        .unwrap();
    db.read(|c| -> Result<_, EngineError> {
        let work = q::submitted_work(c, project.id)?
            .into_iter()
            .map(|(a, d, w, _)| (a.public_id, (d.raw, w)))
            .collect();
        Ok((work, q::assignment_states(c, project.id)?))
    })
    .unwrap()
}

/// A backup taken while 64 workers submit holds every submission acknowledged before it began,
/// and restored, keeps the crowd guarantees; a restore over the live database is refused.
fn backup_under_load(live: common::TestDb, restored_url: DatabaseUrl) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = common::seed_project(&live.db, 3000, 60_000);
    let backups = dir.path().join("scheduled");
    let mut server = common::serve(&data, &live.url)
        .args(milan_client::Serve::NO_RATE_LIMITS)
        .args(["--backup-every", "1s", "--backup-keep", "2", "--backup-dir"])
        .arg(&backups)
        .start()
        .expect("start annotator serve");
    let base = server.base.clone();
    let crowd = std::thread::spawn(move || {
        let mut config = CrowdConfig::new(64, "load", &token);
        config.max_duration = Duration::from_secs(12);
        loadgen::run(&base, &config)
    });
    // The backup begins once the crowd is well under way (a busy machine, CI running other tests
    // beside this one, starts it slowly; the crowd goes on for 12 s, so there is time after).
    let waited = Instant::now();
    while stored(&live.db).0.len() < 100 {
        assert!(
            waited.elapsed() < Duration::from_secs(9),
            "the crowd never got going"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = dir.path().join("manual.backup");
    let began = Instant::now();
    let said = ok(&annotator(
        &["backup", "--out", file.to_str().unwrap()],
        &live.url,
        &data,
    ));
    let ended = Instant::now();
    assert!(said.contains("assignments"), "{said}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a backup is its owner's alone");
    }
    // Restoring over the database the server has open is refused.
    let refused = annotator(&["restore", file.to_str().unwrap()], &live.url, &data);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("server") || why.contains("session"), "{why}");
    let report = crowd.join().unwrap();
    assert!(report.surprises.is_empty(), "{:?}", report.surprises);
    std::thread::sleep(Duration::from_millis(1200));
    // A graceful stop finishes the scheduled backup under way and its rotation (a kill would
    // leave its temporary, removed when the next server starts).
    server.terminate(Duration::from_secs(60)).unwrap();

    let before: Vec<_> = report
        .acknowledged
        .iter()
        .filter(|a| a.at < began)
        .collect();
    let after = report.acknowledged.iter().filter(|a| a.at > ended).count();
    assert!(
        before.len() > 64,
        "work before the backup: {}",
        before.len()
    );
    assert!(
        after > 0,
        "the server went on taking submissions during and after the backup"
    );

    let restored_dir = dir.path().join("restored");
    let said = ok(&annotator(
        &["restore", file.to_str().unwrap()],
        &restored_url,
        &restored_dir,
    ));
    assert!(said.contains("restored"), "{said}");
    let restored = Database::open(&restored_url).unwrap();
    let (work, states) = stored(&restored);
    for a in &before {
        assert_eq!(
            work.get(&a.assignment),
            Some(&(a.description.clone(), a.worker.clone())),
            "acknowledged before the backup began: {}",
            a.assignment
        );
    }
    crowd_invariants(&states).unwrap();
    // Nothing in the backup that was never acknowledged, or acknowledged after it ended.
    let acknowledged: std::collections::HashSet<&str> = report
        .acknowledged
        .iter()
        .filter(|a| a.at < ended)
        .map(|a| a.assignment.as_str())
        .collect();
    for id in work.keys() {
        assert!(
            acknowledged.contains(id.as_str())
                || report.acknowledged.iter().any(|a| &a.assignment == id),
            "{id}"
        );
    }

    // The schedule kept the newest two, each a whole, checked database, and nothing half-written.
    if live.name == "sqlite" {
        let files: Vec<_> = std::fs::read_dir(&backups)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        for f in files {
            milan_annotator::backup::check_sqlite(&f).unwrap();
        }
    }
}

#[test]
fn a_sqlite_backup_under_load_restores_every_acknowledged_submission() {
    let restored = tempfile::tempdir().unwrap();
    backup_under_load(
        common::sqlite(),
        DatabaseUrl::Sqlite(restored.path().join("restored.sqlite3")),
    );
}

#[test]
fn a_postgres_backup_under_load_restores_every_acknowledged_submission() {
    let target = common::postgres();
    let url = target.url.clone();
    drop(target);
    backup_under_load(common::postgres(), url);
}

#[test]
fn a_damaged_backup_is_refused_and_the_database_kept() {
    let dir = tempfile::tempdir().unwrap();
    let live = common::sqlite();
    common::seed_project(&live.db, 3, 60_000);
    let bad = dir.path().join("bad.backup");
    std::fs::write(&bad, b"SQLite format 3\0 but nothing after it").unwrap();
    let out = annotator(&["restore", bad.to_str().unwrap()], &live.url, dir.path());
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("bad.backup"), "{why}");
    assert!(
        q::project_by_name(&mut live.db.conn().unwrap(), "load")
            .unwrap()
            .is_some()
    );
}
