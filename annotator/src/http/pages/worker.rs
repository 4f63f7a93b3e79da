//! The worker's pages: sign-in (password or one-time code), MTurk and Prolific entry, the project
//! page with the qualification test, and the task page.
//!
//! What each entry proves (docs/security.md): a password or code proves the worker; MTurk's and
//! Prolific's URL parameters are claims, so their GET pages only show a start button, the
//! session begins with a POST from that page, and the work stays unverified until the requester
//! reconciles it with the platform's records.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use tera::Context;

use super::{
    CsrfForm, Page, Site, WebError, WebResult, blocking, dollars, render, see_other,
    see_other_notice, urlencode,
};
use crate::domain::{DESCRIPTION_MAX_CHARS, DESCRIPTION_MIN_CHARS, Description, Millis, now_ms};
use crate::engine::external::{MturkEntry, Platform, platform_id_ok};
use crate::engine::{Accepted, EngineError};
use crate::http::cookies as session;
use crate::http::state::AppState;
use crate::http::views::Frame;
use crate::import::StoredExemplar;
use crate::limits;
use crate::qualification::{ChoiceKey, Standing, duration_text};
use crate::sessions::{Entry, Session, Via};

/// MTurk's preview marker: the worker has not accepted the HIT.
pub const MTURK_PREVIEW: &str = "ASSIGNMENT_ID_NOT_AVAILABLE";
/// How long the start button of an MTurk or Prolific entry page stays usable.
const START_VALID_MS: Millis = 60 * 60_000;
const MTURK_START: &str = "mturk-start";
const PROLIFIC_START: &str = "prolific-start";

type State = web::Data<AppState>;
type SiteData = web::Data<Site>;

/// A signed-in worker: the session and the token it was found by.
#[derive(Debug, Clone)]
struct Visitor {
    session: Session,
    worker: String,
    token: String,
}

impl Visitor {
    fn entry(&self) -> &Entry {
        &self.session.entry
    }
}

/// The signed-in worker, from the session cookie or (MTurk's iframe) a `session` form field;
/// `true` with it when it came from the field.
async fn worker_of(
    state: &AppState,
    req: &HttpRequest,
    field: Option<&str>,
) -> Result<Option<(Visitor, bool)>, WebError> {
    let cookie = req
        .cookie(session::WORKER_COOKIE)
        .map(|c| c.value().to_owned());
    let field = field.map(str::to_owned);
    let sessions = state.sessions.clone();
    blocking(move || {
        let now = now_ms();
        for (token, via_field) in [(cookie, false), (field, true)] {
            let Some(token) = token else { continue };
            if let Some(s) = sessions.check(&token, now)?
                && let Some(worker) = s.worker().map(str::to_owned)
            {
                return Ok(Some((
                    Visitor {
                        session: s,
                        worker,
                        token,
                    },
                    via_field,
                )));
            }
        }
        Ok(None)
    })
    .await
}

fn signin_url(project: Option<&str>) -> String {
    match project {
        Some(p) => format!("/signin?project={}", urlencode(p)),
        None => "/signin".to_owned(),
    }
}

/// A signed-in worker for a GET page, or a redirect to sign-in.
async fn require_worker(
    state: &AppState,
    req: &HttpRequest,
    project: Option<&str>,
) -> Result<Visitor, WebError> {
    let v = worker_of(state, req, None)
        .await?
        .map(|(v, _)| v)
        .ok_or_else(|| WebError::SignIn(signin_url(project)))?;
    if let Some(p) = project {
        v.entry().may_work_in(p)?;
    }
    Ok(v)
}

/// A signed-in worker for a POST from a page of this site: the CSRF token must match unless the
/// session came in the form (MTurk's iframe).
async fn require_worker_post(
    state: &AppState,
    req: &HttpRequest,
    csrf: Option<&str>,
    field: Option<&str>,
    project: Option<&str>,
) -> Result<Visitor, WebError> {
    super::check_origin(state, req)?;
    let (v, via_field) = worker_of(state, req, field)
        .await?
        .ok_or_else(|| WebError::SignIn(signin_url(project)))?;
    if !via_field {
        super::check_form(state, req, csrf)?;
    }
    if let Some(p) = project {
        v.entry().may_work_in(p)?;
    }
    Ok(v)
}

