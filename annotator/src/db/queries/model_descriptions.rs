//! Descriptions a model posted for a project's sets (`trainer follow`).

use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::{exemplar_sets, model_descriptions};

use super::QueryResult;

/// Stores (or replaces) what `system` wrote for a set in `round`.
pub fn put_model_description(
    conn: &mut Db,
    set_id: i64,
    round: i32,
    system: &str,
    description: &str,
    now: i64,
) -> QueryResult<()> {
    diesel::delete(
        model_descriptions::table
            .filter(model_descriptions::set_id.eq(set_id))
            .filter(model_descriptions::round.eq(round))
            .filter(model_descriptions::system.eq(system)),
    )
    .execute(conn)?;
    diesel::insert_into(model_descriptions::table)
        .values((
            model_descriptions::set_id.eq(set_id),
            model_descriptions::round.eq(round),
            model_descriptions::system.eq(system),
            model_descriptions::description.eq(description),
            model_descriptions::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A model's description of a set, with the set's layer.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ModelDescriptionRow {
    pub set_id: i64,
    pub model: String,
    pub layer: String,
    pub round: i32,
    pub system: String,
    pub description: String,
}

/// Every model description of a project's sets, by round then set.
pub fn model_descriptions_of_project(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<ModelDescriptionRow>> {
    model_descriptions::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .order((model_descriptions::round, model_descriptions::set_id))
        .select((
            model_descriptions::set_id,
            exemplar_sets::model,
            exemplar_sets::layer,
            model_descriptions::round,
            model_descriptions::system,
            model_descriptions::description,
        ))
        .load(conn)
}

/// The newest round's model description of a set: (round, system, description).
pub fn latest_model_description(
    conn: &mut Db,
    set_id: i64,
) -> QueryResult<Option<(i32, String, String)>> {
    model_descriptions::table
        .filter(model_descriptions::set_id.eq(set_id))
        .order((
            model_descriptions::round.desc(),
            model_descriptions::system.asc(),
        ))
        .select((
            model_descriptions::round,
            model_descriptions::system,
            model_descriptions::description,
        ))
        .first(conn)
        .optional()
}
