//! The assignment engine: every state change of projects, sets, workers and assignments, with
//! Mechanical Turk's semantics (docs in ARCHITECTURE.md). It knows nothing of HTTP; the web layer
//! and the command line only call it. Every method takes the current time, so tests can move the
//! clock.
//!
//! What the database holds even if this code were wrong: one assignment per (set, worker), and at
//! most `assignments_per_set` live, submitted or approved assignments per set (see the slots
//! table in `migrations/`).

use milan_shared::cleaning::clean;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::db::queries::{
    self as q, AssignmentRow, NewAssignment, NewEvent, ProjectRow, SetRow, Stamp, WorkerRow,
};
use crate::db::{Database, Db, DbError, RetryHint};
use crate::domain::{
    Description, FEEDBACK_MAX_CHARS, MAX_BONUS_CENTS, Millis, ProjectSettings, State,
};

pub mod external;

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

    // ------------------------------------------------------------ projects

    /// Stores a model's descriptions of a round (replacing what the same system posted for the
    /// same round before) and the priorities that come with them, all or nothing. An item
    /// without a description sets only the priority.
    pub fn post_model_descriptions(
        &self,
        project: &str,
        round: i32,
        system: &str,
        items: &[ModelDescription],
        now: Millis,
    ) -> Result<(usize, usize)> {
        if system.is_empty()
            || system.len() > 64
            || !system
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(EngineError::Invalid(format!(
                "system {system:?}: 1 to 64 lowercase letters, digits and dashes"
            )));
        }
        if round < 0 {
            return Err(EngineError::Invalid(format!("round {round}: must be >= 0")));
        }
        for (i, item) in items.iter().enumerate() {
            let text = item.description.as_deref().unwrap_or_default();
            if text.chars().count() > MODEL_DESCRIPTION_MAX_CHARS
                || text.chars().any(char::is_control)
            {
                return Err(EngineError::Invalid(format!(
                    "descriptions[{i}].description: at most {MODEL_DESCRIPTION_MAX_CHARS} characters, no control characters"
                )));
            }
            if item.priority.is_some_and(|p| !p.is_finite()) {
                return Err(EngineError::Invalid(format!(
                    "descriptions[{i}].priority: must be a finite number"
                )));
            }
        }
        self.db.write(|c| {
            let p = project_in(c, project)?;
            let mut priorities = 0;
            for (i, item) in items.iter().enumerate() {
                let set = q::set_by_neuron(c, p.id, &item.model, &item.layer, item.unit)?
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "descriptions[{i}]: project {project:?} has no set for {} {} unit {}",
                            item.model, item.layer, item.unit
                        ))
                    })?;
                if let Some(text) = &item.description {
                    q::put_model_description(c, set.id, round, system, text, now)?;
                }
                if let Some(priority) = item.priority {
                    q::set_priority(c, set.id, priority)?;
                    priorities += 1;
                }
            }
            q::log(
                c,
                &NewEvent {
                    project_id: Some(p.id),
                    detail: json!({ "round": round, "system": system, "descriptions": items.len(), "priorities": priorities }).to_string(),
                    ..event("model_descriptions", now)
                },
            )?;
            Ok((items.len(), priorities))
        })
    }

    /// Model-vs-human agreement per layer, round and system, in round order.
    pub fn model_agreement(&self, project: &str) -> Result<Vec<Agreement>> {
        let (p, models, humans) = self.db.read(|c| -> Result<_> {
            let p = project_in(c, project)?;
            let models = q::model_descriptions_of_project(c, p.id)?;
            let humans = q::approved_texts_of_project(c, p.id)?;
            Ok((p, models, humans))
        })?;
        let mut refs: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for (set, text) in humans {
            refs.entry(set)
                .or_default()
                .push(milan_metrics::normalize(&text));
        }
        let complete = |set: &i64| {
            refs.get(set)
                .is_some_and(|r| r.len() >= p.assignments_per_set as usize)
        };
        // (round, model, layer, system) -> (hypotheses, references, described)
        type Group = (Vec<String>, Vec<Vec<String>>, usize);
        let mut groups: std::collections::BTreeMap<(i32, String, String, String), Group> =
            Default::default();
        for m in models {
            let g = groups
                .entry((m.round, m.model, m.layer, m.system))
                .or_default();
            g.2 += 1;
            if complete(&m.set_id) {
                g.0.push(milan_metrics::normalize(&m.description));
                g.1.push(refs[&m.set_id].clone());
            }
        }
        Ok(groups
            .into_iter()
            .map(
                |((round, model, layer, system), (hyps, r, described))| Agreement {
                    bleu: (!hyps.is_empty()).then(|| {
                        hyps.iter()
                            .zip(&r)
                            .map(|(h, refs)| milan_metrics::bleu::sentence_bleu(h, refs).score)
                            .sum::<f64>()
                            / hyps.len() as f64
                    }),
                    sets: hyps.len(),
                    described,
                    model,
                    layer,
                    round,
                    system,
                },
            )
            .collect())
    }

    /// Whether accept-next hands out this project's sets by priority (highest first).
    pub fn set_order(&self, project: &str, by_priority: bool, now: Millis) -> Result<()> {
        self.db.write(|c| {
            let p = project_in(c, project)?;
            q::set_order_by_priority(c, p.id, by_priority)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(p.id),
                    detail: json!({ "by_priority": by_priority }).to_string(),
                    ..event("order_changed", now)
                },
            )?;
            Ok(())
        })
    }

    pub fn create_project(&self, settings: &ProjectSettings, now: Millis) -> Result<ProjectRow> {
        settings.validate().map_err(EngineError::Invalid)?;
        self.db.write(|c| {
            if q::project_by_name(c, &settings.name)?.is_some() {
                return Err(EngineError::Conflict(format!(
                    "project {} exists already",
                    settings.name
                )));
            }
            let row = q::insert_project(c, &new_project(settings, now))?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(row.id),
                    detail: json!({ "name": row.name }).to_string(),
                    ..event("project_created", now)
                },
            )?;
            Ok(row)
        })
    }

    /// Makes accept-next require (or stop requiring) the project's qualification test.
    pub fn set_qualification_required(
        &self,
        name: &str,
        required: bool,
        now: Millis,
    ) -> Result<()> {
        self.db.write(|c| {
            let project = project_in(c, name)?;
            q::set_qualification_required(c, project.id, required)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    detail: json!({ "required": required }).to_string(),
                    ..event("qualification_required", now)
                },
            )?;
            Ok(())
        })
    }

    pub fn project(&self, name: &str) -> Result<ProjectRow> {
        self.db
            .read(|c| q::project_by_name(c, name).map_err(EngineError::from))?
            .ok_or_else(|| EngineError::NotFound(format!("no project named {name:?}")))
    }

    pub fn projects(&self) -> Result<Vec<ProjectRow>> {
        self.db.read(|c| Ok(q::all_projects(c)?))
    }

    // ------------------------------------------------------------ workers

    /// The worker with this external id, created on first sight.
    pub fn worker(&self, external_id: &str, now: Millis) -> Result<WorkerRow> {
        validate_worker_id(external_id)?;
        if let Some(w) = self
            .db
            .read(|c| Ok::<_, EngineError>(q::worker_by_external(c, external_id)?))?
        {
            return Ok(w);
        }
        self.db.write(|c| worker_in(c, external_id, now))
    }

    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        self.db.read(|c| Ok(q::all_workers(c)?))
    }

    pub fn block(&self, external_id: &str, reason: &str, now: Millis) -> Result<()> {
        self.set_blocked(external_id, true, Some(reason), now)
    }

    pub fn unblock(&self, external_id: &str, now: Millis) -> Result<()> {
        self.set_blocked(external_id, false, None, now)
    }

    fn set_blocked(
        &self,
        external_id: &str,
        blocked: bool,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<()> {
        self.db.write(|c| {
            let worker = existing_worker(c, external_id)?;
            q::set_blocked(c, worker.id, blocked, reason)?;
            q::log(
                c,
                &NewEvent {
                    worker_id: Some(worker.id),
                    detail: json!({ "reason": reason }).to_string(),
                    ..event(
                        if blocked {
                            "worker_blocked"
                        } else {
                            "worker_unblocked"
                        },
                        now,
                    )
                },
            )?;
            Ok(())
        })
    }

    /// Pays a bonus (MTurk: SendBonus), at most the project's maximum, once per idempotency key:
    /// the same key with the same bonus answers `AlreadyPaid`, with another bonus it is refused.
    pub fn bonus(&self, b: &Bonus, now: Millis) -> Result<Paid> {
        if !(1..=MAX_BONUS_CENTS).contains(&b.cents) {
            return Err(EngineError::Invalid(format!(
                "bonus cents must be 1 to {MAX_BONUS_CENTS}"
            )));
        }
        let reason = b.reason.trim();
        if reason.is_empty() || reason.chars().count() > FEEDBACK_MAX_CHARS {
            return Err(EngineError::Invalid(format!(
                "bonus reason must be 1 to {FEEDBACK_MAX_CHARS} characters"
            )));
        }
        let key = b.idempotency_key;
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(EngineError::Invalid(
                "a bonus needs an idempotency key of 1 to 128 visible ASCII characters, unique per \
                 payment, so that a retried request does not pay twice"
                    .into(),
            ));
        }
        let request_hash = sha256_hex(
            serde_json::to_string(&Bonus {
                reason,
                ..b.clone()
            })
            .expect("bonuses serialise")
            .as_bytes(),
        );
        self.db.write(|c| {
            if let Some(stored) = q::payment_by_key(c, key)? {
                return if stored.as_deref() == Some(request_hash.as_str()) {
                    Ok(Paid::AlreadyPaid)
                } else {
                    Err(EngineError::Invalid(format!(
                        "idempotency key {key:?} already paid a different bonus"
                    )))
                };
            }
            let worker = existing_worker(c, b.worker)?;
            let (assignment_id, from_assignment) = match b.assignment {
                Some(public) => {
                    let a = q::assignment_by_public_id(c, public)?
                        .ok_or_else(|| EngineError::NotFound(format!("no assignment {public}")))?;
                    if a.worker_id != worker.id {
                        return Err(EngineError::Invalid(format!(
                            "assignment {public} is not {}'s",
                            b.worker
                        )));
                    }
                    let set = q::set_by_id(c, a.set_id)?;
                    (Some(a.id), Some(q::project_by_id(c, set.project_id)?))
                }
                None => (None, None),
            };
            let project = match (from_assignment, b.project) {
                (Some(p), Some(name)) if p.name != name => {
                    return Err(EngineError::Invalid(format!(
                        "assignment {} belongs to project {:?}, not {name:?}",
                        b.assignment.unwrap_or_default(),
                        p.name
                    )));
                }
                (Some(p), _) => p,
                (None, Some(name)) => project_in(c, name)?,
                (None, None) => {
                    return Err(EngineError::Invalid(
                        "a bonus names the assignment or the project it is paid for".into(),
                    ));
                }
            };
            if b.cents > project.max_bonus_cents {
                return Err(EngineError::Invalid(format!(
                    "bonus of {} cents: project {:?} pays at most {} cents per bonus",
                    b.cents, project.name, project.max_bonus_cents
                )));
            }
            q::insert_ledger(
                c,
                &q::NewPayment {
                    worker_id: worker.id,
                    assignment_id,
                    kind: "bonus",
                    cents: b.cents,
                    note: reason,
                    created_at: now,
                    idempotency_key: Some(key),
                    request_hash: Some(&request_hash),
                },
            )?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    worker_id: Some(worker.id),
                    assignment_id,
                    detail: json!({ "cents": b.cents, "note": reason, "idempotency_key": key })
                        .to_string(),
                    ..event("bonus", now)
                },
            )?;
            Ok(Paid::Paid)
        })
    }

    /// (rewards, bonuses) paid to a worker, in cents.
    pub fn earnings(&self, external_id: &str) -> Result<(i64, i64)> {
        self.db.read(|c| {
            let worker = existing_worker(c, external_id)?;
            Ok(q::earnings(c, worker.id)?)
        })
    }

    // ------------------------------------------------------------ assignments

    /// Gives the worker the next set of the project: among sets with an open slot that this worker
    /// never touched, the one with the fewest live and submitted assignments. A worker who holds
    /// the project's cap of live leases (`max_live_per_worker`, default 1) gets the oldest of them
    /// back (`resumed`): accepting is idempotent, so a client that lost the answer to its accept
    /// orphans nothing. `None` when nothing is left for this worker.
    pub fn accept_next(
        &self,
        project: &str,
        worker: &str,
        now: Millis,
    ) -> Result<Option<Accepted>> {
        validate_worker_id(worker)?;
        if worker.starts_with(external::MTURK_PREFIX) {
            // MTurk pays per HIT: its workers take tasks only through `mturk_start`, which binds
            // each task to one MTurk assignment.
            return Err(EngineError::Forbidden(
                "MTurk workers take tasks through their HITs on MTurk".into(),
            ));
        }
        self.db.write(|c| {
            let project = project_in(c, project)?;
            let worker = worker_in(c, worker, now)?;
            q::lock_worker(c, worker.id)?;
            expire_due(c, now, 100)?;
            let live = q::live_assignments(c, project.id, worker.id, now)?;
            if live.len() >= project.max_live_per_worker.max(1) as usize {
                let (assignment, set) = live.into_iter().next().expect("the cap is at least 1");
                return Ok(Some(Accepted {
                    assignment,
                    set,
                    project,
                    resumed: true,
                }));
            }
            take_next(c, &project, &worker, self.order, now)
        })
    }

    /// A worker's live assignments in every project (with each project's name), oldest first.
    pub fn live_work(
        &self,
        worker: &str,
        now: Millis,
    ) -> Result<Vec<(AssignmentRow, SetRow, String)>> {
        self.db.read(|c| {
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(Vec::new());
            };
            Ok(q::live_work_of_worker(c, w.id, now)?)
        })
    }

    /// The worker's live (accepted, lease not over) assignment in the project, if any: what a
    /// task page shows again after a reload instead of taking another set.
    pub fn current_assignment(
        &self,
        project: &str,
        worker: &str,
        now: Millis,
    ) -> Result<Option<Accepted>> {
        self.db.read(|c| {
            let project = project_in(c, project)?;
            let Some(worker) = q::worker_by_external(c, worker)? else {
                return Ok(None);
            };
            // The oldest, as accepting again would return it.
            let Some((assignment, set)) = q::live_assignments(c, project.id, worker.id, now)?
                .into_iter()
                .next()
            else {
                return Ok(None);
            };
            Ok(Some(Accepted {
                assignment,
                set,
                project,
                resumed: true,
            }))
        })
    }

    /// A set to show in preview (MTurk's "ASSIGNMENT_ID_NOT_AVAILABLE"): the project's first.
    pub fn preview_set(&self, project: &str) -> Result<(ProjectRow, Option<SetRow>)> {
        self.db.read(|c| {
            let project = project_in(c, project)?;
            let set = q::first_set(c, project.id)?;
            Ok((project, set))
        })
    }

    /// Work done by a worker: (submitted or approved assignments, rewards + bonuses in cents).
    pub fn worker_totals(&self, worker: &str) -> Result<(i64, i64)> {
        self.db.read(|c| {
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok((0, 0));
            };
            let done = q::count_done(c, w.id)?;
            let (reward, bonus) = q::earnings(c, w.id)?;
            Ok((done, reward + bonus))
        })
    }

    /// The worker's latest rejected work: (description, feedback, when), newest first. Workers
    /// see why their work was rejected (MTurk shows the RequesterFeedback the same way).
    pub fn rejections(&self, worker: &str, limit: i64) -> Result<Vec<(String, String, Millis)>> {
        self.db.read(|c| {
            let Some(w) = q::worker_by_external(c, worker)? else {
                return Ok(Vec::new());
            };
            Ok(q::rejections_of(c, w.id, limit)?
                .into_iter()
                .map(|(a, d)| {
                    (
                        d.raw,
                        a.feedback.unwrap_or_default(),
                        a.reviewed_at.unwrap_or(0),
                    )
                })
                .collect())
        })
    }

    /// The description stored for an assignment, if it was submitted.
    pub fn description_of(&self, public_id: &str) -> Result<Option<String>> {
        self.db.read(|c| {
            let a = assignment_in(c, public_id)?;
            Ok(q::description_of(c, a.id)?.map(|d| d.raw))
        })
    }

    /// The worker's last description, which the next may not repeat.
    pub fn previous_description(&self, worker: &str) -> Result<Option<String>> {
        self.db.read(|c| {
            Ok(match q::worker_by_external(c, worker)? {
                Some(w) => q::last_description_of(c, w.id)?,
                None => None,
            })
        })
    }

    /// An assignment with its set and project, read in one transaction.
    pub fn assignment_with_set(&self, public_id: &str) -> Result<Accepted> {
        self.db.read(|c| {
            let assignment = assignment_in(c, public_id)?;
            let set = q::set_by_id(c, assignment.set_id)?;
            let project = q::project_by_id(c, set.project_id)?;
            Ok(Accepted {
                assignment,
                set,
                project,
                resumed: true,
            })
        })
    }

    pub fn assignment(&self, public_id: &str) -> Result<AssignmentRow> {
        self.db
            .read(|c| Ok::<_, EngineError>(q::assignment_by_public_id(c, public_id)?))?
            .ok_or_else(|| EngineError::NotFound(format!("no assignment {public_id}")))
    }

    /// Stores the worker's description. Submitting the same assignment again stores nothing and
    /// answers with the first submission's response; an idempotency key reused with another text
    /// is refused.
    pub fn submit(
        &self,
        public_id: &str,
        worker: &str,
        text: &str,
        idempotency_key: Option<&str>,
        now: Millis,
    ) -> Result<serde_json::Value> {
        let request_hash = sha256_hex(text.as_bytes());
        self.db.write(|c| {
            let a = assignment_in(c, public_id)?;
            let owner = q::worker_by_id(c, a.worker_id)?;
            if owner.external_id != worker {
                return Err(EngineError::Forbidden(
                    "this assignment belongs to another worker".into(),
                ));
            }
            if let Some(response) = &a.submit_response {
                if let Some(key) = idempotency_key
                    && a.idempotency_key.as_deref() == Some(key)
                    && a.request_hash.as_deref() != Some(request_hash.as_str())
                {
                    return Err(EngineError::Invalid(
                        "Idempotency-Key reused with a different request".into(),
                    ));
                }
                return serde_json::from_str(response)
                    .map_err(|e| EngineError::Invalid(format!("stored response unreadable: {e}")));
            }
            match state_of(&a) {
                State::Accepted => {}
                other => {
                    return Err(EngineError::Conflict(format!(
                        "assignment is {other}, it can no longer be submitted"
                    )));
                }
            }
            if now >= a.expires_at {
                return Err(EngineError::Conflict(format!(
                    "the lease ended {} s ago; accept a new assignment",
                    (now - a.expires_at) / 1000
                )));
            }
            let set = q::set_by_id(c, a.set_id)?;
            let project = q::project_by_id(c, set.project_id)?;
            let previous = q::last_description_of(c, a.worker_id)?;
            let description = Description::parse(text, &project.instructions, previous.as_deref())
                .map_err(EngineError::Invalid)?;
            let cleaned = clean(description.as_str());
            if !q::transition(c, a.id, "accepted", "submitted", Stamp::Submitted, now)? {
                return Err(changed_meanwhile());
            }
            q::insert_description(c, a.id, set.id, description.as_str(), &cleaned, now)?;
            let response = json!({
                "status": "submitted",
                "assignment_id": a.public_id,
                "description": description.as_str(),
                "cleaned": cleaned,
                "submitted_at": now,
            });
            q::record_submit(
                c,
                a.id,
                idempotency_key,
                &request_hash,
                &response.to_string(),
            )?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    ..assignment_event(
                        "submitted",
                        &a,
                        json!({ "idempotency_key": idempotency_key }),
                        now,
                    )
                },
            )?;
            Ok(response)
        })
    }

    /// The worker gives the assignment back (MTurk: return); its slot reopens for others.
    pub fn return_assignment(&self, public_id: &str, worker: &str, now: Millis) -> Result<()> {
        self.db.write(|c| {
            let a = assignment_in(c, public_id)?;
            let owner = q::worker_by_id(c, a.worker_id)?;
            if owner.external_id != worker {
                return Err(EngineError::Forbidden(
                    "this assignment belongs to another worker".into(),
                ));
            }
            if state_of(&a) == State::Returned {
                return Ok(());
            }
            if state_of(&a) != State::Accepted {
                return Err(EngineError::Conflict(format!(
                    "assignment is {}, only an accepted one can be returned",
                    a.state
                )));
            }
            if end(c, &a, State::Returned, now)? {
                Ok(())
            } else {
                Err(changed_meanwhile())
            }
        })
    }

    pub fn approve(&self, public_id: &str, now: Millis) -> Result<()> {
        self.db.write(|c| {
            let a = assignment_in(c, public_id)?;
            match state_of(&a) {
                State::Approved => Ok(()),
                State::Submitted => {
                    if approve_in(c, &a, now, "approved")? {
                        Ok(())
                    } else {
                        Err(changed_meanwhile())
                    }
                }
                other => Err(EngineError::Conflict(format!(
                    "assignment is {other}, only a submitted one can be approved"
                ))),
            }
        })
    }

    /// Rejects submitted work with feedback the worker sees; the slot reopens, so the set still
    /// ends with its full count of approved descriptions.
    pub fn reject(&self, public_id: &str, feedback: &str, now: Millis) -> Result<()> {
        let feedback = feedback.trim();
        if feedback.is_empty() || feedback.chars().count() > FEEDBACK_MAX_CHARS {
            return Err(EngineError::Invalid(format!(
                "rejecting needs feedback for the worker, 1 to {FEEDBACK_MAX_CHARS} characters"
            )));
        }
        self.db.write(|c| {
            let a = assignment_in(c, public_id)?;
            match state_of(&a) {
                State::Rejected => return Ok(()),
                State::Submitted => {}
                other => {
                    return Err(EngineError::Conflict(format!(
                        "assignment is {other}, only a submitted one can be rejected"
                    )));
                }
            }
            if !q::transition(c, a.id, "submitted", "rejected", Stamp::Reviewed, now)? {
                return Err(changed_meanwhile());
            }
            q::set_feedback(c, a.id, feedback)?;
            q::add_counts(c, a.set_id, -1, 0)?;
            q::log(
                c,
                &assignment_event("rejected", &a, json!({ "feedback": feedback }), now),
            )?;
            Ok(())
        })
    }

    /// Ends expired leases and auto-approves what waited long enough; the server calls this every
    /// few seconds (no cron). Returns (abandoned, auto-approved).
    pub fn sweep(&self, now: Millis) -> Result<(usize, usize)> {
        self.db.write(|c| {
            let abandoned = expire_due(c, now, 1000)?;
            let mut approved = 0;
            for a in &q::due_for_auto_approval(c, now, 1000)? {
                approved += usize::from(approve_in(c, a, now, "auto_approved")?);
            }
            Ok((abandoned, approved))
        })
    }

    // ------------------------------------------------------------ reading

    pub fn events_of(&self, public_id: &str) -> Result<Vec<q::EventRow>> {
        let a = self.assignment(public_id)?;
        self.db.read(|c| Ok(q::events_of_assignment(c, a.id)?))
    }
}

