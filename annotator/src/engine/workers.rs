//! Workers: who they are, blocks, bonuses and what they were paid.

use super::*;

impl Engine {
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
}
