//! What a client sees of an error, one rule for the API and the pages: the status of an engine
//! error ([`engine_status`]), the message (none for a 500, which goes to the log:
//! [`public_message`]); the API's JSON errors ([`ApiError`]) and the pages' HTML ones ([`WebError`],
//! rendered by [`error_page`]).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use milan_shared::wire;
use tera::{Context, Tera};

use crate::auth::AuthError;
use crate::engine::EngineError;
use crate::export::ExportError;
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
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!("a write was refused, the database cannot grow: {error}");
        FULL_MESSAGE.to_owned()
    } else {
        error.to_string()
    }
}

/// What a client is told when the database cannot grow.
pub const FULL_MESSAGE: &str = "the server cannot store anything right now (its disk is full): \
nothing of this request was stored; send it again in a few minutes";

/// The HTTP status of an engine error: the one mapping the API and the pages share.
pub fn engine_status(e: &EngineError) -> StatusCode {
    match e {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
        EngineError::Conflict(_) => StatusCode::CONFLICT,
        EngineError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        EngineError::Db(e) if e.is_full() => StatusCode::SERVICE_UNAVAILABLE,
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

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("request body too large: the limit of this route is {0}")]
    TooLarge(String),
    #[error("send Content-Type: application/json")]
    NotJson,
    #[error("too many requests; try again in {0} s")]
    TooMany(i64),
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
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Engine(e) | ApiError::Export(ExportError::Engine(e)) => engine_status(e),
            ApiError::Export(ExportError::Incomplete(_)) => StatusCode::CONFLICT,
            ApiError::Export(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = public_message(status, self);
        let mut resp = HttpResponse::build(status);
        if let ApiError::TooMany(s) = self {
            resp.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header((header::RETRY_AFTER, "60"));
        }
        resp.json(wire::ErrorBody { error: message })
    }
}

/// A failed page request, shown as an HTML page with the status that says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the form expired or came from another site; go back, reload the page and try again")]
    Csrf,
    #[error("too many attempts; wait {0} s and try again")]
    RateLimited(i64),
    #[error("that form came from another site; open this site's page and try again")]
    CrossSite,
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("internal error")]
    Internal(String),
    /// Not signed in: go to this sign-in page.
    #[error("sign in first")]
    SignIn(String),
}

impl From<crate::export::ExportError> for WebError {
    fn from(e: crate::export::ExportError) -> Self {
        use crate::export::ExportError;
        match e {
            ExportError::Engine(e) => WebError::Engine(e),
            ExportError::Incomplete(m) => WebError::Engine(EngineError::Conflict(m)),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for WebError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Csrf | WebError::CrossSite => StatusCode::FORBIDDEN,
            WebError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::SignIn(_) => StatusCode::SEE_OTHER,
            WebError::Engine(e) => crate::http::errors::engine_status(e),
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let WebError::SignIn(to) = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, to.as_str()))
                .finish();
        }
        let status = self.status_code();
        let message = crate::http::errors::public_message(status, self);
        let mut resp = error_page(status, &message);
        if let WebError::RateLimited(s) = self {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&s.to_string()).expect("digits are a header value"),
            );
        }
        resp
    }
}
