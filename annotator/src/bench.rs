//! `annotator bench`: accept+submit throughput and latency over HTTP for 1, 16 and 64 concurrent
//! workers against a real `annotator serve` process, and the engine's accept latency with 10k and
//! with 1M sets in the database. Figures are ratios against the smallest case measured in the same
//! run, since absolute numbers depend on the machine.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::db::queries as q;
use crate::db::{Database, DatabaseUrl};
use crate::domain::{ProjectSettings, now_ms};
use crate::engine::{Engine, EngineError};
use crate::loadgen::{CrowdConfig, ServerProcess, percentile, run};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A PostgreSQL admin URL: each case gets a fresh database on that server. SQLite otherwise.
    pub postgres_admin_url: Option<String>,
    pub http_sets: i64,
    pub http_seconds: u64,
    pub large_sets: i64,
}

fn fresh_database(config: &BenchConfig, dir: &Path, name: &str) -> Result<DatabaseUrl> {
    Ok(match &config.postgres_admin_url {
        None => DatabaseUrl::Sqlite(dir.join(format!("{name}.sqlite3"))),
        Some(admin) => {
            use diesel::{Connection, RunQueryDsl};
            let db = format!("milan_bench_{name}_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::pg::PgConnection::establish(admin)?;
            diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut conn)?;
            let (base, _) = admin
                .rsplit_once('/')
                .context("the URL must end in /database")?;
            DatabaseUrl::Postgres(format!("{base}/{db}"))
        }
    })
}

fn seed(url: &DatabaseUrl, sets: i64, lease_ms: i64) -> Result<Engine> {
    let db = Database::open(url)?;
    let engine = Engine::new(db.clone());
    let mut settings = ProjectSettings::new("bench", "Benchmark");
    settings.lease_ms = lease_ms;
    let project = engine.create_project(&settings, now_ms())?;
    db.write(|c| -> Result<(), EngineError> { Ok(q::bulk_sets(c, project.id, sets, 3)?) })?;
    Ok(engine)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run_bench(config: &BenchConfig) -> Result<()> {
    let dir = tempfile_dir()?;
    let backend = if config.postgres_admin_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("annotator bench on {backend}");
    println!(
        "\naccept+submit over HTTP ({} sets x 3, {} s per case)",
        config.http_sets, config.http_seconds
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10}",
        "workers", "cycles/s", "ratio", "p50 ms", "p99 ms"
    );
    let mut baseline = None;
    for workers in [1usize, 16, 64] {
        let url = fresh_database(config, dir.path(), &format!("http{workers}"))?;
        let engine = seed(&url, config.http_sets, 30 * 60 * 1000)?;
        let (_, token) =
            crate::auth::Auth::load(engine.db())?.create_requester_token("bench", now_ms())?;
        let mut args = vec!["--workers", "4"];
        args.extend(ServerProcess::NO_RATE_LIMITS);
        let server = ServerProcess::start(
            &std::env::current_exe()?,
            &dir.path().join(format!("data{workers}")),
            &url,
            &args,
        )?;
        let mut crowd = CrowdConfig::new(workers, "bench", &token);
        crowd.max_duration = Duration::from_secs(config.http_seconds);
        let report = run(&server.base, &crowd);
        let rate = report.acknowledged.len() as f64 / report.elapsed.as_secs_f64();
        let base = *baseline.get_or_insert(rate);
        println!(
            "{:>8} {:>12.1} {:>9.2}x {:>10.1} {:>10.1}",
            workers,
            rate,
            rate / base,
            ms(percentile(&report.cycle_latencies, 50.0)),
            ms(percentile(&report.cycle_latencies, 99.0))
        );
        anyhow::ensure!(
            report.surprises.is_empty(),
            "unexpected answers: {:?}",
            report.surprises
        );
    }
    println!("\naccept latency in the engine (200 accepts by distinct workers)");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10}",
        "sets", "seed s", "p50 ms", "p99 ms", "p50 ratio"
    );
    let mut baseline = None;
    for sets in [10_000i64, config.large_sets] {
        let url = fresh_database(config, dir.path(), &format!("sets{sets}"))?;
        let started = Instant::now();
        let engine = seed(&url, sets, 30 * 60 * 1000)?;
        let seeded = started.elapsed();
        let mut latencies = Vec::new();
        for w in 0..200 {
            let t = Instant::now();
            engine
                .accept_next("bench", &format!("w{w}"), now_ms())?
                .context("a set for every worker")?;
            latencies.push(t.elapsed());
        }
        let p50 = percentile(&latencies, 50.0);
        let base = *baseline.get_or_insert(ms(p50));
        println!(
            "{:>10} {:>10.1} {:>10.2} {:>10.2} {:>9.2}x",
            sets,
            seeded.as_secs_f64(),
            ms(p50),
            ms(percentile(&latencies, 99.0)),
            ms(p50) / base
        );
    }
    Ok(())
}

/// A scratch folder removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> Result<TempDir> {
    let dir =
        std::env::temp_dir().join(format!("annotator-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}
