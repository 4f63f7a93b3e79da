//! Power cuts under the worker loop on SQLite: the group commit acknowledges a request only once
//! a sync of the log begun after its commit has ended (annotator/src/db/wal_sync.rs). These tests
//! run a crowd in this process on the simulated disk of `sim_disk`, cut the power at moments
//! spread over the run (through checkpoints and reuses of the log), and open what the disk would
//! hold: every acknowledged description must be there, the database must be sound, and the crowd
//! guarantees must hold. The same harness with a sync that does nothing must lose descriptions,
//! or it would prove nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use milan_annotator::bench::crowd_invariants;
use milan_annotator::db::queries as q;
use milan_annotator::db::wal_sync::WalSync;
use milan_annotator::db::{Database, DatabaseUrl, DbOptions};
use milan_annotator::engine::{Engine, EngineError};
use milan_annotator::loadgen::Acknowledged;

use crate::common;
use crate::sim_disk::{self, Cut};

const WORKERS: usize = 16;
/// Cuts taken during a run: each opened as it is (nothing unsynced kept) and with two random
/// subsets of the unsynced writes kept.
const CUTS: usize = 12;

/// What a power cut left, and the acknowledgements made before it.
struct Moment {
    acked: Vec<Acknowledged>,
    files: Vec<Vec<(String, Vec<u8>)>>,
    cuts: Vec<Cut>,
}

