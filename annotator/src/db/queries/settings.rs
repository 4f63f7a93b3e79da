//! Server settings kept in the database (the secret's seal, schema facts).

use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::settings;

use super::QueryResult;

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

/// A write that changes nothing but takes the write path (SQLite's write lock and commit, a
/// PostgreSQL write transaction): what readiness checks.
pub fn touch(conn: &mut Db) -> QueryResult<()> {
    diesel::update(settings::table.filter(settings::name.eq("")))
        .set(settings::value.eq(settings::value))
        .execute(conn)
        .map(|_| ())
}
