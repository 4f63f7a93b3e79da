//! MTurk assignments and Prolific sessions, and what reconciliation flags.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::{mturk_assignments, prolific_sessions};

use super::QueryResult;

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
