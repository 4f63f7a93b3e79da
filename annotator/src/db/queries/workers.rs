//! Workers: their ids, blocks and locks.

use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::native;
use crate::db::schema::{assignments, workers};

use super::QueryResult;

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

/// The worker an id names, in any spelling that reads the same (`canonical_worker_id`); none
/// for an id that could not be a worker's.
pub fn worker_by_external(conn: &mut Db, external_id: &str) -> QueryResult<Option<WorkerRow>> {
    let Ok(external_id) = crate::domain::canonical_worker_id(external_id) else {
        return Ok(None);
    };
    native!(conn, |c| workers::table
        .filter(workers::external_id.eq(&external_id))
        .select(WorkerRow::as_select())
        .first(c)
        .optional())
}

pub fn worker_by_id(conn: &mut Db, id: i64) -> QueryResult<WorkerRow> {
    native!(conn, |c| workers::table
        .find(id)
        .select(WorkerRow::as_select())
        .first(c))
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

/// A worker's assignments counted by state: (state, count).
pub fn work_by_state(conn: &mut Db, worker_id: i64) -> QueryResult<Vec<(String, i64)>> {
    assignments::table
        .filter(assignments::worker_id.eq(worker_id))
        .group_by(assignments::state)
        .select((assignments::state, count_star()))
        .load(conn)
}

/// Takes the worker's row lock until the transaction ends (a no-op UPDATE), so that two accepts
/// of one worker run one after the other on PostgreSQL too: the per-worker lease cap is then
/// checked against what the other committed. SQLite serialises every write transaction already
/// (BEGIN IMMEDIATE), so there it writes nothing.
pub fn lock_worker(conn: &mut Db, worker_id: i64) -> QueryResult<()> {
    if matches!(conn, Db::Sqlite(_)) {
        return Ok(());
    }
    diesel::update(workers::table.find(worker_id))
        .set(workers::blocked.eq(workers::blocked))
        .execute(conn)
        .map(|_| ())
}
