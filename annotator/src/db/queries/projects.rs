//! Projects: their settings and layers.

use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::native;
use crate::db::schema::{exemplar_sets, projects};

use super::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub instructions: String,
    pub reward_cents: i64,
    pub assignments_per_set: i32,
    pub lease_ms: i64,
    pub auto_approve_ms: i64,
    pub qualification_required: bool,
    pub created_at: i64,
    pub prolific_completion_code: Option<String>,
    /// Accept-next hands out the sets of highest priority first (the trainer sets priorities).
    pub order_by_priority: bool,
    pub max_live_per_worker: i32,
    pub max_bonus_cents: i64,
    /// MTurk's entry page (`/mturk/<project>`) answers for this project.
    pub mturk_enabled: bool,
    /// Anyone may read the project's catalog (`/catalog/<project>/`); off, only the requester.
    pub catalog_public: bool,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = projects)]
pub struct NewProject<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub instructions: &'a str,
    pub reward_cents: i64,
    pub assignments_per_set: i32,
    pub lease_ms: i64,
    pub auto_approve_ms: i64,
    pub qualification_required: bool,
    pub created_at: i64,
    pub prolific_completion_code: Option<&'a str>,
    pub max_live_per_worker: i32,
    pub max_bonus_cents: i64,
    pub mturk_enabled: bool,
    pub catalog_public: bool,
}

pub fn insert_project(conn: &mut Db, project: &NewProject) -> QueryResult<ProjectRow> {
    diesel::insert_into(projects::table)
        .values(project)
        .get_result::<ProjectRow>(conn)
}

pub fn project_by_name(conn: &mut Db, name: &str) -> QueryResult<Option<ProjectRow>> {
    native!(conn, |c| projects::table
        .filter(projects::name.eq(name))
        .select(ProjectRow::as_select())
        .first(c)
        .optional())
}

pub fn project_by_id(conn: &mut Db, id: i64) -> QueryResult<ProjectRow> {
    native!(conn, |c| projects::table
        .find(id)
        .select(ProjectRow::as_select())
        .first(c))
}

pub fn set_qualification_required(conn: &mut Db, id: i64, required: bool) -> QueryResult<()> {
    diesel::update(projects::table.find(id))
        .set(projects::qualification_required.eq(required))
        .execute(conn)
        .map(|_| ())
}

pub fn set_catalog_public(conn: &mut Db, id: i64, public: bool) -> QueryResult<()> {
    diesel::update(projects::table.find(id))
        .set(projects::catalog_public.eq(public))
        .execute(conn)
        .map(|_| ())
}

pub fn all_projects(conn: &mut Db) -> QueryResult<Vec<ProjectRow>> {
    projects::table
        .order(projects::id)
        .select(ProjectRow::as_select())
        .load(conn)
}

pub fn count_projects(conn: &mut Db) -> QueryResult<i64> {
    projects::table.select(count_star()).first(conn)
}

/// The project's (model, layer) pairs, in import order.
pub fn layers_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(String, String)>> {
    let rows: Vec<(String, String, Option<i64>)> = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .group_by((exemplar_sets::model, exemplar_sets::layer))
        .select((
            exemplar_sets::model,
            exemplar_sets::layer,
            diesel::dsl::min(exemplar_sets::id),
        ))
        .order(diesel::dsl::min(exemplar_sets::id))
        .load(conn)?;
    Ok(rows.into_iter().map(|(m, l, _)| (m, l)).collect())
}
