//! The checks most handlers begin with, as actix extractors, so that a handler states what it
//! needs in its arguments and cannot forget to ask:
//!
//! - [`Requester`]: an API call with the requester's API token (401 otherwise);
//! - [`Worker`]: an API call of a signed-in worker, within the rate limits per address (checked
//!   first, before any database read) and per worker (401, 429 otherwise);
//! - [`RequesterPage`]: a page of a signed-in requester (a redirect to sign in otherwise).
//!
//! None of them reads the request's body: a stranger's large body is refused before it is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::domain::now_ms;
use crate::http::cookies;
use crate::http::errors::{ApiError, WebError};
use crate::http::state::AppState;
use crate::limits::Limit;
use crate::sessions::{Entry, Session};

type Extracted<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

/// The app's state, which `server` and the tests register on every app.
fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("the app registers AppState")
        .clone()
}

/// The bearer token of an API call.
pub fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))
}

/// Counts a request against a limit; 429 with the seconds to wait when over it.
pub fn limit(state: &AppState, key: &str, limit: Option<Limit>) -> Result<(), ApiError> {
    match limit {
        Some(l) => state
            .limiter
            .hit(key, l, now_ms())
            .map_err(ApiError::TooMany),
        None => Ok(()),
    }
}

/// Checks the requester's API token; returns its id.
pub async fn requester_token(state: &AppState, req: &HttpRequest) -> Result<i64, ApiError> {
    let token = bearer(req)?.to_owned();
    let auth = state.auth.clone();
    Ok(web::block(move || auth.check_requester_token(&token)).await??)
}

/// The signed-in worker's session, from its bearer token.
pub async fn worker_session(state: &AppState, req: &HttpRequest) -> Result<Session, ApiError> {
    let token = bearer(req)?.to_owned();
    let sessions = state.sessions.clone();
    web::block(move || sessions.check(&token, now_ms()))
        .await??
        .filter(|s| s.worker().is_some())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "invalid, expired or revoked session token; start a new session".into(),
            )
        })
}

/// An API call made with the requester's API token: the token's id.
#[derive(Debug, Clone, Copy)]
pub struct Requester(pub i64);

impl FromRequest for Requester {
    type Error = ApiError;
    type Future = Extracted<Self, ApiError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(Requester(requester_token(&state(&req), &req).await?)) })
    }
}

/// A worker's API call to accept, submit or return: signed in and within the API's limits. The
/// worker's id, and how the session began: a session from a platform's entry page works only in
/// that entry's project (`Entry::may_work_in`), on the API as on the pages.
#[derive(Debug, Clone)]
pub struct Worker(pub String, pub Entry);

impl FromRequest for Worker {
    type Error = ApiError;
    type Future = Extracted<Self, ApiError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state(&req);
            // The address first: a flood from one address is refused before any database read.
            limit(
                &state,
                &format!("api-ip:{}", state.net.client_key(&req)),
                state.limits.per_address,
            )?;
            let session = worker_session(&state, &req).await?;
            let worker = session.worker().unwrap_or_default().to_owned();
            limit(
                &state,
                &format!("api-worker:{worker}"),
                state.limits.per_credential,
            )?;
            Ok(Worker(worker, session.entry))
        })
    }
}

/// Where a requester signs in.
pub const REQUESTER_SIGNIN: &str = "/r/signin";

/// The signed-in requester: a live requester session from the cookie, or a redirect to sign in.
pub async fn signed_in_requester(state: &AppState, req: &HttpRequest) -> Result<Session, WebError> {
    let Some(token) = req
        .cookie(cookies::REQUESTER_COOKIE)
        .map(|c| c.value().to_owned())
    else {
        return Err(WebError::SignIn(REQUESTER_SIGNIN.to_owned()));
    };
    let sessions = state.sessions.clone();
    web::block(move || sessions.check(&token, now_ms()))
        .await?
        .map_err(WebError::from)?
        .filter(|s| s.worker().is_none())
        .ok_or_else(|| WebError::SignIn(REQUESTER_SIGNIN.to_owned()))
}

/// A page of a signed-in requester: a live requester session from the cookie.
#[derive(Debug, Clone)]
pub struct RequesterPage(pub Session);

impl FromRequest for RequesterPage {
    type Error = WebError;
    type Future = Extracted<Self, WebError>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Ok(RequesterPage(
                signed_in_requester(&state(&req), &req).await?,
            ))
        })
    }
}
