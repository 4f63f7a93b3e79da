//! 64 simulated workers against a real server on loopback: 2,000 sets x 3 with random returns,
//! lease expiries and replays. Every set ends with exactly three descriptions from three distinct
//! workers, none lost or duplicated; on SQLite and on PostgreSQL.

use crate::common;

use milan_annotator::loadgen::{CrowdConfig, percentile, run};

const SETS: usize = 2000;
const LEASE_MS: u64 = 4000;

fn crowd_on(db: common::TestDb) {
    let token = common::seed_project(&db.db, SETS, LEASE_MS as i64);
    let data = tempfile::tempdir().unwrap();
    let server = common::start_crowd_server(data.path(), &db.url);
    let mut config = CrowdConfig::new(64, "load", &token);
    config.p_return = 0.03;
    config.p_replay = 0.05;
    config.p_expire = 0.002;
    config.lease_ms = LEASE_MS;
    config.seed = 7;
    let report = run(&server.base, &config);
    println!(
        "{}: {} acknowledged, {} accepted, {} returned, {} replayed, {} refused after the lease, in {:.1?}; \
         accept+submit p50 {:?} p99 {:?}",
        db.name,
        report.acknowledged.len(),
        report.accepted,
        report.returned,
        report.replayed,
        report.refused_late,
        report.elapsed,
        percentile(&report.cycle_latencies, 50.0),
        percentile(&report.cycle_latencies, 99.0),
    );
    assert!(report.surprises.is_empty(), "{:?}", report.surprises);
    assert_eq!(report.transport_errors, Vec::<String>::new());
    assert_eq!(report.acknowledged.len(), SETS * 3, "{}", db.name);
    assert!(report.returned > 0 && report.replayed > 0 && report.refused_late > 0);
    common::check_stored(&db.db, &report.acknowledged, Some(SETS));
}

#[test]
fn sixty_four_workers_on_sqlite() {
    crowd_on(common::sqlite());
}

#[test]
fn sixty_four_workers_on_postgres() {
    crowd_on(common::postgres());
}
