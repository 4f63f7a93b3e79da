//! Every query of the annotator. Functions take a connection (inside a transaction opened by
//! [`super::Database`]) and know nothing of HTTP or of the engine's rules.

use diesel::dsl::{count_star, exists, not};
use diesel::prelude::*;

use super::Db;
use super::schema::{
    assignments, descriptions, events, exemplar_sets, ledger, model_descriptions,
    mturk_assignments, projects, prolific_sessions, qualification_attempts, qualifications,
    requester_tokens, requesters, sessions, settings, slots, worker_codes, workers,
};

pub type QueryResult<T> = Result<T, diesel::result::Error>;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub instructions: String,
    pub reward_cents: i64,
    pub assignments_per_set: i32,
    pub lease_ms: i64,
    pub auto_approve_ms: i64,
    pub qualification_required: bool,
    pub created_at: i64,
    pub prolific_completion_code: Option<String>,
    /// Accept-next hands out the sets of highest priority first (the trainer sets priorities).
    pub order_by_priority: bool,
    pub max_live_per_worker: i32,
    pub max_bonus_cents: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = projects)]
pub struct NewProject<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub instructions: &'a str,
    pub reward_cents: i64,
    pub assignments_per_set: i32,
    pub lease_ms: i64,
    pub auto_approve_ms: i64,
    pub qualification_required: bool,
    pub created_at: i64,
    pub prolific_completion_code: Option<&'a str>,
    pub max_live_per_worker: i32,
    pub max_bonus_cents: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exemplar_sets)]
pub struct SetRow {
    pub id: i64,
    pub project_id: i64,
    pub model: String,
    pub layer: String,
    pub unit: i32,
    pub exemplars: String,
    pub active_count: i32,
    pub approved_count: i32,
    pub priority: f64,
    pub created_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = exemplar_sets)]
pub struct NewSet<'a> {
    pub project_id: i64,
    pub model: &'a str,
    pub layer: &'a str,
    pub unit: i32,
    pub exemplars: &'a str,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workers)]
pub struct WorkerRow {
    pub id: i64,
    pub external_id: String,
    pub blocked: bool,
    pub block_reason: Option<String>,
    pub created_at: i64,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = assignments)]
pub struct AssignmentRow {
    pub id: i64,
    pub public_id: String,
    pub set_id: i64,
    pub slot: i32,
    pub worker_id: i64,
    pub state: String,
    pub accepted_at: i64,
    pub expires_at: i64,
    pub submitted_at: Option<i64>,
    pub reviewed_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub feedback: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub submit_response: Option<String>,
    /// False while the worker's identity rests on URL parameters not yet reconciled.
    pub verified: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = assignments)]
pub struct NewAssignment<'a> {
    pub public_id: &'a str,
    pub set_id: i64,
    pub slot: i32,
    pub worker_id: i64,
    pub state: &'a str,
    pub accepted_at: i64,
    pub expires_at: i64,
    pub verified: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = descriptions)]
pub struct DescriptionRow {
    pub id: i64,
    pub assignment_id: i64,
    pub set_id: i64,
    pub raw: String,
    pub cleaned: String,
    pub created_at: i64,
}

/// One event of the append-only log.
#[derive(Debug, Clone, Default, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent<'a> {
    pub at: i64,
    pub kind: &'a str,
    pub project_id: Option<i64>,
    pub set_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub worker_id: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub project_id: Option<i64>,
    pub set_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub worker_id: Option<i64>,
    pub detail: String,
}

// ---------------------------------------------------------------- projects

pub fn insert_project(conn: &mut Db, project: &NewProject) -> QueryResult<ProjectRow> {
    diesel::insert_into(projects::table)
        .values(project)
        .get_result::<ProjectRow>(conn)
}

pub fn project_by_name(conn: &mut Db, name: &str) -> QueryResult<Option<ProjectRow>> {
    projects::table
        .filter(projects::name.eq(name))
        .select(ProjectRow::as_select())
        .first(conn)
        .optional()
}

pub fn project_by_id(conn: &mut Db, id: i64) -> QueryResult<ProjectRow> {
    projects::table
        .find(id)
        .select(ProjectRow::as_select())
        .first(conn)
}

pub fn set_qualification_required(conn: &mut Db, id: i64, required: bool) -> QueryResult<()> {
    diesel::update(projects::table.find(id))
        .set(projects::qualification_required.eq(required))
        .execute(conn)
        .map(|_| ())
}

pub fn all_projects(conn: &mut Db) -> QueryResult<Vec<ProjectRow>> {
    projects::table
        .order(projects::id)
        .select(ProjectRow::as_select())
        .load(conn)
}

pub fn count_projects(conn: &mut Db) -> QueryResult<i64> {
    projects::table.select(count_star()).first(conn)
}

// ---------------------------------------------------------------- sets

pub fn set_by_key(
    conn: &mut Db,
    project_id: i64,
    model: &str,
    layer: &str,
    unit: i32,
) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::model.eq(model))
        .filter(exemplar_sets::layer.eq(layer))
        .filter(exemplar_sets::unit.eq(unit))
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

/// Inserts a set and its `slots` slots.
pub fn insert_set(conn: &mut Db, set: &NewSet, slot_count: i32) -> QueryResult<SetRow> {
    let row: SetRow = diesel::insert_into(exemplar_sets::table)
        .values(set)
        .get_result::<SetRow>(conn)?;
    // One statement per slot: diesel's multi-backend connection has no batch insert for SQLite.
    for s in 0..slot_count {
        diesel::insert_into(slots::table)
            .values((slots::set_id.eq(row.id), slots::slot.eq(s)))
            .execute(conn)?;
    }
    Ok(row)
}

pub fn set_by_id(conn: &mut Db, id: i64) -> QueryResult<SetRow> {
    exemplar_sets::table
        .find(id)
        .select(SetRow::as_select())
        .first(conn)
}

pub fn sets_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(exemplar_sets::id)
        .select(SetRow::as_select())
        .load(conn)
}

