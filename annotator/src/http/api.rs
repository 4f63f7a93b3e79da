//! The JSON API under /api/v1: the contract of the web pages, the trainer and outside scripts.
//! Handlers authenticate, then read the body (so a stranger's large body is never read or
//! parsed), call the engine (on a blocking thread), and render; no rules live here.
//!
//! Who may call what (docs/security.md): a worker holds a session token, from a password, a
//! one-time code, or minted for an integration with the requester's token; never from a bare id.
//! Requester routes take a requester API token (`annotator requester-token`).
//!
//! Errors are JSON `{"error": "..."}` with the status that says what went wrong: 400 malformed
//! request, 401 no or bad token, 403 not yours / blocked, 404 no such thing, 409 wrong state or
//! lease over, 413 too large, 415 not JSON, 422 a rule refused the content, 429 too many requests
//! (with `Retry-After`), 500 anything else (logged, opaque).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::accounts::{Accounts, validate_local_worker_id};
use crate::db::queries as q;
use crate::domain::{ProjectSettings, now_ms};
use crate::engine::{Bonus, EngineError, Paid};
use crate::http::downloads::{self, ExportQuery};
use crate::http::errors::ApiError;
use crate::http::extract::{Requester, Worker, bearer, limit, requester_token, worker_session};
use crate::http::state::AppState;
use crate::limits;
use crate::sessions::{Entry, Session, Via};
use milan_shared::wire;

/// Every route: (method, path, summary). `openapi.json` is generated from this table and a test
/// holds the router to it.
pub const ROUTES: &[(&str, &str, &str)] = &[
    (
        "post",
        "/api/v1/workers/session",
        "Start a worker session with a credential: {worker_id, password} or {code}; or, with the requester's token, {worker_id} for an integration -> {token, session_id, expires_at}",
    ),
    (
        "delete",
        "/api/v1/workers/session",
        "Worker: end this session (sign out)",
    ),
    (
        "get",
        "/api/v1/workers/me/assignments",
        "Worker: live assignments (accepted, lease not over) in every project",
    ),
    (
        "post",
        "/api/v1/projects/{project}/assignments",
        "Accept the next exemplar set (201); a worker who holds the project's cap of live leases gets the oldest back (200, resumed: true); 204 when none is left for this worker",
    ),
    (
        "post",
        "/api/v1/assignments/{id}/submit",
        "Submit a description; idempotent, optional Idempotency-Key header",
    ),
    (
        "post",
        "/api/v1/assignments/{id}/return",
        "Give an accepted assignment back",
    ),
    (
        "post",
        "/api/v1/assignments/{id}/approve",
        "Requester: approve submitted work",
    ),
    (
        "post",
        "/api/v1/assignments/{id}/reject",
        "Requester: reject submitted work with feedback; the slot reopens",
    ),
    (
        "post",
        "/api/v1/workers/{worker}/bonus",
        "Requester: pay a bonus {cents, reason, assignment_id? | project?}; needs an Idempotency-Key header (the same key never pays twice); at most the project's max_bonus_cents",
    ),
    (
        "post",
        "/api/v1/workers/{worker}/block",
        "Requester: block a worker from new assignments {reason}",
    ),
    (
        "delete",
        "/api/v1/workers/{worker}/block",
        "Requester: unblock a worker",
    ),
    (
        "get",
        "/api/v1/workers/{worker}/sessions",
        "Requester: a worker's live sessions",
    ),
    (
        "delete",
        "/api/v1/workers/{worker}/sessions",
        "Requester: end every session of a worker",
    ),
    (
        "delete",
        "/api/v1/sessions/{id}",
        "Requester: end one session",
    ),
    ("get", "/api/v1/projects", "Requester: list projects"),
    ("post", "/api/v1/projects", "Requester: create a project"),
    (
        "get",
        "/api/v1/projects/{project}/progress",
        "Requester: progress per model key and layer",
    ),
    (
        "get",
        "/api/v1/projects/{project}/descriptions",
        "Requester: description events (submitted, approved, rejected) after a cursor, as JSON lines (?after, limit, status=approved|all)",
    ),
    (
        "post",
        "/api/v1/projects/{project}/model-descriptions",
        "Requester (the trainer): a model's descriptions of a round {round, system, descriptions: [{model, layer, unit, description?, priority?}]}, all or nothing; an item without a description sets only the priority",
    ),
    (
        "get",
        "/api/v1/projects/{project}/model-agreement",
        "Requester: BLEU of the model's descriptions against the completed human ones, per layer, round and system",
    ),
    (
        "post",
        "/api/v1/projects/{project}/ordering",
        "Requester: {by_priority: bool}: accept-next hands out the sets of highest priority first",
    ),
    (
        "post",
        "/api/v1/projects/{project}/catalog",
        "Requester: {public: bool}: anyone may read the project's catalog at /catalog/{project}/, or only the requester",
    ),
    (
        "get",
        "/api/v1/projects/{project}/export",
        "Requester: export (?format=milannotations|mturk-csv|jsonl; milannotations: &units=annotated|all, &compression=gzip|none; streamed)",
    ),
    ("get", "/api/v1/openapi.json", "This description"),
    (
        "get",
        "/images/{hash}.png",
        "An exemplar image by content hash",
    ),
];

