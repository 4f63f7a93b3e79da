//! Running the annotator: opening the data dir and database, the demo project, the sweeper that
//! ends leases and auto-approves (inside the server, no cron), and the HTTP server with graceful
//! shutdown on SIGTERM and Ctrl-C (in-flight requests finish; nothing acknowledged is lost, since
//! every acknowledgement follows a committed transaction).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};

use crate::auth::Auth;
use crate::db::{Database, DatabaseUrl};
use crate::domain::{ProjectSettings, now_ms};
use crate::engine::Engine;
use crate::http::state::AppState;
use crate::images::ImageStore;
use crate::import;

/// The name of the project `serve` creates in an empty database.
pub const DEMO_PROJECT: &str = "demo";

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    /// Import the demo project when the database has no project.
    pub demo: bool,
    pub sweep_interval: Duration,
    pub workers: usize,
    pub web: crate::http::pages::WebConfig,
    /// `--public-url`; when absent, the bind address when it names one host.
    pub public_url: Option<crate::origin::PublicUrl>,
    /// `--trusted-proxy`: peers whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub api_limits: crate::limits::ApiLimits,
    /// `--admin-bind`: where `/metrics` (and the probes) are served, apart from the public
    /// address; none when absent.
    pub admin_bind: Option<String>,
    /// `--min-free-disk-mb`, in bytes: `/readyz` fails below it.
    pub min_free_bytes: u64,
    /// `--backup-dir`, `--backup-every`, `--backup-keep`.
    pub backups: Option<crate::backup::Schedule>,
    /// `--max-database-mb`, for SQLite.
    pub db_options: crate::db::DbOptions,
    /// `--tls-cert` and `--tls-key`: serve HTTPS itself (PEM files) instead of behind a proxy.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            demo: true,
            sweep_interval: Duration::from_secs(1),
            workers: 4,
            web: crate::http::pages::WebConfig::default(),
            public_url: None,
            trusted_proxies: Vec::new(),
            api_limits: crate::limits::ApiLimits::default(),
            admin_bind: None,
            min_free_bytes: crate::http::state::DEFAULT_MIN_FREE_MB << 20,
            backups: None,
            db_options: crate::db::DbOptions::default(),
            tls: None,
        }
    }
}

/// The database URL: the one given, or SQLite in the data dir.
pub fn database_url(data_dir: &Path, url: Option<&str>) -> DatabaseUrl {
    url.map_or_else(|| DatabaseUrl::default_for(data_dir), DatabaseUrl::parse)
}

/// Opens (and migrates) the database and everything the handlers need.
pub fn open_state(data_dir: &Path, url: Option<&str>) -> Result<AppState> {
    open_state_with(data_dir, url, crate::db::DbOptions::default())
}

/// [`open_state`] with database options.
pub fn open_state_with(
    data_dir: &Path,
    url: Option<&str>,
    options: crate::db::DbOptions,
) -> Result<AppState> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let url = database_url(data_dir, url);
    let db = Database::open_with(&url, options)?;
    let auth = Auth::load(&db)?;
    Ok(AppState::new(
        Engine::new(db),
        auth,
        ImageStore::new(data_dir),
        data_dir.to_owned(),
    ))
}

/// The public URL: the one configured, else `http://<bind>` when the bind address names one
/// host (not 0.0.0.0 or ::, which say nothing of how clients reach the server).
pub fn public_url(config: &ServeConfig) -> Option<crate::origin::PublicUrl> {
    if let Some(u) = &config.public_url {
        return Some(u.clone());
    }
    let addr: std::net::SocketAddr = config.bind.parse().ok()?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return None;
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    crate::origin::PublicUrl::parse(&format!("{scheme}://{addr}")).ok()
}

/// The TLS settings of `--tls-cert` (a PEM chain, leaf first) and `--tls-key` (a PEM private
/// key): rustls with its safe defaults (TLS 1.2 and 1.3), no client certificates.
#[cfg(feature = "tls")]
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{}: no certificate in it",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not go together")
}

/// Generates a small synthetic corpus and imports it as the demo project.
pub fn import_demo(state: &AppState) -> Result<import::ImportReport> {
    let corpus = state.data_dir.join("demo-corpus");
    let config = milan_synth::SynthConfig {
        units_per_layer: 5,
        image_size: 112,
        seed: 0,
        ..milan_synth::SynthConfig::default()
    };
    milan_synth::generate(&corpus, &config, &|| {}).context("generating the demo corpus")?;
    let settings =
        ProjectSettings::new(DEMO_PROJECT, "Describe what neurons of vision networks see");
    let report = import::import(
        &state.engine,
        &state.images,
        &settings,
        &corpus,
        now_ms(),
        &|| {},
    )?;
    Ok(report)
}