/// The set of a project that shows this neuron.
pub fn set_by_neuron(
    conn: &mut Db,
    project_id: i64,
    model: &str,
    layer: &str,
    unit: i32,
) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::model.eq(model))
        .filter(exemplar_sets::layer.eq(layer))
        .filter(exemplar_sets::unit.eq(unit))
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

pub fn set_priority(conn: &mut Db, set_id: i64, priority: f64) -> QueryResult<()> {
    diesel::update(exemplar_sets::table.find(set_id))
        .set(exemplar_sets::priority.eq(priority))
        .execute(conn)?;
    Ok(())
}

pub fn set_order_by_priority(conn: &mut Db, project_id: i64, on: bool) -> QueryResult<()> {
    diesel::update(projects::table.find(project_id))
        .set(projects::order_by_priority.eq(on))
        .execute(conn)?;
    Ok(())
}

/// Stores (or replaces) what `system` wrote for a set in `round`.
pub fn put_model_description(
    conn: &mut Db,
    set_id: i64,
    round: i32,
    system: &str,
    description: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::delete(
        model_descriptions::table
            .filter(model_descriptions::set_id.eq(set_id))
            .filter(model_descriptions::round.eq(round))
            .filter(model_descriptions::system.eq(system)),
    )
    .execute(conn)?;
    diesel::insert_into(model_descriptions::table)
        .values((
            model_descriptions::set_id.eq(set_id),
            model_descriptions::round.eq(round),
            model_descriptions::system.eq(system),
            model_descriptions::description.eq(description),
            model_descriptions::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A model's description of a set, with the set's layer.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ModelDescriptionRow {
    pub set_id: i64,
    pub model: String,
    pub layer: String,
    pub round: i32,
    pub system: String,
    pub description: String,
}

/// Every model description of a project's sets, by round then set.
pub fn model_descriptions_of_project(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<ModelDescriptionRow>> {
    model_descriptions::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .order((model_descriptions::round, model_descriptions::set_id))
        .select((
            model_descriptions::set_id,
            exemplar_sets::model,
            exemplar_sets::layer,
            model_descriptions::round,
            model_descriptions::system,
            model_descriptions::description,
        ))
        .load(conn)
}

/// The newest round's model description of a set: (round, system, description).
pub fn latest_model_description(
    conn: &mut Db,
    set_id: i64,
) -> QueryResult<Option<(i32, String, String)>> {
    model_descriptions::table
        .filter(model_descriptions::set_id.eq(set_id))
        .order((
            model_descriptions::round.desc(),
            model_descriptions::system.asc(),
        ))
        .select((
            model_descriptions::round,
            model_descriptions::system,
            model_descriptions::description,
        ))
        .first(conn)
        .optional()
}

/// (set id, cleaned text) of every approved description of a project.
pub fn approved_texts_of_project(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<(i64, String)>> {
    descriptions::table
        .inner_join(assignments::table.inner_join(exemplar_sets::table))
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("approved"))
        .order(descriptions::id)
        .select((descriptions::set_id, descriptions::cleaned))
        .load(conn)
}

pub fn count_sets(conn: &mut Db, project_id: i64) -> QueryResult<i64> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .select(count_star())
        .first(conn)
}

/// The best `limit` sets for a worker: open slots, never touched by this worker; fewest
/// assignments first, then oldest; or, `by_priority`, highest priority first (so that the sets
/// the trainer wants most are completed first), then fewest assignments, then oldest.
pub fn next_sets_for(
    conn: &mut Db,
    project_id: i64,
    slots_per_set: i32,
    worker_id: i64,
    by_priority: bool,
    limit: i64,
) -> QueryResult<Vec<SetRow>> {
    let touched = assignments::table
        .filter(assignments::set_id.eq(exemplar_sets::id))
        .filter(assignments::worker_id.eq(worker_id));
    let query = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::active_count.lt(slots_per_set))
        .filter(not(exists(touched)))
        .select(SetRow::as_select());
    if by_priority {
        query
            .order((
                exemplar_sets::priority.desc(),
                exemplar_sets::active_count.asc(),
                exemplar_sets::id.asc(),
            ))
            .limit(limit)
            .load(conn)
    } else {
        query
            .order((exemplar_sets::active_count.asc(), exemplar_sets::id.asc()))
            .limit(limit)
            .load(conn)
    }
}

/// The lowest slot of a set that no live, submitted or approved assignment holds.
pub fn free_slot(conn: &mut Db, set_id: i64) -> QueryResult<Option<i32>> {
    let held = assignments::table
        .filter(assignments::set_id.eq(slots::set_id))
        .filter(assignments::slot.eq(slots::slot))
        .filter(assignments::state.eq_any(["accepted", "submitted", "approved"]));
    slots::table
        .filter(slots::set_id.eq(set_id))
        .filter(not(exists(held)))
        .order(slots::slot.asc())
        .select(slots::slot)
        .first(conn)
        .optional()
}

pub fn add_counts(conn: &mut Db, set_id: i64, active: i32, approved: i32) -> QueryResult<()> {
    diesel::update(exemplar_sets::table.find(set_id))
        .set((
            exemplar_sets::active_count.eq(exemplar_sets::active_count + active),
            exemplar_sets::approved_count.eq(exemplar_sets::approved_count + approved),
        ))
        .execute(conn)
        .map(|_| ())
}

// ---------------------------------------------------------------- workers

pub fn worker_by_external(conn: &mut Db, external_id: &str) -> QueryResult<Option<WorkerRow>> {
    workers::table
        .filter(workers::external_id.eq(external_id))
        .select(WorkerRow::as_select())
        .first(conn)
        .optional()
}

pub fn worker_by_id(conn: &mut Db, id: i64) -> QueryResult<WorkerRow> {
    workers::table
        .find(id)
        .select(WorkerRow::as_select())
        .first(conn)
}

pub fn insert_worker(conn: &mut Db, external_id: &str, now: i64) -> QueryResult<WorkerRow> {
    diesel::insert_into(workers::table)
        .values((
            workers::external_id.eq(external_id),
            workers::blocked.eq(false),
            workers::created_at.eq(now),
        ))
        .get_result::<WorkerRow>(conn)
}

pub fn set_blocked(
    conn: &mut Db,
    worker_id: i64,
    blocked: bool,
    reason: Option<&str>,
) -> QueryResult<()> {
    diesel::update(workers::table.find(worker_id))
        .set((
            workers::blocked.eq(blocked),
            workers::block_reason.eq(reason),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn all_workers(conn: &mut Db) -> QueryResult<Vec<WorkerRow>> {
    workers::table
        .order(workers::id)
        .select(WorkerRow::as_select())
        .load(conn)
}

// ---------------------------------------------------------------- assignments

pub fn insert_assignment(conn: &mut Db, a: &NewAssignment) -> QueryResult<AssignmentRow> {
    diesel::insert_into(assignments::table)
        .values(a)
        .get_result::<AssignmentRow>(conn)
}

pub fn assignment_by_public_id(
    conn: &mut Db,
    public_id: &str,
) -> QueryResult<Option<AssignmentRow>> {
    assignments::table
        .filter(assignments::public_id.eq(public_id))
        .select(AssignmentRow::as_select())
        .first(conn)
        .optional()
}

pub fn assignment_by_id(conn: &mut Db, id: i64) -> QueryResult<AssignmentRow> {
    assignments::table
        .find(id)
        .select(AssignmentRow::as_select())
        .first(conn)
}

/// The description stored for an assignment, if it was submitted.
pub fn description_of(conn: &mut Db, assignment_id: i64) -> QueryResult<Option<DescriptionRow>> {
    descriptions::table
        .filter(descriptions::assignment_id.eq(assignment_id))
        .select(DescriptionRow::as_select())
        .first(conn)
        .optional()
}

pub fn assignments_of_set(conn: &mut Db, set_id: i64) -> QueryResult<Vec<AssignmentRow>> {
    assignments::table
        .filter(assignments::set_id.eq(set_id))
        .order(assignments::id)
        .select(AssignmentRow::as_select())
        .load(conn)
}

pub fn assignments_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<AssignmentRow>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(assignments::id)
        .select(AssignmentRow::as_select())
        .load(conn)
}

/// Moves an assignment from `from` to `to`, returning whether it was still in `from` (a guard
/// against two transitions racing each other).
pub fn transition(
    conn: &mut Db,
    id: i64,
    from: &str,
    to: &str,
    stamp: Stamp,
    now: i64,
) -> QueryResult<bool> {
    let target = assignments::table
        .filter(assignments::id.eq(id))
        .filter(assignments::state.eq(from));
    let changed = match stamp {
        Stamp::Submitted => diesel::update(target)
            .set((assignments::state.eq(to), assignments::submitted_at.eq(now)))
            .execute(conn)?,
        Stamp::Reviewed => diesel::update(target)
            .set((assignments::state.eq(to), assignments::reviewed_at.eq(now)))
            .execute(conn)?,
        Stamp::Ended => diesel::update(target)
            .set((assignments::state.eq(to), assignments::ended_at.eq(now)))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Which time column a transition stamps.
#[derive(Debug, Clone, Copy)]
pub enum Stamp {
    Submitted,
    Reviewed,
    Ended,
}

pub fn record_submit(
    conn: &mut Db,
    id: i64,
    idempotency_key: Option<&str>,
    request_hash: &str,
    response: &str,
) -> QueryResult<()> {
    diesel::update(assignments::table.find(id))
        .set((
            assignments::idempotency_key.eq(idempotency_key),
            assignments::request_hash.eq(request_hash),
            assignments::submit_response.eq(response),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn set_feedback(conn: &mut Db, id: i64, feedback: &str) -> QueryResult<()> {
    diesel::update(assignments::table.find(id))
        .set(assignments::feedback.eq(feedback))
        .execute(conn)
        .map(|_| ())
}

/// Accepted assignments whose lease ended before `now` (all projects).
pub fn expired(conn: &mut Db, now: i64, limit: i64) -> QueryResult<Vec<AssignmentRow>> {
    assignments::table
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.le(now))
        .order(assignments::expires_at)
        .limit(limit)
        .select(AssignmentRow::as_select())
        .load(conn)
}

/// Submitted assignments whose auto-approval time has come.
pub fn due_for_auto_approval(
    conn: &mut Db,
    now: i64,
    limit: i64,
) -> QueryResult<Vec<AssignmentRow>> {
    assignments::table
        .inner_join(exemplar_sets::table.inner_join(projects::table))
        .filter(assignments::state.eq("submitted"))
        .filter(assignments::verified.eq(true))
        .filter((assignments::submitted_at.assume_not_null() + projects::auto_approve_ms).le(now))
        .order(assignments::submitted_at)
        .limit(limit)
        .select(AssignmentRow::as_select())
        .load(conn)
}

/// The worker's last submitted description in a project, for the "not the same text twice" rule.
pub fn last_description_of(conn: &mut Db, worker_id: i64) -> QueryResult<Option<String>> {
    // Newest submission first, in the order of `assignments_worker_submitted`, so the search stops
    // at the first row instead of sorting the worker's whole history.
    descriptions::table
        .inner_join(assignments::table)
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::submitted_at.is_not_null())
        .order((assignments::submitted_at.desc(), assignments::id.desc()))
        .select(descriptions::raw)
        .first(conn)
        .optional()
}

// ---------------------------------------------------------------- descriptions

pub fn insert_description(
    conn: &mut Db,
    assignment_id: i64,
    set_id: i64,
    raw: &str,
    cleaned: &str,
    now: i64,
) -> QueryResult<DescriptionRow> {
    diesel::insert_into(descriptions::table)
        .values((
            descriptions::assignment_id.eq(assignment_id),
            descriptions::set_id.eq(set_id),
            descriptions::raw.eq(raw),
            descriptions::cleaned.eq(cleaned),
            descriptions::created_at.eq(now),
        ))
        .get_result::<DescriptionRow>(conn)
}

/// A description with what the feed and the exports need to know about it.
#[derive(Debug, Clone, Queryable)]
pub struct FeedRow {
    /// The event's id: the feed's cursor.
    pub cursor: i64,
    /// `submitted`, `approved`, `auto_approved` or `rejected`.
    pub event: String,
    pub description: DescriptionRow,
    pub assignment_public_id: String,
    pub worker: String,
    pub model: String,
    pub layer: String,
    pub unit: i32,
}

/// A feed row as the query returns it.
type FeedTuple = (
    i64,
    String,
    DescriptionRow,
    String,
    String,
    String,
    String,
    i32,
);

/// Event kinds that change what a description counts for.
pub const FEED_EVENTS: &[&str] = &["submitted", "approved", "auto_approved", "rejected"];
/// Event kinds after which a description is approved (final: approved work is never rejected).
pub const APPROVAL_EVENTS: &[&str] = &["approved", "auto_approved"];

/// The description events of a project with event id > `after`, oldest first: each submission,
/// approval and rejection is one row, so a description approved long after it was written still
/// comes after every cursor handed out before its approval.
pub fn descriptions_after(
    conn: &mut Db,
    project_id: i64,
    after: i64,
    limit: i64,
    approved_only: bool,
) -> QueryResult<Vec<FeedRow>> {
    let kinds = if approved_only {
        APPROVAL_EVENTS
    } else {
        FEED_EVENTS
    };
    let rows: Vec<FeedTuple> = events::table
        .inner_join(assignments::table.on(events::assignment_id.eq(assignments::id.nullable())))
        .inner_join(descriptions::table.on(descriptions::assignment_id.eq(assignments::id)))
        .inner_join(workers::table.on(workers::id.eq(assignments::worker_id)))
        .inner_join(exemplar_sets::table.on(exemplar_sets::id.eq(assignments::set_id)))
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(events::id.gt(after))
        .filter(events::kind.eq_any(kinds))
        .order(events::id.asc())
        .limit(limit)
        .select((
            events::id,
            events::kind,
            DescriptionRow::as_select(),
            assignments::public_id,
            workers::external_id,
            exemplar_sets::model,
            exemplar_sets::layer,
            exemplar_sets::unit,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(cursor, event, description, assignment_public_id, worker, model, layer, unit)| {
                FeedRow {
                    cursor,
                    event,
                    description,
                    assignment_public_id,
                    worker,
                    model,
                    layer,
                    unit,
                }
            },
        )
        .collect())
}

// ---------------------------------------------------------------- ledger, events, tokens

/// One payment: a reward (one per assignment) or a bonus (with the requester's idempotency key).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ledger)]
pub struct NewPayment<'a> {
    pub worker_id: i64,
    pub assignment_id: Option<i64>,
    pub kind: &'a str,
    pub cents: i64,
    pub note: &'a str,
    pub created_at: i64,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

pub fn insert_ledger(conn: &mut Db, payment: &NewPayment) -> QueryResult<()> {
    diesel::insert_into(ledger::table)
        .values(payment)
        .execute(conn)
        .map(|_| ())
}

/// The request hash of the payment made with this idempotency key, if any.
pub fn payment_by_key(conn: &mut Db, key: &str) -> QueryResult<Option<Option<String>>> {
    ledger::table
        .filter(ledger::idempotency_key.eq(key))
        .select(ledger::request_hash)
        .first(conn)
        .optional()
}

/// Adds cents in i128, so that no number of ledger rows can overflow a total.
pub fn sum_cents(values: impl IntoIterator<Item = i64>) -> i64 {
    let total: i128 = values.into_iter().map(i128::from).sum();
    total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// (reward cents, bonus cents) paid to a worker.
pub fn earnings(conn: &mut Db, worker_id: i64) -> QueryResult<(i64, i64)> {
    let rows: Vec<(String, i64)> = ledger::table
        .filter(ledger::worker_id.eq(worker_id))
        .select((ledger::kind, ledger::cents))
        .load(conn)?;
    let of = |k: &str| sum_cents(rows.iter().filter(|(kind, _)| kind == k).map(|(_, c)| *c));
    Ok((of("reward"), of("bonus")))
}

pub fn log(conn: &mut Db, event: &NewEvent) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values(event)
        .execute(conn)
        .map(|_| ())
}

pub fn events_of_assignment(conn: &mut Db, assignment_id: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::assignment_id.eq(assignment_id))
        .order(events::id)
        .select(EventRow::as_select())
        .load(conn)
}

pub fn insert_requester_token(
    conn: &mut Db,
    token_hash: &str,
    label: &str,
    now: i64,
) -> QueryResult<i64> {
    diesel::insert_into(requester_tokens::table)
        .values((
            requester_tokens::token_hash.eq(token_hash),
            requester_tokens::created_at.eq(now),
            requester_tokens::label.eq(label),
        ))
        .returning(requester_tokens::id)
        .get_result(conn)
}

/// The id of the unrevoked requester token with this hash.
pub fn requester_token_id(conn: &mut Db, token_hash: &str) -> QueryResult<Option<i64>> {
    requester_tokens::table
        .filter(requester_tokens::token_hash.eq(token_hash))
        .filter(requester_tokens::revoked_at.is_null())
        .select(requester_tokens::id)
        .first(conn)
        .optional()
}

/// A requester API token as listed: (id, label, created, revoked).
pub type TokenListing = (i64, String, i64, Option<i64>);

pub fn requester_tokens(conn: &mut Db) -> QueryResult<Vec<TokenListing>> {
    requester_tokens::table
        .order(requester_tokens::id)
        .select((
            requester_tokens::id,
            requester_tokens::label,
            requester_tokens::created_at,
            requester_tokens::revoked_at,
        ))
        .load(conn)
}

/// Revokes a token; `false` when there is no such unrevoked token.
pub fn revoke_requester_token(conn: &mut Db, id: i64, now: i64) -> QueryResult<bool> {
    diesel::update(
        requester_tokens::table
            .filter(requester_tokens::id.eq(id))
            .filter(requester_tokens::revoked_at.is_null()),
    )
    .set(requester_tokens::revoked_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn setting(conn: &mut Db, name: &str) -> QueryResult<Option<String>> {
    settings::table
        .filter(settings::name.eq(name))
        .select(settings::value)
        .first(conn)
        .optional()
}

pub fn insert_setting(conn: &mut Db, name: &str, value: &str) -> QueryResult<()> {
    diesel::insert_into(settings::table)
        .values((settings::name.eq(name), settings::value.eq(value)))
        .execute(conn)
        .map(|_| ())
}

/// Submitted work of a project (every assignment with a description), oldest first, with its
/// worker and set: what the exports need.
pub fn submitted_work(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<(AssignmentRow, DescriptionRow, String, SetRow)>> {
    descriptions::table
        .inner_join(
            assignments::table
                .inner_join(workers::table)
                .inner_join(exemplar_sets::table),
        )
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(descriptions::id.asc())
        .select((
            AssignmentRow::as_select(),
            DescriptionRow::as_select(),
            workers::external_id,
            SetRow::as_select(),
        ))
        .load(conn)
}

/// (set, worker, state) of every assignment of a project: what benchmarks check the crowd
/// guarantees on after a run.
pub fn assignment_states(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(i64, i64, String)>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .select((
            assignments::set_id,
            assignments::worker_id,
            assignments::state,
        ))
        .load(conn)
}

/// Creates `n` empty sets (and their slots) in one statement each: for benchmarks and load tests
/// at sizes where one insert per row would dominate. Works on both backends (a recursive CTE).
pub fn bulk_sets(conn: &mut Db, project_id: i64, n: i64, slots_per_set: i32) -> QueryResult<()> {
    // Only integers are interpolated; nothing here comes from a user.
    diesel::sql_query(format!(
        "INSERT INTO exemplar_sets (project_id, model, layer, unit, exemplars, created_at) \
         WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {n}) \
         SELECT {project_id}, 'bench/synthetic', 'layer', i, '[]', 0 FROM seq"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "INSERT INTO slots (set_id, slot) \
         WITH RECURSIVE k(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM k WHERE k + 1 < {slots_per_set}) \
         SELECT s.id, k.k FROM exemplar_sets s, k WHERE s.project_id = {project_id}"
    ))
    .execute(conn)?;
    Ok(())
}

pub fn first_set(conn: &mut Db, project_id: i64) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(exemplar_sets::id)
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

/// A worker's assignments counted by state: (state, count).
pub fn work_by_state(conn: &mut Db, worker_id: i64) -> QueryResult<Vec<(String, i64)>> {
    assignments::table
        .filter(assignments::worker_id.eq(worker_id))
        .group_by(assignments::state)
        .select((assignments::state, count_star()))
        .load(conn)
}

/// How many sets of the project still have a free slot that this worker never touched: what
/// accept-next could still hand them.
pub fn count_open_for(
    conn: &mut Db,
    project_id: i64,
    slots_per_set: i32,
    worker_id: Option<i64>,
) -> QueryResult<i64> {
    let query = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::active_count.lt(slots_per_set))
        .select(count_star());
    match worker_id {
        Some(worker_id) => {
            let touched = assignments::table
                .filter(assignments::set_id.eq(exemplar_sets::id))
                .filter(assignments::worker_id.eq(worker_id));
            query.filter(not(exists(touched))).first(conn)
        }
        None => query.first(conn),
    }
}

/// The project's (model, layer) pairs, in import order.
pub fn layers_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(String, String)>> {
    let rows: Vec<(String, String, Option<i64>)> = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .group_by((exemplar_sets::model, exemplar_sets::layer))
        .select((
            exemplar_sets::model,
            exemplar_sets::layer,
            diesel::dsl::min(exemplar_sets::id),
        ))
        .order(diesel::dsl::min(exemplar_sets::id))
        .load(conn)?;
    Ok(rows.into_iter().map(|(m, l, _)| (m, l)).collect())
}

/// Sets of a project by model, layer and unit (each filter optional), in that order.
pub fn sets_matching(
    conn: &mut Db,
    project_id: i64,
    model: Option<&str>,
    layer: Option<&str>,
    unit: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<SetRow>> {
    let mut query = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .select(SetRow::as_select())
        .into_boxed();
    if let Some(model) = model {
        query = query.filter(exemplar_sets::model.eq(model));
    }
    if let Some(layer) = layer {
        query = query.filter(exemplar_sets::layer.eq(layer));
    }
    if let Some(unit) = unit {
        query = query.filter(exemplar_sets::unit.eq(unit));
    }
    query
        .order((
            exemplar_sets::model,
            exemplar_sets::layer,
            exemplar_sets::unit,
        ))
        .limit(limit)
        .load(conn)
}

/// Every assignment of a set, oldest first, with its worker and description (if any).
pub fn work_history_of_set(
    conn: &mut Db,
    set_id: i64,
) -> QueryResult<Vec<(AssignmentRow, String, Option<DescriptionRow>)>> {
    assignments::table
        .inner_join(workers::table)
        .left_join(descriptions::table)
        .filter(assignments::set_id.eq(set_id))
        .order(assignments::id)
        .select((
            AssignmentRow::as_select(),
            workers::external_id,
            Option::<DescriptionRow>::as_select(),
        ))
        .load(conn)
}

/// The event log of one set, oldest first, with the worker of each event.
pub fn events_of_set(conn: &mut Db, set_id: i64) -> QueryResult<Vec<(EventRow, Option<String>)>> {
    events::table
        .left_join(workers::table.on(events::worker_id.eq(workers::id.nullable())))
        .filter(events::set_id.eq(set_id))
        .order(events::id)
        .select((EventRow::as_select(), workers::external_id.nullable()))
        .load(conn)
}

/// Submitted (awaiting review) assignments per set of a project: (set id, count).
pub fn submitted_per_set(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(i64, i64)>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("submitted"))
        .group_by(assignments::set_id)
        .select((assignments::set_id, count_star()))
        .load(conn)
}

/// A worker's rejected work with the requester's feedback, newest first.
pub fn rejections_of(
    conn: &mut Db,
    worker_id: i64,
    limit: i64,
) -> QueryResult<Vec<(AssignmentRow, DescriptionRow)>> {
    assignments::table
        .inner_join(descriptions::table)
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::state.eq("rejected"))
        .order(assignments::reviewed_at.desc())
        .limit(limit)
        .select((AssignmentRow::as_select(), DescriptionRow::as_select()))
        .load(conn)
}

// ---------------------------------------------------------------- sign-in

pub fn set_worker_password(conn: &mut Db, worker_id: i64, hash: &str) -> QueryResult<()> {
    diesel::update(workers::table.find(worker_id))
        .set(workers::password_hash.eq(hash))
        .execute(conn)
        .map(|_| ())
}

pub fn insert_worker_code(
    conn: &mut Db,
    code_hash: &str,
    worker_id: i64,
    now: i64,
    expires_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(worker_codes::table)
        .values((
            worker_codes::code_hash.eq(code_hash),
            worker_codes::worker_id.eq(worker_id),
            worker_codes::created_at.eq(now),
            worker_codes::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Marks an unused, unexpired code used and returns its worker; `None` for any other code. One
/// guarded UPDATE, so two sign-ins with the same code cannot both succeed.
pub fn use_worker_code(conn: &mut Db, code_hash: &str, now: i64) -> QueryResult<Option<i64>> {
    diesel::update(
        worker_codes::table
            .filter(worker_codes::code_hash.eq(code_hash))
            .filter(worker_codes::used_at.is_null())
            .filter(worker_codes::expires_at.gt(now)),
    )
    .set(worker_codes::used_at.eq(now))
    .returning(worker_codes::worker_id)
    .get_result(conn)
    .optional()
}

/// Creates the requester, or sets the password of an existing one.
pub fn upsert_requester(conn: &mut Db, username: &str, hash: &str, now: i64) -> QueryResult<()> {
    let updated = diesel::update(requesters::table.filter(requesters::username.eq(username)))
        .set(requesters::password_hash.eq(hash))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(requesters::table)
            .values((
                requesters::username.eq(username),
                requesters::password_hash.eq(hash),
                requesters::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn requester_id(conn: &mut Db, username: &str) -> QueryResult<Option<i64>> {
    requesters::table
        .filter(requesters::username.eq(username))
        .select(requesters::id)
        .first(conn)
        .optional()
}

pub fn requester_password(conn: &mut Db, username: &str) -> QueryResult<Option<String>> {
    requesters::table
        .filter(requesters::username.eq(username))
        .select(requesters::password_hash)
        .first(conn)
        .optional()
}

// ---------------------------------------------------------------- qualification

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = qualifications)]
pub struct QualificationRow {
    pub project_id: i64,
    pub source: String,
    pub questions: String,
    pub pass_mark: i32,
    pub retry_delay_ms: i64,
    pub time_limit_ms: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = qualification_attempts)]
pub struct AttemptRow {
    pub id: i64,
    pub project_id: i64,
    pub worker_id: i64,
    pub correct: i32,
    pub total: i32,
    pub passed: bool,
    pub answers: String,
    pub created_at: i64,
}

/// Sets the project's test, replacing the one it had.
pub fn replace_qualification(conn: &mut Db, row: &QualificationRow) -> QueryResult<()> {
    diesel::delete(qualifications::table.find(row.project_id)).execute(conn)?;
    diesel::insert_into(qualifications::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn qualification_of(conn: &mut Db, project_id: i64) -> QueryResult<Option<QualificationRow>> {
    qualifications::table
        .find(project_id)
        .select(QualificationRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_attempt(
    conn: &mut Db,
    project_id: i64,
    worker_id: i64,
    (correct, total): (i32, i32),
    passed: bool,
    answers: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::insert_into(qualification_attempts::table)
        .values((
            qualification_attempts::project_id.eq(project_id),
            qualification_attempts::worker_id.eq(worker_id),
            qualification_attempts::correct.eq(correct),
            qualification_attempts::total.eq(total),
            qualification_attempts::passed.eq(passed),
            qualification_attempts::answers.eq(answers),
            qualification_attempts::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn attempts_of(conn: &mut Db, project_id: i64, worker_id: i64) -> QueryResult<Vec<AttemptRow>> {
    qualification_attempts::table
        .filter(qualification_attempts::project_id.eq(project_id))
        .filter(qualification_attempts::worker_id.eq(worker_id))
        .order(qualification_attempts::id)
        .select(AttemptRow::as_select())
        .load(conn)
}

pub fn has_passed(conn: &mut Db, project_id: i64, worker_id: i64) -> QueryResult<bool> {
    diesel::select(exists(
        qualification_attempts::table
            .filter(qualification_attempts::project_id.eq(project_id))
            .filter(qualification_attempts::worker_id.eq(worker_id))
            .filter(qualification_attempts::passed.eq(true)),
    ))
    .get_result(conn)
}

// ---------------------------------------------------------------- requester pages

/// Every assignment of a project with its worker's external id: what the worker table, the
/// throughput chart and the ETA are computed from.
pub fn assignments_with_workers(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<(AssignmentRow, String)>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .inner_join(workers::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(assignments::id)
        .select((AssignmentRow::as_select(), workers::external_id))
        .load(conn)
}

/// Ledger totals per worker: (worker id, kind, cents).
pub fn ledger_totals(conn: &mut Db) -> QueryResult<Vec<(i64, String, i64)>> {
    ledger::table
        .select((ledger::worker_id, ledger::kind, ledger::cents))
        .load(conn)
}

/// Sets of a project that have work waiting for review, oldest submission first.
pub fn sets_awaiting_review(conn: &mut Db, project_id: i64, limit: i64) -> QueryResult<Vec<i64>> {
    let rows: Vec<(i64, Option<i64>)> = assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("submitted"))
        .group_by(assignments::set_id)
        .select((
            assignments::set_id,
            diesel::dsl::min(assignments::submitted_at),
        ))
        .order(diesel::dsl::min(assignments::submitted_at).asc())
        .limit(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// The work on one set that has a description, with its worker: the review page's rows.
pub fn work_on_set(
    conn: &mut Db,
    set_id: i64,
) -> QueryResult<Vec<(AssignmentRow, DescriptionRow, String)>> {
    descriptions::table
        .inner_join(assignments::table.inner_join(workers::table))
        .filter(assignments::set_id.eq(set_id))
        .order(descriptions::id.asc())
        .select((
            AssignmentRow::as_select(),
            DescriptionRow::as_select(),
            workers::external_id,
        ))
        .load(conn)
}

// ---------------------------------------------------------------- sessions

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub public_id: &'a str,
    pub token_hash: &'a str,
    pub worker_id: Option<i64>,
    pub requester_id: Option<i64>,
    pub via: &'a str,
    pub entry: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: i64,
    pub public_id: String,
    pub token_hash: String,
    pub worker_id: Option<i64>,
    pub requester_id: Option<i64>,
    pub via: String,
    pub entry: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert_session(conn: &mut Db, s: &NewSession) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(s)
        .execute(conn)
        .map(|_| ())
}

/// A session with its worker's external id or its requester's name.
pub type SessionOf = (SessionRow, Option<String>, Option<String>);

/// A live session (not revoked, not expired) with its worker's external id or requester's name.
pub fn live_session(conn: &mut Db, token_hash: &str, now: i64) -> QueryResult<Option<SessionOf>> {
    sessions::table
        .left_join(workers::table.on(workers::id.nullable().eq(sessions::worker_id)))
        .left_join(requesters::table.on(requesters::id.nullable().eq(sessions::requester_id)))
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select((
            SessionRow::as_select(),
            workers::external_id.nullable(),
            requesters::username.nullable(),
        ))
        .first(conn)
        .optional()
}

/// Every live session, or a worker's, newest first, with the worker's id or requester's name.
pub fn live_sessions(
    conn: &mut Db,
    worker_id: Option<i64>,
    now: i64,
) -> QueryResult<Vec<SessionOf>> {
    let mut query = sessions::table
        .left_join(workers::table.on(workers::id.nullable().eq(sessions::worker_id)))
        .left_join(requesters::table.on(requesters::id.nullable().eq(sessions::requester_id)))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .into_boxed();
    if let Some(w) = worker_id {
        query = query.filter(sessions::worker_id.eq(w));
    }
    query
        .order(sessions::id.desc())
        .select((
            SessionRow::as_select(),
            workers::external_id.nullable(),
            requesters::username.nullable(),
        ))
        .load(conn)
}

/// How many live sessions each worker holds: (worker id, count).
pub fn live_session_counts(conn: &mut Db, now: i64) -> QueryResult<Vec<(i64, i64)>> {
    let rows: Vec<(Option<i64>, i64)> = sessions::table
        .filter(sessions::worker_id.is_not_null())
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .group_by(sessions::worker_id)
        .select((sessions::worker_id, count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(w, n)| w.map(|w| (w, n)))
        .collect())
}

/// Which sessions a revocation ends.
#[derive(Debug, Clone, Copy)]
pub enum SessionsOf<'a> {
    Token(&'a str),
    Public(&'a str),
    Worker(i64),
    Requester(i64),
}

/// Revokes live sessions; returns how many ended.
pub fn revoke_sessions(conn: &mut Db, which: SessionsOf, now: i64) -> QueryResult<usize> {
    let live = sessions::table.filter(sessions::revoked_at.is_null());
    let set = sessions::revoked_at.eq(now);
    match which {
        SessionsOf::Token(hash) => diesel::update(live.filter(sessions::token_hash.eq(hash)))
            .set(set)
            .execute(conn),
        SessionsOf::Public(id) => diesel::update(live.filter(sessions::public_id.eq(id)))
            .set(set)
            .execute(conn),
        SessionsOf::Worker(id) => diesel::update(live.filter(sessions::worker_id.eq(id)))
            .set(set)
            .execute(conn),
        SessionsOf::Requester(id) => diesel::update(live.filter(sessions::requester_id.eq(id)))
            .set(set)
            .execute(conn),
    }
}

/// Deletes sessions that ended before `before` (expired or revoked).
pub fn purge_sessions(conn: &mut Db, before: i64) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(
            sessions::expires_at
                .lt(before)
                .or(sessions::revoked_at.lt(before)),
        ),
    )
    .execute(conn)
}

// ---------------------------------------------------------------- live work of a worker

/// Takes the worker's row lock until the transaction ends (a no-op UPDATE), so that two accepts
/// of one worker run one after the other on PostgreSQL too: the per-worker lease cap is then
/// checked against what the other committed. SQLite serialises every write transaction already
/// (BEGIN IMMEDIATE), so there it writes nothing.
pub fn lock_worker(conn: &mut Db, worker_id: i64) -> QueryResult<()> {
    if let Db::Sqlite(_) = conn {
        return Ok(());
    }
    diesel::update(workers::table.find(worker_id))
        .set(workers::blocked.eq(workers::blocked))
        .execute(conn)
        .map(|_| ())
}

/// A worker's accepted assignments in a project whose lease is not over, oldest first.
pub fn live_assignments(
    conn: &mut Db,
    project_id: i64,
    worker_id: i64,
    now: i64,
) -> QueryResult<Vec<(AssignmentRow, SetRow)>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.gt(now))
        .order(assignments::id.asc())
        .select((AssignmentRow::as_select(), SetRow::as_select()))
        .load(conn)
}

/// A worker's live assignments in every project, with the project's name, oldest first.
pub fn live_work_of_worker(
    conn: &mut Db,
    worker_id: i64,
    now: i64,
) -> QueryResult<Vec<(AssignmentRow, SetRow, String)>> {
    assignments::table
        .inner_join(exemplar_sets::table.inner_join(projects::table))
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.gt(now))
        .order(assignments::id.asc())
        .select((
            AssignmentRow::as_select(),
            SetRow::as_select(),
            projects::name,
        ))
        .load(conn)
}

/// Every assignment of a worker in a project.
pub fn assignments_of_worker_in(
    conn: &mut Db,
    project_id: i64,
    worker_id: i64,
) -> QueryResult<Vec<AssignmentRow>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::worker_id.eq(worker_id))
        .order(assignments::id.asc())
        .select(AssignmentRow::as_select())
        .load(conn)
}

pub fn set_verified(conn: &mut Db, assignment_id: i64, verified: bool) -> QueryResult<()> {
    diesel::update(assignments::table.find(assignment_id))
        .set(assignments::verified.eq(verified))
        .execute(conn)
        .map(|_| ())
}

// ---------------------------------------------------------------- MTurk and Prolific

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mturk_assignments)]
pub struct MturkRow {
    pub id: i64,
    pub project_id: i64,
    pub mturk_assignment_id: String,
    pub hit_id: String,
    pub worker_id: i64,
    pub assignment_id: i64,
    pub submit_to: String,
    pub created_at: i64,
    pub reconciled_at: Option<i64>,
    pub flag: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = mturk_assignments)]
pub struct NewMturk<'a> {
    pub project_id: i64,
    pub mturk_assignment_id: &'a str,
    pub hit_id: &'a str,
    pub worker_id: i64,
    pub assignment_id: i64,
    pub submit_to: &'a str,
    pub created_at: i64,
}

pub fn insert_mturk(conn: &mut Db, row: &NewMturk) -> QueryResult<()> {
    diesel::insert_into(mturk_assignments::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

pub fn mturk_by_id(conn: &mut Db, mturk_assignment_id: &str) -> QueryResult<Option<MturkRow>> {
    mturk_assignments::table
        .filter(mturk_assignments::mturk_assignment_id.eq(mturk_assignment_id))
        .select(MturkRow::as_select())
        .first(conn)
        .optional()
}

pub fn mturk_by_hit_worker(
    conn: &mut Db,
    hit_id: &str,
    worker_id: i64,
) -> QueryResult<Option<MturkRow>> {
    mturk_assignments::table
        .filter(mturk_assignments::hit_id.eq(hit_id))
        .filter(mturk_assignments::worker_id.eq(worker_id))
        .select(MturkRow::as_select())
        .first(conn)
        .optional()
}

/// The MTurk assignment an assignment here answers, if it came from MTurk.
pub fn mturk_of_assignment(conn: &mut Db, assignment_id: i64) -> QueryResult<Option<MturkRow>> {
    mturk_assignments::table
        .filter(mturk_assignments::assignment_id.eq(assignment_id))
        .select(MturkRow::as_select())
        .first(conn)
        .optional()
}

pub fn mturk_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<MturkRow>> {
    mturk_assignments::table
        .filter(mturk_assignments::project_id.eq(project_id))
        .order(mturk_assignments::id)
        .select(MturkRow::as_select())
        .load(conn)
}

pub fn set_mturk_reconciled(
    conn: &mut Db,
    id: i64,
    flag: Option<&str>,
    now: i64,
) -> QueryResult<()> {
    diesel::update(mturk_assignments::table.find(id))
        .set((
            mturk_assignments::reconciled_at.eq(now),
            mturk_assignments::flag.eq(flag),
        ))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prolific_sessions)]
pub struct ProlificRow {
    pub id: i64,
    pub project_id: i64,
    pub study_id: String,
    pub session_id: String,
    pub worker_id: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub reconciled_at: Option<i64>,
    pub flag: Option<String>,
}

pub fn insert_prolific(
    conn: &mut Db,
    project_id: i64,
    study_id: &str,
    session_id: &str,
    worker_id: i64,
    now: i64,
) -> QueryResult<()> {
    diesel::insert_into(prolific_sessions::table)
        .values((
            prolific_sessions::project_id.eq(project_id),
            prolific_sessions::study_id.eq(study_id),
            prolific_sessions::session_id.eq(session_id),
            prolific_sessions::worker_id.eq(worker_id),
            prolific_sessions::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

pub fn prolific_by_study_worker(
    conn: &mut Db,
    study_id: &str,
    worker_id: i64,
) -> QueryResult<Option<ProlificRow>> {
    prolific_sessions::table
        .filter(prolific_sessions::study_id.eq(study_id))
        .filter(prolific_sessions::worker_id.eq(worker_id))
        .select(ProlificRow::as_select())
        .first(conn)
        .optional()
}

pub fn prolific_by_session(conn: &mut Db, session_id: &str) -> QueryResult<Option<ProlificRow>> {
    prolific_sessions::table
        .filter(prolific_sessions::session_id.eq(session_id))
        .select(ProlificRow::as_select())
        .first(conn)
        .optional()
}

/// Marks a Prolific session completed; `false` when it already was (one completion per session).
pub fn complete_prolific(conn: &mut Db, id: i64, now: i64) -> QueryResult<bool> {
    diesel::update(
        prolific_sessions::table
            .filter(prolific_sessions::id.eq(id))
            .filter(prolific_sessions::completed_at.is_null()),
    )
    .set(prolific_sessions::completed_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn prolific_of_study(
    conn: &mut Db,
    project_id: i64,
    study_id: &str,
) -> QueryResult<Vec<ProlificRow>> {
    prolific_sessions::table
        .filter(prolific_sessions::project_id.eq(project_id))
        .filter(prolific_sessions::study_id.eq(study_id))
        .order(prolific_sessions::id)
        .select(ProlificRow::as_select())
        .load(conn)
}

pub fn set_prolific_reconciled(
    conn: &mut Db,
    id: i64,
    flag: Option<&str>,
    now: i64,
) -> QueryResult<()> {
    diesel::update(prolific_sessions::table.find(id))
        .set((
            prolific_sessions::reconciled_at.eq(now),
            prolific_sessions::flag.eq(flag),
        ))
        .execute(conn)
        .map(|_| ())
}

/// What MTurk reconciliation said about the project's flagged assignments, for the review page:
/// (assignment id, flag). (Prolific flags are per participant; their work shows as unverified.)
pub fn flags_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(i64, String)>> {
    let mturk: Vec<(i64, Option<String>)> = mturk_assignments::table
        .filter(mturk_assignments::project_id.eq(project_id))
        .filter(mturk_assignments::flag.is_not_null())
        .select((mturk_assignments::assignment_id, mturk_assignments::flag))
        .load(conn)?;
    Ok(mturk
        .into_iter()
        .filter_map(|(a, f)| f.map(|f| (a, f)))
        .collect())
}
