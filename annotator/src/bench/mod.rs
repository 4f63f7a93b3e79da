//! `annotator bench`: the worker loop (accept, then submit) over HTTP against real
//! `annotator serve` processes, on SQLite or on PostgreSQL (one or several processes on one
//! database), for several crowd sizes. Each case reports loops per second, p50 and p99 of each
//! request kind, the CPU the servers and the load generator used, and then checks the crowd
//! guarantees on the database: every acknowledged description stored as sent, nothing stored
//! that was not acknowledged, at most three slot-holding assignments per set, never one worker
//! twice on a set. With `--large-sets`, the 64-worker case runs again on that many sets, to show
//! what the size of the database does to accept latency.
//!
//! Absolute figures depend on the machine; ratios against the first case of the same run are
//! printed beside them. `--generator builtin,wrk` runs each case with our own load generator
//! ([`crate::loadgen`]) and again with wrk ([`wrk`]), an external one.

pub mod wrk;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::db::queries as q;
use crate::db::{Database, DatabaseUrl};
use crate::domain::{ProjectSettings, now_ms};
use crate::engine::{Engine, EngineError};
use crate::loadgen::{Acknowledged, CrowdConfig, CrowdReport, percentile};
use milan_client::{Serve, ServerProcess};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// A PostgreSQL admin URL: each case gets a fresh database on that server. SQLite otherwise.
    pub postgres_admin_url: Option<String>,
    /// Exemplar sets (of three slots each) in each case's database.
    pub sets: i64,
    /// Concurrent workers, one case each.
    pub workers: Vec<usize>,
    /// Server processes on the one database, one case each (PostgreSQL only beyond 1).
    pub processes: Vec<usize>,
    pub seconds: u64,
    /// HTTP worker threads of each server process.
    pub http_threads: usize,
    /// Run the largest crowd again on this many sets (0: not).
    pub large_sets: i64,
    /// Run the servers with their default rate limits (the crowd comes from one address, so
    /// they refuse most of it; for measuring what the limits cost, not throughput).
    pub rate_limits: bool,
    /// Run the largest crowd again with the server backing up this often (`serve
    /// --backup-every`), to show what live backups cost the writers.
    pub backup_every: Option<Duration>,
    /// Who drives the crowd, one row each per case.
    pub generators: Vec<Generator>,
}

/// The load generator of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// `annotator::loadgen`: a thread per worker, each answer checked.
    Builtin,
    /// wrk with a Lua loop (`apt-get install wrk`): one connection per worker.
    Wrk,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::Builtin => "builtin",
            Generator::Wrk => "wrk",
        }
    }
}

fn fresh_database(config: &BenchConfig, dir: &Path, name: &str) -> Result<DatabaseUrl> {
    Ok(match &config.postgres_admin_url {
        None => DatabaseUrl::Sqlite(dir.join(format!("{name}.sqlite3"))),
        #[cfg(not(feature = "postgres"))]
        Some(_) => bail!("--postgres: {}", crate::db::NO_POSTGRES),
        #[cfg(feature = "postgres")]
        Some(admin) => {
            use diesel::{Connection, RunQueryDsl};
            let db = format!("milan_bench_{name}_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::pg::PgConnection::establish(admin)
                .with_context(|| format!("connect to PostgreSQL at {admin}"))?;
            diesel::sql_query(format!("CREATE DATABASE {db}")).execute(&mut conn)?;
            let (base, _) = admin
                .rsplit_once('/')
                .context("the PostgreSQL URL must end in /database")?;
            DatabaseUrl::Postgres(format!("{base}/{db}"))
        }
    })
}

/// A project `bench` of `sets` sets and a requester token for the crowd's sessions.
fn seed(url: &DatabaseUrl, sets: i64) -> Result<(Database, i64, String)> {
    let db = Database::open(url)?;
    let engine = Engine::new(db.clone());
    let mut settings = ProjectSettings::new("bench", "Benchmark");
    settings.lease_ms = 30 * 60 * 1000;
    let project = engine.create_project(&settings, now_ms())?;
    db.write(|c| -> Result<(), EngineError> { Ok(q::bulk_sets(c, project.id, sets, 3)?) })?;
    let (_, token) = crate::auth::Auth::load(&db)?.create_requester_token("bench", now_ms())?;
    Ok((db, project.id, token))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user + system) a process has used, from /proc (Linux).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// (busy, total) jiffies of the whole machine since boot.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    // idle and iowait
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// One case's figures.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub processes: usize,
    pub workers: usize,
    pub sets: i64,
    pub loops_per_s: f64,
    pub accept_p50_ms: f64,
    pub accept_p99_ms: f64,
    pub submit_p50_ms: f64,
    pub submit_p99_ms: f64,
    /// CPU cores the server processes used on average (all of them together).
    pub server_cores: f64,
    /// CPU cores this process (the load generator) used.
    pub client_cores: f64,
    /// Share of the machine's CPU time that was busy.
    pub machine_busy: f64,
    /// Sets the crowd touched, all of them checked.
    pub sets_checked: usize,
    pub generator: Generator,
    /// Backups the server wrote during the case, when it ran with `--backup-every`.
    pub backups_taken: Option<usize>,
}

