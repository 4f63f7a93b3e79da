//! The worker's pages: sign-in (password or one-time code), MTurk and Prolific entry, the project
//! page with the qualification test, and the task page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use tera::Context;

use super::session::{self, Entry, WorkerSession};
use super::{
    CsrfForm, Frame, Page, Site, WebError, WebResult, blocking, dollars, render, see_other,
    urlencode,
};
use crate::api::AppState;
use crate::domain::{DESCRIPTION_MAX_CHARS, DESCRIPTION_MIN_CHARS, Description, Millis, now_ms};
use crate::engine::{Accepted, EngineError};
use crate::import::StoredExemplar;
use crate::qualification::Standing;

/// MTurk's preview marker: the worker has not accepted the HIT.
pub const MTURK_PREVIEW: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";

type State = web::Data<AppState>;
type SiteData = web::Data<Site>;

/// The signed-in worker, from the session cookie or (MTurk's iframe) a `session` form field;
/// `true` with it when it came from the field.
fn worker_of(
    state: &AppState,
    req: &HttpRequest,
    field: Option<&str>,
) -> Option<(WorkerSession, bool)> {
    let now = now_ms();
    if let Some(c) = req.cookie(session::WORKER_COOKIE)
        && let Some(s) = session::open_worker(&state.auth, c.value(), now)
    {
        return Some((s, false));
    }
    field
        .and_then(|t| session::open_worker(&state.auth, t, now))
        .map(|s| (s, true))
}

fn signin_url(project: Option<&str>) -> String {
    match project {
        Some(p) => format!("/signin?project={}", urlencode(p)),
        None => "/signin".to_owned(),
    }
}

/// A signed-in worker for a GET page, or a redirect to sign-in.
fn require_worker(
    state: &AppState,
    req: &HttpRequest,
    project: Option<&str>,
) -> Result<WorkerSession, WebError> {
    worker_of(state, req, None)
        .map(|(s, _)| s)
        .ok_or_else(|| WebError::SignIn(signin_url(project)))
}

/// A signed-in worker for a POST: the CSRF token must match unless the session came in the form.
fn require_worker_post(
    state: &AppState,
    req: &HttpRequest,
    csrf: Option<&str>,
    field: Option<&str>,
    project: Option<&str>,
) -> Result<WorkerSession, WebError> {
    let (s, via_field) =
        worker_of(state, req, field).ok_or_else(|| WebError::SignIn(signin_url(project)))?;
    if !via_field && !session::csrf_ok(&state.auth, req, csrf) {
        return Err(WebError::Csrf);
    }
    Ok(s)
}

fn check_csrf(state: &AppState, req: &HttpRequest, csrf: Option<&str>) -> Result<(), WebError> {
    if session::csrf_ok(&state.auth, req, csrf) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}

