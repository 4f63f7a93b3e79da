//! `annotator serve`.

use super::*;

/// Serve the JSON API (and, when the database is empty, a demo project).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    #[command(flatten)]
    pub storage: Storage,
    /// Do not create the demo project in an empty database.
    #[arg(long)]
    pub no_demo: bool,
    /// How often leases are ended and submitted work auto-approved, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Another origin that MTurk's `turkSubmitTo` may name besides www.mturk.com and
    /// workersandbox.mturk.com (a stand-in for tests); repeatable.
    #[arg(long = "mturk-origin")]
    pub mturk_origins: Vec<String>,
    /// Where workers and requesters reach the server, e.g. https://annotator.example.org:
    /// entry URLs on the dashboard, image URLs in the MTurk CSV, Secure cookies over https.
    /// Never taken from the Host header. Default: http://<bind> when --bind names one host.
    #[arg(long)]
    pub public_url: Option<String>,
    /// A reverse proxy (address or CIDR) whose X-Forwarded-For and X-Forwarded-Proto are
    /// believed; from anyone else they are ignored. Repeatable.
    #[arg(long = "trusted-proxy")]
    pub trusted_proxies: Vec<String>,
    /// API accepts, submits and returns per minute per worker session (0: no limit).
    #[arg(long, default_value_t = 60)]
    pub api_limit_per_credential: u32,
    /// API accepts, submits and returns per minute per client address (0: no limit).
    #[arg(long, default_value_t = 600)]
    pub api_limit_per_address: u32,
    /// Turn the API's rate limits off (both of the above), for benchmarks and load tests
    /// whose whole crowd comes from one address. Sign-in throttles, which count only
    /// failures, stay on.
    #[arg(long, conflicts_with_all = ["api_limit_per_credential", "api_limit_per_address"])]
    pub no_rate_limits: bool,
    /// Serve Prometheus metrics (`/metrics`) and the probes on this address too, e.g.
    /// 127.0.0.1:9464. Keep it off the internet: metrics are not authenticated.
    #[arg(long)]
    pub admin_bind: Option<String>,
    /// `/readyz` fails when the data dir's file system has less free space than this.
    #[arg(long, default_value_t = milan_annotator::http::state::DEFAULT_MIN_FREE_MB)]
    pub min_free_disk_mb: u64,
    /// Back the database up into this folder on a schedule (`annotator-<UTC time>.backup`, the
    /// same files `annotator backup` writes and `annotator restore` reads).
    #[arg(long)]
    pub backup_dir: Option<std::path::PathBuf>,
    /// How often, e.g. 1h, 30m, 1day.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_every: std::time::Duration,
    /// How many scheduled backups to keep (the oldest beyond it are removed).
    #[arg(long, default_value_t = 48)]
    pub backup_keep: usize,
    /// SQLite: the most the database may grow to, in MiB (fractions allowed). Past it writes are
    /// refused with 503 as on a full disk, nothing half-stored, until pages are free again.
    #[arg(long)]
    pub max_database_mb: Option<f64>,
    /// Serve HTTPS itself with this certificate chain (PEM, leaf first), e.g. Let's Encrypt's
    /// fullchain.pem; needs --tls-key. Without it, put a TLS proxy in front (docs/deploy.md).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        bind,
        storage,
        no_demo,
        sweep_interval_ms,
        workers,
        mturk_origins,
        public_url,
        trusted_proxies,
        api_limit_per_credential,
        api_limit_per_address,
        no_rate_limits,
        admin_bind,
        min_free_disk_mb,
        backup_dir,
        backup_every,
        backup_keep,
        max_database_mb,
        tls_cert,
        tls_key,
    } = args;
    let public_url = parse_public_url(public_url.as_deref())?;
    let trusted_proxies = trusted_proxies
        .iter()
        .map(|p| milan_annotator::origin::parse_proxy(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let config = ServeConfig {
        bind,
        data_dir: storage.data_dir,
        database_url: storage.database_url,
        demo: !no_demo,
        sweep_interval: std::time::Duration::from_millis(sweep_interval_ms.max(10)),
        workers: workers.max(1),
        web: milan_annotator::http::pages::WebConfig {
            extra_mturk_origins: mturk_origins,
        },
        public_url,
        trusted_proxies,
        api_limits: if no_rate_limits {
            milan_annotator::limits::ApiLimits::off()
        } else {
            milan_annotator::limits::ApiLimits::per_minute(
                api_limit_per_credential,
                api_limit_per_address,
            )
        },
        admin_bind,
        min_free_bytes: min_free_disk_mb.saturating_mul(1 << 20),
        backups: backup_dir.map(|dir| milan_annotator::backup::Schedule {
            dir,
            every: backup_every.max(std::time::Duration::from_secs(1)),
            keep: backup_keep.max(1),
        }),
        tls: tls_cert.zip(tls_key),
        db_options: milan_annotator::db::DbOptions {
            sqlite_max_bytes: max_database_mb.map(|mb| (mb.max(0.0) * 1_048_576.0) as u64),
            ..Default::default()
        },
    };
    actix_web::rt::System::new().block_on(server::serve(config))
}
