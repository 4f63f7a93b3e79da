//! The JSON API under /api/v1: the contract of the web pages, the trainer and outside scripts.
//! Handlers extract, call the engine (on a blocking thread), and render; no rules live here.
//!
//! Errors are JSON `{"error": "..."}` with the status that says what went wrong: 400 malformed
//! request, 401 no or bad token, 403 not yours / blocked, 404 no such thing, 409 wrong state or
//! lease over, 413 too large, 422 a rule refused the content, 500 anything else (logged, opaque).

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Auth, AuthError};
use crate::db::queries as q;
use crate::domain::{ProjectSettings, now_ms};
use crate::engine::{Engine, EngineError};
use crate::export::{self, ExportError, Format};
use crate::images::ImageStore;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub engine: Engine,
    pub auth: Auth,
    pub images: ImageStore,
    pub data_dir: PathBuf,
}

/// Every route: (method, path, summary). `openapi.json` is generated from this table and a test
/// holds the router to it.
pub const ROUTES: &[(&str, &str, &str)] = &[
    (
        "post",
        "/api/v1/workers/session",
        "Start a worker session: {worker_id} -> {token}",
    ),
    (
        "post",
        "/api/v1/projects/{project}/assignments",
        "Accept the next exemplar set (201), or 204 when none is left for this worker",
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
        "Requester: pay a bonus {cents, reason, assignment_id?}",
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
        "get",
        "/api/v1/projects/{project}/export",
        "Requester: export (?format=milannotations|mturk-csv|jsonl)",
    ),
    ("get", "/api/v1/openapi.json", "This description"),
    (
        "get",
        "/images/{hash}.png",
        "An exemplar image by content hash",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("internal error")]
    Internal(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Db(e) => ApiError::Engine(EngineError::Db(e)),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Engine(e) | ApiError::Export(ExportError::Engine(e)) => match e {
                EngineError::NotFound(_) => StatusCode::NOT_FOUND,
                EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
                EngineError::Conflict(_) => StatusCode::CONFLICT,
                EngineError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                EngineError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Export(ExportError::Incomplete(_)) => StatusCode::CONFLICT,
            ApiError::Export(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("internal error: {self:?}");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        HttpResponse::build(status).json(json!({ "error": message }))
    }
}

type Result<T> = std::result::Result<T, ApiError>;

fn bearer(req: &HttpRequest) -> Result<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))
}

fn worker_of(state: &AppState, req: &HttpRequest) -> Result<String> {
    Ok(state.auth.check_worker_token(bearer(req)?, now_ms())?)
}

async fn requester(state: &AppState, req: &HttpRequest) -> Result<()> {
    let token = bearer(req)?.to_owned();
    let auth = state.auth.clone();
    web::block(move || auth.check_requester_token(&token)).await??;
    Ok(())
}

/// Runs blocking engine work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> Result<T> {
    web::block(f).await?
}

#[derive(Debug, Deserialize)]
struct SessionBody {
    worker_id: String,
}

async fn session(state: web::Data<AppState>, body: web::Json<SessionBody>) -> Result<HttpResponse> {
    let now = now_ms();
    let worker_id = body.into_inner().worker_id;
    let st = state.clone();
    let worker = blocking(move || Ok(st.engine.worker(&worker_id, now)?)).await?;
    let token = state.auth.worker_token(&worker.external_id, now);
    Ok(HttpResponse::Ok().json(json!({ "token": token, "worker_id": worker.external_id })))
}

fn set_json(set: &q::SetRow) -> serde_json::Value {
    let exemplars: Vec<crate::import::StoredExemplar> =
        serde_json::from_str(&set.exemplars).unwrap_or_default();
    json!({
        "id": set.id,
        "model": set.model,
        "layer": set.layer,
        "unit": set.unit,
        "images": exemplars.iter().map(|e| format!("/images/{}.png", e.view)).collect::<Vec<_>>(),
    })
}