/// The context every worker page has: who, how they came, work done and earnings.
async fn worker_context(state: &AppState, v: &Visitor) -> Result<Context, WebError> {
    let (reports, worker) = (state.reports.clone(), v.worker.clone());
    let summary = blocking(move || Ok(reports.worker_summary(&worker)?)).await?;
    let mut ctx = Context::new();
    ctx.insert("worker", &v.worker);
    ctx.insert("done", &summary.done);
    ctx.insert("summary", &summary);
    ctx.insert("earnings", &dollars(summary.earned_cents));
    ctx.insert(
        "via",
        &match v.entry() {
            Entry::Local => "local",
            Entry::Mturk { .. } => "mturk",
            Entry::Prolific { .. } => "prolific",
        },
    );
    Ok(ctx)
}

fn project_json(project: &crate::db::queries::ProjectRow) -> serde_json::Value {
    // The default instructions say what the standard text around them says: shown only when the
    // requester wrote their own.
    let own = project.instructions.trim();
    let own = (own != crate::domain::DEFAULT_INSTRUCTIONS && !own.is_empty()).then_some(own);
    json!({
        "name": project.name,
        "title": project.title,
        "own_instructions": own,
        "reward": dollars(project.reward_cents),
        "lease": minutes(project.lease_ms),
    })
}

