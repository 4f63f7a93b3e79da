//! Credentials: workers' passwords and one-time codes, requesters' accounts and API tokens.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::{requester_tokens, requesters, worker_codes, workers};

use super::QueryResult;

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