pub fn run_bench(config: &BenchConfig) -> Result<Vec<CaseResult>> {
    let dir = TempDir::new()?;
    let postgres = config.postgres_admin_url.is_some();
    if !postgres && config.processes.iter().any(|&p| p != 1) {
        bail!("several server processes need PostgreSQL (--postgres URL); SQLite is served by one");
    }
    ensure!(
        !config.workers.is_empty() && !config.processes.is_empty() && !config.generators.is_empty(),
        "no case to run"
    );
    if config.generators.contains(&Generator::Wrk) && config.processes.iter().any(|&p| p != 1) {
        bail!("wrk drives one server: run --generator wrk with --processes 1");
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "annotator bench on {}, {cores} cores; {} s per case, {} HTTP threads per server, rate limits {}",
        if postgres { "PostgreSQL" } else { "SQLite" },
        config.seconds,
        config.http_threads,
        if config.rate_limits {
            "ON (the defaults)"
        } else {
            "off (--no-rate-limits)"
        }
    );
    println!(
        "one loop = accept, then submit, by one worker; latencies in ms (wrk: accepts and submits \
         together, in both columns)"
    );
    println!(
        "{:>5} {:>7} {:>9} {:>10} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "procs",
        "workers",
        "sets",
        "loops/s",
        "ratio",
        "acc p50",
        "acc p99",
        "sub p50",
        "sub p99",
        "srv cpu",
        "gen cpu",
        "busy",
        "gen"
    );
    let mut cases = Vec::new();
    for &processes in &config.processes {
        for &workers in &config.workers {
            for &generator in &config.generators {
                cases.push((processes, workers, config.sets, false, generator));
            }
        }
    }
    let largest = *config.workers.iter().max().expect("checked above");
    let fewest = *config.processes.iter().min().expect("checked above");
    let first_generator = config.generators[0];
    if config.large_sets > 0 {
        cases.push((fewest, largest, config.large_sets, false, first_generator));
    }
    if config.backup_every.is_some() {
        cases.push((fewest, largest, config.sets, true, first_generator));
    }
    let mut results: Vec<CaseResult> = Vec::new();
    for (i, &(processes, workers, sets, backups, generator)) in cases.iter().enumerate() {
        let result = run_case(
            config,
            dir.path(),
            i,
            (processes, workers, sets),
            backups,
            generator,
        )?;
        let base = results
            .first()
            .map_or(result.loops_per_s, |r| r.loops_per_s);
        println!(
            "{:>5} {:>7} {:>9} {:>10.1} {:>6.2}x {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.2} {:>7.2} {:>6.0}% {:>8}",
            processes,
            workers,
            sets,
            result.loops_per_s,
            result.loops_per_s / base,
            result.accept_p50_ms,
            result.accept_p99_ms,
            result.submit_p50_ms,
            result.submit_p99_ms,
            result.server_cores,
            result.client_cores,
            result.machine_busy * 100.0,
            generator.name(),
        );
        results.push(result);
    }
    if let Some(every) = config.backup_every
        && let Some(with) = results.last().filter(|r| r.backups_taken.is_some())
        && let Some(without) = results.iter().find(|r| {
            r.workers == with.workers
                && r.processes == with.processes
                && r.sets == with.sets
                && r.generator == with.generator
        })
    {
        println!(
            "with a backup every {:.1} s ({} taken during the case): loops/s {:.2}x, accept p99 \
             {:.2}x, submit p99 {:.2}x the same case without",
            every.as_secs_f64(),
            with.backups_taken.unwrap_or(0),
            with.loops_per_s / without.loops_per_s,
            with.accept_p99_ms / without.accept_p99_ms,
            with.submit_p99_ms / without.submit_p99_ms,
        );
    }
    if config.large_sets > 0
        && let Some(large) = results.iter().find(|r| r.sets == config.large_sets)
        && let Some(small) = results.iter().find(|r| {
            r.workers == large.workers
                && r.processes == large.processes
                && r.generator == large.generator
        })
    {
        println!(
            "accept p99 at {} sets is {:.2}x its value at {} sets",
            large.sets,
            large.accept_p99_ms / small.accept_p99_ms,
            small.sets
        );
    }
    println!(
        "guarantees held in every case: each acknowledged description stored as sent, nothing \
         stored unacknowledged, at most 3 assignments per set, never a worker twice on a set{}",
        if config.generators.contains(&Generator::Wrk) {
            " (wrk rows: as many descriptions stored as wrk counted, plus at most one per \
             worker cut off at the end, and the last two)"
        } else {
            ""
        }
    );
    Ok(results)
}

