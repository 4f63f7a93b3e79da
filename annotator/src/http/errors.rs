//! One rule for what a client sees of an error, shared by the API and the pages: the status of
//! an engine error, the message (none for a 500, which goes to the log), and the HTML error page a
//! browser gets.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use tera::{Context, Tera};

use crate::engine::EngineError;
use crate::http::views::{Frame, csp, templates};

/// What a client is told of an error: its message, or for a 500 only "internal error" (the
/// error itself goes to the log, never to the client). Shared by the API and the pages.
pub fn public_message(
    status: StatusCode,
    error: &(impl std::fmt::Display + std::fmt::Debug),
) -> String {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("internal error: {error:?}");
        "internal error".to_owned()
    } else {
        error.to_string()
    }
}

/// The HTTP status of an engine error: the one mapping the API and the pages share.
pub fn engine_status(e: &EngineError) -> StatusCode {
    match e {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
        EngineError::Conflict(_) => StatusCode::CONFLICT,
        EngineError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        EngineError::Corrupt(_) | EngineError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An HTML error page: status, message and the way back. Rendered without the app state, so it
/// carries no form and sets no cookie.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let mut ctx = Context::new();
    ctx.insert("status", &status.as_u16());
    ctx.insert("reason", status.canonical_reason().unwrap_or("Error"));
    ctx.insert("message", message);
    ctx.insert("csrf", "");
    let html = ERROR_TEMPLATES
        .render("error.html", &ctx)
        .unwrap_or_else(|_| "error".to_owned());
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", csp(&Frame::Deny, &[])))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(html)
}

/// Whether a request came from a browser navigating (it asks for HTML) rather than an API client.
pub fn wants_html(req: &HttpRequest) -> bool {
    !req.path().starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

static ERROR_TEMPLATES: std::sync::LazyLock<Tera> = std::sync::LazyLock::new(templates);