type Result<T> = std::result::Result<T, ApiError>;

/// The largest body of most routes.
const BODY_LIMIT: usize = 16 * 1024;
/// The largest body of a model-descriptions post (a round of a whole MILANNOTATIONS-sized
/// project: ~20k sets).
const MODEL_DESCRIPTIONS_LIMIT: usize = 32 * 1024 * 1024;

fn human_bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Reads and parses a JSON body of at most `limit` bytes. Called after authentication: the body
/// of a request without a valid credential is never read.
async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::NotJson);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge(human_bytes(limit)));
    }
    let bytes = match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(ApiError::BadRequest(format!("reading the body: {e}"))),
        Err(_) => return Err(ApiError::TooLarge(human_bytes(limit))),
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> Result<T> {
    web::block(f).await?
}

/// A worker session needs a credential: the worker's password, a one-time code, or (for an
/// integration that signs its own crowd in) the requester's token with the worker's id.
async fn session(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let now = now_ms();
    let address = state.net.client_key(&req);
    let minted_by = match req.headers().get(header::AUTHORIZATION) {
        Some(_) => Some(requester_token(&state, &req).await?),
        None => None,
    };
    match minted_by {
        Some(token_id) => limit(
            &state,
            &format!("api-mint:{token_id}"),
            Some(limits::SESSIONS_PER_REQUESTER_TOKEN),
        )?,
        None => limit(
            &state,
            &format!("api-session-ip:{address}"),
            Some(limits::SESSIONS_PER_ADDRESS),
        )?,
    }
    let body: wire::SessionRequest = read_json(&req, payload, BODY_LIMIT).await?;
    let st = state.clone();
    let (token, session) = blocking(move || {
        let accounts = Accounts::new(st.engine.db().clone());
        let worker = match (minted_by, body) {
            (
                Some(_),
                wire::SessionRequest {
                    worker_id: Some(w),
                    password: None,
                    code: None,
                },
            ) => {
                validate_local_worker_id(&w)?;
                return Ok(st
                    .sessions
                    .start_worker(&w, Via::Requester, &Entry::Local, now)?);
            }
            (Some(_), _) => {
                return Err(ApiError::BadRequest(
                    "with the requester's token, send only {\"worker_id\": ...}".into(),
                ));
            }
            (
                None,
                wire::SessionRequest {
                    worker_id: None,
                    password: None,
                    code: Some(code),
                },
            ) => {
                st.limiter
                    .sign_in_allowed("api", &address, "", true, now)
                    .map_err(ApiError::TooMany)?;
                let worker = accounts.redeem_worker_code(&code, now)?;
                if worker.is_none() {
                    // A wrong code counts against the address, as a wrong password does.
                    st.limiter.sign_in_failed("api", &address, "", true, now);
                }
                (worker, Via::Code)
            }
            (
                None,
                wire::SessionRequest {
                    worker_id: Some(w),
                    password: Some(p),
                    code: None,
                },
            ) => {
                st.limiter
                    .sign_in_allowed("api", &address, &w, false, now)
                    .map_err(ApiError::TooMany)?;
                let ok = accounts.check_worker_password(&w, &p)?;
                if ok {
                    st.limiter.signed_in("api", &address, &w, now);
                } else {
                    st.limiter.sign_in_failed("api", &address, &w, false, now);
                }
                (ok.then_some(w), Via::Password)
            }
            (
                None,
                wire::SessionRequest {
                    worker_id: Some(_),
                    password: None,
                    code: None,
                },
            ) => {
                return Err(ApiError::Unauthorized(
                    "a worker session needs a credential: {worker_id, password}, {code}, or the \
                     requester's token for an integration"
                        .into(),
                ));
            }
            (None, _) => {
                return Err(ApiError::BadRequest(
                    "send {\"worker_id\", \"password\"} or {\"code\"}".into(),
                ));
            }
        };
        match worker {
            (Some(w), via) => Ok(st.sessions.start_worker(&w, via, &Entry::Local, now)?),
            (None, _) => Err(ApiError::Unauthorized(
                "that worker id and password, or that code, did not work (codes work once)".into(),
            )),
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(wire::Session {
        token,
        worker_id: session.worker().map(str::to_owned),
        session_id: session.public_id,
        expires_at: session.expires_at,
    }))
}

/// Ends the caller's own session.
async fn end_session(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    worker_session(&state, &req).await?;
    let token = bearer(&req)?.to_owned();
    let st = state.clone();
    blocking(move || Ok(st.sessions.end(&token, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "signed out" })))
}

fn wire_set(set: &q::SetRow) -> std::result::Result<wire::Set, EngineError> {
    let exemplars = crate::import::StoredExemplar::of_set(set)?;
    Ok(wire::Set {
        id: set.id,
        model: set.model.clone(),
        layer: set.layer.clone(),
        unit: set.unit,
        images: exemplars
            .iter()
            .map(crate::import::StoredExemplar::view_url)
            .collect(),
    })
}

async fn my_assignments(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let session = worker_session(&state, &req).await?;
    let worker = session.worker().unwrap_or_default().to_owned();
    let st = state.clone();
    let mut work = blocking(move || Ok(st.engine.live_work(&worker, now_ms())?)).await?;
    work.retain(|(_, _, project)| session.entry.may_work_in(project).is_ok());
    let mut out = Vec::with_capacity(work.len());
    for (a, set, project) in &work {
        out.push(wire::LiveAssignment {
            assignment_id: a.public_id.clone(),
            project: project.clone(),
            set: wire_set(set)?,
            accepted_at: a.accepted_at,
            expires_at: a.expires_at,
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn accept(
    state: web::Data<AppState>,
    Worker(worker, entry): Worker,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let project = path.into_inner();
    entry.may_work_in(&project)?;
    let st = state.clone();
    let accepted =
        blocking(move || Ok(st.engine.accept_next(&project, &worker, now_ms())?)).await?;
    Ok(match accepted {
        None => HttpResponse::NoContent().finish(),
        Some(a) => {
            let body = wire::Accepted {
                set: wire_set(&a.set)?,
                assignment_id: a.assignment.public_id,
                expires_at: a.assignment.expires_at,
                instructions: a.project.instructions,
                title: a.project.title,
                resumed: a.resumed,
            };
            if a.resumed {
                HttpResponse::Ok().json(body)
            } else {
                HttpResponse::Created().json(body)
            }
        }
    })
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>> {
    match req.headers().get("Idempotency-Key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::BadRequest("Idempotency-Key must be visible ASCII".into())
            })?;
            if key.is_empty() || key.len() > 128 {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 128 characters".into(),
                ));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

/// A session from a platform's entry page acts only on assignments of its own project (one read,
/// only for such sessions: the API's own workers skip it).
fn in_scope(
    st: &AppState,
    entry: &Entry,
    assignment: &str,
) -> std::result::Result<(), EngineError> {
    if entry.scope().is_some() {
        entry.may_work_in(&st.engine.assignment_with_set(assignment)?.project.name)?;
    }
    Ok(())
}

async fn submit(
    state: web::Data<AppState>,
    Worker(worker, entry): Worker,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let key = idempotency_key(&req)?;
    let body: wire::SubmitRequest = read_json(&req, payload, BODY_LIMIT).await?;
    let id = path.into_inner();
    let st = state.clone();
    let response = blocking(move || {
        in_scope(&st, &entry, &id)?;
        Ok(st
            .engine
            .submit(&id, &worker, &body.description, key.as_deref(), now_ms())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn return_assignment(
    state: web::Data<AppState>,
    Worker(worker, entry): Worker,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let st = state.clone();
    blocking(move || {
        in_scope(&st, &entry, &id)?;
        Ok(st.engine.return_assignment(&id, &worker, now_ms())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "returned" })))
}

async fn approve(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.approve(&id, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "approved" })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    feedback: String,
}

async fn reject(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body: RejectBody = read_json(&req, payload, BODY_LIMIT).await?;
    let id = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.reject(&id, &body.feedback, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "rejected" })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BonusBody {
    cents: i64,
    reason: String,
    assignment_id: Option<String>,
    project: Option<String>,
}

async fn bonus(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let key = idempotency_key(&req)?.ok_or_else(|| {
        ApiError::BadRequest(
            "a bonus needs an Idempotency-Key header (any string unique to this payment), so \
             that a retried request does not pay twice"
                .into(),
        )
    })?;
    let body: BonusBody = read_json(&req, payload, BODY_LIMIT).await?;
    let worker = path.into_inner();
    let st = state.clone();
    let paid = blocking(move || {
        Ok(st.engine.bonus(
            &Bonus {
                worker: &worker,
                cents: body.cents,
                reason: &body.reason,
                assignment: body.assignment_id.as_deref(),
                project: body.project.as_deref(),
                idempotency_key: &key,
            },
            now_ms(),
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": match paid { Paid::Paid => "paid", Paid::AlreadyPaid => "already paid" },
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    reason: String,
}

async fn block(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body: BlockBody = read_json(&req, payload, BODY_LIMIT).await?;
    let worker = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.block(&worker, &body.reason, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "blocked" })))
}

async fn unblock(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let worker = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.unblock(&worker, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "unblocked" })))
}

fn session_json(s: &Session) -> serde_json::Value {
    json!({
        "session_id": s.public_id,
        "worker": s.worker(),
        "via": s.via.as_str(),
        "created_at": s.created_at,
        "expires_at": s.expires_at,
    })
}

async fn worker_sessions(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let worker = path.into_inner();
    let st = state.clone();
    let list = blocking(move || Ok(st.sessions.list(Some(&worker), now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(session_json).collect::<Vec<_>>()))
}

async fn end_worker_sessions(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let worker = path.into_inner();
    let st = state.clone();
    let ended = blocking(move || Ok(st.sessions.revoke_worker(&worker, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "ended": ended })))
}

async fn end_one_session(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let id = path.into_inner();
    let st = state.clone();
    let ended = blocking(move || Ok(st.sessions.revoke(&id, now_ms())?)).await?;
    if !ended {
        return Err(EngineError::NotFound("no live session with that id".into()).into());
    }
    Ok(HttpResponse::Ok().json(json!({ "ended": 1 })))
}

fn project_json(p: &q::ProjectRow) -> serde_json::Value {
    json!({
        "name": p.name,
        "title": p.title,
        "instructions": p.instructions,
        "reward_cents": p.reward_cents,
        "assignments_per_set": p.assignments_per_set,
        "lease_ms": p.lease_ms,
        "auto_approve_ms": p.auto_approve_ms,
        "qualification_required": p.qualification_required,
        "prolific_completion_code": p.prolific_completion_code,
        "mturk": p.mturk_enabled,
        "catalog_public": p.catalog_public,
        "max_live_per_worker": p.max_live_per_worker,
        "max_bonus_cents": p.max_bonus_cents,
        "created_at": p.created_at,
    })
}

async fn list_projects(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
) -> Result<HttpResponse> {
    let st = state.clone();
    let projects = blocking(move || Ok(st.engine.projects()?)).await?;
    Ok(HttpResponse::Ok().json(projects.iter().map(project_json).collect::<Vec<_>>()))
}

async fn create_project(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let settings: ProjectSettings = read_json(&req, payload, BODY_LIMIT).await?;
    let st = state.clone();
    let project = blocking(move || Ok(st.engine.create_project(&settings, now_ms())?)).await?;
    Ok(HttpResponse::Created().json(project_json(&project)))
}

async fn progress(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let project = path.into_inner();
    let st = state.clone();
    let rows = blocking(move || Ok(st.reports.progress(&project)?)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    after: Option<i64>,
    limit: Option<i64>,
    status: Option<String>,
}

async fn descriptions(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse> {
    let project = path.into_inner();
    let query = query.into_inner();
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(1000);
    if after < 0 || !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "after must be >= 0 and limit 1 to 10000".into(),
        ));
    }
    let approved_only = match query.status.as_deref() {
        None | Some("approved") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {other:?}: use approved or all"
            )));
        }
    };
    let st = state.clone();
    let events =
        blocking(move || Ok(st.reports.feed(&project, after, limit, approved_only)?)).await?;
    let next = events.last().map_or(after, |e| e.cursor);
    let mut body = String::new();
    for event in &events {
        body.push_str(
            &serde_json::to_string(event).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        body.push('\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("X-Next-Cursor", next.to_string()))
        .body(body))
}

async fn post_model_descriptions(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body: wire::ModelDescriptions = read_json(&req, payload, MODEL_DESCRIPTIONS_LIMIT).await?;
    let project = path.into_inner();
    let st = state.clone();
    let (stored, priorities) = blocking(move || {
        Ok(st.engine.post_model_descriptions(
            &project,
            body.round,
            &body.system,
            &body.descriptions,
            now_ms(),
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "stored": stored, "priorities": priorities })))
}

async fn model_agreement(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let project = path.into_inner();
    let st = state.clone();
    let rows = blocking(move || Ok(st.engine.model_agreement(&project)?)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

async fn ordering(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body: wire::Ordering = read_json(&req, payload, BODY_LIMIT).await?;
    let project = path.into_inner();
    let by_priority = body.by_priority;
    let st = state.clone();
    blocking(move || Ok(st.engine.set_order(&project, by_priority, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "by_priority": by_priority })))
}

/// `POST /projects/{p}/catalog {"public": bool}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogAccess {
    public: bool,
}

async fn catalog_access(
    state: web::Data<AppState>,
    _: Requester,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let body: CatalogAccess = read_json(&req, payload, BODY_LIMIT).await?;
    let project = path.into_inner();
    let public = body.public;
    let st = state.clone();
    blocking(move || Ok(st.engine.set_catalog_public(&project, public, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "public": public })))
}

async fn export_project(
    state: web::Data<AppState>,
    _: Requester,
    _req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse> {
    let request = query.parse().map_err(ApiError::BadRequest)?;
    Ok(downloads::respond(&state, &path, request).await?)
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(openapi_document())
}

/// The OpenAPI 3 description of [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("objects");
        let params: Vec<serde_json::Value> = path
            .split('/')
            .filter_map(|seg| {
                let inner = seg.strip_prefix('{')?;
                let name = inner.split('}').next()?;
                Some(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            })
            .collect();
        entry.insert(
            method.to_string(),
            json!({ "summary": summary, "parameters": params, "responses": { "default": { "description": "JSON; errors are {\"error\": message}" } } }),
        );
    }
    json!({
        "openapi": "3.0.3",
        "info": { "title": "milan-rs annotator", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
    })
}

async fn image(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse> {
    let name = path.into_inner();
    let hash = name.strip_suffix(".png").unwrap_or("");
    let file = state
        .images
        .path(hash)
        .ok_or_else(|| EngineError::NotFound("no such image".into()))?;
    let bytes = web::block(move || std::fs::read(file))
        .await?
        .map_err(|_| EngineError::NotFound("no such image".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .body(bytes))
}

fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let response = HttpResponse::BadRequest().json(wire::ErrorBody {
        error: format!("bad path: {err}"),
    });
    actix_web::error::InternalError::from_response(err, response).into()
}

fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let response = HttpResponse::BadRequest().json(wire::ErrorBody {
        error: format!("bad query string: {err}"),
    });
    actix_web::error::InternalError::from_response(err, response).into()
}

/// No route: a browser gets a page that says so, an API client JSON.
async fn not_found(req: HttpRequest) -> HttpResponse {
    if crate::http::errors::wants_html(&req) {
        return crate::http::errors::error_page(
            StatusCode::NOT_FOUND,
            "There is no page at this address. It may have moved, or the link was mistyped.",
        );
    }
    HttpResponse::NotFound().json(wire::ErrorBody {
        error: "no such route".into(),
    })
}

/// Registers every route of [`ROUTES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    // For the pages' JSON (the live check): the API's own routes read their bodies by hand.
    cfg.app_data(web::JsonConfig::default().limit(BODY_LIMIT))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .service(
            web::scope("/api/v1")
                // Session tokens, workers' sessions, exports: no answer of the API may be kept by
                // a cache (a handler that sets its own Cache-Control keeps it).
                .wrap(
                    actix_web::middleware::DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .route("/workers/session", web::post().to(session))
                .route("/workers/session", web::delete().to(end_session))
                .route("/workers/me/assignments", web::get().to(my_assignments))
                .route("/projects/{project}/assignments", web::post().to(accept))
                .route("/assignments/{id}/submit", web::post().to(submit))
                .route(
                    "/assignments/{id}/return",
                    web::post().to(return_assignment),
                )
                .route("/assignments/{id}/approve", web::post().to(approve))
                .route("/assignments/{id}/reject", web::post().to(reject))
                .route("/workers/{worker}/bonus", web::post().to(bonus))
                .route("/workers/{worker}/block", web::post().to(block))
                .route("/workers/{worker}/block", web::delete().to(unblock))
                .route("/workers/{worker}/sessions", web::get().to(worker_sessions))
                .route(
                    "/workers/{worker}/sessions",
                    web::delete().to(end_worker_sessions),
                )
                .route("/sessions/{id}", web::delete().to(end_one_session))
                .route("/projects", web::get().to(list_projects))
                .route("/projects", web::post().to(create_project))
                .route("/projects/{project}/progress", web::get().to(progress))
                .route(
                    "/projects/{project}/descriptions",
                    web::get().to(descriptions),
                )
                .route(
                    "/projects/{project}/model-descriptions",
                    web::post().to(post_model_descriptions),
                )
                .route(
                    "/projects/{project}/model-agreement",
                    web::get().to(model_agreement),
                )
                .route("/projects/{project}/ordering", web::post().to(ordering))
                .route(
                    "/projects/{project}/catalog",
                    web::post().to(catalog_access),
                )
                .route("/projects/{project}/export", web::get().to(export_project))
                .route("/openapi.json", web::get().to(openapi)),
        )
        .route("/images/{name}", web::get().to(image))
        .default_service(web::to(not_found));
}