/// A lease as workers read it: "10 minutes", "1 hour 30 minutes".
fn minutes(ms: Millis) -> String {
    let min = (ms.max(0) + 59_999) / 60_000;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match (min / 60, min % 60) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

/// Fills the task page's context for an assignment (or a preview set).
fn task_context(
    ctx: &mut Context,
    project: &crate::db::queries::ProjectRow,
    set: &crate::db::queries::SetRow,
    now: Millis,
) -> Result<(), WebError> {
    ctx.insert("project", &project_json(project));
    let exemplars = StoredExemplar::of_set(set)?;
    ctx.insert(
        "set",
        &json!({
            "model": set.model, "layer": set.layer, "unit": set.unit,
            "images": exemplars.iter().map(|e| json!({
                "view": e.view_url(),
                // The mask, for the outline the page can draw around the regions.
                "mask": format!("/images/{}.png", e.mask),
            })).collect::<Vec<_>>(),
        }),
    );
    ctx.insert("now", &now);
    ctx.insert("min_chars", &DESCRIPTION_MIN_CHARS);
    ctx.insert("max_chars", &DESCRIPTION_MAX_CHARS);
    Ok(())
}

fn mm_ss(ms: Millis) -> String {
    let s = (ms.max(0) + 999) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn assignment_context(ctx: &mut Context, a: &Accepted, now: Millis) -> Result<(), WebError> {
    task_context(ctx, &a.project, &a.set, now)?;
    ctx.insert(
        "assignment",
        &json!({
            "id": a.assignment.public_id,
            "expires_at": a.assignment.expires_at,
            "left": mm_ss(a.assignment.expires_at - now),
        }),
    );
    Ok(())
}

fn frame_of(entry: &Entry) -> Frame {
    match entry {
        Entry::Mturk { submit_to, .. } => Frame::Mturk {
            submit_to: submit_to.clone(),
        },
        _ => Frame::Deny,
    }
}

/// MTurk pages carry the session token in their forms (cookies may not reach an iframe).
fn mturk_fields(ctx: &mut Context, v: &Visitor) {
    if let Entry::Mturk { assignment_id, .. } = v.entry() {
        ctx.insert("session_field", &v.token);
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
    ctx.insert(
        "project",
        &query
            .project
            .as_deref()
            .filter(|p| crate::domain::validate_project_name(p).is_ok()),
    );
    render(&state, &site, &req, Page::new("signin.html", ctx))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    super::check_form(&state, &req, form.csrf.as_deref())?;
    let now = now_ms();
    let project = form
        .project
        .clone()
        .filter(|p| crate::domain::validate_project_name(p).is_ok());
    let address = state.net.client_key(&req);
    let code = form.code.clone().unwrap_or_default();
    let worker_field = form.worker.clone().unwrap_or_default().trim().to_owned();
    let password = form.password.clone().unwrap_or_default();
    let with_code = !code.trim().is_empty();
    // A code names no account: only the address is limited. A password names one: its own
    // browser (device cookie) is exempt from the account-wide limit.
    let (account, trusted) = if with_code {
        (String::new(), true)
    } else {
        let trusted = session::trusted_device(&state.auth, &req, "worker", &worker_field, now);
        (worker_field.clone(), trusted)
    };
    state
        .limiter
        .sign_in_allowed("worker", &address, &account, trusted, now)
        .map_err(WebError::RateLimited)?;
    let s2 = site.clone();
    let worker = blocking(move || {
        if with_code {
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
        state
            .limiter
            .sign_in_failed("worker", &address, &account, trusted, now);
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
    let via = if with_code { Via::Code } else { Via::Password };
    if via == Via::Password {
        state.limiter.signed_in("worker", &address, &worker, now);
    }
    let (st, w) = (state.clone(), worker.clone());
    let (token, _) =
        blocking(move || Ok(st.sessions.start_worker(&w, via, &Entry::Local, now)?)).await?;
    let to = project.map_or_else(|| "/".to_owned(), |p| format!("/p/{p}"));
    let mut resp = super::see_other_with(
        &to,
        session::cookie(&state.net, &req, session::WORKER_COOKIE, token, false),
    );
    if via == Via::Password {
        resp.add_cookie(&session::device_cookie(
            &state.auth,
            &state.net,
            &req,
            "worker",
            &worker,
            now,
        ))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    }
    Ok(resp)
}

/// Ends the session on the server (the cookie alone would still work if copied).
async fn signout(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> WebResult {
    super::check_form(&state, &req, form.csrf.as_deref())?;
    if let Some(c) = req.cookie(session::WORKER_COOKIE) {
        let (st, token) = (state.clone(), c.value().to_owned());
        blocking(move || Ok(st.sessions.end(&token, now_ms())?)).await?;
    }
    Ok(super::see_other_with(
        "/signin",
        session::removal(session::WORKER_COOKIE),
    ))
}

// ------------------------------------------------------------------ home and project

async fn home(state: State, site: SiteData, req: HttpRequest) -> WebResult {
    let v = require_worker(&state, &req, None).await?;
    if let Some(own) = v.entry().scope() {
        return Ok(see_other(&format!("/p/{own}")));
    }
    let st = state.clone();
    let projects = blocking(move || Ok(st.engine.projects()?)).await?;
    if projects.len() == 1 {
        return Ok(see_other(&format!("/p/{}", projects[0].name)));
    }
    let mut ctx = worker_context(&state, &v).await?;
    ctx.insert(
        "projects",
        &projects
            .iter()
            .map(|p| json!({"name": p.name, "title": p.title}))
            .collect::<Vec<_>>(),
    );
    render(&state, &site, &req, Page::new("home.html", ctx))
}

/// What a worker sees between tasks: qualification standing, start button, instructions.
async fn project_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let v = require_worker(&state, &req, Some(&name)).await?;
    let now = now_ms();
    let (st, s2, n, w) = (state.clone(), site.clone(), name.clone(), v.worker.clone());
    let (project, current, standing, rejections) = blocking(move || {
        let project = st.engine.project(&n)?;
        let current = st.engine.current_assignment(&n, &w, now)?;
        let standing = s2.qualifications.standing(&n, &w, now)?;
        let rejections = st.reports.rejections(&w, 10)?;
        Ok((project, current, standing, rejections))
    })
    .await?;
    if current.is_some() {
        return Ok(see_other(&format!("/p/{name}/task")));
    }
    let mut ctx = worker_context(&state, &v).await?;
    ctx.insert("project", &project_json(&project));
    let (standing_name, retry_in) = match standing {
        Standing::NotRequired | Standing::Passed => ("ok", 0),
        Standing::NoTest => ("no_test", 0),
        Standing::Open => ("open", 0),
        Standing::RetryAt(at) => ("wait", (at - now + 999) / 1000),
    };
    ctx.insert("standing", standing_name);
    ctx.insert("rejections", &rejections);
    ctx.insert("retry_in", &retry_in);
    let mut page = Page::new("project.html", ctx);
    if let Entry::Prolific { project: p, .. } = v.entry()
        && *p == name
        && project.prolific_completion_code.is_some()
    {
        page.context.insert("prolific_finish", &true);
        page = page.form_target(crate::http::views::PROLIFIC_ORIGIN);
    }
    render(&state, &site, &req, page)
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
    let ctx = super::ctx_with(&[("project", &project_json(&project))]);
    render(&state, &site, &req, Page::new("instructions.html", ctx))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let v = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        Some(&name),
    )
    .await?;
    let st = state.clone();
    let n = name.clone();
    let accepted = blocking(move || Ok(st.engine.accept_next(&n, &v.worker, now_ms())?)).await?;
    Ok(match accepted {
        Some(_) => see_other(&format!("/p/{name}/task")),
        None => see_other_notice(
            &state,
            &req,
            &format!("/p/{name}"),
            "Nothing is left for you in this project right now. Thank you!",
        ),
    })
}

async fn task_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let v = require_worker(&state, &req, Some(&name)).await?;
    let now = now_ms();
    let (st, n, w) = (state.clone(), name.clone(), v.worker.clone());
    let current = blocking(move || Ok(st.engine.current_assignment(&n, &w, now)?)).await?;
    let Some(a) = current else {
        return Ok(see_other(&format!("/p/{name}")));
    };
    show_task(&state, &site, &req, &v, &a, None, "", StatusCode::OK).await
}

#[allow(clippy::too_many_arguments)]
async fn show_task(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    v: &Visitor,
    a: &Accepted,
    error: Option<&str>,
    text: &str,
    status: StatusCode,
) -> WebResult {
    let now = now_ms();
    let mut ctx = worker_context(state, v).await?;
    assignment_context(&mut ctx, a, now)?;
    let (reports, project, worker) = (state.reports.clone(), a.project.clone(), v.worker.clone());
    // Sets this worker could take after this one (this one is already theirs).
    let available = blocking(move || Ok(reports.available_to(&project, &worker)?)).await?;
    ctx.insert("available", &available);
    ctx.insert("error", &error);
    ctx.insert("text", text);
    mturk_fields(&mut ctx, v);
    render(
        state,
        site,
        req,
        Page::new("task.html", ctx)
            .status(status)
            .frame(frame_of(v.entry())),
    )
}

/// The page that sends a submitted MTurk assignment back to MTurk. The MTurk assignment id and
/// where to post come from the record of the assignment here, never from the visitor.
async fn mturk_finish(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    v: &Visitor,
    assignment: &str,
) -> WebResult {
    let (st, id) = (state.clone(), assignment.to_owned());
    let (row, description) = blocking(move || {
        let row = st.engine.mturk_of(&id)?;
        let description = st.engine.description_of(&id)?;
        Ok((row, description))
    })
    .await?;
    let Some(row) = row else {
        return Err(WebError::BadRequest(
            "this assignment did not come from MTurk".into(),
        ));
    };
    let mut ctx = worker_context(state, v).await?;
    ctx.insert(
        "submit_to",
        &format!("{}/mturk/externalSubmit", row.submit_to),
    );
    ctx.insert("mturk_assignment", &row.mturk_assignment_id);
    ctx.insert("description", &description.unwrap_or_default());
    render(
        state,
        site,
        req,
        Page::new("mturk_finish.html", ctx).frame(Frame::Mturk {
            submit_to: row.submit_to,
        }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let v = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        None,
    )
    .await?;
    let now = now_ms();
    state
        .limiter
        .hit(
            &format!("submit:{}", v.worker),
            limits::SUBMIT_PER_WORKER,
            now,
        )
        .map_err(WebError::RateLimited)?;
    let (st, w, text, aid) = (
        state.clone(),
        v.worker.clone(),
        form.description.clone(),
        id.clone(),
    );
    let entry = v.entry().clone();
    let (a, outcome) = blocking(move || {
        let a = st.engine.assignment_with_set(&aid)?;
        entry.may_work_in(&a.project.name)?;
        let outcome = st.engine.submit(&aid, &w, &text, None, now);
        Ok((a, outcome))
    })
    .await?;
    match outcome {
        Ok(_) => {}
        Err(EngineError::Invalid(message)) => {
            return show_task(
                &state,
                &site,
                &req,
                &v,
                &a,
                Some(&message),
                &form.description,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    }
    if v.entry().is_mturk() {
        return mturk_finish(&state, &site, &req, &v, &id).await;
    }
    // Straight on to the next set, as a worker on a roll expects.
    let (st, n, w) = (state.clone(), a.project.name.clone(), v.worker.clone());
    let next = blocking(move || match st.engine.accept_next(&n, &w, now_ms()) {
        Ok(a) => Ok(a),
        // Blocked meanwhile, or the qualification changed: the project page says why.
        Err(EngineError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e.into()),
    })
    .await?;
    Ok(match next {
        Some(_) => see_other_notice(
            &state,
            &req,
            &format!("/p/{}/task", a.project.name),
            "Saved: your description was submitted. Here is the next set.",
        ),
        None => see_other_notice(
            &state,
            &req,
            &format!("/p/{}", a.project.name),
            "Thank you: your description was saved. Nothing else is left for you right now.",
        ),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    let v = require_worker_post(
        &state,
        &req,
        form.csrf.as_deref(),
        form.session.as_deref(),
        None,
    )
    .await?;
    let skip = form.then.as_deref() == Some("skip");
    let st = state.clone();
    let project = blocking(move || {
        let project = st.engine.assignment_with_set(&id)?.project;
        v.entry().may_work_in(&project.name)?;
        st.engine.return_assignment(&id, &v.worker, now_ms())?;
        if skip {
            st.engine.accept_next(&project.name, &v.worker, now_ms())?;
        }
        Ok(project)
    })
    .await?;
    Ok(if skip {
        see_other(&format!("/p/{}/task", project.name))
    } else {
        see_other_notice(
            &state,
            &req,
            &format!("/p/{}", project.name),
            "You gave the set back; another worker will take it.",
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    project: String,
    description: String,
    session: Option<String>,
}

/// The live validation of the task page: the server's own rules, so the page can never disagree
/// with the submit.
async fn check(state: State, req: HttpRequest, body: web::Json<CheckBody>) -> WebResult {
    let body = body.into_inner();
    let Some((v, _)) = worker_of(&state, &req, body.session.as_deref()).await? else {
        return Ok(HttpResponse::Unauthorized().json(json!({"error": "sign in first"})));
    };
    v.entry().may_work_in(&body.project)?;
    let st = state.clone();
    let verdict = blocking(move || {
        let project = st.engine.project(&body.project)?;
        let previous = st.engine.previous_description(&v.worker)?;
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

// ------------------------------------------------------------------ MTurk

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MturkQuery {
    assignment_id: Option<String>,
    hit_id: Option<String>,
    worker_id: Option<String>,
    turk_submit_to: Option<String>,
}

#[derive(Debug, serde::Serialize, Deserialize)]
struct Sealed<T> {
    value: T,
    issued: Millis,
}

fn seal_start<T: serde::Serialize>(state: &AppState, purpose: &str, value: T) -> String {
    state.auth.seal(
        purpose,
        &serde_json::to_string(&Sealed {
            value,
            issued: now_ms(),
        })
        .expect("serialises"),
    )
}

fn open_start<T: serde::de::DeserializeOwned>(
    state: &AppState,
    purpose: &str,
    token: Option<&str>,
) -> Result<T, WebError> {
    let sealed: Sealed<T> = token
        .and_then(|t| state.auth.open(purpose, t))
        .and_then(|p| serde_json::from_str(&p).ok())
        .ok_or_else(|| {
            WebError::BadRequest("this start form is damaged; open the study link again".into())
        })?;
    let now = now_ms();
    if now - sealed.issued > START_VALID_MS || sealed.issued > now + 60_000 {
        return Err(WebError::BadRequest(
            "this start button is more than an hour old; reload the page".into(),
        ));
    }
    Ok(sealed.value)
}

/// What the MTurk and Prolific start forms share: their pages may be opened from other sites and
/// set no cookie (MTurk's iframe may get none), so instead of a cookie CSRF token they are checked
/// by origin and by the sealed entry the GET page made (no one else can make one), for the
/// project of the path; and a limit per client address.
fn open_entry<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: &HttpRequest,
    purpose: &str,
    start: Option<&str>,
    project: impl FnOnce(&T) -> &str,
    path: &str,
) -> Result<T, WebError> {
    super::check_origin(state, req)?;
    state
        .limiter
        .hit(
            &format!("entry-ip:{}", state.net.client_key(req)),
            limits::ENTRIES_PER_ADDRESS,
            now_ms(),
        )
        .map_err(WebError::RateLimited)?;
    let entry: T = open_start(state, purpose, start)?;
    if project(&entry) != path {
        return Err(WebError::BadRequest(
            "this start form is for another project".into(),
        ));
    }
    Ok(entry)
}

fn submit_to_of(site: &Site, given: Option<String>) -> Result<String, WebError> {
    let submit_to = given.unwrap_or_else(|| "https://www.mturk.com".into());
    let submit_to = submit_to.trim_end_matches('/').to_owned();
    if !site.mturk_origin_allowed(&submit_to) {
        return Err(WebError::BadRequest(format!(
            "turkSubmitTo {submit_to:?} is not MTurk (https://www.mturk.com or https://workersandbox.mturk.com)"
        )));
    }
    Ok(submit_to)
}

/// MTurk ExternalQuestion. Nothing here changes state: a preview shows the task with the form
/// disabled; an accepted HIT shows a start button (a POST), or the task itself to a browser whose
/// session was started for this very MTurk assignment.
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
    let submit_to = submit_to_of(&site, q.turk_submit_to)?;
    let frame = Frame::Mturk {
        submit_to: submit_to.clone(),
    };
    let now = now_ms();
    let (st, n) = (state.clone(), name.clone());
    let (project, set) = blocking(move || {
        st.engine.entry_project(&n, Platform::Mturk)?;
        Ok(st.engine.preview_set(&n)?)
    })
    .await?;
    let Some(set) = set else {
        return Err(EngineError::NotFound("this project has no exemplar sets yet".into()).into());
    };
    if assignment == MTURK_PREVIEW || assignment.is_empty() {
        let mut ctx = Context::new();
        task_context(&mut ctx, &project, &set, now)?;
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
        .all(|s| platform_id_ok(s))
    {
        return Err(WebError::BadRequest(
            "assignmentId, hitId and workerId must be MTurk ids (letters and digits)".into(),
        ));
    }
    // A browser that started this very MTurk assignment sees its task again.
    if let Some((v, _)) = worker_of(&state, &req, None).await?
        && matches!(v.entry(), Entry::Mturk { assignment_id, .. } if *assignment_id == assignment)
    {
        let (st, a, w) = (state.clone(), assignment.clone(), worker_id.clone());
        if let Some(task) = blocking(move || Ok(st.engine.mturk_task(&a, &w, now)?)).await? {
            return show_task(&state, &site, &req, &v, &task, None, "", StatusCode::OK).await;
        }
    }
    let entry = MturkEntry {
        project: name.clone(),
        assignment_id: assignment,
        hit_id,
        worker_id,
        submit_to,
    };
    let mut ctx = Context::new();
    ctx.insert("project", &project_json(&project));
    ctx.insert("start", &seal_start(&state, MTURK_START, &entry));
    ctx.insert("worker_id", &entry.worker_id);
    ctx.insert("action", &format!("/mturk/{name}/start"));
    render(
        &state,
        &site,
        &req,
        Page::new("external_start.html", ctx).frame(frame),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartForm {
    start: Option<String>,
}

/// The worker pressed "start" on an accepted HIT: bind the MTurk assignment to an assignment here
/// (or find the one it is bound to), and show it.
async fn mturk_start(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<StartForm>,
) -> WebResult {
    let now = now_ms();
    let entry: MturkEntry = open_entry(
        &state,
        &req,
        MTURK_START,
        form.start.as_deref(),
        |e: &MturkEntry| &e.project,
        &path,
    )?;
    submit_to_of(&site, Some(entry.submit_to.clone()))?;
    let (st, e) = (state.clone(), entry.clone());
    let accepted = blocking(move || Ok(st.engine.mturk_start(&e, now)?)).await?;
    let worker = format!(
        "{}{}",
        crate::engine::external::MTURK_PREFIX,
        entry.worker_id
    );
    let session_entry = Entry::Mturk {
        project: entry.project.clone(),
        assignment_id: entry.assignment_id.clone(),
        hit_id: entry.hit_id.clone(),
        submit_to: entry.submit_to.clone(),
    };
    let (st, w) = (state.clone(), worker.clone());
    let (token, session) = blocking(move || {
        Ok(st
            .sessions
            .start_worker(&w, Via::Mturk, &session_entry, now)?)
    })
    .await?;
    let v = Visitor {
        session,
        worker,
        token: token.clone(),
    };
    let a = &accepted.assignment;
    let mut resp = match a.state.as_str() {
        "accepted" if a.expires_at > now => {
            show_task(&state, &site, &req, &v, &accepted, None, "", StatusCode::OK).await?
        }
        // Described already: send it to MTurk again (MTurk takes one submit per assignment).
        "submitted" | "approved" => mturk_finish(&state, &site, &req, &v, &a.public_id).await?,
        _ => {
            return Err(EngineError::Conflict(
                "this HIT's time on the task server ran out; return the HIT on MTurk and accept \
                 another"
                    .into(),
            )
            .into());
        }
    };
    resp.add_cookie(&session::cookie(
        &state.net,
        &req,
        session::WORKER_COOKIE,
        token,
        true,
    ))
    .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(resp)
}

// ------------------------------------------------------------------ Prolific

#[derive(Debug, Deserialize)]
struct ProlificQuery {
    #[serde(rename = "PROLIFIC_PID")]
    pid: Option<String>,
    #[serde(rename = "STUDY_ID")]
    study: Option<String>,
    #[serde(rename = "SESSION_ID")]
    session: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, Deserialize)]
struct ProlificEntry {
    project: String,
    pid: String,
    study: String,
    session: String,
}

/// Prolific's study link: a page that asks the participant to confirm. It sets no cookie and no
/// session begins here, so a link on another site cannot sign a visitor in.
async fn prolific(
    state: State,
    site: SiteData,
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
    if ![&pid, &study, &sess].iter().all(|s| platform_id_ok(s)) {
        return Err(WebError::BadRequest(
            "PROLIFIC_PID, STUDY_ID and SESSION_ID must be Prolific ids".into(),
        ));
    }
    let (st, n) = (state.clone(), name.clone());
    let project = blocking(move || Ok(st.engine.entry_project(&n, Platform::Prolific)?)).await?;
    let entry = ProlificEntry {
        project: name.clone(),
        pid,
        study,
        session: sess,
    };
    let mut ctx = Context::new();
    ctx.insert("project", &project_json(&project));
    ctx.insert("start", &seal_start(&state, PROLIFIC_START, &entry));
    ctx.insert("worker_id", &entry.pid);
    ctx.insert("study", &entry.study);
    ctx.insert("action", &format!("/prolific/{name}/start"));
    render(
        &state,
        &site,
        &req,
        Page::new("external_start.html", ctx).cookieless(),
    )
}

async fn prolific_start(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<StartForm>,
) -> WebResult {
    let now = now_ms();
    let entry: ProlificEntry = open_entry(
        &state,
        &req,
        PROLIFIC_START,
        form.start.as_deref(),
        |e: &ProlificEntry| &e.project,
        &path,
    )?;
    let st = state.clone();
    let e = entry.clone();
    let (token, _) = blocking(move || {
        st.engine
            .prolific_start(&e.project, &e.pid, &e.study, &e.session, now)?;
        let worker = format!("{}{}", crate::engine::external::PROLIFIC_PREFIX, e.pid);
        let session_entry = Entry::Prolific {
            project: e.project.clone(),
            study_id: e.study.clone(),
            session_id: e.session.clone(),
        };
        Ok(st
            .sessions
            .start_worker(&worker, Via::Prolific, &session_entry, now)?)
    })
    .await?;
    Ok(super::see_other_with(
        &format!("/p/{}", entry.project),
        session::cookie(&state.net, &req, session::WORKER_COOKIE, token, false),
    ))
}

/// The participant finishes: once per study, then back to Prolific with the completion code.
async fn prolific_complete(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> WebResult {
    let name = path.into_inner();
    let v = require_worker_post(&state, &req, form.csrf.as_deref(), None, Some(&name)).await?;
    let Entry::Prolific {
        project,
        study_id,
        session_id,
    } = v.entry().clone()
    else {
        return Err(WebError::BadRequest(
            "you did not come from Prolific".into(),
        ));
    };
    if project != name {
        return Err(WebError::BadRequest(
            "you came from Prolific for another project".into(),
        ));
    }
    let pid = v
        .worker
        .strip_prefix(crate::engine::external::PROLIFIC_PREFIX)
        .unwrap_or_default()
        .to_owned();
    let (st, token) = (state.clone(), v.token.clone());
    let code = blocking(move || {
        let code = st
            .engine
            .prolific_complete(&project, &pid, &study_id, &session_id, now_ms())?;
        st.sessions.end(&token, now_ms())?;
        Ok(code)
    })
    .await?;
    Ok(super::see_other_with(
        &format!(
            "{}/submissions/complete?cc={}",
            crate::http::views::PROLIFIC_ORIGIN,
            urlencode(&code)
        ),
        session::removal(session::WORKER_COOKIE),
    ))
}

// ------------------------------------------------------------------ qualification

async fn qualification_page(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let v = require_worker(&state, &req, Some(&name)).await?;
    let now = now_ms();
    // Opening is a write: the attempt's clock starts at the first opening, in the database.
    let (s2, n, w) = (site.clone(), name.clone(), v.worker.clone());
    let (test, opening) = blocking(move || {
        let test = s2.qualifications.test(&n)?;
        let opening = match test {
            Some(_) => Some(s2.qualifications.open(&n, &w, now)?),
            None => None,
        };
        Ok((test, opening))
    })
    .await?;
    let (Some(test), Some(opening)) = (test, opening) else {
        return Err(EngineError::NotFound("this project has no qualification test".into()).into());
    };
    let mut ctx = worker_context(&state, &v).await?;
    ctx.insert("project", &json!({"name": name}));
    ctx.insert(
        "standing",
        match opening.standing {
            Standing::Passed => "passed",
            Standing::RetryAt(_) => "wait",
            _ => "open",
        },
    );
    if let Standing::RetryAt(at) = opening.standing {
        ctx.insert("retry_in", &duration_text(at - now));
    }
    let attempt = opening.started_at.unwrap_or_default();
    let key = ChoiceKey::new(&state.auth, &name, &v.worker, attempt);
    let questions: Vec<_> = match opening.started_at {
        None => Vec::new(),
        Some(_) => test
            .questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                json!({
                    "prompt": q.prompt,
                    "images": q.images.iter().map(|h| format!("/images/{h}.png")).collect::<Vec<_>>(),
                    "choices": key
                        .shuffled(i, &q.choices)
                        .into_iter()
                        .map(|(value, text)| json!({"value": value, "text": text}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect(),
    };
    ctx.insert("questions", &questions);
    ctx.insert("pass_mark", &test.pass_mark);
    ctx.insert("time_limit", &duration_text(test.time_limit_ms));
    ctx.insert(
        "time_left",
        &duration_text(opening.left_ms(now).unwrap_or_default()),
    );
    ctx.insert("attempt", &attempt);
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
    let v = require_worker_post(&state, &req, get("csrf"), get("session"), Some(&name)).await?;
    super::only_fields(&fields, |n| {
        matches!(n, "csrf" | "session" | "attempt")
            || n.strip_prefix('q')
                .is_some_and(|i| i.parse::<usize>().is_ok())
    })?;
    let attempt: Millis = get("attempt").and_then(|a| a.parse().ok()).ok_or_else(|| {
        WebError::BadRequest("the test form is damaged; open the test again".into())
    })?;
    let (s2, n) = (site.clone(), name.clone());
    let test = blocking(move || Ok(s2.qualifications.test(&n)?)).await?;
    let (choices, retry): (Vec<usize>, i64) = test.as_ref().map_or((Vec::new(), 0), |t| {
        (
            t.questions.iter().map(|q| q.choices.len()).collect(),
            t.retry_delay_ms,
        )
    });
    let key = ChoiceKey::new(&state.auth, &name, &v.worker, attempt);
    let answers: Vec<Option<usize>> = choices
        .iter()
        .enumerate()
        .map(|(i, &n)| key.chosen(i, n, get(&format!("q{i}"))?))
        .collect();
    let (s2, n, w) = (site.clone(), name.clone(), v.worker.clone());
    let grade = blocking(move || {
        Ok(s2
            .qualifications
            .grade(&n, &w, attempt, &answers, now_ms())?)
    })
    .await?;
    let mut ctx = worker_context(&state, &v).await?;
    ctx.insert("project", &json!({"name": name}));
    ctx.insert(
        "graded",
        &json!({"correct": grade.correct, "total": grade.total, "passed": grade.passed,
                "timed_out": grade.timed_out}),
    );
    ctx.insert("retry_in", &duration_text(retry));
    ctx.insert("standing", if grade.passed { "passed" } else { "wait" });
    ctx.insert("questions", &Vec::<serde_json::Value>::new());
    render(&state, &site, &req, Page::new("qualification.html", ctx))
}

async fn back_to_tasks() -> HttpResponse {
    see_other("/")
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
        // A reload of the page a refused submit left (or a bookmark of it) is a GET: it goes back
        // to the worker's tasks instead of an error, and submits nothing.
        .route("/a/{id}/submit", web::get().to(back_to_tasks))
        .route("/a/{id}/return", web::get().to(back_to_tasks))
        .route("/w/check", web::post().to(check))
        .route("/mturk/{project}", web::get().to(mturk))
        .route("/mturk/{project}/start", web::post().to(mturk_start))
        .route("/prolific/{project}", web::get().to(prolific))
        .route("/prolific/{project}/start", web::post().to(prolific_start))
        .route(
            "/prolific/{project}/complete",
            web::post().to(prolific_complete),
        );
}