fn client_ip(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// The context every worker page has: who, how they came, work done and earnings.
async fn worker_context(state: &AppState, s: &WorkerSession) -> Result<Context, WebError> {
    let (engine, worker) = (state.engine.clone(), s.worker.clone());
    let (done, cents) = blocking(move || Ok(engine.worker_totals(&worker)?)).await?;
    let mut ctx = Context::new();
    ctx.insert("worker", &s.worker);
    ctx.insert("done", &done);
    ctx.insert("earnings", &dollars(cents));
    ctx.insert(
        "via",
        &match s.entry {
            Entry::Local => "local",
            Entry::Mturk { .. } => "mturk",
            Entry::Prolific { .. } => "prolific",
        },
    );
    Ok(ctx)
}

fn images_of(exemplars: &str) -> Vec<String> {
    serde_json::from_str::<Vec<StoredExemplar>>(exemplars)
        .unwrap_or_default()
        .iter()
        .map(|e| format!("/images/{}.png", e.view))
        .collect()
}

/// Fills the task page's context for an assignment (or a preview set).
fn task_context(
    ctx: &mut Context,
    project: &crate::db::queries::ProjectRow,
    set: &crate::db::queries::SetRow,
    now: Millis,
) {
    ctx.insert(
        "project",
        &json!({
            "name": project.name,
            "title": project.title,
            "instructions": project.instructions,
            "reward": dollars(project.reward_cents),
        }),
    );
    ctx.insert("set", &json!({
        "model": set.model, "layer": set.layer, "unit": set.unit, "images": images_of(&set.exemplars),
    }));
    ctx.insert("now", &now);
    ctx.insert("min_chars", &DESCRIPTION_MIN_CHARS);
    ctx.insert("max_chars", &DESCRIPTION_MAX_CHARS);
}

fn mm_ss(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn assignment_context(ctx: &mut Context, a: &Accepted, now: Millis) {
    task_context(ctx, &a.project, &a.set, now);
    ctx.insert(
        "assignment",
        &json!({
            "id": a.assignment.public_id,
            "expires_at": a.assignment.expires_at,
            "left": mm_ss(a.assignment.expires_at - now),
        }),
    );
}

fn frame_of(entry: &Entry) -> Frame {
    match entry {
        Entry::Mturk { submit_to, .. } => Frame::Mturk {
            submit_to: submit_to.clone(),
        },
        _ => Frame::Deny,
    }
}

/// MTurk pages carry the sealed session in their forms (cookies may not reach an iframe).
fn mturk_fields(state: &AppState, ctx: &mut Context, s: &WorkerSession) {
    if let Entry::Mturk { assignment_id, .. } = &s.entry {
        ctx.insert("session_field", &session::seal_worker(&state.auth, s));
        ctx.insert("mturk_assignment", assignment_id);
    }
}

// ------------------------------------------------------------------ sign-in

#[derive(Debug, Deserialize)]
struct SignInQuery {
    project: Option<String>,
}

async fn signin_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    query: web::Query<SignInQuery>,
) -> WebResult {
    let mut ctx = Context::new();
    ctx.insert("project", &query.project);
    render(&state, &site, &req, Page::new("signin.html", ctx))
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    csrf: Option<String>,
    project: Option<String>,
    worker: Option<String>,
    password: Option<String>,
    code: Option<String>,
}

async fn signin(
    state: State,
    site: SiteData,
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> WebResult {
    let form = form.into_inner();
    check_csrf(&state, &req, form.csrf.as_deref())?;
    let now = now_ms();
    let project = form
        .project
        .clone()
        .filter(|p| crate::domain::validate_project_name(p).is_ok());
    site.limiter
        .hit(
            &format!("signin-ip:{}", client_ip(&req)),
            session::SIGN_IN_LIMIT,
            now,
        )
        .map_err(WebError::RateLimited)?;
    let worker_field = form.worker.clone().unwrap_or_default().trim().to_owned();
    if !worker_field.is_empty() {
        site.limiter
            .hit(
                &format!("signin-worker:{worker_field}"),
                session::SIGN_IN_LIMIT,
                now,
            )
            .map_err(WebError::RateLimited)?;
    }
    let s2 = site.clone();
    let code = form.code.clone().unwrap_or_default();
    let password = form.password.clone().unwrap_or_default();
    let worker = blocking(move || {
        if !code.trim().is_empty() {
            return Ok(s2.accounts.redeem_worker_code(&code, now)?);
        }
        if worker_field.is_empty() || password.is_empty() {
            return Ok(None);
        }
        let ok = s2
            .accounts
            .check_worker_password(&worker_field, &password)?;
        Ok(ok.then_some(worker_field))
    })
    .await?;
    let Some(worker) = worker else {
        let mut ctx = Context::new();
        ctx.insert("project", &project);
        ctx.insert(
            "error",
            "That worker id and password, or that code, did not work. Codes work once.",
        );
        return render(
            &state,
            &site,
            &req,
            Page::new("signin.html", ctx).status(StatusCode::UNAUTHORIZED),
        );
    };
    let s = WorkerSession {
        worker,
        issued: now,
        entry: Entry::Local,
    };
    let to = project.map_or_else(|| "/".to_owned(), |p| format!("/p/{p}"));
    Ok(super::see_other_with(
        &to,
        session::cookie(
            &req,
            session::WORKER_COOKIE,
            session::seal_worker(&state.auth, &s),
            false,
        ),
    ))
}

async fn signout(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> WebResult {
    check_csrf(&state, &req, form.csrf.as_deref())?;
    Ok(super::see_other_with(
        "/signin",
        session::removal(session::WORKER_COOKIE),
    ))
}

// ------------------------------------------------------------------ home and project

async fn home(state: State, site: SiteData, req: HttpRequest) -> WebResult {
    let s = require_worker(&state, &req, None)?;
    let st = state.clone();
    let projects = blocking(move || Ok(st.engine.projects()?)).await?;
    if projects.len() == 1 {
        return Ok(see_other(&format!("/p/{}", projects[0].name)));
    }
    let mut ctx = worker_context(&state, &s).await?;
    ctx.insert(
        "projects",
        &projects
            .iter()
            .map(|p| json!({"name": p.name, "title": p.title}))
            .collect::<Vec<_>>(),
    );
    render(&state, &site, &req, Page::new("home.html", ctx))
}

#[derive(Debug, Deserialize)]
struct ProjectQuery {
    notice: Option<String>,
}

/// What a worker sees between tasks: qualification standing, start button, instructions.
async fn project_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ProjectQuery>,
) -> WebResult {
    let name = path.into_inner();
    let s = require_worker(&state, &req, Some(&name))?;
    let now = now_ms();
    let (st, s2, n, w) = (state.clone(), site.clone(), name.clone(), s.worker.clone());
    let (project, current, standing, rejections) = blocking(move || {
        let project = st.engine.project(&n)?;
        let current = st.engine.current_assignment(&n, &w, now)?;
        let standing = s2.qualifications.standing(&n, &w, now)?;
        let rejections = st.engine.rejections(&w, 10)?;
        Ok((project, current, standing, rejections))
    })
    .await?;
    if current.is_some() {
        return Ok(see_other(&format!("/p/{name}/task")));
    }
    let mut ctx = worker_context(&state, &s).await?;
    ctx.insert("project", &json!({"name": project.name, "title": project.title, "instructions": project.instructions, "reward": dollars(project.reward_cents)}));
    let (standing_name, retry_in) = match standing {
        Standing::NotRequired | Standing::Passed => ("ok", 0),
        Standing::NoTest => ("no_test", 0),
        Standing::Open => ("open", 0),
        Standing::RetryAt(at) => ("wait", (at - now + 999) / 1000),
    };
    ctx.insert("standing", standing_name);
    ctx.insert(
        "rejections",
        &rejections
            .iter()
            .map(|(text, feedback, _)| json!({"text": text, "feedback": feedback}))
            .collect::<Vec<_>>(),
    );
    ctx.insert("retry_in", &retry_in);
    let notice = match query.notice.as_deref() {
        Some("empty") => Some("Nothing is left for you in this project right now. Thank you!"),
        Some("returned") => Some("You gave the set back; another worker will take it."),
        Some("submitted") => Some("Thank you: your description was saved."),
        _ => None,
    };
    ctx.insert("notice", &notice);
    if let Entry::Prolific { .. } = &s.entry
        && let Some(code) = &project.prolific_completion_code
    {
        ctx.insert(
            "prolific_finish",
            &format!(
                "https://app.prolific.com/submissions/complete?cc={}",
                urlencode(code)
            ),
        );
    }
    render(&state, &site, &req, Page::new("project.html", ctx))
}

async fn instructions(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let st = state.clone();
    let project = blocking(move || Ok(st.engine.project(&name)?)).await?;
    let ctx = super::ctx_with(&[(
        "project",
        &json!({"name": project.name, "title": project.title, "instructions": project.instructions}),
    )]);
    render(&state, &site, &req, Page::new("instructions.html", ctx))
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    session: Option<String>,
}

async fn accept(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ActionForm>,
) -> WebResult {
    let name = path.into_inner();
    let s = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        Some(&name),
    )?;
    let st = state.clone();
    let n = name.clone();
    let accepted = blocking(move || Ok(st.engine.accept_next(&n, &s.worker, now_ms())?)).await?;
    Ok(match accepted {
        Some(_) => see_other(&format!("/p/{name}/task")),
        None => see_other(&format!("/p/{name}?notice=empty")),
    })
}

async fn task_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let s = require_worker(&state, &req, Some(&name))?;
    let now = now_ms();
    let (st, n, w) = (state.clone(), name.clone(), s.worker.clone());
    let current = blocking(move || Ok(st.engine.current_assignment(&n, &w, now)?)).await?;
    let Some(a) = current else {
        return Ok(see_other(&format!("/p/{name}")));
    };
    show_task(&state, &site, &req, &s, &a, None, "", StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn show_task(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    s: &WorkerSession,
    a: &Accepted,
    error: Option<&str>,
    text: &str,
    status: StatusCode,
) -> WebResult {
    let now = now_ms();
    let mut ctx = worker_context(state, s).await?;
    assignment_context(&mut ctx, a, now);
    ctx.insert("error", &error);
    ctx.insert("text", text);
    mturk_fields(state, &mut ctx, s);
    render(
        state,
        site,
        req,
        Page::new("task.html", ctx)
            .status(status)
            .frame(frame_of(&s.entry)),
    )
}

#[derive(Debug, Deserialize)]
struct SubmitForm {
    csrf: Option<String>,
    session: Option<String>,
    description: String,
}

async fn submit(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<SubmitForm>,
) -> WebResult {
    let id = path.into_inner();
    let form = form.into_inner();
    let s = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        None,
    )?;
    let now = now_ms();
    site.limiter
        .hit(&format!("submit:{}", s.worker), session::SUBMIT_LIMIT, now)
        .map_err(WebError::RateLimited)?;
    let (st, w, text, aid) = (
        state.clone(),
        s.worker.clone(),
        form.description.clone(),
        id.clone(),
    );
    let result = blocking(move || {
        let a = st.engine.assignment_with_set(&aid)?;
        let outcome = st.engine.submit(&aid, &w, &text, None, now);
        Ok((a, outcome))
    })
    .await?;
    let (
        Accepted {
            assignment,
            set,
            project,
        },
        outcome,
    ) = result;
    match outcome {
        Ok(_) => {}
        Err(EngineError::Invalid(message)) => {
            let a = Accepted {
                assignment,
                set,
                project,
            };
            return show_task(
                &state,
                &site,
                &req,
                &s,
                &a,
                Some(&message),
                &form.description,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    if let Entry::Mturk {
        submit_to,
        assignment_id,
        ..
    } = &s.entry
    {
        // Tell MTurk: a form to its externalSubmit, sent by finish.js (or by hand without JS).
        let mut ctx = worker_context(&state, &s).await?;
        ctx.insert("submit_to", &format!("{submit_to}/mturk/externalSubmit"));
        ctx.insert("mturk_assignment", assignment_id);
        ctx.insert("description", &form.description.trim());
        return render(
            &state,
            &site,
            &req,
            Page::new("mturk_finish.html", ctx).frame(frame_of(&s.entry)),
        );
    }
    // Straight on to the next set, as a worker on a roll expects.
    let (st, n, w) = (state.clone(), project.name.clone(), s.worker.clone());
    let next = blocking(move || match st.engine.accept_next(&n, &w, now_ms()) {
        Ok(a) => Ok(a),
        // Blocked meanwhile, or the qualification changed: the project page says why.
        Err(EngineError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e.into()),
    })
    .await?;
    Ok(match next {
        Some(_) => see_other(&format!("/p/{}/task", project.name)),
        None => see_other(&format!("/p/{}?notice=empty", project.name)),
    })
}

#[derive(Debug, Deserialize)]
struct ReturnForm {
    csrf: Option<String>,
    session: Option<String>,
    /// "skip": give it back and take the next set; otherwise stop.
    then: Option<String>,
}

async fn return_assignment(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ReturnForm>,
) -> WebResult {
    let id = path.into_inner();
    let s = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        None,
    )?;
    let skip = form.then.as_deref() == Some("skip");
    let st = state.clone();
    let project = blocking(move || {
        let project = st.engine.assignment_with_set(&id)?.project;
        st.engine.return_assignment(&id, &s.worker, now_ms())?;
        if skip {
            st.engine.accept_next(&project.name, &s.worker, now_ms())?;
        }
        Ok(project)
    })
    .await?;
    Ok(if skip {
        see_other(&format!("/p/{}/task", project.name))
    } else {
        see_other(&format!("/p/{}?notice=returned", project.name))
    })
}

#[derive(Debug, Deserialize)]
struct CheckBody {
    project: String,
    description: String,
    session: Option<String>,
}

/// The live validation of the task page: the server's own rules, so the page can never disagree
/// with the submit.
async fn check(state: State, req: HttpRequest, body: web::Json<CheckBody>) -> WebResult {
    let body = body.into_inner();
    let Some((s, _)) = worker_of(&state, &req, body.session.as_deref()) else {
        return Ok(HttpResponse::Unauthorized().json(json!({"error": "sign in first"})));
    };
    let st = state.clone();
    let verdict = blocking(move || {
        let project = st.engine.project(&body.project)?;
        let previous = st.engine.db().read(|c| -> Result<_, EngineError> {
            Ok(
                match crate::db::queries::worker_by_external(c, &s.worker)? {
                    Some(w) => crate::db::queries::last_description_of(c, w.id)?,
                    None => None,
                },
            )
        })?;
        Ok(Description::parse(
            &body.description,
            &project.instructions,
            previous.as_deref(),
        )
        .err())
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "ok": verdict.is_none(), "error": verdict })))
}

// ------------------------------------------------------------------ MTurk and Prolific

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MturkQuery {
    assignment_id: Option<String>,
    hit_id: Option<String>,
    worker_id: Option<String>,
    turk_submit_to: Option<String>,
}

fn external_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// MTurk ExternalQuestion: shows the task; in preview the form is disabled.
async fn mturk(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<MturkQuery>,
) -> WebResult {
    let name = path.into_inner();
    let q = query.into_inner();
    let assignment = q.assignment_id.unwrap_or_default();
    let submit_to = q
        .turk_submit_to
        .unwrap_or_else(|| "https://www.mturk.com".into());
    let submit_to = submit_to.trim_end_matches('/').to_owned();
    if !site.mturk_origin_allowed(&submit_to) {
        return Err(WebError::BadRequest(format!(
            "turkSubmitTo {submit_to:?} is not MTurk (https://www.mturk.com or https://workersandbox.mturk.com)"
        )));
    }
    let frame = Frame::Mturk {
        submit_to: submit_to.clone(),
    };
    let now = now_ms();
    if assignment == MTURK_PREVIEW || assignment.is_empty() {
        let st = state.clone();
        let (project, set) = blocking(move || Ok(st.engine.preview_set(&name)?)).await?;
        let Some(set) = set else {
            return Err(
                EngineError::NotFound("this project has no exemplar sets yet".into()).into(),
            );
        };
        let mut ctx = Context::new();
        task_context(&mut ctx, &project, &set, now);
        ctx.insert("preview", &true);
        ctx.insert("text", "");
        return render(
            &state,
            &site,
            &req,
            Page::new("task.html", ctx).frame(frame),
        );
    }
    let (Some(worker_id), Some(hit_id)) = (q.worker_id, q.hit_id) else {
        return Err(WebError::BadRequest(
            "MTurk did not pass workerId and hitId".into(),
        ));
    };
    if ![&worker_id, &hit_id, &assignment]
        .iter()
        .all(|s| external_id_ok(s))
    {
        return Err(WebError::BadRequest(
            "assignmentId, hitId and workerId must be MTurk ids (letters and digits)".into(),
        ));
    }
    let s = WorkerSession {
        worker: format!("mturk:{worker_id}"),
        issued: now,
        entry: Entry::Mturk {
            project: name.clone(),
            assignment_id: assignment,
            hit_id,
            submit_to,
        },
    };
    // The worker accepted the HIT on MTurk: show their live set, or take one (a reload shows the
    // same set again, so this GET takes at most one).
    let (st, n, w) = (state.clone(), name.clone(), s.worker.clone());
    let external = match &s.entry {
        Entry::Mturk {
            assignment_id,
            hit_id,
            ..
        } => json!({"source": "mturk", "assignment_id": assignment_id, "hit_id": hit_id}),
        _ => json!({}),
    };
    let accepted = blocking(move || {
        if let Some(a) = st.engine.current_assignment(&n, &w, now)? {
            return Ok(Some(a));
        }
        let a = st.engine.accept_next(&n, &w, now)?;
        if let Some(a) = &a {
            st.engine
                .record_external(&a.assignment.public_id, external, now)?;
        }
        Ok(a)
    })
    .await?;
    let Some(a) = accepted else {
        return Err(EngineError::Conflict(
            "no set is left for you in this project; return the HIT on MTurk".into(),
        )
        .into());
    };
    let mut resp = show_task(&state, &site, &req, &s, &a, None, "", StatusCode::OK).await?;
    let cookie = session::cookie(
        &req,
        session::WORKER_COOKIE,
        session::seal_worker(&state.auth, &s),
        true,
    );
    resp.add_cookie(&cookie)
        .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(resp)
}

#[derive(Debug, Deserialize)]
struct ProlificQuery {
    #[serde(rename = "PROLIFIC_PID")]
    pid: Option<String>,
    #[serde(rename = "STUDY_ID")]
    study: Option<String>,
    #[serde(rename = "SESSION_ID")]
    session: Option<String>,
}

/// Prolific's study link: signs the participant in and shows the project.
async fn prolific(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ProlificQuery>,
) -> WebResult {
    let name = path.into_inner();
    let q = query.into_inner();
    let (Some(pid), Some(study), Some(sess)) = (q.pid, q.study, q.session) else {
        return Err(WebError::BadRequest(
            "Prolific did not pass PROLIFIC_PID, STUDY_ID and SESSION_ID".into(),
        ));
    };
    if ![&pid, &study, &sess].iter().all(|s| external_id_ok(s)) {
        return Err(WebError::BadRequest(
            "PROLIFIC_PID, STUDY_ID and SESSION_ID must be Prolific ids".into(),
        ));
    }
    let st = state.clone();
    let n = name.clone();
    blocking(move || Ok(st.engine.project(&n)?)).await?;
    let s = WorkerSession {
        worker: format!("prolific:{pid}"),
        issued: now_ms(),
        entry: Entry::Prolific {
            project: name.clone(),
            study_id: study,
            session_id: sess,
        },
    };
    Ok(super::see_other_with(
        &format!("/p/{name}"),
        session::cookie(
            &req,
            session::WORKER_COOKIE,
            session::seal_worker(&state.auth, &s),
            false,
        ),
    ))
}

// ------------------------------------------------------------------ qualification

const QUAL_PURPOSE: &str = "qualification-start";

/// The choices in an order of their own for each worker and question (so the right answer is not
/// always in the same place), each with its index in the test, which is what the form sends.
fn shuffled_choices(worker: &str, question: usize, choices: &[String]) -> Vec<serde_json::Value> {
    let mut order: Vec<(String, usize)> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                crate::auth::sha256_hex(&format!("{worker}\u{1f}{question}\u{1f}{c}")),
                i,
            )
        })
        .collect();
    order.sort();
    order
        .into_iter()
        .map(|(_, i)| json!({"index": i, "text": choices[i]}))
        .collect()
}

