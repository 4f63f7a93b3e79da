//! `annotator bench`.

use super::*;

/// Measure the worker loop (accept, then submit) over HTTP: loops/s, p50/p99 per request
/// kind and CPU, per crowd size and server process count, then check the crowd guarantees.
/// Uses temporary databases; the servers run with --no-rate-limits unless --rate-limits.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A PostgreSQL admin URL (postgres://user@host:port/postgres): each case gets a fresh
    /// database there. SQLite in a scratch folder by default.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Exemplar sets (three slots each) in each case's database.
    #[arg(long, default_value_t = 10_000)]
    pub sets: i64,
    /// Concurrent workers, one case each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub workers: Vec<usize>,
    /// Server processes on the one database, one case each (comma-separated; PostgreSQL
    /// only beyond 1), e.g. 1,2,4.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub processes: Vec<usize>,
    /// Seconds per case.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// HTTP worker threads of each server process.
    #[arg(long, default_value_t = 4)]
    pub http_threads: usize,
    /// Run the largest crowd again on this many sets (e.g. 1000000; 0: not).
    #[arg(long, default_value_t = 0)]
    pub large_sets: i64,
    /// Keep the servers' default rate limits on (they refuse most of a one-address crowd).
    #[arg(long)]
    pub rate_limits: bool,
    /// Run the largest crowd again with the server backing up this often (e.g. 1s), to show
    /// what live backups cost the writers.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub backup_every: Option<std::time::Duration>,
    /// Load generators, one row each per case (comma-separated): `builtin` (ours, each answer
    /// checked) and `wrk` (external, `apt-get install wrk`; one server process only).
    #[arg(long, value_delimiter = ',', default_value = "builtin")]
    pub generator: Vec<milan_annotator::bench::Generator>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        postgres,
        sets,
        workers,
        processes,
        seconds,
        http_threads,
        large_sets,
        rate_limits,
        backup_every,
        generator,
    } = args;
    milan_annotator::bench::run_bench(&milan_annotator::bench::BenchConfig {
        postgres_admin_url: postgres,
        sets,
        workers,
        processes,
        seconds,
        http_threads,
        large_sets,
        rate_limits,
        backup_every,
        generators: generator,
    })
    .map(|_| ())
}
