//! Server settings kept in the database (the secret's seal, schema facts).

use diesel::dsl::{count_star, exists, not};
use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::{
    assignments, descriptions, events, exemplar_sets, ledger, model_descriptions,
    mturk_assignments, projects, prolific_sessions, qualification_attempts, qualifications,
    requester_tokens, requesters, sessions, settings, slots, worker_codes, workers,
};

use super::*;
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