/// How many of the best sets accept-next looks at before choosing one at random among the equally
/// good: concurrent workers then rarely race for the same slot (PostgreSQL retries each race).
const CANDIDATES: i64 = 32;

fn pick(candidates: Vec<SetRow>, by_priority: bool) -> Option<SetRow> {
    let first = candidates.first()?;
    let best = |s: &SetRow| {
        s.active_count == first.active_count && (!by_priority || s.priority == first.priority)
    };
    let equal: Vec<SetRow> = candidates.iter().filter(|s| best(s)).cloned().collect();
    let i = rand::random_range(0..equal.len());
    equal.into_iter().nth(i)
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
        created_at: now,
        max_live_per_worker: s.max_live_per_worker,
        max_bonus_cents: s.max_bonus_cents,
    }
}

fn project_in(c: &mut Db, name: &str) -> Result<ProjectRow> {
    q::project_by_name(c, name)?
        .ok_or_else(|| EngineError::NotFound(format!("no project named {name:?}")))
}

/// Takes a new set for the worker (no check of the worker's live leases: the callers do that).
fn take_next(
    c: &mut Db,
    project: &ProjectRow,
    worker: &WorkerRow,
    order: Order,
    now: Millis,
) -> Result<Option<Accepted>> {
    if worker.blocked {
        return Err(EngineError::Forbidden(
            "you are blocked from new assignments".into(),
        ));
    }
    if project.qualification_required && !q::has_passed(c, project.id, worker.id)? {
        return Err(EngineError::Forbidden(
            "this project needs its qualification test first".into(),
        ));
    }
    let by_priority = order == Order::Priority || project.order_by_priority;
    let candidates = q::next_sets_for(
        c,
        project.id,
        project.assignments_per_set,
        worker.id,
        by_priority,
        CANDIDATES,
    )?;
    let Some(set) = pick(candidates, by_priority) else {
        return Ok(None);
    };
    let slot = q::free_slot(c, set.id)?.ok_or_else(|| {
        // active_count said there was room; a concurrent writer took it. Retry.
        EngineError::Db(DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::SerializationFailure,
            Box::new("slot taken".to_owned()),
        )))
    })?;
    let expires_at = now
        .checked_add(project.lease_ms)
        .ok_or_else(|| EngineError::Invalid(format!("time {now} + lease is out of range")))?;
    let public_id = uuid::Uuid::new_v4().to_string();
    let assignment = q::insert_assignment(
        c,
        &NewAssignment {
            public_id: &public_id,
            set_id: set.id,
            slot,
            worker_id: worker.id,
            state: State::Accepted.as_str(),
            accepted_at: now,
            expires_at,
            // An identity from MTurk's or Prolific's URL parameters is a claim until the
            // requester reconciles it with the platform's records.
            verified: !crate::accounts::is_url_identity(&worker.external_id),
        },
    )?;
    q::add_counts(c, set.id, 1, 0)?;
    q::log(
        c,
        &NewEvent {
            project_id: Some(project.id),
            set_id: Some(set.id),
            assignment_id: Some(assignment.id),
            worker_id: Some(worker.id),
            detail: json!({ "slot": slot, "expires_at": assignment.expires_at }).to_string(),
            ..event("accepted", now)
        },
    )?;
    Ok(Some(Accepted {
        assignment,
        set,
        project: project.clone(),
        resumed: false,
    }))
}

