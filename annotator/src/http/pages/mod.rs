//! The HTML pages workers and requesters use (tera templates and static files from `frontend/`,
//! compiled into the binary). Handlers read the visitor, call the engine, accounts or
//! qualification modules, and render; no rules live here.
//!
//! Every page is sent with a strict Content-Security-Policy (scripts and styles from this origin
//! only, no inline script or style), `frame-ancestors 'none'` except for MTurk workers, whose pages
//! MTurk frames; tera autoescapes every variable and no template marks anything `safe`. No GET
//! changes state; every POST carries a CSRF token (or, in MTurk's iframe, the session token) and
//! must come from a page of this origin. Server messages after a form travel in a sealed cookie
//! ("flash"), never in the URL, so no link can make a page say anything.

pub mod requester;
pub mod worker;

use actix_web::http::StatusCode;
use actix_web::http::header::{self};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use tera::{Context, Tera};

use crate::accounts::Accounts;
use crate::http::cookies as session;
pub use crate::http::errors::WebError;
use crate::http::state::AppState;
use crate::http::views::{Frame, MTURK_ORIGINS, csp, templates};
use crate::qualification::Qualifications;

/// Settings of the web pages.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Origins besides MTurk's that `turkSubmitTo` may name (a local MTurk stand-in in tests).
    pub extra_mturk_origins: Vec<String>,
}

/// What the page handlers reach besides [`AppState`].
#[derive(Debug)]
pub struct Site {
    pub accounts: Accounts,
    pub qualifications: Qualifications,
    pub templates: Tera,
    pub config: WebConfig,
}

impl Site {
    pub fn new(state: &AppState, config: WebConfig) -> Self {
        Site {
            accounts: state.accounts(),
            qualifications: state.qualifications(),
            templates: templates(),
            config,
        }
    }

    /// Whether `turkSubmitTo` names MTurk (or a configured stand-in).
    pub fn mturk_origin_allowed(&self, origin: &str) -> bool {
        MTURK_ORIGINS.contains(&origin)
            || self.config.extra_mturk_origins.iter().any(|o| o == origin)
    }
}

/// A page to send: template, context and status.
#[derive(Debug)]
pub struct Page {
    pub template: &'static str,
    pub context: Context,
    pub status: StatusCode,
    pub frame: Frame,
    /// Origins besides this one that a form of the page may end up at (after a redirect).
    pub form_targets: Vec<&'static str>,
    /// Set no cookie at all (a page a link on another site may open; its form is checked by its
    /// sealed value and origin instead of a CSRF cookie).
    pub cookieless: bool,
}

impl Page {
    pub fn new(template: &'static str, context: Context) -> Self {
        Page {
            template,
            context,
            status: StatusCode::OK,
            frame: Frame::Deny,
            form_targets: Vec::new(),
            cookieless: false,
        }
    }

    pub fn cookieless(mut self) -> Self {
        self.cookieless = true;
        self
    }

    pub fn form_target(mut self, origin: &'static str) -> Self {
        self.form_targets.push(origin);
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn frame(mut self, frame: Frame) -> Self {
        self.frame = frame;
        self
    }
}

/// Renders a page with the visitor's CSRF token and the security headers.
pub fn render(
    state: &AppState,
    site: &Site,
    req: &HttpRequest,
    mut page: Page,
) -> Result<HttpResponse, WebError> {
    let (csrf_cookie, new) = session::csrf_cookie(req);
    page.context
        .insert("csrf", &session::csrf_token(&state.auth, &csrf_cookie));
    let flash = session::flash(&state.auth, req, crate::domain::now_ms());
    if let Some(notice) = &flash
        && !page.context.contains_key("notice")
    {
        page.context.insert("notice", notice);
    }
    let html = site
        .templates
        .render(page.template, &page.context)
        .map_err(|e| WebError::Internal(format!("template {}: {e:?}", page.template)))?;
    let mut resp = HttpResponse::build(page.status);
    resp.content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            csp(&page.frame, &page.form_targets),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", "same-origin"));
    if page.frame == Frame::Deny {
        resp.insert_header(("X-Frame-Options", "DENY"));
    }
    if new && !page.cookieless {
        resp.cookie(session::cookie(
            &state.net,
            req,
            session::CSRF_COOKIE,
            csrf_cookie,
            page.frame != Frame::Deny,
        ));
    }
    if req.cookie(session::FLASH_COOKIE).is_some() {
        resp.cookie(session::removal(session::FLASH_COOKIE));
    }
    Ok(resp.body(html))
}

/// A 303 to a page of this site (after a POST).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A 303 that also sets a (session) cookie: the end of every sign-in.
pub fn see_other_with(location: &str, cookie: actix_web::cookie::Cookie<'_>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(cookie)
        .finish()
}

/// A 303 after a form, with a notice for the next page (a sealed cookie, not the URL).
pub fn see_other_notice(
    state: &AppState,
    req: &HttpRequest,
    location: &str,
    notice: &str,
) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(session::flash_cookie(
            &state.auth,
            &state.net,
            req,
            notice,
            crate::domain::now_ms(),
        ))
        .finish()
}

/// Refuses a POST that a page of another site made (`Origin`, `Sec-Fetch-Site`).
pub fn check_origin(state: &AppState, req: &HttpRequest) -> Result<(), WebError> {
    if state.net.same_origin(req) {
        Ok(())
    } else {
        Err(WebError::CrossSite)
    }
}

/// A page's POST: from this origin, with the CSRF token of the visitor's cookie.
pub fn check_form(state: &AppState, req: &HttpRequest, csrf: Option<&str>) -> Result<(), WebError> {
    check_origin(state, req)?;
    if session::csrf_ok(&state.auth, req, csrf) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
}

/// A form with nothing but its CSRF token (sign-out).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

pub type WebResult = Result<HttpResponse, WebError>;

/// Runs blocking work (the database, argon2) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    web::block(f).await?
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Money as the pages show it: `$1,234.05`, `-$0.50`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let whole = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, d) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(d);
    }
    format!("{sign}${grouped}.{:02}", abs % 100)
}

/// A JSON-ready view of anything serialisable, for template contexts.
pub fn ctx_with<T: Serialize>(pairs: &[(&str, &T)]) -> Context {
    let mut ctx = Context::new();
    for (k, v) in pairs {
        ctx.insert(*k, v);
    }
    ctx
}

/// Registers the pages (before the API's routes and its JSON 404).
/// Refuses a field that no form of ours sends, naming it (400): for the forms read as lists of
/// name-value pairs (their fields are numbered), as `deny_unknown_fields` does for the others.
pub fn only_fields(
    fields: &[(String, String)],
    known: impl Fn(&str) -> bool,
) -> Result<(), WebError> {
    match fields.iter().find(|(name, _)| !known(name)) {
        Some((name, _)) => Err(WebError::BadRequest(format!(
            "this form cannot be read: unknown field `{name}`"
        ))),
        None => Ok(()),
    }
}

/// A form body that does not parse (a missing field, or one no form of ours has): 400 naming it.
fn form_error(err: actix_web::error::UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    WebError::BadRequest(format!("this form cannot be read: {err}")).into()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().error_handler(form_error));
    worker::configure(cfg);
    requester::configure(cfg);
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn money_reads_as_money_at_any_size() {
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(123_456), "$1,234.56");
        assert_eq!(dollars(-50), "-$0.50");
        assert_eq!(dollars(i64::MAX), "$92,233,720,368,547,758.07");
        assert_eq!(dollars(i64::MIN), "-$92,233,720,368,547,758.08");
    }
}