fn run_case(
    config: &BenchConfig,
    dir: &Path,
    index: usize,
    (processes, workers, sets): (usize, usize, i64),
    backups: bool,
    generator: Generator,
) -> Result<CaseResult> {
    let url = fresh_database(config, dir, &format!("case{index}"))?;
    let (db, project_id, token) = seed(&url, sets)?;
    let threads = config.http_threads.to_string();
    let mut args: Vec<String> = vec!["--workers".into(), threads];
    if !config.rate_limits {
        args.extend(Serve::NO_RATE_LIMITS.map(String::from));
    }
    let backup_dir = dir.join(format!("backups{index}"));
    if let (true, Some(every)) = (backups, config.backup_every) {
        args.extend([
            "--backup-dir".into(),
            backup_dir.display().to_string(),
            "--backup-every".into(),
            format!("{}ms", every.as_millis().max(1000)),
            "--backup-keep".into(),
            "100000".into(),
        ]);
    }
    let servers = (0..processes)
        .map(|p| {
            Serve::new(
                &std::env::current_exe()?,
                &dir.join(format!("data{index}-{p}")),
            )
            .args(url.serve_args())
            .args(&args)
            .start()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let mut crowd = CrowdConfig::new(workers, "bench", &token);
    crowd.max_duration = Duration::from_secs(config.seconds);
    let cpu = |servers: &[ServerProcess]| -> f64 {
        servers
            .iter()
            .filter_map(|s| process_cpu_seconds(s.child.id()))
            .sum()
    };
    if generator == Generator::Wrk {
        return wrk_case(
            dir,
            index,
            (processes, workers, sets),
            (&db, project_id, &token),
            &servers,
            config.seconds,
        );
    }
    let server_before = cpu(&servers);
    let client_before = process_cpu_seconds(std::process::id()).unwrap_or(0.0);
    let machine_before = machine_jiffies();
    let report = crate::loadgen::run_spread(&bases, &crowd);
    let server_after = cpu(&servers);
    let client_after = process_cpu_seconds(std::process::id()).unwrap_or(0.0);
    let machine_after = machine_jiffies();
    drop(servers);
    ensure!(
        report.surprises.is_empty() && report.transport_errors.is_empty(),
        "the crowd met unexpected answers ({:?} failed to reach the server): {:?}",
        report.transport_errors,
        report.surprises
    );
    ensure!(
        !report.acknowledged.is_empty(),
        "no submission was acknowledged"
    );
    let sets_checked = check_guarantees(&db, project_id, &report)?;
    let seconds = report.elapsed.as_secs_f64();
    let machine_busy = busy_between(machine_before, machine_after);
    Ok(CaseResult {
        processes,
        workers,
        sets,
        loops_per_s: report.acknowledged.len() as f64 / seconds,
        accept_p50_ms: ms(percentile(&report.accept_latencies, 50.0)),
        accept_p99_ms: ms(percentile(&report.accept_latencies, 99.0)),
        submit_p50_ms: ms(percentile(&report.submit_latencies, 50.0)),
        submit_p99_ms: ms(percentile(&report.submit_latencies, 99.0)),
        server_cores: (server_after - server_before) / seconds,
        client_cores: (client_after - client_before) / seconds,
        machine_busy,
        sets_checked,
        generator,
        backups_taken: backups.then(|| {
            std::fs::read_dir(&backup_dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .count()
                })
                .unwrap_or(0)
        }),
    })
}

/// A case driven by wrk: sessions minted first, then wrk for `seconds`; the check afterwards
/// counts what wrk counted (it does not say which descriptions it sent).
fn wrk_case(
    dir: &Path,
    index: usize,
    (processes, workers, sets): (usize, usize, i64),
    (db, project_id, token): (&Database, i64, &str),
    servers: &[ServerProcess],
    seconds: u64,
) -> Result<CaseResult> {
    let server = servers.first().context("a server")?;
    let api = milan_client::Api::new(&server.base);
    let tokens = (0..workers)
        .map(|w| {
            api.sign_in(token, &format!("wrk-{w:03}"))
                .map_err(|e| anyhow::anyhow!("mint a session for wrk: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let server_before = process_cpu_seconds(server.child.id()).unwrap_or(0.0);
    let machine_before = machine_jiffies();
    let case_dir = dir.join(format!("wrk{index}"));
    std::fs::create_dir_all(&case_dir)?;
    let (report, wrk_cpu) = wrk::run(&case_dir, &server.base, "bench", &tokens, seconds)?;
    let server_after = process_cpu_seconds(server.child.id()).unwrap_or(0.0);
    let machine_after = machine_jiffies();
    let (stored, states) = db.read(|c| -> Result<_, EngineError> {
        Ok((
            q::submitted_work(c, project_id)?.len() as u64,
            q::assignment_states(c, project_id)?,
        ))
    })?;
    ensure!(
        report.loops > 0 && (report.loops..=report.loops + workers as u64).contains(&stored),
        "wrk counted {} acknowledged submits and {stored} descriptions are stored (at most {} \
         may be cut off at the end)",
        report.loops,
        workers
    );
    let sets_checked = crowd_invariants(&states)?;
    let seconds = report.duration_us / 1e6;
    let machine_busy = busy_between(machine_before, machine_after);
    Ok(CaseResult {
        processes,
        workers,
        sets,
        loops_per_s: report.loops as f64 / seconds,
        accept_p50_ms: report.p50_us / 1000.0,
        accept_p99_ms: report.p99_us / 1000.0,
        submit_p50_ms: report.p50_us / 1000.0,
        submit_p99_ms: report.p99_us / 1000.0,
        server_cores: (server_after - server_before) / seconds,
        client_cores: wrk_cpu / seconds,
        machine_busy,
        sets_checked,
        generator: Generator::Wrk,
        backups_taken: None,
    })
}

/// The share of the machine's time spent busy between two readings of [`machine_jiffies`].
fn busy_between(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> f64 {
    match (before, after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => f64::NAN,
    }
}

/// The crowd guarantees, checked on the database after a run: returns how many sets were
/// touched.
fn check_guarantees(db: &Database, project_id: i64, report: &CrowdReport) -> Result<usize> {
    let (stored, states) = db.read(|c| -> Result<_, EngineError> {
        Ok((
            q::submitted_work(c, project_id)?,
            q::assignment_states(c, project_id)?,
        ))
    })?;
    let by_assignment: HashMap<&str, (&str, &str)> = stored
        .iter()
        .map(|(a, d, w, _)| (a.public_id.as_str(), (d.raw.as_str(), w.as_str())))
        .collect();
    for Acknowledged {
        assignment,
        worker,
        description,
        ..
    } in &report.acknowledged
    {
        match by_assignment.get(assignment.as_str()) {
            Some(&(d, w)) if d == description && w == worker => {}
            found => bail!("acknowledged submission {assignment} lost or changed: {found:?}"),
        }
    }
    ensure!(
        stored.len() == report.acknowledged.len(),
        "{} descriptions stored, {} acknowledged",
        stored.len(),
        report.acknowledged.len()
    );
    crowd_invariants(&states)
}

/// The crowd guarantees that hold of any database, whatever was acknowledged: no worker holds two
/// assignments of a set, and no set has more than three assignments holding a slot (the bench's
/// project takes three descriptions per set). Each row is (set, worker, state); returns how many
/// sets there are.
pub fn crowd_invariants(states: &[(i64, i64, String)]) -> Result<usize> {
    let mut holders: BTreeMap<i64, usize> = BTreeMap::new();
    let mut workers: BTreeSet<(i64, i64)> = BTreeSet::new();
    for (set, worker, state) in states {
        ensure!(
            workers.insert((*set, *worker)),
            "worker {worker} holds two assignments of set {set}"
        );
        if matches!(state.as_str(), "accepted" | "submitted" | "approved") {
            *holders.entry(*set).or_default() += 1;
        }
    }
    if let Some((set, n)) = holders.iter().find(|&(_, &n)| n > 3) {
        bail!("set {set} has {n} assignments holding slots (at most 3)");
    }
    Ok(states
        .iter()
        .map(|(set, _, _)| *set)
        .collect::<BTreeSet<_>>()
        .len())
}

/// A scratch folder removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir =
            std::env::temp_dir().join(format!("annotator-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
