//! Sessions: who a request comes from. Every signed-in worker (pages or API) and every signed-in
//! requester (pages) holds a session row; the client holds a token of 32 random bytes, of which
//! only the SHA-256 is stored. A session ends when it expires or is revoked: by sign-out, by the
//! requester (`annotator sessions --revoke`, the worker table, the API), or by a new password. No
//! HTTP here.
//!
//! What started a session is recorded in `via`: a password or a one-time code (the worker proved
//! who they are), the requester (an integration that vouches for its workers with the requester's
//! token), or MTurk / Prolific URL parameters (a claim that only the platform's records confirm:
//! see `engine::external`).

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::auth::sha256_hex;
use crate::db::queries::{self as q, NewSession, SessionRow, SessionsOf};
use crate::db::{Database, DbError};
use crate::domain::{DAY_MS, Millis};
use crate::engine::{EngineError, Result, worker_in};

/// How long a worker session lasts.
pub const WORKER_SESSION_MS: Millis = 30 * DAY_MS;
/// How long a requester's web session lasts.
pub const REQUESTER_SESSION_MS: Millis = DAY_MS / 2;
/// Ended sessions are deleted this long after they ended (kept a while for the record).
const KEEP_ENDED_MS: Millis = 7 * DAY_MS;
const TOKEN_PREFIX: &str = "ms_";

/// What proved the identity of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Password,
    Code,
    /// Minted by the requester API for an integration.
    Requester,
    /// MTurk's URL parameters: unverified until reconciled.
    Mturk,
    /// Prolific's URL parameters: unverified until reconciled.
    Prolific,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Password => "password",
            Via::Code => "code",
            Via::Requester => "requester",
            Via::Mturk => "mturk",
            Via::Prolific => "prolific",
        }
    }

    fn parse(s: &str) -> Via {
        match s {
            "password" => Via::Password,
            "code" => Via::Code,
            "requester" => Via::Requester,
            "mturk" => Via::Mturk,
            _ => Via::Prolific,
        }
    }
}

/// How a worker arrived: this decides where they finish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "lowercase")]
pub enum Entry {
    #[default]
    Local,
    /// MTurk ExternalQuestion: the MTurk assignment this session was started for, and where to
    /// post the answer back.
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

    /// The one project a session from a platform's entry page may work in: the platform sent the
    /// worker to that project, and its URL parameters vouch for nothing else.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Entry::Local => None,
            Entry::Mturk { project, .. } | Entry::Prolific { project, .. } => Some(project),
        }
    }

    /// Refuses work in another project than the entry's own.
    pub fn may_work_in(&self, project: &str) -> Result<()> {
        match self.scope() {
            Some(own) if own != project => Err(EngineError::Forbidden(format!(
                "this session came from {} for project {own:?} and works only there",
                match self {
                    Entry::Mturk { .. } => "MTurk",
                    _ => "Prolific",
                }
            ))),
            _ => Ok(()),
        }
    }
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A worker, by external id.
    Worker(String),
    /// A requester, by username.
    Requester(String),
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The id to list and revoke it by (not the token).
    pub public_id: String,
    pub subject: Subject,
    pub via: Via,
    pub entry: Entry,
    pub created_at: Millis,
    pub expires_at: Millis,
}

impl Session {
    /// The worker's external id, for a worker session.
    pub fn worker(&self) -> Option<&str> {
        match &self.subject {
            Subject::Worker(w) => Some(w),
            Subject::Requester(_) => None,
        }
    }
}