async fn qualification_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let s = require_worker(&state, &req, Some(&name))?;
    let now = now_ms();
    let (s2, n, w) = (site.clone(), name.clone(), s.worker.clone());
    let (test, standing) = blocking(move || {
        Ok((
            s2.qualifications.test(&n)?,
            s2.qualifications.standing(&n, &w, now)?,
        ))
    })
    .await?;
    let Some(test) = test else {
        return Err(EngineError::NotFound("this project has no qualification test".into()).into());
    };
    let mut ctx = worker_context(&state, &s).await?;
    ctx.insert("project", &json!({"name": name}));
    ctx.insert(
        "standing",
        match standing {
            Standing::Passed => "passed",
            Standing::RetryAt(_) => "wait",
            _ => "open",
        },
    );
    if let Standing::RetryAt(at) = standing {
        ctx.insert("retry_in", &((at - now + 999) / 1000));
    }
    let questions: Vec<_> = test
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| {
            json!({
                "prompt": q.prompt,
                "images": q.images.iter().map(|h| format!("/images/{h}.png")).collect::<Vec<_>>(),
                "choices": shuffled_choices(&s.worker, i, &q.choices),
            })
        })
        .collect();
    ctx.insert("questions", &questions);
    ctx.insert("pass_mark", &test.pass_mark);
    ctx.insert("time_limit_min", &(test.time_limit_ms / 60_000));
    let started = json!({"project": name, "worker": s.worker, "at": now}).to_string();
    ctx.insert("started", &state.auth.seal(QUAL_PURPOSE, &started));
    render(&state, &site, &req, Page::new("qualification.html", ctx))
}