/// Runs the crowd on the simulated disk with `sync` as the log's sync, cutting the power
/// `CUTS` times; returns the moments, once the run has gone through checkpoints and a reuse of
/// the log.
fn crowd_with_cuts(sync: WalSync) -> (tempfile::TempDir, Vec<Moment>) {
    let dir = tempfile::tempdir().unwrap();
    sim_disk::watch(dir.path());
    let dir_path = dir.path().canonicalize().unwrap();
    let path = dir_path.join("live.sqlite3");
    let options = DbOptions {
        sqlite_vfs: Some(sim_disk::VFS.into()),
        wal_sync: Some(sync),
        ..DbOptions::default()
    };
    let db = Database::open_with(&DatabaseUrl::Sqlite(path.clone()), options).unwrap();
    common::seed_project(&db, 20_000, 600_000);
    let engine = Engine::new(db.clone());
    let acked: Mutex<Vec<Acknowledged>> = Mutex::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let wal = {
        let mut p = path.clone().into_os_string();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let db_counters = || sim_disk::counters(&path);
    let (db_syncs_before, _) = db_counters();
    let mut moments = Vec::new();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (engine, acked, stop) = (&engine, &acked, &stop);
            s.spawn(move || {
                let worker = format!("worker-{w}");
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = milan_annotator::domain::now_ms();
                    let Some(task) = engine.accept_next("load", &worker, now).unwrap() else {
                        break;
                    };
                    i += 1;
                    let text = format!("stripes number {i} seen by {worker}");
                    engine
                        .submit(&task.assignment.public_id, &worker, &text, None, now + 1)
                        .unwrap();
                    acked.lock().unwrap().push(Acknowledged {
                        assignment: task.assignment.public_id.clone(),
                        worker: worker.clone(),
                        description: text,
                        at: Instant::now(),
                    });
                }
            });
        }
        // Cut at moments spread over the run, until the log has been checkpointed and reused.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut next = 150;
        loop {
            let n = acked.lock().unwrap().len();
            let (db_syncs, _) = db_counters();
            let (_, restarts) = sim_disk::counters(&wal);
            let enough = moments.len() >= CUTS && db_syncs > db_syncs_before + 1 && restarts >= 1;
            if enough || Instant::now() > deadline {
                break;
            }
            if n >= next {
                // The acknowledgements first: each of them ended before the cut.
                let before = acked.lock().unwrap().clone();
                let cuts = vec![
                    Cut::Drop,
                    Cut::Some(moments.len() as u64),
                    Cut::Some(1000 + moments.len() as u64),
                ];
                let files = cuts
                    .iter()
                    .map(|&cut| sim_disk::power_cut(&dir_path, cut))
                    .collect();
                moments.push(Moment {
                    acked: before,
                    files,
                    cuts,
                });
                next = n + 97 + 31 * (moments.len() % 5);
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let (db_syncs, _) = db_counters();
    let (_, restarts) = sim_disk::counters(&wal);
    assert!(
        moments.len() >= CUTS && db_syncs > db_syncs_before + 1 && restarts >= 1,
        "the run did not go through checkpoints and a reuse of the log: {} cuts, {} syncs of the \
         database file, {restarts} restarts of the log",
        moments.len(),
        db_syncs - db_syncs_before
    );
    eprintln!(
        "power cut run: {} cuts, {} acknowledged at the last, {} syncs of the database file, {restarts} restarts of the log, {} log syncs by the group commit",
        moments.len(),
        moments.last().map_or(0, |m| m.acked.len()),
        db_syncs - db_syncs_before,
        db.commit_stats().unwrap().syncs
    );
    drop(engine);
    drop(db);
    (dir, moments)
}

/// Opens what a cut left and checks it: sound, every acknowledged description stored as sent,
/// crowd guarantees. `Err` names what broke.
fn check_moment(files: &[(String, Vec<u8>)], acked: &[Acknowledged]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let path = dir.path().join("live.sqlite3");
    if !path.exists() {
        return Err("the database file itself is gone".into());
    }
    let db =
        Database::open(&DatabaseUrl::Sqlite(path)).map_err(|e| format!("does not open: {e}"))?;
    let integrity = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Check {
            #[diesel(sql_type = diesel::sql_types::Text)]
            integrity_check: String,
        }
        let rows: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
            .load(&mut db.conn().unwrap())
            .map_err(|e| e.to_string())?;
        rows.into_iter()
            .map(|r| r.integrity_check)
            .collect::<Vec<_>>()
    };
    if integrity != ["ok"] {
        return Err(format!("integrity check: {integrity:?}"));
    }
    let project = q::project_by_name(&mut db.conn().unwrap(), "load")
        .map_err(|e| e.to_string())?
        .ok_or("the project is gone")?;
    let (work, states) = db
        .read(|c| -> Result<_, EngineError> {
            let work: std::collections::HashMap<String, (String, String)> =
                q::submitted_work(c, project.id)?
                    .into_iter()
                    .map(|(a, d, w, _)| (a.public_id, (d.raw, w)))
                    .collect();
            Ok((work, q::assignment_states(c, project.id)?))
        })
        .map_err(|e| e.to_string())?;
    let lost: Vec<&str> = acked
        .iter()
        .filter(|a| work.get(&a.assignment) != Some(&(a.description.clone(), a.worker.clone())))
        .map(|a| a.assignment.as_str())
        .collect();
    if !lost.is_empty() {
        return Err(format!(
            "{} of {} acknowledged descriptions lost (first: {})",
            lost.len(),
            acked.len(),
            lost[0]
        ));
    }
    crowd_invariants(&states).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_power_cut_loses_no_acknowledged_description() {
    let (_dir, moments) = crowd_with_cuts(Arc::new(sim_disk::sync_wal));
    let mut checked = 0;
    for (i, moment) in moments.iter().enumerate() {
        for (files, cut) in moment.files.iter().zip(&moment.cuts) {
            if let Err(broke) = check_moment(files, &moment.acked) {
                panic!(
                    "cut {i} ({cut:?}, {} acknowledged): {broke}",
                    moment.acked.len()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 * CUTS);
}

/// The harness has teeth: acknowledging before the log is durable (a sync that does nothing)
/// loses acknowledged descriptions at some cut.
#[test]
fn the_power_cut_harness_catches_a_sync_that_does_nothing() {
    let (_dir, moments) = crowd_with_cuts(Arc::new(|_: &Path| Ok(())));
    let losses = moments
        .iter()
        .filter(|m| check_moment(&m.files[0], &m.acked).is_err())
        .count();
    eprintln!(
        "a sync that does nothing: {losses} of {} cuts lost acknowledged descriptions",
        moments.len()
    );
    assert!(
        losses > 0,
        "no cut of {} lost anything though the log was never synced by the group commit",
        moments.len()
    );
}

/// A log sync that fails (EIO) fails the write waiting on it, every later write, and reads that
/// might have seen the unsynced batch: after an error the kernel may have dropped the pages, so
/// nothing is acknowledged until a restart.
#[test]
fn a_failed_log_sync_stops_every_answer_until_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("eio.sqlite3"));
    let options = DbOptions {
        wal_sync: Some(Arc::new(|_: &Path| {
            Err(std::io::Error::other("EIO (simulated)"))
        })),
        ..DbOptions::default()
    };
    let db = Database::open_with(&url, options).unwrap();
    let write = |name: &str| {
        db.write(|c| -> Result<(), EngineError> { Ok(q::insert_setting(c, name, "x")?) })
    };
    let first = write("first").unwrap_err().to_string();
    assert!(
        first.contains("could not be synced") && first.contains("EIO (simulated)"),
        "{first}"
    );
    let later = write("later").unwrap_err().to_string();
    assert!(later.contains("restarts"), "{later}");
    let read = db
        .read(|c| -> Result<_, EngineError> { Ok(q::setting(c, "first")?) })
        .unwrap_err()
        .to_string();
    assert!(read.contains("could not be synced"), "{read}");
    drop(db);
    // Restarted (a sync that works): SQLite recovers what is on disk and writes go through.
    let db = Database::open(&url).unwrap();
    db.write(|c| -> Result<(), EngineError> { Ok(q::insert_setting(c, "after", "x")?) })
        .unwrap();
}
