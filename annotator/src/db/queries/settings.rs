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
