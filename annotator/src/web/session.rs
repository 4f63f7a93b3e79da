//! Who is visiting: signed session cookies for workers and requesters, CSRF tokens, and rate
//! limits. Sessions are stateless (signed with the server's secret from the database), so several
//! server processes on one PostgreSQL accept each other's.
//!
//! CSRF: every visitor gets a random `milan_csrf` cookie; forms carry a keyed hash of it, checked
//! on every POST (a cross-site page can neither read the cookie nor compute the hash). In MTurk's
//! iframe, browsers may withhold cookies, so MTurk pages also carry the sealed session in a hidden
//! field; a request authenticated by that field cannot be forged cross-site and needs no CSRF
//! token.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::domain::{DAY_MS, Millis};

pub const WORKER_COOKIE: &str = "milan_worker";
pub const REQUESTER_COOKIE: &str = "milan_requester";
pub const CSRF_COOKIE: &str = "milan_csrf";
const WORKER_PURPOSE: &str = "web-worker";
const REQUESTER_PURPOSE: &str = "web-requester";
pub const WORKER_SESSION_MS: Millis = 30 * DAY_MS;
pub const REQUESTER_SESSION_MS: Millis = DAY_MS / 2;

/// How a worker arrived: this decides where they finish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "lowercase")]
pub enum Entry {
    #[default]
    Local,
    /// MTurk ExternalQuestion: the HIT's ids, and where to post the answer back.
    Mturk {
        project: String,
        assignment_id: String,
        hit_id: String,
        submit_to: String,
    },
    Prolific {
        project: String,
        study_id: String,
        session_id: String,
    },
}

impl Entry {
    pub fn is_mturk(&self) -> bool {
        matches!(self, Entry::Mturk { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSession {
    pub worker: String,
    pub issued: Millis,
    #[serde(default)]
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequesterSession {
    pub username: String,
    pub issued: Millis,
}

pub fn seal_worker(auth: &Auth, s: &WorkerSession) -> String {
    auth.seal(
        WORKER_PURPOSE,
        &serde_json::to_string(s).expect("serialises"),
    )
}

pub fn open_worker(auth: &Auth, token: &str, now: Millis) -> Option<WorkerSession> {
    let s: WorkerSession = serde_json::from_str(&auth.open(WORKER_PURPOSE, token)?).ok()?;
    (now - s.issued <= WORKER_SESSION_MS && s.issued <= now + 60_000).then_some(s)
}

pub fn seal_requester(auth: &Auth, s: &RequesterSession) -> String {
    auth.seal(
        REQUESTER_PURPOSE,
        &serde_json::to_string(s).expect("serialises"),
    )
}

pub fn open_requester(auth: &Auth, token: &str, now: Millis) -> Option<RequesterSession> {
    let s: RequesterSession = serde_json::from_str(&auth.open(REQUESTER_PURPOSE, token)?).ok()?;
    (now - s.issued <= REQUESTER_SESSION_MS && s.issued <= now + 60_000).then_some(s)
}

/// Whether cookies get the Secure flag: behind TLS (directly or as a proxy says).
pub fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// A session cookie: HttpOnly always; SameSite=Lax, or None+Secure over HTTPS in MTurk's iframe
/// (a third-party context where Lax cookies are not sent).
pub fn cookie<'a>(
    req: &HttpRequest,
    name: &'a str,
    value: String,
    third_party: bool,
) -> Cookie<'a> {
    let https = is_https(req);
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(https)
        .finish();
    c.set_same_site(if third_party && https {
        SameSite::None
    } else {
        SameSite::Lax
    });
    c
}

pub fn removal(name: &str) -> Cookie<'_> {
    let mut c = Cookie::build(name, "").path("/").http_only(true).finish();
    c.make_removal();
    c
}

/// The visitor's CSRF cookie value, or a new one (then `true`: the response must set it).
pub fn csrf_cookie(req: &HttpRequest) -> (String, bool) {
    match req.cookie(CSRF_COOKIE) {
        Some(c) if c.value().len() == 32 && c.value().bytes().all(|b| b.is_ascii_hexdigit()) => {
            (c.value().to_owned(), false)
        }
        _ => {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            (hex::encode(bytes), true)
        }
    }
}

pub fn csrf_token(auth: &Auth, cookie_value: &str) -> String {
    auth.derive("csrf", cookie_value)
}

/// Checks a form's CSRF token against the visitor's cookie.
pub fn csrf_ok(auth: &Auth, req: &HttpRequest, token: Option<&str>) -> bool {
    let (Some(cookie), Some(token)) = (req.cookie(CSRF_COOKIE), token) else {
        return false;
    };
    let expected = csrf_token(auth, cookie.value());
    // Equal-time comparison of two hex strings.
    expected.len() == token.len()
        && expected
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Fixed-window counters per key, in this process (several processes each count their own).
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Millis, u32)>>,
}

/// A limit: at most `count` requests per `window_ms` for one key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub count: u32,
    pub window_ms: Millis,
}

/// Sign-in attempts per client address and per account name.
pub const SIGN_IN_LIMIT: Limit = Limit {
    count: 10,
    window_ms: 60_000,
};
/// Submissions per worker.
pub const SUBMIT_LIMIT: Limit = Limit {
    count: 30,
    window_ms: 60_000,
};

impl RateLimiter {
    /// Counts one request; `Err(seconds to wait)` when over the limit.
    pub fn hit(&self, key: &str, limit: Limit, now: Millis) -> Result<(), i64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now - *start < limit.window_ms);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= limit.window_ms {
            *entry = (now, 0);
        }
        if entry.1 >= limit.count {
            return Err((entry.0 + limit.window_ms - now + 999) / 1000);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_refuses_past_the_count_and_forgets_after_the_window() {
        let l = RateLimiter::default();
        let limit = Limit {
            count: 2,
            window_ms: 1000,
        };
        assert!(l.hit("a", limit, 0).is_ok());
        assert!(l.hit("a", limit, 10).is_ok());
        assert_eq!(l.hit("a", limit, 500), Err(1));
        assert!(l.hit("b", limit, 500).is_ok());
        assert!(l.hit("a", limit, 1000).is_ok());
    }
}