/// Backs up on the schedule until `stop`, counting each outcome in the metrics. The first backup
/// is one interval after the start (or after the newest backup already in the folder).
fn backup_thread(
    schedule: crate::backup::Schedule,
    url: DatabaseUrl,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let t = crate::telemetry::global();
        schedule.clean_unfinished();
        let newest = schedule
            .existing()
            .last()
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64);
        if let Some(at) = newest {
            t.backup(true, at);
        }
        let every = schedule.every.as_millis() as i64;
        let mut last = newest.unwrap_or_else(now_ms);
        while !stop.load(Ordering::Relaxed) {
            if now_ms() - last >= every {
                last = now_ms();
                match schedule.run_once(&url) {
                    Ok(report) => {
                        t.backup(true, now_ms());
                        tracing::info!(
                            "backup {} written ({} bytes, {} ms)",
                            report.path.display(),
                            report.bytes,
                            report.took.as_millis()
                        );
                    }
                    Err(e) => {
                        t.backup(false, now_ms());
                        tracing::error!("scheduled backup failed (will retry next time): {e:#}");
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn serve(config: ServeConfig) -> Result<()> {
    // Held while serving: a restore (which needs it alone) refuses to overwrite this database.
    let _serving = crate::backup::DbLock::serving(&database_url(
        &config.data_dir,
        config.database_url.as_deref(),
    ))?;
    let state = open_state_with(
        &config.data_dir,
        config.database_url.as_deref(),
        config.db_options.clone(),
    )?
    .with_network(crate::origin::Network::new(
        public_url(&config),
        config.trusted_proxies.clone(),
    ))
    .with_limits(config.api_limits);
    let state = AppState {
        min_free_bytes: config.min_free_bytes,
        ..state
    };
    if config.demo && state.engine.projects()?.is_empty() {
        let report = import_demo(&state)?;
        println!(
            "imported the demo project {:?}: {} exemplar sets from the synthetic corpus",
            report.project, report.sets_added
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let engine = state.engine.clone();
        let sessions = state.sessions.clone();
        let stop = stop.clone();
        let interval = config.sweep_interval;
        std::thread::spawn(move || {
            let mut last_purge = 0;
            while !stop.load(Ordering::Relaxed) {
                let now = now_ms();
                if let Err(e) = engine.sweep(now) {
                    tracing::warn!("sweep failed (will retry): {e}");
                }
                // Ended sessions are deleted a week after they ended; once a minute is plenty.
                if now - last_purge > 60_000 {
                    last_purge = now;
                    if let Err(e) = sessions.purge(now) {
                        tracing::warn!("purging old sessions failed (will retry): {e}");
                    }
                }
                std::thread::sleep(interval);
            }
        })
    };
    let backups = config
        .backups
        .clone()
        .map(|schedule| backup_thread(schedule, state.engine.db().url().clone(), stop.clone()));
    let data = web::Data::new(state.clone());
    let site = web::Data::new(crate::http::pages::Site::new(&state, config.web.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(site.clone())
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff")),
            )
            .wrap(actix_web::middleware::from_fn(crate::http::ops::observe))
            .configure(crate::http::configure)
    })
    .workers(config.workers)
    .shutdown_timeout(30)
    .disable_signals();
    let server = match &config.tls {
        #[cfg(feature = "tls")]
        Some((cert, key)) => server.bind_rustls_0_23(&config.bind, tls_config(cert, key)?),
        #[cfg(not(feature = "tls"))]
        Some(_) => anyhow::bail!(
            "--tls-cert: this annotator was built without TLS (the default `tls` feature; \
             scripts/demo leaves it out to build faster). Build it with `cargo build --release \
             --locked -p milan-annotator`, or put a TLS proxy in front (docs/deploy.md)"
        ),
        None => server.bind(&config.bind),
    }
    .with_context(|| format!("binding {}", config.bind))?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addrs = server.addrs();
    let server = server.run();
    // The admin address: metrics and probes, one thread, on its own listener so that a scraper
    // never competes with workers for the public one and the public one never shows metrics.
    let admin = match &config.admin_bind {
        Some(bind) => {
            let data = web::Data::new(state.clone());
            let admin = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .configure(crate::http::ops::configure_admin)
            })
            .workers(1)
            .disable_signals()
            .bind(bind)
            .with_context(|| format!("binding the admin address {bind}"))?;
            for addr in admin.addrs() {
                say(&format!(
                    "annotator admin (metrics, probes) on http://{addr}"
                ));
            }
            Some(admin.run())
        }
        None => None,
    };
    let admin_handle = admin.as_ref().map(|a| a.handle());
    if let Some(admin) = admin {
        actix_web::rt::spawn(admin);
    }
    // Our own handlers, installed before "listening" is printed, so that a signal sent the moment
    // a supervisor sees that line is never the default (immediate) death.
    let handle = server.handle();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        // Not println!: it panics when stdout is a closed pipe (a supervisor that died), and a
        // panic here would leave the server running and deaf to every later signal.
        say("annotator stopping: finishing requests in flight");
        handle.stop(true).await;
        if let Some(admin) = admin_handle {
            admin.stop(true).await;
        }
    });
    for addr in addrs {
        say(&format!(
            "annotator listening on {scheme}://{addr} ({})",
            state.engine.db().url()
        ));
    }
    server.await?;
    stop.store(true, Ordering::Relaxed);
    let _ = sweeper.join();
    if let Some(b) = backups {
        let _ = b.join();
    }
    say("annotator stopped");
    Ok(())
}

/// A line on stdout for whoever supervises the server; a closed stdout is not an error.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
