//! Workers who come from MTurk or Prolific. Their ids arrive as URL parameters, which anyone can
//! type, so the rules here bind each platform task to exactly one piece of work and leave the
//! identity *unverified* until the requester reconciles it with the platform's own records:
//!
//! - MTurk: one assignment here per MTurk assignmentId, one per (HIT, worker) as MTurk allows,
//!   and a worker holding the project's cap of live leases cannot start another HIT. A description
//!   therefore answers exactly one MTurk assignment, which MTurk pays once. `mturk_reconcile`
//!   compares what was done here with MTurk's batch results (assignmentId, workerId, HITId, the
//!   answer) and verifies or flags each assignment.
//! - Prolific: one session per (study, participant), completed at most once; `prolific_reconcile`
//!   checks participants against the study's submissions export.
//!
//! Unverified work is never approved automatically (the sweeper skips it); the requester approves
//! it by hand or reconciles it first.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::assignments::{end, expire_due, take_next};
use super::{
    Accepted, Engine, EngineError, Result, State, changed_meanwhile, event, project_in, worker_in,
};
use crate::db::Db;
use crate::db::queries::{self as q, NewEvent, Stamp};
use crate::domain::{FEEDBACK_MAX_CHARS, Millis};

pub const MTURK_PREFIX: &str = "mturk:";
pub const PROLIFIC_PREFIX: &str = "prolific:";

/// Whether an id looks like the platforms' own: 1 to 64 letters, digits, '_' or '-'.
pub fn platform_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The platforms whose URL parameters may open a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Mturk,
    Prolific,
}

/// Refuses a platform's entry to a project the requester did not set up for it: put on MTurk
/// (`mturk`), or given a Prolific completion code. Not found rather than forbidden: the entry
/// page of a project that is not on the platform does not exist.
pub(crate) fn check_platform(project: &q::ProjectRow, platform: Platform) -> Result<()> {
    let (open, name, how) = match platform {
        Platform::Mturk => (project.mturk_enabled, "MTurk", "put it on MTurk"),
        Platform::Prolific => (
            project.prolific_completion_code.is_some(),
            "Prolific",
            "give it a Prolific completion code",
        ),
    };
    if open {
        Ok(())
    } else {
        Err(EngineError::NotFound(format!(
            "project {:?} takes no workers from {name} (its requester did not {how})",
            project.name
        )))
    }
}

/// What MTurk passed to the ExternalQuestion page of an accepted HIT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MturkEntry {
    pub project: String,
    pub assignment_id: String,
    pub hit_id: String,
    pub worker_id: String,
    /// Where the answer is posted back (`turkSubmitTo`), checked by the web layer.
    pub submit_to: String,
}

/// One row of MTurk's batch results, as far as reconciliation reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MturkRecord {
    /// The line of the file it came from, for messages.
    pub line: usize,
    pub assignment_id: String,
    pub worker_id: String,
    pub hit_id: Option<String>,
    /// `Answer.description`: what the worker's browser posted to MTurk.
    pub answer: Option<String>,
}

/// One participant of Prolific's submissions export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProlificRecord {
    pub line: usize,
    pub participant_id: String,
    pub session_id: Option<String>,
    /// Prolific's status (APPROVED, AWAITING REVIEW, RETURNED, TIMED-OUT, REJECTED, ...).
    pub status: Option<String>,
}

/// What a reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Entries that matched the platform's records (their work is now verified).
    pub verified: usize,
    /// (platform id, why) of entries that did not match; their work stays unverified.
    pub flagged: Vec<(String, String)>,
    /// (platform id, what the platform knows) of records with no entry here: MTurk or Prolific
    /// paid-for work that was never done on this server.
    pub not_here: Vec<(String, String)>,
    /// Flagged submitted work rejected (when asked to).
    pub rejected: usize,
}

fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    norm(a) == norm(b)
}

/// Rejects flagged submitted work so that its slot reopens; `false` when it was not submitted.
fn reject_flagged(c: &mut Db, a: &q::AssignmentRow, feedback: &str, now: Millis) -> Result<bool> {
    if a.state != State::Submitted.as_str() {
        return Ok(false);
    }
    if !q::transition(c, a.id, "submitted", "rejected", Stamp::Reviewed, now)? {
        return Err(changed_meanwhile());
    }
    q::set_feedback(c, a.id, feedback)?;
    q::add_counts(c, a.set_id, -1, 0)?;
    q::log(
        c,
        &super::assignment_event(
            "rejected",
            a,
            json!({ "feedback": feedback, "by": "reconciliation" }),
            now,
        ),
    )?;
    Ok(true)
}

