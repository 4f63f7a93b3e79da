//! Who is calling: signed worker session tokens and hashed requester tokens. No HTTP here.
//!
//! A worker token is `<hex worker id>.<issued ms>.<hex HMAC-SHA256>` under a secret kept in the
//! database (so several server processes on one PostgreSQL accept each other's tokens). A
//! requester token is 32 random bytes, shown once; only its SHA-256 is stored.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::queries as q;
use crate::db::{Database, DbError};
use crate::domain::{DAY_MS, Millis};

const SECRET_SETTING: &str = "session_secret";
/// How long a worker session stays valid.
pub const SESSION_MS: Millis = 30 * DAY_MS;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed token")]
    Malformed,
    #[error("invalid token")]
    Invalid,
    #[error("token expired; sign in again")]
    Expired,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Signs and checks tokens.
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

    pub fn worker_token(&self, worker: &str, now: Millis) -> String {
        let payload = format!("{}.{now}", hex::encode(worker.as_bytes()));
        let sig = self.mac(&payload);
        format!("{payload}.{sig}")
    }

    /// The worker a token was issued to.
    pub fn check_worker_token(&self, token: &str, now: Millis) -> Result<String, AuthError> {
        let mut parts = token.split('.');
        let (Some(id), Some(issued), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let payload = format!("{id}.{issued}");
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        let sig = hex::decode(sig).map_err(|_| AuthError::Malformed)?;
        mac.verify_slice(&sig).map_err(|_| AuthError::Invalid)?;
        let issued: Millis = issued.parse().map_err(|_| AuthError::Malformed)?;
        if now - issued > SESSION_MS {
            return Err(AuthError::Expired);
        }
        let id = hex::decode(id).map_err(|_| AuthError::Malformed)?;
        String::from_utf8(id).map_err(|_| AuthError::Malformed)
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

    /// Creates a requester token; only its hash is stored, so this is the one time it is seen.
    pub fn create_requester_token(&self, now: Millis) -> Result<String, AuthError> {
        let token = format!("req_{}", random_hex(32));
        let hash = sha256_hex(&token);
        self.db
            .write(|c| -> Result<(), DbError> { Ok(q::insert_requester_token(c, &hash, now)?) })?;
        Ok(token)
    }

    pub fn check_requester_token(&self, token: &str) -> Result<(), AuthError> {
        if !token.starts_with("req_") {
            return Err(AuthError::Malformed);
        }
        let hash = sha256_hex(token);
        let found = self
            .db
            .read(|c| -> Result<bool, DbError> { Ok(q::requester_token_exists(c, &hash)?) })?;
        if found {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}
