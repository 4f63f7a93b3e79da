//! Qualification tests and workers' attempts.

use diesel::dsl::exists;
use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::{qualification_attempts, qualification_openings, qualifications};

use super::QueryResult;

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

/// When the worker's open attempt at the project's test began, if one is open.
pub fn opening_of(conn: &mut Db, project_id: i64, worker_id: i64) -> QueryResult<Option<i64>> {
    qualification_openings::table
        .find((project_id, worker_id))
        .select(qualification_openings::started_at)
        .first(conn)
        .optional()
}

/// Opens an attempt at `started_at`, replacing a finished one.
pub fn open_attempt(
    conn: &mut Db,
    project_id: i64,
    worker_id: i64,
    started_at: i64,
) -> QueryResult<()> {
    close_attempt(conn, project_id, worker_id)?;
    diesel::insert_into(qualification_openings::table)
        .values((
            qualification_openings::project_id.eq(project_id),
            qualification_openings::worker_id.eq(worker_id),
            qualification_openings::started_at.eq(started_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Ends the open attempt (graded, or timed out).
pub fn close_attempt(conn: &mut Db, project_id: i64, worker_id: i64) -> QueryResult<()> {
    diesel::delete(qualification_openings::table.find((project_id, worker_id)))
        .execute(conn)
        .map(|_| ())
}
