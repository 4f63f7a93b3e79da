//! The pages' cookies: the session cookie (a token of a server-side session, see
//! [`crate::sessions`]), CSRF, the device cookie that exempts an account's own browser from the
//! per-account sign-in limit, and one-shot notices ("flash") after a form.
//!
//! CSRF: every visitor gets a random `milan_csrf` cookie; forms carry a keyed hash of it, checked
//! on every POST with the `Origin` of the request (a cross-site page can neither read the cookie
//! nor compute the hash). In MTurk's iframe, browsers may withhold cookies, so MTurk pages carry
//! the session token in a hidden field as well; a request authenticated by that field cannot be
//! forged cross-site (the attacker does not know the token) and needs no CSRF token.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieAge};
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::domain::{DAY_MS, Millis};
use crate::origin::Network;

pub const WORKER_COOKIE: &str = "milan_worker";
pub const REQUESTER_COOKIE: &str = "milan_requester";
pub const CSRF_COOKIE: &str = "milan_csrf";
pub const FLASH_COOKIE: &str = "milan_flash";
const DEVICE_PURPOSE: &str = "device";
const FLASH_PURPOSE: &str = "flash";
/// How long a browser stays trusted for an account after a successful sign-in.
const DEVICE_MS: Millis = 180 * DAY_MS;
/// A notice is shown on the next page within this time, or never.
const FLASH_MS: Millis = 60_000;

/// A session-like cookie: HttpOnly always; Secure when the client is on HTTPS; SameSite=Lax, or
/// None+Secure over HTTPS in MTurk's iframe (a third-party context where Lax cookies are not sent).
pub fn cookie<'a>(
    net: &Network,
    req: &HttpRequest,
    name: impl Into<std::borrow::Cow<'a, str>>,
    value: String,
    third_party: bool,
) -> Cookie<'a> {
    let https = net.is_https(req);
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

/// Checks a form's CSRF token against the visitor's cookie (the origin is checked with it, in
/// `web::check_form`).
pub fn csrf_ok(auth: &Auth, req: &HttpRequest, token: Option<&str>) -> bool {
    let (Some(cookie), Some(token)) = (req.cookie(CSRF_COOKIE), token) else {
        return false;
    };
    crate::auth::constant_time_eq(&csrf_token(auth, cookie.value()), token)
}

#[derive(Debug, Serialize, Deserialize)]
struct Device {
    kind: String,
    account: String,
    issued: Millis,
}

/// The device cookie's name for an account kind ("worker" or "requester").
fn device_cookie_name(kind: &str) -> String {
    format!("milan_device_{kind}")
}

/// A cookie marking this browser as one that signed in to `account` successfully.
pub fn device_cookie(
    auth: &Auth,
    net: &Network,
    req: &HttpRequest,
    kind: &str,
    account: &str,
    now: Millis,
) -> Cookie<'static> {
    let sealed = auth.seal(
        DEVICE_PURPOSE,
        &serde_json::to_string(&Device {
            kind: kind.to_owned(),
            account: account.to_owned(),
            issued: now,
        })
        .expect("serialises"),
    );
    let mut c = cookie(net, req, device_cookie_name(kind), sealed, false);
    c.set_max_age(CookieAge::milliseconds(DEVICE_MS));
    c
}

/// Whether the browser carries a device cookie for this account.
pub fn trusted_device(
    auth: &Auth,
    req: &HttpRequest,
    kind: &str,
    account: &str,
    now: Millis,
) -> bool {
    req.cookie(&device_cookie_name(kind))
        .and_then(|c| auth.open(DEVICE_PURPOSE, c.value()))
        .and_then(|p| serde_json::from_str::<Device>(&p).ok())
        .is_some_and(|d| {
            d.kind == kind && d.account == account && now - d.issued <= DEVICE_MS && d.issued <= now
        })
}

#[derive(Debug, Serialize, Deserialize)]
struct Flash {
    message: String,
    at: Millis,
}

/// A notice for the next page this browser shows (a server message: never from the URL).
pub fn flash_cookie(
    auth: &Auth,
    net: &Network,
    req: &HttpRequest,
    message: &str,
    now: Millis,
) -> Cookie<'static> {
    let sealed = auth.seal(
        FLASH_PURPOSE,
        &serde_json::to_string(&Flash {
            message: message.to_owned(),
            at: now,
        })
        .expect("serialises"),
    );
    cookie(net, req, FLASH_COOKIE, sealed, false).into_owned()
}

/// The notice a flash cookie carries, if it is this server's and fresh.
pub fn flash(auth: &Auth, req: &HttpRequest, now: Millis) -> Option<String> {
    let c = req.cookie(FLASH_COOKIE)?;
    let f: Flash = serde_json::from_str(&auth.open(FLASH_PURPOSE, c.value())?).ok()?;
    (now - f.at <= FLASH_MS && f.at <= now + 1000).then_some(f.message)
}
