//! What operators and their tools ask the server, apart from the work: `/healthz` (the process
//! answers), `/readyz` (it can do its job: the database reachable and writable, its schema
//! current, disk to grow into), `/metrics` (Prometheus, on the admin address only), and the
//! middleware that gives every request an id, a log line and its place in the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use serde_json::json;
use tracing::Instrument;

use crate::db::queries as q;
use crate::domain::now_ms;
use crate::http::state::AppState;
use crate::telemetry::{self, RequestLabels, StateLabel};

/// The header that carries a request's id back to the client (and names it in the logs).
pub const REQUEST_ID: &str = "x-request-id";

/// One request: an id (a new UUID; a client's own is not trusted), a tracing span that every log
/// line of the request carries, its latency and status in the metrics by route pattern, and an
/// `info` line when it ends. Only the method, the route pattern (`/a/{id}/submit`), the status
/// and the time are logged: never the path's values, the query, a header or a body, so no token,
/// password, code or cookie can reach a log line.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let method = req.method().to_string();
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, method = %method);
    let result = next.call(req).instrument(span.clone()).await;
    let seconds = started.elapsed().as_secs_f64();
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status().as_u16()),
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    span.in_scope(|| {
        tracing::info!(
            target: "annotator::request",
            route = %route,
            status,
            ms = (seconds * 1000.0 * 10.0).round() / 10.0,
            "request"
        );
    });
    telemetry::global().request(
        RequestLabels {
            route,
            method,
            status,
        },
        seconds,
    );
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(header::HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(res)
}

/// The process answers: for a supervisor's liveness probe. Touches nothing.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "status": "alive" }))
}

/// One check of readiness: its name and what it found, or why it failed.
type Check = (&'static str, Result<String, String>);

/// What `/readyz` checks, each on its own (a failing one does not hide the others).
pub fn readiness(state: &AppState) -> Vec<Check> {
    let db = state.engine.db();
    let reachable = db
        .conn()
        .map_err(|e| e.to_string())
        .and_then(|mut c| crate::db::pending_migrations(&mut c).map_err(|e| e.to_string()));
    let (database, migrations) = match reachable {
        Ok(pending) if pending.is_empty() => (Ok("reachable".into()), Ok("current".into())),
        Ok(pending) => (
            Ok("reachable".into()),
            Err(format!("{} pending: {}", pending.len(), pending.join(", "))),
        ),
        Err(e) => (Err(e), Err("unknown: the database is unreachable".into())),
    };
    let writable = db
        .write(|c| q::touch(c).map_err(crate::db::DbError::from))
        .map(|()| "a write transaction committed".into())
        .map_err(|e| e.to_string());
    let disk = match free_bytes(&state.data_dir) {
        Some(free) if free >= state.min_free_bytes => Ok(format!("{} MiB free", free >> 20)),
        Some(free) => Err(format!(
            "{} MiB free in {}, under the {} MiB asked for (--min-free-disk-mb)",
            free >> 20,
            state.data_dir.display(),
            state.min_free_bytes >> 20
        )),
        None => Err(format!(
            "cannot read the free space of {}",
            state.data_dir.display()
        )),
    };
    vec![
        ("database", database),
        ("writable", writable),
        ("migrations", migrations),
        ("disk", disk),
    ]
}

/// Free bytes for an unprivileged writer on the file system that holds `dir`.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a valid out-pointer for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Ready when every check passes: 200, else 503 (a load balancer takes the server out).
async fn readyz(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.clone();
    let checks = web::block(move || readiness(&st)).await?;
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks
            .iter()
            .map(|(name, r)| (name.to_string(), match r {
                Ok(ok) => json!({ "ok": true, "detail": ok }),
                Err(e) => json!({ "ok": false, "detail": e }),
            }))
            .collect::<serde_json::Map<_, _>>(),
    });
    let mut res = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    Ok(res
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// The database's gauges, read now (assignments by state, live leases, size).
fn database_gauges(state: &AppState) {
    let t = telemetry::global();
    let now = now_ms();
    if let Ok((by_state, live)) = state
        .engine
        .db()
        .read(|c| q::state_counts(c, now).map_err(crate::db::DbError::from))
    {
        for (s, n) in by_state {
            t.assignments.get_or_create(&StateLabel { state: s }).set(n);
        }
        t.live_leases.set(live);
    }
    if let crate::db::DatabaseUrl::Sqlite(path) = state.engine.db().url() {
        let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        t.database_bytes
            .set((size(path.clone()) + size(wal.into())) as i64);
    }
}

/// Prometheus's text exposition of every metric.
async fn metrics(state: web::Data<AppState>) -> actix_web::Result<HttpResponse> {
    let st = state.clone();
    let text = web::block(move || {
        database_gauges(&st);
        telemetry::global().encode(now_ms())
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

/// The probes, on the public address too (a load balancer reaches them there).
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// The admin address: the probes and `/metrics`, for a private network or loopback only.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    configure_probes(cfg);
    cfg.route("/metrics", web::get().to(metrics));
}
