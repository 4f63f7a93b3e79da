//! What the server counts about itself, for Prometheus: one process-wide registry (`global`),
//! recorded into from wherever the event happens (the HTTP middleware, the group commit, the rate
//! limiter, sign-in) and encoded by the `prometheus-client` crate when `/metrics` is scraped on the
//! admin address. Gauges that describe the database (assignments by state, live leases, size,
//! the age of the last write and of the last backup) are set at scrape time by the caller.
//!
//! Nothing here knows the database or HTTP: it depends on no other module of the crate, so every
//! layer may record into it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern (`/api/v1/assignments/{id}/submit`), never the concrete path: ids and
    /// tokens stay out of the labels, and the number of series stays bounded.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub batch_size: Histogram,
    pub batch_commit_seconds: Histogram,
    pub wal_sync_seconds: Histogram,
    pub commit_failures: Counter,
    pub rate_limited: Family<KindLabel, Counter>,
    pub signin_failures: Family<KindLabel, Counter>,
    pub assignments: Family<StateLabel, Gauge>,
    pub live_leases: Gauge,
    pub database_bytes: Gauge,
    pub last_write_age_seconds: Gauge,
    pub backup_age_seconds: Gauge,
    pub backups: Family<KindLabel, Counter>,
    last_write_ms: AtomicI64,
    last_backup_ms: AtomicI64,
}

/// Request latencies: 0.25 ms to about 8 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Telemetry {
    fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("annotator");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let latency: Family<RequestLabels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer's head, by route, method and status",
            latency.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 8));
        registry.register(
            "group_commit_batch_size",
            "Write requests committed together by one SQLite commit",
            batch_size.clone(),
        );
        let batch_commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "group_commit_commit_seconds",
            "Time of one group commit's COMMIT (without the log's sync: wal_sync_seconds)",
            batch_commit_seconds.clone(),
        );
        let wal_sync_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "wal_sync_seconds",
            "Time of one sync of the SQLite write-ahead log (it makes every batch committed \
             before it began durable)",
            wal_sync_seconds.clone(),
        );
        let commit_failures = Counter::default();
        registry.register(
            "group_commit_failures",
            "Batches that failed to commit (none of their writes was acknowledged)",
            commit_failures.clone(),
        );
        let rate_limited = Family::<KindLabel, Counter>::default();
        registry.register(
            "rate_limit_refusals",
            "Requests refused by a rate limit (429), by limit",
            rate_limited.clone(),
        );
        let signin_failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "signin_failures",
            "Failed sign-ins, by kind (worker password, worker code, requester)",
            signin_failures.clone(),
        );
        let assignments = Family::<StateLabel, Gauge>::default();
        registry.register(
            "assignments",
            "Assignments by state, at the last scrape",
            assignments.clone(),
        );
        let live_leases = Gauge::default();
        registry.register(
            "live_leases",
            "Accepted assignments whose lease has not ended, at the last scrape",
            live_leases.clone(),
        );
        let database_bytes = Gauge::default();
        registry.register(
            "database_bytes",
            "Size of the SQLite database and its write-ahead log (PostgreSQL: the database)",
            database_bytes.clone(),
        );
        let last_write_age_seconds = Gauge::default();
        registry.register(
            "last_write_age_seconds",
            "Seconds since this process last committed a write (-1: none yet)",
            last_write_age_seconds.clone(),
        );
        let backup_age_seconds = Gauge::default();
        registry.register(
            "backup_age_seconds",
            "Seconds since the newest backup in --backup-dir was written (-1: none)",
            backup_age_seconds.clone(),
        );
        let backups = Family::<KindLabel, Counter>::default();
        registry.register(
            "backups",
            "Scheduled backups by outcome (ok, failed)",
            backups.clone(),
        );
        Telemetry {
            registry,
            requests,
            latency,
            batch_size,
            batch_commit_seconds,
            wal_sync_seconds,
            commit_failures,
            rate_limited,
            signin_failures,
            assignments,
            live_leases,
            database_bytes,
            last_write_age_seconds,
            backup_age_seconds,
            backups,
            last_write_ms: AtomicI64::new(-1),
            last_backup_ms: AtomicI64::new(-1),
        }
    }

    pub fn request(&self, labels: RequestLabels, seconds: f64) {
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// A group commit: its size and how long its COMMIT took.
    pub fn batch(&self, members: usize, commit_seconds: f64) {
        self.batch_size.observe(members as f64);
        self.batch_commit_seconds.observe(commit_seconds);
    }

    /// A sync of the write-ahead log: how long it took, and when it made writes durable.
    pub fn wal_synced(&self, seconds: f64, now_ms: i64) {
        self.wal_sync_seconds.observe(seconds);
        self.wrote(now_ms);
    }

    /// A write became durable (a group commit, or a PostgreSQL transaction).
    pub fn wrote(&self, now_ms: i64) {
        self.last_write_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn rate_limited(&self, kind: &str) {
        self.rate_limited
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    pub fn signin_failed(&self, kind: &str) {
        self.signin_failures
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    pub fn backup(&self, ok: bool, now_ms: i64) {
        self.backups
            .get_or_create(&KindLabel {
                kind: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
        if ok {
            self.last_backup_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// The exposition text, with the time-based gauges set for `now_ms`.
    pub fn encode(&self, now_ms: i64) -> String {
        let age = |t: i64| if t < 0 { -1 } else { (now_ms - t) / 1000 };
        self.last_write_age_seconds
            .set(age(self.last_write_ms.load(Ordering::Relaxed)));
        self.backup_age_seconds
            .set(age(self.last_backup_ms.load(Ordering::Relaxed)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's telemetry.
pub fn global() -> &'static Telemetry {
    static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
    GLOBAL.get_or_init(Telemetry::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_help_and_type() {
        let t = Telemetry::new();
        t.request(
            RequestLabels {
                route: "/api/v1/assignments/{id}/submit".into(),
                method: "POST".into(),
                status: 200,
            },
            0.003,
        );
        t.batch(5, 0.000_3);
        t.wal_synced(0.002, 1_000);
        t.rate_limited("api-worker");
        let text = t.encode(4_000);
        for line in [
            "# TYPE annotator_http_requests counter",
            "annotator_http_requests_total{route=\"/api/v1/assignments/{id}/submit\",method=\"POST\",status=\"200\"} 1",
            "# TYPE annotator_http_request_duration_seconds histogram",
            "annotator_group_commit_batch_size_count 1",
            "annotator_wal_sync_seconds_count 1",
            "annotator_rate_limit_refusals_total{kind=\"api-worker\"} 1",
            "annotator_last_write_age_seconds 3",
            "annotator_backup_age_seconds -1",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }
}
