//! Assignments: their states and transitions, leases, and the work views built on them.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::{native, update};
use crate::db::schema::{assignments, descriptions, exemplar_sets, projects, workers};

use super::QueryResult;
use super::*;

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

pub fn insert_assignment(conn: &mut Db, a: &NewAssignment) -> QueryResult<AssignmentRow> {
    native!(conn, |c| diesel::insert_into(assignments::table)
        .values(a)
        .get_result::<AssignmentRow>(c))
}

pub fn assignment_by_public_id(
    conn: &mut Db,
    public_id: &str,
) -> QueryResult<Option<AssignmentRow>> {
    native!(conn, |c| assignments::table
        .filter(assignments::public_id.eq(public_id))
        .select(AssignmentRow::as_select())
        .first(c)
        .optional())
}

pub fn assignment_by_id(conn: &mut Db, id: i64) -> QueryResult<AssignmentRow> {
    assignments::table
        .find(id)
        .select(AssignmentRow::as_select())
        .first(conn)
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
    let target = assignments::id.eq(id).and(assignments::state.eq(from));
    let changed = match stamp {
        Stamp::Submitted => native!(conn, |c| update(
            assignments::table,
            target,
            (assignments::state.eq(to), assignments::submitted_at.eq(now))
        )
        .execute(c))?,
        Stamp::Reviewed => native!(conn, |c| update(
            assignments::table,
            target,
            (assignments::state.eq(to), assignments::reviewed_at.eq(now))
        )
        .execute(c))?,
        Stamp::Ended => native!(conn, |c| update(
            assignments::table,
            target,
            (assignments::state.eq(to), assignments::ended_at.eq(now))
        )
        .execute(c))?,
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
    native!(conn, |c| update(
        assignments::table,
        assignments::id.eq(id),
        (
            assignments::idempotency_key.eq(idempotency_key),
            assignments::request_hash.eq(request_hash),
            assignments::submit_response.eq(response),
        )
    )
    .execute(c))
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
    native!(conn, |c| assignments::table
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.le(now))
        .order(assignments::expires_at)
        .limit(limit)
        .select(AssignmentRow::as_select())
        .load(c))
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

/// A worker's accepted assignments in a project whose lease is not over, oldest first.
pub fn live_assignments(
    conn: &mut Db,
    project_id: i64,
    worker_id: i64,
    now: i64,
) -> QueryResult<Vec<(AssignmentRow, SetRow)>> {
    native!(conn, |c| assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.gt(now))
        .order(assignments::id.asc())
        .select((AssignmentRow::as_select(), SetRow::as_select()))
        .load(c))
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

/// Assignments by state, and how many accepted ones still hold a live lease at `now` (metrics).
pub fn state_counts(conn: &mut Db, now: i64) -> QueryResult<(Vec<(String, i64)>, i64)> {
    let by_state: Vec<(String, i64)> = assignments::table
        .group_by(assignments::state)
        .select((assignments::state, diesel::dsl::count_star()))
        .load(conn)?;
    let live = assignments::table
        .filter(assignments::state.eq("accepted"))
        .filter(assignments::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok((by_state, live))
}