async fn qualification_submit(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> WebResult {
    let name = path.into_inner();
    let fields = form.into_inner();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let s = require_worker_post(&state, &req, get("csrf"), get("session"), Some(&name))?;
    let started: serde_json::Value = get("started")
        .and_then(|t| state.auth.open(QUAL_PURPOSE, t))
        .and_then(|p| serde_json::from_str(&p).ok())
        .ok_or_else(|| {
            WebError::BadRequest("the test form is damaged; open the test again".into())
        })?;
    if started["project"] != name.as_str() || started["worker"] != s.worker.as_str() {
        return Err(WebError::BadRequest(
            "this test was opened by someone else or for another project".into(),
        ));
    }
    let started_at = started["at"].as_i64().unwrap_or(0);
    let (s2, n, w) = (site.clone(), name.clone(), s.worker.clone());
    let (total, retry) = blocking(move || {
        Ok(s2
            .qualifications
            .test(&n)?
            .map_or((0, 0), |t| (t.questions.len(), t.retry_delay_ms / 1000)))
    })
    .await?;
    let answers: Vec<Option<usize>> = (0..total)
        .map(|i| get(&format!("q{i}")).and_then(|v| v.parse().ok()))
        .collect();
    let s2 = site.clone();
    let n = name.clone();
    let grade = blocking(move || {
        Ok(s2
            .qualifications
            .grade(&n, &w, &answers, started_at, now_ms())?)
    })
    .await?;
    let mut ctx = worker_context(&state, &s).await?;
    ctx.insert("project", &json!({"name": name}));
    ctx.insert(
        "graded",
        &json!({"correct": grade.correct, "total": grade.total, "passed": grade.passed}),
    );
    ctx.insert("retry_in", &retry);
    ctx.insert("standing", if grade.passed { "passed" } else { "wait" });
    ctx.insert("questions", &Vec::<serde_json::Value>::new());
    render(&state, &site, &req, Page::new("qualification.html", ctx))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/signin", web::get().to(signin_page))
        .route("/signin", web::post().to(signin))
        .route("/signout", web::post().to(signout))
        .route("/p/{project}", web::get().to(project_page))
        .route("/p/{project}/instructions", web::get().to(instructions))
        .route("/p/{project}/accept", web::post().to(accept))
        .route("/p/{project}/task", web::get().to(task_page))
        .route(
            "/p/{project}/qualification",
            web::get().to(qualification_page),
        )
        .route(
            "/p/{project}/qualification",
            web::post().to(qualification_submit),
        )
        .route("/a/{id}/submit", web::post().to(submit))
        .route("/a/{id}/return", web::post().to(return_assignment))
        .route("/w/check", web::post().to(check))
        .route("/mturk/{project}", web::get().to(mturk))
        .route("/prolific/{project}", web::get().to(prolific));
}
