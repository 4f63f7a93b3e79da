//! The event log of every assignment.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::native;
use crate::db::schema::{events, workers};

use super::QueryResult;

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

pub fn log(conn: &mut Db, event: &NewEvent) -> QueryResult<()> {
    native!(conn, |c| diesel::insert_into(events::table)
        .values(event)
        .execute(c))
    .map(|_| ())
}

pub fn events_of_assignment(conn: &mut Db, assignment_id: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::assignment_id.eq(assignment_id))
        .order(events::id)
        .select(EventRow::as_select())
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