async fn accept(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let worker = worker_of(&state, &req)?;
    let project = path.into_inner();
    let st = state.clone();
    let accepted =
        blocking(move || Ok(st.engine.accept_next(&project, &worker, now_ms())?)).await?;
    Ok(match accepted {
        None => HttpResponse::NoContent().finish(),
        Some(a) => HttpResponse::Created().json(json!({
            "assignment_id": a.assignment.public_id,
            "set": set_json(&a.set),
            "expires_at": a.assignment.expires_at,
            "instructions": a.project.instructions,
            "title": a.project.title,
        })),
    })
}

#[derive(Debug, Deserialize)]
struct SubmitBody {
    description: String,
}

async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<SubmitBody>,
) -> Result<HttpResponse> {
    let worker = worker_of(&state, &req)?;
    let key = match req.headers().get("Idempotency-Key") {
        None => None,
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                ApiError::BadRequest("Idempotency-Key must be visible ASCII".into())
            })?;
            if key.is_empty() || key.len() > 128 {
                return Err(ApiError::BadRequest(
                    "Idempotency-Key must be 1 to 128 characters".into(),
                ));
            }
            Some(key.to_owned())
        }
    };
    let id = path.into_inner();
    let text = body.into_inner().description;
    let st = state.clone();
    let response = blocking(move || {
        Ok(st
            .engine
            .submit(&id, &worker, &text, key.as_deref(), now_ms())?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(response))
}

async fn return_assignment(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let worker = worker_of(&state, &req)?;
    let id = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.return_assignment(&id, &worker, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "returned" })))
}

async fn approve(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let id = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.approve(&id, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "approved" })))
}

#[derive(Debug, Deserialize)]
struct RejectBody {
    feedback: String,
}

async fn reject(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<RejectBody>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let id = path.into_inner();
    let feedback = body.into_inner().feedback;
    let st = state.clone();
    blocking(move || Ok(st.engine.reject(&id, &feedback, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "rejected" })))
}

#[derive(Debug, Deserialize)]
struct BonusBody {
    cents: i64,
    reason: String,
    assignment_id: Option<String>,
}

async fn bonus(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<BonusBody>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let worker = path.into_inner();
    let body = body.into_inner();
    let st = state.clone();
    blocking(move || {
        Ok(st.engine.bonus(
            &worker,
            body.cents,
            &body.reason,
            body.assignment_id.as_deref(),
            now_ms(),
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "paid" })))
}

#[derive(Debug, Deserialize)]
struct BlockBody {
    reason: String,
}

async fn block(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<BlockBody>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let worker = path.into_inner();
    let reason = body.into_inner().reason;
    let st = state.clone();
    blocking(move || Ok(st.engine.block(&worker, &reason, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "blocked" })))
}

async fn unblock(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let worker = path.into_inner();
    let st = state.clone();
    blocking(move || Ok(st.engine.unblock(&worker, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "unblocked" })))
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
        "created_at": p.created_at,
    })
}

async fn list_projects(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let st = state.clone();
    let projects = blocking(move || Ok(st.engine.projects()?)).await?;
    Ok(HttpResponse::Ok().json(projects.iter().map(project_json).collect::<Vec<_>>()))
}

async fn create_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ProjectSettings>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let settings = body.into_inner();
    let st = state.clone();
    let project = blocking(move || Ok(st.engine.create_project(&settings, now_ms())?)).await?;
    Ok(HttpResponse::Created().json(project_json(&project)))
}