/// Applies reconciliation's verdict on one platform entry to its work: verified when it matched;
/// otherwise unverified, flagged in the report, and (with `reject_with`) its submitted work
/// rejected.
fn apply_verdict(
    c: &mut Db,
    out: &mut Reconciliation,
    entry: &str,
    flag: Option<String>,
    work: &[q::AssignmentRow],
    reject_with: Option<&str>,
    now: Millis,
) -> Result<()> {
    for a in work {
        q::set_verified(c, a.id, flag.is_none())?;
        if flag.is_some()
            && let Some(feedback) = reject_with
            && reject_flagged(c, a, feedback, now)?
        {
            out.rejected += 1;
        }
    }
    match flag {
        None => out.verified += 1,
        Some(why) => out.flagged.push((entry.to_owned(), why)),
    }
    Ok(())
}

fn check_feedback(feedback: Option<&str>) -> Result<Option<&str>> {
    match feedback.map(str::trim) {
        None => Ok(None),
        Some(f) if !f.is_empty() && f.chars().count() <= FEEDBACK_MAX_CHARS => Ok(Some(f)),
        Some(_) => Err(EngineError::Invalid(format!(
            "rejection feedback must be 1 to {FEEDBACK_MAX_CHARS} characters"
        ))),
    }
}

impl Engine {
    /// An MTurk worker starts (or comes back to) the task of an accepted HIT: the assignment bound
    /// to this MTurk assignmentId, or a new one. Refused when the assignmentId is bound to another
    /// worker or HIT, when this worker already worked on this HIT under another assignmentId, and
    /// when the worker holds the project's cap of live leases from other HITs.
    pub fn mturk_start(&self, e: &MturkEntry, now: Millis) -> Result<Accepted> {
        if ![&e.assignment_id, &e.hit_id, &e.worker_id]
            .iter()
            .all(|s| platform_id_ok(s))
        {
            return Err(EngineError::Invalid(
                "assignmentId, hitId and workerId must be MTurk ids (letters and digits)".into(),
            ));
        }
        let worker_id = format!("{MTURK_PREFIX}{}", e.worker_id);
        self.db.write(|c| {
            let project = project_in(c, &e.project)?;
            check_platform(&project, Platform::Mturk)?;
            let worker = worker_in(c, &worker_id, now)?;
            q::lock_worker(c, worker.id)?;
            if let Some(row) = q::mturk_by_id(c, &e.assignment_id)? {
                if row.worker_id != worker.id
                    || row.hit_id != e.hit_id
                    || row.project_id != project.id
                {
                    return Err(EngineError::Forbidden(format!(
                        "MTurk assignment {} was started by another worker, or for another HIT",
                        e.assignment_id
                    )));
                }
                let assignment = q::assignment_by_id(c, row.assignment_id)?;
                let set = q::set_by_id(c, assignment.set_id)?;
                return Ok(Accepted {
                    assignment,
                    set,
                    project,
                    resumed: true,
                });
            }
            if let Some(other) = q::mturk_by_hit_worker(c, &e.hit_id, worker.id)? {
                return Err(EngineError::Conflict(format!(
                    "you already worked on this HIT (MTurk assignment {}); MTurk gives a worker \
                     one assignment per HIT",
                    other.mturk_assignment_id
                )));
            }
            expire_due(c, now, 100)?;
            let live = q::live_assignments(c, project.id, worker.id, now)?;
            if live.len() >= project.max_live_per_worker.max(1) as usize {
                return Err(EngineError::Conflict(format!(
                    "you still hold a task of this project from another HIT: submit that HIT, or \
                     start this one after its time here ends ({})",
                    crate::domain::mturk_time(live[0].0.expires_at)
                )));
            }
            let Some(accepted) = take_next(c, &project, &worker, self.order, now)? else {
                return Err(EngineError::Conflict(
                    "no set is left for you in this project; return the HIT on MTurk".into(),
                ));
            };
            q::insert_mturk(
                c,
                &q::NewMturk {
                    project_id: project.id,
                    mturk_assignment_id: &e.assignment_id,
                    hit_id: &e.hit_id,
                    worker_id: worker.id,
                    assignment_id: accepted.assignment.id,
                    submit_to: &e.submit_to,
                    created_at: now,
                },
            )?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    ..super::assignment_event(
                        "external_task",
                        &accepted.assignment,
                        json!({ "source": "mturk", "assignment_id": e.assignment_id, "hit_id": e.hit_id }),
                        now,
                    )
                },
            )?;
            Ok(accepted)
        })
    }

    /// A project whose entry page this platform may open (read only: the GET pages ask first).
    pub fn entry_project(&self, name: &str, platform: Platform) -> Result<q::ProjectRow> {
        self.db.read(|c| {
            let project = project_in(c, name)?;
            check_platform(&project, platform)?;
            Ok(project)
        })
    }

    /// The live task bound to an MTurk assignment of this worker, if any (read only: what a
    /// reloaded ExternalQuestion page shows again).
    pub fn mturk_task(
        &self,
        mturk_assignment_id: &str,
        worker_id: &str,
        now: Millis,
    ) -> Result<Option<Accepted>> {
        let worker_id = format!("{MTURK_PREFIX}{worker_id}");
        self.db.read(|c| {
            let Some(row) = q::mturk_by_id(c, mturk_assignment_id)? else {
                return Ok(None);
            };
            let Some(worker) = q::worker_by_external(c, &worker_id)? else {
                return Ok(None);
            };
            let assignment = q::assignment_by_id(c, row.assignment_id)?;
            if row.worker_id != worker.id
                || assignment.state != State::Accepted.as_str()
                || assignment.expires_at <= now
            {
                return Ok(None);
            }
            let set = q::set_by_id(c, assignment.set_id)?;
            let project = q::project_by_id(c, set.project_id)?;
            Ok(Some(Accepted {
                assignment,
                set,
                project,
                resumed: true,
            }))
        })
    }

    /// The MTurk assignment an assignment here answers, if it came from MTurk: what the finish
    /// page posts back (never what the visitor's session claims).
    pub fn mturk_of(&self, public_id: &str) -> Result<Option<q::MturkRow>> {
        self.db.read(|c| {
            let Some(a) = q::assignment_by_public_id(c, public_id)? else {
                return Ok(None);
            };
            Ok(q::mturk_of_assignment(c, a.id)?)
        })
    }

    /// Compares the project's MTurk work with MTurk's batch results. An entry matches when MTurk
    /// knows its assignmentId, with the same worker and HIT, and (when the file has the answer
    /// column) the same description; its work is then verified. Others are flagged, and with
    /// `reject_with` their submitted work is rejected with that feedback (the slot reopens).
    /// Running it again with the same file changes nothing more.
    pub fn mturk_reconcile(
        &self,
        project: &str,
        records: &[MturkRecord],
        reject_with: Option<&str>,
        now: Millis,
    ) -> Result<Reconciliation> {
        let reject_with = check_feedback(reject_with)?;
        let by_id: BTreeMap<&str, &MturkRecord> = records
            .iter()
            .map(|r| (r.assignment_id.as_str(), r))
            .collect();
        self.db.write(|c| {
            let project = project_in(c, project)?;
            let mut out = Reconciliation::default();
            let mut known = BTreeSet::new();
            for row in q::mturk_of_project(c, project.id)? {
                known.insert(row.mturk_assignment_id.clone());
                let worker = q::worker_by_id(c, row.worker_id)?;
                let worker_id = worker
                    .external_id
                    .strip_prefix(MTURK_PREFIX)
                    .unwrap_or(&worker.external_id)
                    .to_owned();
                let a = q::assignment_by_id(c, row.assignment_id)?;
                let description = q::description_of(c, a.id)?;
                let flag = match by_id.get(row.mturk_assignment_id.as_str()) {
                    None => Some(format!(
                        "MTurk's results have no assignment {}: its ids did not come from MTurk",
                        row.mturk_assignment_id
                    )),
                    // MTurk's worker ids are upper case, as the canonical ids here.
                    Some(r) if r.worker_id.to_uppercase() != worker_id => Some(format!(
                        "MTurk says assignment {} was worked by {}, not {worker_id}",
                        row.mturk_assignment_id, r.worker_id
                    )),
                    Some(r) if r.hit_id.as_ref().is_some_and(|h| *h != row.hit_id) => {
                        Some(format!(
                            "MTurk says assignment {} belongs to HIT {}, not {}",
                            row.mturk_assignment_id,
                            r.hit_id.as_deref().unwrap_or_default(),
                            row.hit_id
                        ))
                    }
                    Some(r) => match (&r.answer, &description) {
                        (Some(answer), Some(d)) if !same_text(answer, &d.raw) => Some(format!(
                            "the answer MTurk received for {} differs from the description \
                             stored here",
                            row.mturk_assignment_id
                        )),
                        (Some(answer), None) if !answer.trim().is_empty() => Some(format!(
                            "MTurk received an answer for {}, but no description was submitted \
                             here",
                            row.mturk_assignment_id
                        )),
                        _ => None,
                    },
                };
                q::set_mturk_reconciled(c, row.id, flag.as_deref(), now)?;
                let id = row.mturk_assignment_id.clone();
                apply_verdict(c, &mut out, &id, flag, &[a], reject_with, now)?;
            }
            for r in records {
                if !known.contains(&r.assignment_id) {
                    out.not_here.push((
                        r.assignment_id.clone(),
                        format!(
                            "line {}: MTurk has assignment {} by worker {}, but no task of \
                             project {:?} was started for it here",
                            r.line, r.assignment_id, r.worker_id, project.name
                        ),
                    ));
                }
            }
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    detail: json!({ "source": "mturk", "verified": out.verified, "flagged": out.flagged.len(), "not_here": out.not_here.len(), "rejected": out.rejected }).to_string(),
                    ..event("reconciled", now)
                },
            )?;
            Ok(out)
        })
    }

    /// A Prolific participant confirms taking part in a study: the first time it records the
    /// session; again with the same session it changes nothing. A second session of the same
    /// participant and study, a session of another participant, and a completed study are
    /// refused.
    pub fn prolific_start(
        &self,
        project: &str,
        participant: &str,
        study: &str,
        session: &str,
        now: Millis,
    ) -> Result<()> {
        if ![participant, study, session]
            .iter()
            .all(|s| platform_id_ok(s))
        {
            return Err(EngineError::Invalid(
                "PROLIFIC_PID, STUDY_ID and SESSION_ID must be Prolific ids".into(),
            ));
        }
        let worker_id = format!("{PROLIFIC_PREFIX}{participant}");
        self.db.write(|c| {
            let project = project_in(c, project)?;
            check_platform(&project, Platform::Prolific)?;
            let worker = worker_in(c, &worker_id, now)?;
            q::lock_worker(c, worker.id)?;
            if let Some(row) = q::prolific_by_session(c, session)? {
                if row.worker_id != worker.id
                    || row.study_id != study
                    || row.project_id != project.id
                {
                    return Err(EngineError::Forbidden(
                        "this Prolific session belongs to another participant or study".into(),
                    ));
                }
                if row.completed_at.is_some() {
                    return Err(EngineError::Conflict(
                        "you have completed this study already; thank you".into(),
                    ));
                }
                return Ok(());
            }
            if let Some(row) = q::prolific_by_study_worker(c, study, worker.id)? {
                return Err(EngineError::Conflict(if row.completed_at.is_some() {
                    "you have completed this study already; thank you".to_owned()
                } else {
                    "you are taking part in this study in another Prolific session already; \
                     continue there (Prolific allows one session per study)"
                        .to_owned()
                }));
            }
            q::insert_prolific(c, project.id, study, session, worker.id, now)?;
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    worker_id: Some(worker.id),
                    detail:
                        json!({ "source": "prolific", "study_id": study, "session_id": session })
                            .to_string(),
                    ..event("external_session", now)
                },
            )?;
            Ok(())
        })
    }

    /// The participant finishes the study: once per session (a second time is refused), handing
    /// back the sets they still hold. Returns the study's completion code.
    pub fn prolific_complete(
        &self,
        project: &str,
        participant: &str,
        study: &str,
        session: &str,
        now: Millis,
    ) -> Result<String> {
        let worker_id = format!("{PROLIFIC_PREFIX}{participant}");
        self.db.write(|c| {
            let project = project_in(c, project)?;
            let code = project.prolific_completion_code.clone().ok_or_else(|| {
                EngineError::Conflict(
                    "this project has no Prolific completion code; ask the requester".into(),
                )
            })?;
            let worker = q::worker_by_external(c, &worker_id)?
                .ok_or_else(|| EngineError::NotFound(format!("no worker {worker_id:?}")))?;
            let row = q::prolific_by_session(c, session)?
                .filter(|r| r.worker_id == worker.id && r.study_id == study)
                .ok_or_else(|| EngineError::NotFound("no such Prolific session for you".into()))?;
            if !q::complete_prolific(c, row.id, now)? {
                return Err(EngineError::Conflict(
                    "you have completed this study already; thank you".into(),
                ));
            }
            for (a, _) in q::live_assignments(c, project.id, worker.id, now)? {
                if !end(c, &a, State::Returned, now)? {
                    return Err(changed_meanwhile());
                }
            }
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    worker_id: Some(worker.id),
                    detail:
                        json!({ "source": "prolific", "study_id": study, "session_id": session })
                            .to_string(),
                    ..event("external_completed", now)
                },
            )?;
            Ok(code)
        })
    }

    /// Compares a study's participants with Prolific's export of its submissions. A participant
    /// listed there (with a status other than RETURNED, TIMED-OUT or REJECTED, and the same
    /// session id when the export has one) has their work in the project verified; others are
    /// flagged, and with `reject_with` their submitted work is rejected.
    pub fn prolific_reconcile(
        &self,
        project: &str,
        study: &str,
        records: &[ProlificRecord],
        reject_with: Option<&str>,
        now: Millis,
    ) -> Result<Reconciliation> {
        let reject_with = check_feedback(reject_with)?;
        // Prolific's ids are lower-case hex, as the canonical ids here.
        let by_pid: BTreeMap<String, &ProlificRecord> = records
            .iter()
            .map(|r| (r.participant_id.to_lowercase(), r))
            .collect();
        self.db.write(|c| {
            let project = project_in(c, project)?;
            let mut out = Reconciliation::default();
            let mut known = BTreeSet::new();
            for row in q::prolific_of_study(c, project.id, study)? {
                let worker = q::worker_by_id(c, row.worker_id)?;
                let pid = worker
                    .external_id
                    .strip_prefix(PROLIFIC_PREFIX)
                    .unwrap_or(&worker.external_id)
                    .to_owned();
                known.insert(pid.clone());
                let flag = match by_pid.get(&pid) {
                    None => Some(format!(
                        "participant {pid} is not in Prolific's export of study {study}"
                    )),
                    Some(r) if r.session_id.as_ref().is_some_and(|s| *s != row.session_id) => {
                        Some(format!(
                            "Prolific lists participant {pid} with session {}, not {}",
                            r.session_id.as_deref().unwrap_or_default(),
                            row.session_id
                        ))
                    }
                    Some(r)
                        if r.status.as_deref().is_some_and(|s| {
                            let s = s.to_ascii_uppercase().replace(['_', ' '], "-");
                            ["RETURNED", "TIMED-OUT", "REJECTED"].contains(&s.as_str())
                        }) =>
                    {
                        Some(format!(
                            "Prolific says participant {pid}'s submission is {}",
                            r.status.as_deref().unwrap_or_default()
                        ))
                    }
                    Some(_) => None,
                };
                q::set_prolific_reconciled(c, row.id, flag.as_deref(), now)?;
                let work = q::assignments_of_worker_in(c, project.id, worker.id)?;
                apply_verdict(c, &mut out, &pid, flag, &work, reject_with, now)?;
            }
            for r in records {
                if !known.contains(&r.participant_id.to_lowercase()) {
                    out.not_here.push((
                        r.participant_id.clone(),
                        format!(
                            "line {}: Prolific lists participant {}, who never confirmed taking \
                             part in study {study} here",
                            r.line, r.participant_id
                        ),
                    ));
                }
            }
            q::log(
                c,
                &NewEvent {
                    project_id: Some(project.id),
                    detail: json!({ "source": "prolific", "study_id": study, "verified": out.verified, "flagged": out.flagged.len(), "not_here": out.not_here.len(), "rejected": out.rejected }).to_string(),
                    ..event("reconciled", now)
                },
            )?;
            Ok(out)
        })
    }
}
