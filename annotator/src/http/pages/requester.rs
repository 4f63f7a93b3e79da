//! The requester's pages: sign-in, projects with progress, the dashboard (throughput chart, ETA,
//! exports, qualification test), the review queue with agreement per set, and the worker table.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tera::Context;

use super::{
    CsrfForm, Page, Site, WebError, WebResult, blocking, dollars, render, see_other_notice,
};
use crate::domain::now_ms;
use crate::engine::{Bonus, EngineError, Paid};
use crate::http::cookies as session;
use crate::http::downloads::{self, ExportQuery};
use crate::http::extract::RequesterPage;
use crate::http::state::AppState;
use crate::qualification::{self, QuestionForm, TestForm};
use crate::reports::{SetQuery, Totals, WorkerQuery, WorkerShow, WorkerSort};
use crate::sessions::Session;

type State = web::Data<AppState>;
type SiteData = web::Data<Site>;

const SIGNIN: &str = crate::http::extract::REQUESTER_SIGNIN;

/// A requester's POST from a page of this site: signed in, with a matching CSRF token.
async fn requester_post(
    state: &AppState,
    req: &HttpRequest,
    csrf: Option<&str>,
) -> Result<Session, WebError> {
    super::check_origin(state, req)?;
    let s = crate::http::extract::signed_in_requester(state, req).await?;
    super::check_form(state, req, csrf)?;
    Ok(s)
}

fn base_context(s: &Session) -> Context {
    let mut ctx = Context::new();
    if let crate::sessions::Subject::Requester(name) = &s.subject {
        ctx.insert("requester", name);
    }
    ctx
}

// ------------------------------------------------------------------ sign-in