fn session_of(row: SessionRow, worker: Option<String>, requester: Option<String>) -> Session {
    let subject = match (worker, requester) {
        (Some(w), _) => Subject::Worker(w),
        (None, r) => Subject::Requester(r.unwrap_or_default()),
    };
    Session {
        public_id: row.public_id,
        subject,
        via: Via::parse(&row.via),
        entry: serde_json::from_str(&row.entry).unwrap_or_default(),
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Sessions over the database.
#[derive(Debug, Clone)]
pub struct Sessions {
    db: Database,
}

impl Sessions {
    pub fn new(db: Database) -> Self {
        Sessions { db }
    }

    /// Starts a session for a worker (created if new: every caller has checked a credential or
    /// holds the requester's), returning its token, shown this once.
    pub fn start_worker(
        &self,
        worker: &str,
        via: Via,
        entry: &Entry,
        now: Millis,
    ) -> Result<(String, Session)> {
        let session = Session {
            public_id: uuid::Uuid::new_v4().to_string(),
            subject: Subject::Worker(worker.to_owned()),
            via,
            entry: entry.clone(),
            created_at: now,
            expires_at: now.saturating_add(WORKER_SESSION_MS),
        };
        self.start(session)
    }

    /// Starts a requester's web session (after their password was checked).
    pub fn start_requester(&self, username: &str, now: Millis) -> Result<(String, Session)> {
        let session = Session {
            public_id: uuid::Uuid::new_v4().to_string(),
            subject: Subject::Requester(username.to_owned()),
            via: Via::Password,
            entry: Entry::Local,
            created_at: now,
            expires_at: now.saturating_add(REQUESTER_SESSION_MS),
        };
        self.start(session)
    }

    /// Stores a new session under a fresh token.
    fn start(&self, session: Session) -> Result<(String, Session)> {
        let token = new_token();
        let hash = sha256_hex(&token);
        let entry = serde_json::to_string(&session.entry).expect("entries serialise");
        self.db.write(|c| -> Result<()> {
            let (worker_id, requester_id) = match &session.subject {
                Subject::Worker(w) => (Some(worker_in(c, w, session.created_at)?.id), None),
                Subject::Requester(r) => (
                    None,
                    Some(
                        q::requester_id(c, r)?
                            .ok_or_else(|| EngineError::NotFound(format!("no requester {r:?}")))?,
                    ),
                ),
            };
            q::insert_session(
                c,
                &NewSession {
                    public_id: &session.public_id,
                    token_hash: &hash,
                    worker_id,
                    requester_id,
                    via: session.via.as_str(),
                    entry: &entry,
                    created_at: session.created_at,
                    expires_at: session.expires_at,
                },
            )?;
            Ok(())
        })?;
        Ok((token, session))
    }

    /// The live session a token belongs to; `None` for an unknown, expired or revoked one.
    pub fn check(&self, token: &str, now: Millis) -> Result<Option<Session>> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() != TOKEN_PREFIX.len() + 64 {
            return Ok(None);
        }
        let hash = sha256_hex(token);
        // Unsynced: a token reaches a client only in the answer that minted it, after its sync.
        let found = self
            .db
            .read_unsynced(|c| -> std::result::Result<_, DbError> {
                Ok(q::live_session(c, &hash, now)?)
            })?;
        Ok(found.map(|(row, w, r)| session_of(row, w, r)))
    }

    /// Ends the session a token belongs to (sign-out).
    pub fn end(&self, token: &str, now: Millis) -> Result<bool> {
        let hash = sha256_hex(token);
        self.db
            .write(|c| Ok(q::revoke_sessions(c, SessionsOf::Token(&hash), now)? > 0))
    }

    /// Revokes a session by its public id.
    pub fn revoke(&self, public_id: &str, now: Millis) -> Result<bool> {
        self.db
            .write(|c| Ok(q::revoke_sessions(c, SessionsOf::Public(public_id), now)? > 0))
    }

    /// Revokes every session of a worker; returns how many.
    pub fn revoke_worker(&self, worker: &str, now: Millis) -> Result<usize> {
        self.db.write(|c| {
            let w = q::worker_by_external(c, worker)?
                .ok_or_else(|| EngineError::NotFound(format!("no worker {worker:?}")))?;
            Ok(q::revoke_sessions(c, SessionsOf::Worker(w.id), now)?)
        })
    }

    /// Live sessions (every one, or a worker's), newest first.
    pub fn list(&self, worker: Option<&str>, now: Millis) -> Result<Vec<Session>> {
        self.db.read(|c| {
            let worker_id = match worker {
                None => None,
                Some(w) => Some(
                    q::worker_by_external(c, w)?
                        .ok_or_else(|| EngineError::NotFound(format!("no worker {w:?}")))?
                        .id,
                ),
            };
            Ok(q::live_sessions(c, worker_id, now)?
                .into_iter()
                .map(|(row, w, r)| session_of(row, w, r))
                .collect())
        })
    }

    /// Deletes sessions that ended more than a week ago (the sweeper calls this).
    pub fn purge(&self, now: Millis) -> Result<usize> {
        self.db
            .write(|c| Ok(q::purge_sessions(c, now.saturating_sub(KEEP_ENDED_MS))?))
    }
}
