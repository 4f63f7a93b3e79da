//! What pages look like: the tera templates and static files of `frontend/`, compiled into the
//! binary and parsed once at start, and the Content-Security-Policy every HTML answer carries.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use tera::Tera;

/// MTurk's two sites: where ExternalQuestion pages are framed and answers are posted.
pub const MTURK_ORIGINS: &[&str] = &["https://www.mturk.com", "https://workersandbox.mturk.com"];

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../frontend/templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "base.html",
    "worker_stats.html",
    "instructions_body.html",
    "requester/nav.html",
    "error.html",
    "signin.html",
    "home.html",
    "project.html",
    "instructions.html",
    "task.html",
    "mturk_finish.html",
    "external_start.html",
    "qualification.html",
    "requester/signin.html",
    "requester/projects.html",
    "requester/dashboard.html",
    "requester/review.html",
    "requester/workers.html",
    "requester/qualification.html",
    "requester/sets.html",
);

const STATIC: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../frontend/static/app.css"),
    ),
    (
        "task.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../frontend/static/task.js"),
    ),
    (
        "review.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../frontend/static/review.js"),
    ),
    (
        "example-set.svg",
        "image/svg+xml",
        include_bytes!("../../../frontend/static/example-set.svg"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../frontend/static/favicon.svg"),
    ),
    (
        "workers.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../frontend/static/workers.js"),
    ),
    (
        "finish.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../frontend/static/finish.js"),
    ),
];

/// The templates, parsed once; a broken template fails here, at start, not on a page view.
pub fn templates() -> Tera {
    let mut tera = Tera::default();
    tera.add_raw_templates(TEMPLATES.iter().copied())
        .expect("frontend templates parse");
    tera.autoescape_on(vec![".html"]);
    tera
}

/// Who may frame a page and where its forms may post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// No framing; forms post here only.
    Deny,
    /// MTurk may frame it, and forms may post to `submit_to` (MTurk's externalSubmit).
    Mturk { submit_to: String },
}

/// Prolific's site: where a participant's finish form is redirected.
pub const PROLIFIC_ORIGIN: &str = "https://app.prolific.com";

pub fn csp(frame: &Frame, form_targets: &[&str]) -> String {
    let (ancestors, mut form) = match frame {
        Frame::Deny => ("'none'".to_owned(), "'self'".to_owned()),
        Frame::Mturk { submit_to } => (MTURK_ORIGINS.join(" "), format!("'self' {submit_to}")),
    };
    // form-action also governs where a form's redirect may lead.
    for target in form_targets {
        form.push(' ');
        form.push_str(target);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action {form}; frame-ancestors {ancestors}; base-uri 'none'"
    )
}

async fn static_file(path: web::Path<String>) -> HttpResponse {
    static_named(&path.into_inner())
}

/// Browsers ask for `/favicon.ico` whatever the page says; they get the SVG icon.
async fn favicon() -> HttpResponse {
    static_named("favicon.svg")
}

fn static_named(name: &str) -> HttpResponse {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Registers the static files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{name}", web::get().to(static_file))
        .route("/favicon.ico", web::get().to(favicon));
}
