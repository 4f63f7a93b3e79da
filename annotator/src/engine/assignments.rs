//! Assignments: accept-next, submit, return, review, lease expiry and auto-approval.

use super::*;

impl Engine {
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
    ) -> Result<Submitted> {
        let request_hash = sha256_hex(text.as_bytes());
        // The checks of the text alone, and the cleaning, before taking the one writer; a bad
        // text is still refused where it was (after the replay and state checks below).
        let draft = Description::draft(text).map(|d| {
            let cleaned = clean(d.as_str());
            (d, cleaned)
        });
        self.db.write(|c| {
            let a = owned_assignment(c, public_id, worker)?;
            if let Some(response) = &a.submit_response {
                if let Some(key) = idempotency_key
                    && a.idempotency_key.as_deref() == Some(key)
                    && a.request_hash.as_deref() != Some(request_hash.as_str())
                {
                    return Err(EngineError::Invalid(
                        "Idempotency-Key reused with a different request".into(),
                    ));
                }
                return serde_json::from_str(response).map_err(|e| {
                    EngineError::Corrupt(format!(
                        "assignment {public_id}: stored submit response: {e}"
                    ))
                });
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
            let (draft, cleaned) = draft.clone().map_err(EngineError::Invalid)?;
            let description = draft
                .finish(&project.instructions, previous.as_deref())
                .map_err(EngineError::Invalid)?;
            if !q::transition(c, a.id, "accepted", "submitted", Stamp::Submitted, now)? {
                return Err(changed_meanwhile());
            }
            q::insert_description(c, a.id, set.id, description.as_str(), &cleaned, now)?;
            let response = Submitted {
                status: State::Submitted.as_str().to_owned(),
                assignment_id: a.public_id.clone(),
                description: description.as_str().to_owned(),
                cleaned,
                submitted_at: now,
            };
            let stored = serde_json::to_string(&response)
                .map_err(|e| EngineError::Corrupt(format!("a submit response: {e}")))?;
            q::record_submit(c, a.id, idempotency_key, &request_hash, &stored)?;
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
            let a = owned_assignment(c, public_id, worker)?;
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

fn pick(candidates: &[q::Candidate], by_priority: bool) -> Option<i64> {
    let first = candidates.first()?;
    let best = |s: &q::Candidate| {
        s.active_count == first.active_count && (!by_priority || s.priority == first.priority)
    };
    let equal: Vec<i64> = candidates
        .iter()
        .filter(|s| best(s))
        .map(|s| s.id)
        .collect();
    Some(equal[rand::random_range(0..equal.len())])
}

/// Takes a new set for the worker (no check of the worker's live leases: the callers do that).
pub(super) fn take_next(
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
    let Some(set_id) = pick(&candidates, by_priority) else {
        return Ok(None);
    };
    let set = q::set_by_id(c, set_id)?;
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
            verified: !crate::domain::is_url_identity(&worker.external_id),
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

/// The assignment, if `worker` holds it: another worker's is Forbidden, whatever its state.
fn owned_assignment(c: &mut Db, public_id: &str, worker: &str) -> Result<AssignmentRow> {
    let a = assignment_in(c, public_id)?;
    if q::worker_by_id(c, a.worker_id)?.external_id != worker {
        return Err(EngineError::Forbidden(
            "this assignment belongs to another worker".into(),
        ));
    }
    Ok(a)
}

pub(super) fn assignment_in(c: &mut Db, public_id: &str) -> Result<AssignmentRow> {
    q::assignment_by_public_id(c, public_id)?
        .ok_or_else(|| EngineError::NotFound(format!("no assignment {public_id}")))
}

/// Ends an accepted assignment as returned or abandoned, freeing its slot. `false` when it was no
/// longer accepted (another transaction ended it first).
pub(super) fn end(c: &mut Db, a: &AssignmentRow, to: State, now: Millis) -> Result<bool> {
    if !q::transition(c, a.id, "accepted", to.as_str(), Stamp::Ended, now)? {
        return Ok(false);
    }
    q::add_counts(c, a.set_id, -1, 0)?;
    q::log(c, &assignment_event(to.as_str(), a, json!({}), now))?;
    Ok(true)
}

/// Ends every lease that ran out; two transactions doing this at once each end what the other
/// did not.
pub(super) fn expire_due(c: &mut Db, now: Millis, limit: i64) -> Result<usize> {
    let mut ended = 0;
    for a in &q::expired(c, now, limit)? {
        ended += usize::from(end(c, a, State::Abandoned, now)?);
    }
    Ok(ended)
}

/// Approves submitted work; `false` when it was reviewed meanwhile.
pub(super) fn approve_in(c: &mut Db, a: &AssignmentRow, now: Millis, kind: &str) -> Result<bool> {
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