fn assignment_in(c: &mut Db, public_id: &str) -> Result<AssignmentRow> {
    q::assignment_by_public_id(c, public_id)?
        .ok_or_else(|| EngineError::NotFound(format!("no assignment {public_id}")))
}

fn existing_worker(c: &mut Db, external_id: &str) -> Result<WorkerRow> {
    q::worker_by_external(c, external_id)?
        .ok_or_else(|| EngineError::NotFound(format!("no worker {external_id:?}")))
}

pub fn validate_worker_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(EngineError::Invalid(format!(
            "worker id {id:?}: use 1 to 128 visible characters without spaces"
        )));
    }
    Ok(())
}

pub(crate) fn worker_in(c: &mut Db, external_id: &str, now: Millis) -> Result<WorkerRow> {
    validate_worker_id(external_id)?;
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

/// Ends an accepted assignment as returned or abandoned, freeing its slot. `false` when it was no
/// longer accepted (another transaction ended it first).
fn end(c: &mut Db, a: &AssignmentRow, to: State, now: Millis) -> Result<bool> {
    if !q::transition(c, a.id, "accepted", to.as_str(), Stamp::Ended, now)? {
        return Ok(false);
    }
    q::add_counts(c, a.set_id, -1, 0)?;
    q::log(c, &assignment_event(to.as_str(), a, json!({}), now))?;
    Ok(true)
}

/// Ends every lease that ran out; two transactions doing this at once each end what the other
/// did not.
fn expire_due(c: &mut Db, now: Millis, limit: i64) -> Result<usize> {
    let mut ended = 0;
    for a in &q::expired(c, now, limit)? {
        ended += usize::from(end(c, a, State::Abandoned, now)?);
    }
    Ok(ended)
}

/// Approves submitted work; `false` when it was reviewed meanwhile.
fn approve_in(c: &mut Db, a: &AssignmentRow, now: Millis, kind: &str) -> Result<bool> {
    if !q::transition(c, a.id, "submitted", "approved", Stamp::Reviewed, now)? {
        return Ok(false);
    }
    q::add_counts(c, a.set_id, 0, 1)?;
    let set = q::set_by_id(c, a.set_id)?;
    let project = q::project_by_id(c, set.project_id)?;
    if project.reward_cents > 0 {
        q::insert_ledger(
            c,
            &q::NewPayment {
                worker_id: a.worker_id,
                assignment_id: Some(a.id),
                kind: "reward",
                cents: project.reward_cents,
                note: &project.name,
                created_at: now,
                idempotency_key: None,
                request_hash: None,
            },
        )?;
    }
    q::log(
        c,
        &NewEvent {
            project_id: Some(project.id),
            ..assignment_event(kind, a, json!({}), now)
        },
    )?;
    Ok(true)
}
