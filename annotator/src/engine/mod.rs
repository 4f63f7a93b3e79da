//! The assignment engine: every state change of projects, sets, workers and assignments, with
//! Mechanical Turk's semantics (docs in ARCHITECTURE.md). It knows nothing of HTTP; the web layer
//! and the command line only call it. Every method takes the current time, so tests can move the
//! clock.
//!
//! What the database holds even if this code were wrong: one assignment per (set, worker), and at
//! most `assignments_per_set` live, submitted or approved assignments per set (see the slots
//! table in `migrations/`).

use milan_shared::cleaning::clean;
use milan_shared::wire::Submitted;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::queries::{
    self as q, AssignmentRow, NewAssignment, NewEvent, ProjectRow, SetRow, Stamp, WorkerRow,
};
use crate::db::{Database, Db, DbError, RetryHint};
use crate::domain::{
    Description, FEEDBACK_MAX_CHARS, MAX_BONUS_CENTS, Millis, ProjectSettings, State,
};

mod assignments;
pub mod external;
mod projects;
mod workers;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Stored data this server never writes (a row edited by hand, a bad restore).
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EngineError {
    fn from(e: diesel::result::Error) -> Self {
        EngineError::Db(DbError::Query(e))
    }
}

impl RetryHint for EngineError {
    fn retryable(&self) -> bool {
        matches!(self, EngineError::Db(e) if e.is_conflict())
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// How accept-next orders the sets a worker may take, after "fewest assignments first".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest set first.
    #[default]
    Oldest,
    /// Highest priority first (then fewest assignments), for every project; a project can also
    /// switch it on for itself ([`Engine::set_order`]).
    Priority,
}

/// One neuron's model description and priority (the API's wire type).
pub use milan_shared::wire::ModelDescription;

/// How well a model's descriptions of one layer's sets in one round agree with the humans': the
/// mean over the sets whose human descriptions are complete of sentence BLEU (sacrebleu's, with
/// effective order) against their human descriptions. Corpus BLEU-4, MILAN's test metric, is 0
/// for a layer whose descriptions are all shorter than four words, too often for a dashboard.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Agreement {
    pub model: String,
    pub layer: String,
    pub round: i32,
    pub system: String,
    /// Sets scored (complete ones the model described).
    pub sets: usize,
    /// Sets the model described in that round.
    pub described: usize,
    pub bleu: Option<f64>,
}

/// The longest model description stored.
pub const MODEL_DESCRIPTION_MAX_CHARS: usize = 1000;

/// An assignment just accepted (or, `resumed`, one the worker already held), with its set and
/// project.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub assignment: AssignmentRow,
    pub set: SetRow,
    pub project: ProjectRow,
    /// The worker already held it: accepting again returned live work instead of new work.
    pub resumed: bool,
}

/// A bonus to pay (MTurk: SendBonus).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bonus<'a> {
    pub worker: &'a str,
    pub cents: i64,
    pub reason: &'a str,
    /// The work it rewards; its project's maximum bounds the amount.
    pub assignment: Option<&'a str>,
    /// The project whose maximum bounds the amount, when no assignment is named.
    pub project: Option<&'a str>,
    /// The requester's key for this one payment: the same key never pays twice.
    #[serde(skip)]
    pub idempotency_key: &'a str,
}

/// What a bonus request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    Paid,
    /// The same key paid this bonus before; nothing was paid now.
    AlreadyPaid,
}

#[derive(Debug, Clone)]
pub struct Engine {
    db: Database,
    order: Order,
}

fn event(kind: &str, at: Millis) -> NewEvent<'_> {
    NewEvent {
        at,
        kind,
        ..NewEvent::default()
    }
}

/// An event about one assignment (its set and worker filled in).
fn assignment_event<'a>(
    kind: &'a str,
    a: &AssignmentRow,
    detail: serde_json::Value,
    at: Millis,
) -> NewEvent<'a> {
    NewEvent {
        set_id: Some(a.set_id),
        assignment_id: Some(a.id),
        worker_id: Some(a.worker_id),
        detail: detail.to_string(),
        ..event(kind, at)
    }
}

/// A guarded transition found the assignment in another state than it read.
fn changed_meanwhile() -> EngineError {
    EngineError::Conflict("assignment changed meanwhile".into())
}

fn state_of(a: &AssignmentRow) -> State {
    a.state.parse().unwrap_or(State::Abandoned)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Engine {
    pub fn new(db: Database) -> Self {
        Engine {
            db,
            order: Order::default(),
        }
    }

    pub fn with_order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }
}

pub(crate) fn new_project<'a>(s: &'a ProjectSettings, now: Millis) -> q::NewProject<'a> {
    q::NewProject {
        name: &s.name,
        title: &s.title,
        instructions: &s.instructions,
        reward_cents: s.reward_cents,
        assignments_per_set: s.assignments_per_set,
        lease_ms: s.lease_ms,
        auto_approve_ms: s.auto_approve_ms,
        qualification_required: s.qualification_required,
        prolific_completion_code: s.prolific_completion_code.as_deref(),
        mturk_enabled: s.mturk,
        catalog_public: s.catalog_public,
        created_at: now,
        max_live_per_worker: s.max_live_per_worker,
        max_bonus_cents: s.max_bonus_cents,
    }
}

fn project_in(c: &mut Db, name: &str) -> Result<ProjectRow> {
    q::project_by_name(c, name)?
        .ok_or_else(|| EngineError::NotFound(format!("no project named {name:?}")))
}

fn existing_worker(c: &mut Db, external_id: &str) -> Result<WorkerRow> {
    q::worker_by_external(c, external_id)?
        .ok_or_else(|| EngineError::NotFound(format!("no worker {external_id:?}")))
}

pub fn validate_worker_id(id: &str) -> Result<()> {
    canonical_worker_id(id).map(|_| ())
}

/// A worker id in its one spelling (`domain::canonical_worker_id`), or why it is refused.
pub fn canonical_worker_id(id: &str) -> Result<String> {
    crate::domain::canonical_worker_id(id).map_err(EngineError::Invalid)
}

pub(crate) fn worker_in(c: &mut Db, external_id: &str, now: Millis) -> Result<WorkerRow> {
    let external_id = &canonical_worker_id(external_id)?;
    if let Some(w) = q::worker_by_external(c, external_id)? {
        return Ok(w);
    }
    let w = q::insert_worker(c, external_id, now)?;
    q::log(
        c,
        &NewEvent {
            worker_id: Some(w.id),
            detail: json!({ "external_id": external_id }).to_string(),
            ..event("worker_created", now)
        },
    )?;
    Ok(w)
}
