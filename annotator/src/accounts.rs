//! Passwords and one-time codes: requester accounts, local worker accounts, and the sign-in codes
//! a requester hands to workers. Passwords are stored as argon2id PHC strings; codes as SHA-256.
//! No HTTP here.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

use crate::auth::sha256_hex;
use crate::db::queries as q;
use crate::db::{Database, DbError};
use crate::domain::{DAY_MS, Millis};
use crate::engine::{EngineError, Result};

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 256;
/// How long a one-time sign-in code can be used.
pub const CODE_VALID_MS: Millis = 7 * DAY_MS;
/// Letters of a code: no 0/O, 1/I/L, so that it survives being read aloud or copied by hand.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 12;

/// Credentials over the database.
#[derive(Debug, Clone)]
pub struct Accounts {
    db: Database,
}

fn validate_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&n) {
        return Err(EngineError::Invalid(format!(
            "password: use {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// An argon2id hash (the crate's default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| EngineError::Invalid(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| EngineError::Invalid(format!("password: {e}")))
}

/// Checks a password against a stored hash; with no hash it still spends the time of one check,
/// so a sign-in does not tell by its speed whether the account exists.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    // A valid hash of a random password, made once.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy =
        DUMMY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default());
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// Normalises what a worker typed as a code: case and spaces or dashes do not matter.
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

impl Accounts {
    pub fn new(db: Database) -> Self {
        Accounts { db }
    }

    /// Creates a requester account or changes its password.
    pub fn set_requester_password(
        &self,
        username: &str,
        password: &str,
        now: Millis,
    ) -> Result<()> {
        validate_username(username)?;
        validate_password(password)?;
        let hash = hash_password(password)?;
        // A new password ends the sessions the old one opened.
        self.db.write(|c| -> Result<()> {
            q::upsert_requester(c, username, &hash, now)?;
            if let Some(id) = q::requester_id(c, username)? {
                q::revoke_sessions(c, q::SessionsOf::Requester(id), now)?;
            }
            Ok(())
        })
    }

    pub fn check_requester(&self, username: &str, password: &str) -> Result<bool> {
        let stored = self.db.read(|c| -> std::result::Result<_, DbError> {
            Ok(q::requester_password(c, username)?)
        })?;
        Ok(verify_password(password, stored.as_deref()))
    }

    /// Gives a worker (created if new) a password for local sign-in; the worker's sessions end.
    pub fn set_worker_password(&self, worker: &str, password: &str, now: Millis) -> Result<()> {
        validate_local_worker_id(worker)?;
        validate_password(password)?;
        let hash = hash_password(password)?;
        self.db.write(|c| -> Result<()> {
            let w = crate::engine::worker_in(c, worker, now)?;
            q::set_worker_password(c, w.id, &hash)?;
            q::revoke_sessions(c, q::SessionsOf::Worker(w.id), now)?;
            Ok(())
        })
    }

    pub fn check_worker_password(&self, worker: &str, password: &str) -> Result<bool> {
        let stored = self.db.read(|c| -> std::result::Result<_, DbError> {
            Ok(q::worker_by_external(c, worker)?.and_then(|w| w.password_hash))
        })?;
        Ok(verify_password(password, stored.as_deref()))
    }

    /// A new one-time sign-in code for a worker (created if new), valid for [`CODE_VALID_MS`].
    /// Only its hash is stored: this is the one time it is seen.
    pub fn issue_worker_code(&self, worker: &str, now: Millis) -> Result<String> {
        validate_local_worker_id(worker)?;
        let mut bytes = [0u8; CODE_LEN];
        rand::rng().fill_bytes(&mut bytes);
        let code: String = bytes
            .iter()
            .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
            .collect();
        let hash = sha256_hex(&code);
        self.db.write(|c| -> Result<()> {
            let w = crate::engine::worker_in(c, worker, now)?;
            Ok(q::insert_worker_code(
                c,
                &hash,
                w.id,
                now,
                now + CODE_VALID_MS,
            )?)
        })?;
        Ok(format!("{}-{}-{}", &code[..4], &code[4..8], &code[8..]))
    }

    /// The worker a code was issued to, using the code up; `None` for an unknown, used or expired
    /// code.
    pub fn redeem_worker_code(&self, code: &str, now: Millis) -> Result<Option<String>> {
        let hash = sha256_hex(&normalise_code(code));
        self.db.write(|c| -> Result<Option<String>> {
            match q::use_worker_code(c, &hash, now)? {
                Some(id) => Ok(Some(q::worker_by_id(c, id)?.external_id)),
                None => Ok(None),
            }
        })
    }
}

/// A worker id a requester may give a local account or an integration's session.
pub fn validate_local_worker_id(worker: &str) -> Result<()> {
    let worker = crate::engine::canonical_worker_id(worker)?;
    if crate::domain::is_url_identity(&worker) {
        return Err(EngineError::Invalid(format!(
            "worker id {worker:?}: ids starting with mturk: or prolific: belong to those \
             platforms' entry pages"
        )));
    }
    Ok(())
}

pub fn validate_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "username {name:?}: use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_text() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("correct horse batterz", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("x", Some("not a hash")));
    }

    #[test]
    fn codes_are_typed_loosely() {
        assert_eq!(normalise_code(" abcd-efgh ijkl "), "ABCDEFGHIJKL");
    }
}