async fn progress(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let project = path.into_inner();
    let st = state.clone();
    let rows = blocking(move || Ok(st.engine.progress(&project)?)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    after: Option<i64>,
    limit: Option<i64>,
    status: Option<String>,
}

async fn descriptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
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
    let rows = blocking(move || {
        let project = st.engine.project(&project)?;
        Ok(st
            .engine
            .db()
            .read(|c| -> std::result::Result<_, EngineError> {
                Ok(q::descriptions_after(
                    c,
                    project.id,
                    after,
                    limit,
                    approved_only,
                )?)
            })?)
    })
    .await?;
    let next = rows.last().map_or(after, |r| r.cursor);
    let mut body = String::new();
    for r in &rows {
        body.push_str(
            &json!({
                "cursor": r.cursor,
                "event": r.event,
                "model": r.model,
                "layer": r.layer,
                "unit": r.unit,
                "assignment_id": r.assignment_public_id,
                "worker": r.worker,
                "state": if r.event == "auto_approved" { "approved" } else { r.event.as_str() },
                "description": r.description.raw,
                "cleaned": r.description.cleaned,
                "created_at": r.description.created_at,
            })
            .to_string(),
        );
        body.push('\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("X-Next-Cursor", next.to_string()))
        .body(body))
}

/// The largest body of a model-descriptions post (a round of a whole MILANNOTATIONS-sized
/// project: ~20k sets).
const MODEL_DESCRIPTIONS_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelDescriptionsBody {
    round: i32,
    system: String,
    descriptions: Vec<crate::engine::ModelDescription>,
}

async fn post_model_descriptions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ModelDescriptionsBody>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let project = path.into_inner();
    let body = body.into_inner();
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
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let project = path.into_inner();
    let st = state.clone();
    let rows = blocking(move || Ok(st.engine.model_agreement(&project)?)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderingBody {
    by_priority: bool,
}

async fn ordering(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<OrderingBody>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let project = path.into_inner();
    let by_priority = body.by_priority;
    let st = state.clone();
    blocking(move || Ok(st.engine.set_order(&project, by_priority, now_ms())?)).await?;
    Ok(HttpResponse::Ok().json(json!({ "by_priority": by_priority })))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: String,
}

async fn export_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse> {
    requester(&state, &req).await?;
    let format: Format = query.format.parse().map_err(ApiError::BadRequest)?;
    let project = path.into_inner();
    let st = state.clone();
    let name = project.clone();
    let (bytes, content_type, extension) = blocking(move || -> Result<_> {
        Ok(export::download(
            &st.engine,
            &st.images,
            &st.data_dir,
            &project,
            format,
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}.{extension}\""),
        ))
        .body(bytes))
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

fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let (status, message) = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large (limit 16 KiB)".to_owned(),
        ),
        E::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json".to_owned(),
        ),
        other => (StatusCode::BAD_REQUEST, format!("invalid JSON: {other}")),
    };
    actix_web::error::InternalError::from_response(
        err,
        HttpResponse::build(status).json(json!({ "error": message })),
    )
    .into()
}

fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    let response = HttpResponse::BadRequest().json(json!({ "error": format!("bad path: {err}") }));
    actix_web::error::InternalError::from_response(err, response).into()
}

fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let response =
        HttpResponse::BadRequest().json(json!({ "error": format!("bad query string: {err}") }));
    actix_web::error::InternalError::from_response(err, response).into()
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "no such route" }))
}

/// Registers every route of [`ROUTES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(json_error),
    )
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .service(
        web::scope("/api/v1")
            .route("/workers/session", web::post().to(session))
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
            .route("/projects", web::get().to(list_projects))
            .route("/projects", web::post().to(create_project))
            .route("/projects/{project}/progress", web::get().to(progress))
            .route(
                "/projects/{project}/descriptions",
                web::get().to(descriptions),
            )
            .service(
                web::resource("/projects/{project}/model-descriptions")
                    .app_data(
                        web::JsonConfig::default()
                            .limit(MODEL_DESCRIPTIONS_LIMIT)
                            .error_handler(json_error),
                    )
                    .route(web::post().to(post_model_descriptions)),
            )
            .route(
                "/projects/{project}/model-agreement",
                web::get().to(model_agreement),
            )
            .route("/projects/{project}/ordering", web::post().to(ordering))
            .route("/projects/{project}/export", web::get().to(export_project))
            .route("/openapi.json", web::get().to(openapi)),
    )
    .route("/images/{name}", web::get().to(image))
    .default_service(web::to(not_found));
}
