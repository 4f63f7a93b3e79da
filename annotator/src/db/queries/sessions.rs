//! Server-side sessions of workers and requesters.

use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::native;
use crate::db::schema::{requesters, sessions, workers};

use super::QueryResult;

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
    native!(conn, |c| sessions::table
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
        .first(c)
        .optional())
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