async fn signin_page(state: State, site: SiteData, req: HttpRequest) -> WebResult {
    render(
        &state,
        &site,
        &req,
        Page::new("requester/signin.html", Context::new()),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInForm {
    csrf: Option<String>,
    username: String,
    password: String,
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
    let address = state.net.client_key(&req);
    let trusted = session::trusted_device(&state.auth, &req, "requester", &form.username, now);
    state
        .limiter
        .sign_in_allowed("requester", &address, &form.username, trusted, now)
        .map_err(WebError::RateLimited)?;
    let s2 = site.clone();
    let (user, pass) = (form.username.clone(), form.password.clone());
    let ok = blocking(move || Ok(s2.accounts.check_requester(&user, &pass)?)).await?;
    if !ok {
        state
            .limiter
            .sign_in_failed("requester", &address, &form.username, trusted, now);
        let ctx = super::ctx_with(&[("error", &"Wrong username or password.")]);
        return render(
            &state,
            &site,
            &req,
            Page::new("requester/signin.html", ctx).status(StatusCode::UNAUTHORIZED),
        );
    }
    state
        .limiter
        .signed_in("requester", &address, &form.username, now);
    let (st, user) = (state.clone(), form.username.clone());
    let (token, _) = blocking(move || Ok(st.sessions.start_requester(&user, now)?)).await?;
    let mut resp = super::see_other_with(
        "/r",
        session::cookie(&state.net, &req, session::REQUESTER_COOKIE, token, false),
    );
    resp.add_cookie(&session::device_cookie(
        &state.auth,
        &state.net,
        &req,
        "requester",
        &form.username,
        now,
    ))
    .map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(resp)
}

/// Ends the session on the server: the old cookie stops working even if it was copied.
async fn signout(state: State, req: HttpRequest, form: web::Form<CsrfForm>) -> WebResult {
    requester_post(&state, &req, form.csrf.as_deref()).await?;
    if let Some(c) = req.cookie(session::REQUESTER_COOKIE) {
        let (st, token) = (state.clone(), c.value().to_owned());
        blocking(move || Ok(st.sessions.end(&token, now_ms())?)).await?;
    }
    Ok(super::see_other_with(
        SIGNIN,
        session::removal(session::REQUESTER_COOKIE),
    ))
}

// ------------------------------------------------------------------ projects and dashboard

async fn projects(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
) -> WebResult {
    let st = state.clone();
    let rows = blocking(move || {
        let mut rows = Vec::new();
        for p in st.engine.projects()? {
            let totals = Totals::of(&st.reports.progress(&p.name)?);
            rows.push(json!({"name": p.name, "title": p.title, "totals": totals}));
        }
        Ok(rows)
    })
    .await?;
    let mut ctx = base_context(&s);
    ctx.insert("projects", &rows);
    render(
        &state,
        &site,
        &req,
        Page::new("requester/projects.html", ctx),
    )
}

async fn dashboard(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    let name = path.into_inner();
    let (st, s2, n) = (state.clone(), site.clone(), name.clone());
    let now = now_ms();
    let (project, board, test, agreement) = blocking(move || {
        let project = st.engine.project(&n)?;
        let board = st.reports.dashboard(&n, now)?;
        let agreement = st.engine.model_agreement(&n)?;
        let test = s2.qualifications.test(&n)?;
        Ok((project, board, test, agreement))
    })
    .await?;
    let mut ctx = base_context(&s);
    ctx.insert("project", &json!({
        "name": project.name, "title": project.title, "reward": dollars(project.reward_cents),
        "assignments_per_set": project.assignments_per_set, "lease_min": project.lease_ms / 60_000,
        "qualification_required": project.qualification_required,
        "prolific": project.prolific_completion_code.is_some(),
        "order_by_priority": project.order_by_priority,
        "catalog_public": project.catalog_public,
    }));
    ctx.insert("model", &model_table(&agreement));
    ctx.insert(
        "progress",
        &board
            .progress
            .iter()
            .map(|p| json!({"row": p, "percent": p.percent()}))
            .collect::<Vec<_>>(),
    );
    ctx.insert("totals", &board.totals);
    ctx.insert("chart", &board.chart);
    ctx.insert("eta", &board.eta);
    ctx.insert("exports", &[
        json!({"query": "format=milannotations", "label": "MILANNOTATIONS",
               "note": "the units with an approved description (.tar.gz; the other units' rows are zero and named in omitted.csv)"}),
        json!({"query": "format=milannotations&units=all", "label": "MILANNOTATIONS, every unit",
               "note": "exemplars of every set, described or not (.tar.gz)"}),
        json!({"query": "format=mturk-csv", "label": "MTurk CSV",
               "note": "every submission in Mechanical Turk's batch-results columns"}),
        json!({"query": "format=jsonl", "label": "JSON lines", "note": "every submission, one JSON object per line"}),
    ]);
    ctx.insert("test", &test.map(|t| json!({"source": t.source, "questions": t.questions.len(), "pass_mark": t.pass_mark})));
    // The public URL is configuration (`--public-url`), never the request's Host header.
    let net = &state.net;
    ctx.insert("entry", &json!({
        "mturk": net.url(&format!("/mturk/{}", project.name)),
        "prolific": net.url(&format!("/prolific/{}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}", project.name)),
        "local": net.url(&format!("/signin?project={}", project.name)),
        "absolute": net.public_url.is_some(),
    }));
    render(
        &state,
        &site,
        &req,
        Page::new("requester/dashboard.html", ctx),
    )
}

async fn export_download(
    state: State,
    _: RequesterPage,
    _req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> WebResult {
    let request = query.parse().map_err(WebError::BadRequest)?;
    Ok(downloads::respond(&state, &path, request).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualificationForm {
    csrf: Option<String>,
    source: String,
    required: Option<String>,
}

/// A commented example for an empty TOML box.
const TOML_TEMPLATE: &str = "pass_mark = 2          # correct answers needed; default: all\n\
retry_delay_s = 120    # wait after a failed attempt\n\
time_limit_s = 1800    # from opening the test to submitting it\n\
\n\
[[question]]\n\
project = \"qualification-pool\"   # another project: its exemplar sets are shown\n\
model = \"resnet152/imagenet\"\n\
layer = \"layer4\"\n\
unit = 17\n\
choices = [\"dog faces\", \"blue sky\", \"text on signs\"]\n\
answer = \"dog faces\"\n";

/// Blank questions the form offers for adding (no script needed).
const BLANK_QUESTIONS: usize = 2;

/// What the qualification page shows after a refused save: the error and what was typed.
enum Typed {
    Nothing,
    Form(TestForm, String),
    Toml(String, String),
}

async fn qualification_page(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
) -> WebResult {
    qualification_view(&state, &site, &req, &s, &path.into_inner(), Typed::Nothing).await
}

async fn qualification_view(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    s: &Session,
    name: &str,
    typed: Typed,
) -> WebResult {
    let (st, n) = (state.clone(), name.to_owned());
    let (project, test, others) = blocking(move || {
        let project = st.engine.project(&n)?;
        let test = st.qualifications().test(&n)?;
        let others: Vec<String> = st
            .engine
            .projects()?
            .into_iter()
            .filter(|p| p.name != n)
            .map(|p| p.name)
            .collect();
        Ok((project, test, others))
    })
    .await?;
    let stored_source = test.as_ref().map(|t| t.source.clone());
    let (mut form, toml, error, error_in) = match typed {
        Typed::Nothing => (
            stored_source
                .as_deref()
                .and_then(TestForm::of_source)
                .unwrap_or_default(),
            stored_source.clone().unwrap_or_default(),
            None,
            "",
        ),
        Typed::Form(form, error) => (
            form,
            stored_source.clone().unwrap_or_default(),
            Some(error),
            "form",
        ),
        Typed::Toml(toml, error) => (
            stored_source
                .as_deref()
                .and_then(TestForm::of_source)
                .unwrap_or_default(),
            toml,
            Some(error),
            "toml",
        ),
    };
    form.questions.extend(std::iter::repeat_n(
        QuestionForm::default(),
        BLANK_QUESTIONS,
    ));
    let mut ctx = base_context(s);
    ctx.insert(
        "project",
        &json!({"name": project.name, "title": project.title,
                "qualification_required": project.qualification_required}),
    );
    ctx.insert(
        "test",
        &test.map(|t| json!({"questions": t.questions.len(), "pass_mark": t.pass_mark})),
    );
    ctx.insert("form", &form);
    ctx.insert("toml", &toml);
    ctx.insert("toml_template", TOML_TEMPLATE);
    ctx.insert("others", &others);
    ctx.insert("error", &error);
    ctx.insert("error_in", error_in);
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        state,
        site,
        req,
        Page::new("requester/qualification.html", ctx).status(status),
    )
}

/// Saves a test and the "required" switch; `Err` is the refusal to show beside what was typed.
async fn save_test(
    state: &AppState,
    name: &str,
    source: Result<String, EngineError>,
    required: bool,
) -> Result<Result<String, String>, WebError> {
    let source = match source {
        Ok(source) => source,
        Err(EngineError::Invalid(m)) => return Ok(Err(m)),
        Err(e) => return Err(e.into()),
    };
    let (st, n) = (state.clone(), name.to_owned());
    let result = blocking(move || {
        let r = st.qualifications().set_test(&n, &source, now_ms());
        if r.is_ok() {
            st.engine
                .set_qualification_required(&n, required, now_ms())?;
        }
        Ok(r)
    })
    .await?;
    match result {
        Ok(test) => {
            let n = test.questions.len();
            Ok(Ok(format!(
                "Qualification test saved: {n} question{}, pass mark {}",
                if n == 1 { "" } else { "s" },
                test.pass_mark
            )))
        }
        Err(EngineError::Invalid(m)) => Ok(Err(m)),
        Err(e) => Err(e.into()),
    }
}

async fn upload_qualification(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<QualificationForm>,
) -> WebResult {
    let form = form.into_inner();
    let s = requester_post(&state, &req, form.csrf.as_deref()).await?;
    let name = path.into_inner();
    let required = form.required.is_some();
    let outcome = save_test(&state, &name, Ok(form.source.clone()), required).await?;
    // The TOML comes back as it was sent, with the error beside it.
    after_save(&state, &site, &req, &s, &name, outcome, |m| {
        Typed::Toml(form.source, m)
    })
    .await
}

/// After a save: back to the page with a notice, or the page again with the refusal and what
/// was typed.
async fn after_save(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    s: &Session,
    name: &str,
    outcome: Result<String, String>,
    refused: impl FnOnce(String) -> Typed,
) -> WebResult {
    match outcome {
        Ok(msg) => Ok(see_other_notice(
            state,
            req,
            &format!("/r/p/{name}/qualification"),
            &msg,
        )),
        Err(m) => qualification_view(state, site, req, s, name, refused(m)).await,
    }
}

/// The form's fields: `pass_mark`, `retry_delay_s`, `time_limit_s`, `required`, and per question
/// `q<i>.project`, `.model`, `.layer`, `.unit`, `.prompt`, `.choices`, `.answer`.
async fn qualification_form(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    fields: web::Form<Vec<(String, String)>>,
) -> WebResult {
    let fields = fields.into_inner();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let s = requester_post(&state, &req, Some(&get("csrf"))).await?;
    super::only_fields(&fields, |n| {
        matches!(
            n,
            "csrf" | "pass_mark" | "retry_delay_s" | "time_limit_s" | "required"
        ) || n
            .strip_prefix('q')
            .and_then(|q| q.split_once('.'))
            .is_some_and(|(i, f)| {
                i.parse::<usize>().is_ok()
                    && matches!(
                        f,
                        "project" | "model" | "layer" | "unit" | "prompt" | "choices" | "answer"
                    )
            })
    })?;
    let name = path.into_inner();
    let mut form = TestForm {
        pass_mark: get("pass_mark"),
        retry_delay_s: get("retry_delay_s"),
        time_limit_s: get("time_limit_s"),
        questions: Vec::new(),
    };
    for i in 0..qualification::MAX_QUESTIONS + BLANK_QUESTIONS {
        let field = |f: &str| get(&format!("q{i}.{f}"));
        if !fields.iter().any(|(n, _)| n.starts_with(&format!("q{i}."))) {
            break;
        }
        form.questions.push(QuestionForm {
            project: field("project"),
            model: field("model"),
            layer: field("layer"),
            unit: field("unit"),
            prompt: field("prompt"),
            choices: field("choices"),
            answer: field("answer"),
        });
    }
    let required = !get("required").is_empty();
    let outcome = save_test(&state, &name, form.to_toml(), required).await?;
    after_save(&state, &site, &req, &s, &name, outcome, |m| {
        // Blank questions were left out of the TOML: count only the filled ones, as the
        // TOML's error does, so its "question n" is the n-th filled question. Line numbers are
        // the generated TOML's, which the form never showed.
        form.questions.retain(|q| !q.is_blank());
        Typed::Form(form, strip_lines(&m))
    })
    .await
}

/// "question 2 (line 14), answer: ..." -> "question 2, answer: ...".
fn strip_lines(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" (line ") {
        out.push_str(&rest[..i]);
        match rest[i..].find(')') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The trainer's agreement with the humans as a table: a row per (model, layer), a column per
/// round, for the first system posted (the trainer posts `milan-pmi`).
fn model_table(rows: &[crate::engine::Agreement]) -> Value {
    let Some(system) = rows.first().map(|r| r.system.clone()) else {
        return Value::Null;
    };
    let rows: Vec<_> = rows.iter().filter(|r| r.system == system).collect();
    let mut rounds: Vec<i32> = rows.iter().map(|r| r.round).collect();
    rounds.sort_unstable();
    rounds.dedup();
    let mut layers: Vec<(String, String)> = Vec::new();
    for r in &rows {
        let key = (r.model.clone(), r.layer.clone());
        if !layers.contains(&key) {
            layers.push(key);
        }
    }
    let table: Vec<Value> = layers
        .iter()
        .map(|(model, layer)| {
            let cells: Vec<Value> = rounds
                .iter()
                .map(|round| {
                    let cell = rows
                        .iter()
                        .find(|r| r.round == *round && &r.model == model && &r.layer == layer);
                    match cell {
                        Some(c) => json!({
                            "bleu": c.bleu.map_or("-".to_owned(), |b| format!("{b:.1}")),
                            "title": format!("{} of {} described sets are complete", c.sets, c.described),
                        }),
                        None => json!({ "bleu": "", "title": "not described in this round" }),
                    }
                })
                .collect();
            json!({ "model": model, "layer": layer, "cells": cells })
        })
        .collect();
    json!({ "system": system, "rounds": rounds, "rows": table })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderingForm {
    csrf: Option<String>,
    by_priority: Option<String>,
}

async fn ordering(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<OrderingForm>,
) -> WebResult {
    let form = form.into_inner();
    requester_post(&state, &req, form.csrf.as_deref()).await?;
    let name = path.into_inner();
    let on = form.by_priority.is_some();
    let (st, n) = (state.clone(), name.clone());
    blocking(move || Ok(st.engine.set_order(&n, on, now_ms())?)).await?;
    let msg = if on {
        "Workers now get the sets the trainer asks for first"
    } else {
        "Workers now get the oldest sets first"
    };
    Ok(see_other_notice(&state, &req, &format!("/r/p/{name}"), msg))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogForm {
    csrf: Option<String>,
    public: Option<String>,
}

async fn catalog_access(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CatalogForm>,
) -> WebResult {
    let form = form.into_inner();
    requester_post(&state, &req, form.csrf.as_deref()).await?;
    let name = path.into_inner();
    let public = form.public.is_some();
    let (st, n) = (state.clone(), name.clone());
    blocking(move || Ok(st.engine.set_catalog_public(&n, public, now_ms())?)).await?;
    let msg = if public {
        "The catalog is public: anyone with its link may read it"
    } else {
        "The catalog is yours alone again"
    };
    Ok(see_other_notice(&state, &req, &format!("/r/p/{name}"), msg))
}

// ------------------------------------------------------------------ review

#[derive(Debug, Deserialize)]
struct ReviewQuery {
    sort: Option<String>,
}

async fn review(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ReviewQuery>,
) -> WebResult {
    let name = path.into_inner();
    let (st, n) = (state.clone(), name.clone());
    let by_agreement = query.sort.as_deref() == Some("agreement");
    let rows = blocking(move || Ok(st.reports.review_queue(&n, 25, by_agreement)?)).await?;
    let mut ctx = base_context(&s);
    ctx.insert("project", &json!({"name": name}));
    ctx.insert("sets", &rows);
    ctx.insert("sort", &query.sort);
    render(&state, &site, &req, Page::new("requester/review.html", ctx))
}

/// Approve or reject: one (`one=approve:<id>` / `reject:<id>`) or the ticked ones (`action` over
/// `ids`). Rejections need feedback: the row's own, or the bulk one.
async fn review_action(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> WebResult {
    let name = path.into_inner();
    let fields = form.into_inner();
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    requester_post(&state, &req, get("csrf")).await?;
    super::only_fields(&fields, |n| {
        matches!(n, "csrf" | "feedback" | "one" | "action" | "ids") || n.starts_with("feedback:")
    })?;
    let bulk_feedback = get("feedback").unwrap_or("").trim().to_owned();
    let mut actions: Vec<(String, String, String)> = Vec::new();
    if let Some(one) = get("one") {
        let (action, id) = one
            .split_once(':')
            .ok_or_else(|| WebError::BadRequest("bad action".into()))?;
        let own = get(&format!("feedback:{id}"))
            .unwrap_or("")
            .trim()
            .to_owned();
        let fb = if own.is_empty() {
            bulk_feedback.clone()
        } else {
            own
        };
        actions.push((action.to_owned(), id.to_owned(), fb));
    } else {
        let action = get("action").unwrap_or("");
        for (k, v) in &fields {
            if k == "ids" {
                let own = get(&format!("feedback:{v}"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let fb = if own.is_empty() {
                    bulk_feedback.clone()
                } else {
                    own
                };
                actions.push((action.to_owned(), v.clone(), fb));
            }
        }
        if actions.is_empty() {
            return Ok(see_other_notice(
                &state,
                &req,
                &format!("/r/p/{name}/review"),
                "Tick some descriptions first",
            ));
        }
    }
    for (action, _, fb) in &actions {
        match action.as_str() {
            "approve" => {}
            "reject" if fb.is_empty() => {
                return Ok(see_other_notice(
                    &state,
                    &req,
                    &format!("/r/p/{name}/review"),
                    "Rejecting needs feedback for the worker",
                ));
            }
            "reject" => {}
            other => return Err(WebError::BadRequest(format!("unknown action {other:?}"))),
        }
    }
    let st = state.clone();
    let (approved, rejected, skipped) = blocking(move || {
        let (mut a, mut r, mut s) = (0, 0, 0);
        for (action, id, fb) in &actions {
            let now = now_ms();
            let result = if action == "approve" {
                st.engine.approve(id, now)
            } else {
                st.engine.reject(id, fb, now)
            };
            match result {
                Ok(()) if action == "approve" => a += 1,
                Ok(()) => r += 1,
                // Reviewed meanwhile (auto-approval, another tab): say so, do not fail the rest.
                Err(EngineError::Conflict(_)) => s += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok((a, r, s))
    })
    .await?;
    Ok(see_other_notice(
        &state,
        &req,
        &format!("/r/p/{name}/review"),
        &format!(
            "Approved {approved}, rejected {rejected}{}",
            if skipped > 0 {
                format!(", {skipped} already reviewed")
            } else {
                String::new()
            }
        ),
    ))
}

// ------------------------------------------------------------------ set browser

#[derive(Debug, Default, Deserialize)]
struct SetsQuery {
    model: Option<String>,
    layer: Option<String>,
    unit: Option<String>,
}

/// The most sets one search lists.
const SETS_LISTED: i64 = 200;

/// Find sets by model, layer and unit; with all three given, the set's assignments and history.
async fn sets(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SetsQuery>,
) -> WebResult {
    let name = path.into_inner();
    let query = query.into_inner();
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let unit = match given(&query.unit) {
        None => None,
        Some(u) => Some(u.parse::<i32>().map_err(|_| {
            WebError::BadRequest(format!("unit {u:?}: give a unit number, like 17"))
        })?),
    };
    let set_query = SetQuery {
        model: given(&query.model),
        layer: given(&query.layer),
        unit,
    };
    let (st, n, q2) = (state.clone(), name.clone(), set_query.clone());
    let (layers, found, history) = blocking(move || {
        let layers = st.reports.layers(&n)?;
        let found = st.reports.find_sets(&n, &q2, SETS_LISTED)?;
        // One set found (or named whole): show its history.
        let history = match found.as_slice() {
            [one] => Some(
                st.reports
                    .set_history(&n, &one.model, &one.layer, one.unit)?,
            ),
            _ => None,
        };
        Ok((layers, found, history))
    })
    .await?;
    let mut ctx = base_context(&s);
    ctx.insert("project", &json!({"name": name}));
    let mut models: Vec<&str> = layers.iter().map(|(m, _)| m.as_str()).collect();
    models.dedup();
    ctx.insert("models", &models);
    ctx.insert(
        "layers",
        &layers
            .iter()
            .filter(|(m, _)| set_query.model.as_deref().is_none_or(|want| want == m))
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>(),
    );
    ctx.insert(
        "query",
        &json!({
            "model": set_query.model.clone().unwrap_or_default(),
            "layer": set_query.layer.clone().unwrap_or_default(),
            "unit": set_query.unit.map(|u| u.to_string()).unwrap_or_default(),
            "any": set_query != SetQuery::default(),
        }),
    );
    ctx.insert(
        "found",
        &found
            .iter()
            .map(|f| {
                json!({
                    "set": f,
                    "href": format!(
                        "/r/p/{}/sets?model={}&layer={}&unit={}",
                        super::urlencode(&name),
                        super::urlencode(&f.model),
                        super::urlencode(&f.layer),
                        f.unit
                    ),
                })
            })
            .collect::<Vec<_>>(),
    );
    ctx.insert("more", &(found.len() as i64 == SETS_LISTED));
    if let Some(h) = &history {
        ctx.insert("history", h);
        let when = |t: Option<i64>| t.map(crate::domain::mturk_time);
        ctx.insert(
            "times",
            &json!({
                "assignments": h.assignments.iter().map(|a| json!({
                    "accepted": crate::domain::mturk_time(a.accepted_at),
                    "submitted": when(a.submitted_at),
                    "reviewed": when(a.reviewed_at),
                })).collect::<Vec<_>>(),
                "events": h.events.iter().map(|e| crate::domain::mturk_time(e.at)).collect::<Vec<_>>(),
            }),
        );
    }
    render(&state, &site, &req, Page::new("requester/sets.html", ctx))
}

// ------------------------------------------------------------------ workers

#[derive(Debug, Default, Deserialize)]
struct WorkersQuery {
    q: Option<String>,
    show: Option<String>,
    sort: Option<String>,
}

impl WorkersQuery {
    fn parse(&self) -> Result<WorkerQuery, WebError> {
        let show = self.show.as_deref().unwrap_or("");
        let sort = self.sort.as_deref().unwrap_or("");
        Ok(WorkerQuery {
            search: self.q.clone().unwrap_or_default(),
            show: WorkerShow::parse(show).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "show={show:?}: choose all, pending, recent or blocked"
                ))
            })?,
            sort: WorkerSort::parse(sort).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "sort={sort:?}: choose done, pending, approval, median, recent or id"
                ))
            })?,
        })
    }
}

async fn workers(
    state: State,
    RequesterPage(s): RequesterPage,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<WorkersQuery>,
) -> WebResult {
    let query = query.into_inner();
    workers_page(&state, &site, &req, &s, &path.into_inner(), &query, None).await
}

/// The worker table; `code` is a one-time sign-in code just issued, shown in this response only
/// (never in a URL, where history and logs would keep it).
async fn workers_page(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    s: &Session,
    name: &str,
    query: &WorkersQuery,
    code: Option<(&str, &str)>,
) -> WebResult {
    let parsed = query.parse()?;
    let (st, n) = (state.clone(), name.to_owned());
    let lines = blocking(move || Ok(st.reports.workers(&n, &parsed, now_ms())?)).await?;
    let table: Vec<Value> = lines
        .iter()
        .map(|w| {
            json!({
                "line": w,
                "approval_rate": w.approval_rate.map_or_else(|| "-".to_owned(), |r| format!("{r}%")),
                "median": w.median_seconds.map_or_else(|| "-".to_owned(), |s| format!("{s} s")),
                "earnings": dollars(w.reward_cents),
                "bonus": dollars(w.bonus_cents),
                // A fresh key per rendering: the same form sent twice pays once.
                "bonus_key": uuid::Uuid::new_v4().to_string(),
            })
        })
        .collect();
    let mut ctx = base_context(s);
    ctx.insert("project", &json!({"name": name}));
    ctx.insert("workers", &table);
    ctx.insert(
        "query",
        &json!({
            "q": query.q.clone().unwrap_or_default(),
            "show": query.show.clone().unwrap_or_else(|| "all".into()),
            "sort": query.sort.clone().unwrap_or_else(|| "done".into()),
        }),
    );
    ctx.insert(
        "show_options",
        &[
            ("all", "everyone with work here"),
            ("pending", "with work to review"),
            ("recent", "active in the last 7 days"),
            ("blocked", "blocked"),
        ],
    );
    ctx.insert(
        "sort_options",
        &[
            ("done", "most work"),
            ("pending", "most to review"),
            ("approval", "lowest approval rate"),
            ("median", "fastest median time"),
            ("recent", "latest submission"),
            ("id", "worker id"),
        ],
    );
    if let Some((code, code_for)) = code {
        ctx.insert("code", code);
        ctx.insert("code_for", code_for);
    }
    render(state, site, req, Page::new("requester/workers.html", ctx))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerActionForm {
    csrf: Option<String>,
    action: String,
    worker: String,
    cents: Option<String>,
    reason: Option<String>,
    bonus_key: Option<String>,
}

async fn worker_action(
    state: State,
    site: SiteData,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<WorkerActionForm>,
) -> WebResult {
    let form = form.into_inner();
    let s = requester_post(&state, &req, form.csrf.as_deref()).await?;
    let name = path.into_inner();
    let (st, s2) = (state.clone(), site.clone());
    let worker = form.worker.trim().to_owned();
    let reason = form.reason.unwrap_or_default().trim().to_owned();
    let action = form.action.clone();
    let cents = form.cents.clone();
    let key = form.bonus_key.clone().unwrap_or_default();
    let project = name.clone();
    let outcome = blocking(move || {
        let now = now_ms();
        let result: Result<String, EngineError> =
            match action.as_str() {
                "bonus" => {
                    let dollars_text = cents.unwrap_or_default();
                    match parse_dollars(&dollars_text) {
                    // Said on the page like any other refusal, not as an error page.
                    None => Err(EngineError::Invalid(format!(
                        "Bonus {dollars_text:?}: give an amount like 0.50"
                    ))),
                    Some(cents) => st.engine.bonus(
                        &Bonus {
                            worker: &worker,
                            cents,
                            reason: &reason,
                            assignment: None,
                            project: Some(&project),
                            idempotency_key: &key,
                        },
                        now,
                    )
                    .map(|paid| match paid {
                        Paid::Paid => format!("Paid {} bonus to {worker}", dollars(cents)),
                        Paid::AlreadyPaid => format!(
                            "That bonus to {worker} was paid already (the form was sent twice)"
                        ),
                    }),
                }
                }
                "block" => st
                    .engine
                    .block(
                        &worker,
                        if reason.is_empty() {
                            "blocked by the requester"
                        } else {
                            &reason
                        },
                        now,
                    )
                    .map(|_| format!("Blocked {worker}")),
                "unblock" => st
                    .engine
                    .unblock(&worker, now)
                    .map(|_| format!("Unblocked {worker}")),
                "sessions" => st.sessions.revoke_worker(&worker, now).map(|n| {
                    format!(
                        "Ended {n} session{} of {worker}",
                        if n == 1 { "" } else { "s" }
                    )
                }),
                "code" => return Ok(Err(s2.accounts.issue_worker_code(&worker, now)?)),
                other => Err(EngineError::Invalid(format!("unknown action {other:?}"))),
            };
        Ok(Ok(result))
    })
    .await?;
    let back = format!("/r/p/{name}/workers");
    Ok(match outcome {
        Ok(Ok(msg)) => see_other_notice(&state, &req, &back, &msg),
        Ok(Err(
            EngineError::Invalid(m)
            | EngineError::NotFound(m)
            | EngineError::Conflict(m)
            | EngineError::Forbidden(m),
        )) => see_other_notice(&state, &req, &back, &m),
        Ok(Err(e)) => return Err(e.into()),
        Err(code) => {
            return workers_page(
                &state,
                &site,
                &req,
                &s,
                &name,
                &WorkersQuery::default(),
                Some((&code, form.worker.trim())),
            )
            .await;
        }
    })
}

fn parse_dollars(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('$');
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 2 || whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    let cents = whole.checked_mul(100)?.checked_add(frac)?;
    (cents > 0).then_some(cents)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/r/signin", web::get().to(signin_page))
        .route("/r/signin", web::post().to(signin))
        .route("/r/signout", web::post().to(signout))
        .route("/r", web::get().to(projects))
        .route("/r/p/{project}", web::get().to(dashboard))
        .route("/r/p/{project}/export", web::get().to(export_download))
        .route(
            "/r/p/{project}/qualification",
            web::get().to(qualification_page),
        )
        .route(
            "/r/p/{project}/qualification",
            web::post().to(upload_qualification),
        )
        .route(
            "/r/p/{project}/qualification/form",
            web::post().to(qualification_form),
        )
        .route("/r/p/{project}/ordering", web::post().to(ordering))
        .route("/r/p/{project}/catalog", web::post().to(catalog_access))
        .route("/r/p/{project}/review", web::get().to(review))
        .route("/r/p/{project}/review", web::post().to(review_action))
        .route("/r/p/{project}/sets", web::get().to(sets))
        .route("/r/p/{project}/workers", web::get().to(workers))
        .route("/r/p/{project}/workers", web::post().to(worker_action));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_errors_lose_the_generated_line_numbers() {
        assert_eq!(
            strip_lines("qualification test: question 2 (line 14), answer: \"x\" is not one"),
            "qualification test: question 2, answer: \"x\" is not one"
        );
        assert_eq!(strip_lines("no lines here"), "no lines here");
    }

    #[test]
    fn dollars_parse_like_a_person_types_them() {
        assert_eq!(parse_dollars("0.5"), Some(50));
        assert_eq!(parse_dollars("$1.25"), Some(125));
        assert_eq!(parse_dollars("2"), Some(200));
        assert_eq!(parse_dollars(".05"), Some(5));
        assert_eq!(parse_dollars("1.234"), None);
        assert_eq!(parse_dollars("0"), None);
        assert_eq!(parse_dollars("-1"), None);
        assert_eq!(parse_dollars("abc"), None);
    }
}
