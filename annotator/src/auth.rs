//! The server's secret and what is signed with it (the sealed values of the web pages, CSRF
//! tokens), and the requester's API tokens. No HTTP here; sessions are in [`crate::sessions`].
//!
//! The secret lives in the database, so several server processes on one PostgreSQL accept each
//! other's sealed values. A requester token is 32 random bytes shown once; only its SHA-256 is
//! stored, and it works until revoked (`annotator requester-token --revoke ID`).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::queries as q;
use crate::db::{Database, DbError};
use crate::domain::Millis;

const SECRET_SETTING: &str = "session_secret";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed token")]
    Malformed,
    #[error("invalid token")]
    Invalid,
    #[error("a token label is at most 100 characters, without control characters")]
    Label,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The server's secret, and the requester tokens.
#[derive(Clone)]
pub struct Auth {
    secret: Vec<u8>,
    db: Database,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Auth {
    /// Loads the signing secret, creating it on first start.
    pub fn load(db: &Database) -> Result<Auth, AuthError> {
        let secret = db.write(|c| -> Result<String, DbError> {
            if let Some(s) = q::setting(c, SECRET_SETTING)? {
                return Ok(s);
            }
            let s = random_hex(32);
            q::insert_setting(c, SECRET_SETTING, &s)?;
            Ok(s)
        })?;
        Ok(Auth {
            secret: hex::decode(secret).map_err(|_| AuthError::Invalid)?,
            db: db.clone(),
        })
    }

    fn mac(&self, payload: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `payload` signed for one purpose: `<hex payload>.<hex HMAC>`. Web sessions and the
    /// qualification's start time travel this way.
    pub fn seal(&self, purpose: &str, payload: &str) -> String {
        let body = hex::encode(payload.as_bytes());
        let sig = self.mac(&format!("{purpose}.{body}"));
        format!("{body}.{sig}")
    }

    /// The payload of a token [`Auth::seal`] made for this purpose, if it is intact.
    pub fn open(&self, purpose: &str, token: &str) -> Option<String> {
        let (body, sig) = token.split_once('.')?;
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("{purpose}.{body}").as_bytes());
        mac.verify_slice(&hex::decode(sig).ok()?).ok()?;
        String::from_utf8(hex::decode(body).ok()?).ok()
    }

    /// A keyed hash, for CSRF tokens derived from a cookie.
    pub fn derive(&self, purpose: &str, value: &str) -> String {
        self.mac(&format!("{purpose}.{value}"))
    }

    /// Creates a requester token with a label; only its hash is stored, so this is the one time
    /// it is seen. Returns (id, token).
    pub fn create_requester_token(
        &self,
        label: &str,
        now: Millis,
    ) -> Result<(i64, String), AuthError> {
        if label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(AuthError::Label);
        }
        let token = format!("req_{}", random_hex(32));
        let hash = sha256_hex(&token);
        let id = self.db.write(|c| -> Result<i64, DbError> {
            Ok(q::insert_requester_token(c, &hash, label, now)?)
        })?;
        Ok((id, token))
    }

    /// The id of the requester token, if it is one and not revoked.
    pub fn check_requester_token(&self, token: &str) -> Result<i64, AuthError> {
        if !token.starts_with("req_") || token.len() != 4 + 64 {
            return Err(AuthError::Malformed);
        }
        let hash = sha256_hex(token);
        self.db
            .read(|c| -> Result<_, DbError> { Ok(q::requester_token_id(c, &hash)?) })?
            .ok_or(AuthError::Invalid)
    }

    /// Every requester token: (id, label, created, revoked).
    pub fn requester_tokens(&self) -> Result<Vec<q::TokenListing>, AuthError> {
        Ok(self
            .db
            .read(|c| -> Result<_, DbError> { Ok(q::requester_tokens(c)?) })?)
    }

    /// Revokes a requester token; `false` when there is no such live token.
    pub fn revoke_requester_token(&self, id: i64, now: Millis) -> Result<bool, AuthError> {
        Ok(self
            .db
            .write(|c| -> Result<bool, DbError> { Ok(q::revoke_requester_token(c, id, now)?) })?)
    }
}

/// Equal-time comparison of two strings (tokens, MACs): how long it takes says nothing of where
/// they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
