//! Exemplar sets: their slots, priorities and counts, and the queries that pick the next set for a worker.

use diesel::dsl::{count_star, exists, not};
use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::{Cached, native, update};
use crate::db::schema::{assignments, exemplar_sets, projects, slots};

use super::QueryResult;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = exemplar_sets)]
pub struct SetRow {
    pub id: i64,
    pub project_id: i64,
    pub model: String,
    pub layer: String,
    pub unit: i32,
    pub exemplars: String,
    pub active_count: i32,
    pub approved_count: i32,
    pub priority: f64,
    pub created_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = exemplar_sets)]
pub struct NewSet<'a> {
    pub project_id: i64,
    pub model: &'a str,
    pub layer: &'a str,
    pub unit: i32,
    pub exemplars: &'a str,
    pub created_at: i64,
}

pub fn set_by_key(
    conn: &mut Db,
    project_id: i64,
    model: &str,
    layer: &str,
    unit: i32,
) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::model.eq(model))
        .filter(exemplar_sets::layer.eq(layer))
        .filter(exemplar_sets::unit.eq(unit))
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

/// Inserts a set and its `slots` slots.
pub fn insert_set(conn: &mut Db, set: &NewSet, slot_count: i32) -> QueryResult<SetRow> {
    let row: SetRow = diesel::insert_into(exemplar_sets::table)
        .values(set)
        .get_result::<SetRow>(conn)?;
    // One statement per slot: diesel's multi-backend connection has no batch insert for SQLite.
    for s in 0..slot_count {
        diesel::insert_into(slots::table)
            .values((slots::set_id.eq(row.id), slots::slot.eq(s)))
            .execute(conn)?;
    }
    Ok(row)
}

pub fn set_by_id(conn: &mut Db, id: i64) -> QueryResult<SetRow> {
    native!(conn, |c| exemplar_sets::table
        .find(id)
        .select(SetRow::as_select())
        .first(c))
}

pub fn sets_of_project(conn: &mut Db, project_id: i64) -> QueryResult<Vec<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(exemplar_sets::id)
        .select(SetRow::as_select())
        .load(conn)
}

/// The set of a project that shows this neuron.
pub fn set_by_neuron(
    conn: &mut Db,
    project_id: i64,
    model: &str,
    layer: &str,
    unit: i32,
) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::model.eq(model))
        .filter(exemplar_sets::layer.eq(layer))
        .filter(exemplar_sets::unit.eq(unit))
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

pub fn set_priority(conn: &mut Db, set_id: i64, priority: f64) -> QueryResult<()> {
    diesel::update(exemplar_sets::table.find(set_id))
        .set(exemplar_sets::priority.eq(priority))
        .execute(conn)?;
    Ok(())
}

pub fn set_order_by_priority(conn: &mut Db, project_id: i64, on: bool) -> QueryResult<()> {
    diesel::update(projects::table.find(project_id))
        .set(projects::order_by_priority.eq(on))
        .execute(conn)?;
    Ok(())
}

pub fn count_sets(conn: &mut Db, project_id: i64) -> QueryResult<i64> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .select(count_star())
        .first(conn)
}

/// The best `limit` sets for a worker: open slots, never touched by this worker; fewest
/// assignments first, then oldest; or, `by_priority`, highest priority first (so that the sets
/// the trainer wants most are completed first), then fewest assignments, then oldest.
pub fn next_sets_for(
    conn: &mut Db,
    project_id: i64,
    slots_per_set: i32,
    worker_id: i64,
    by_priority: bool,
    limit: i64,
) -> QueryResult<Vec<Candidate>> {
    // The three columns the choice needs, not whole rows: a set's exemplars can be long, and
    // only the chosen one is read whole (`set_by_id`).
    native!(conn, |c| {
        let query = exemplar_sets::table
            .filter(exemplar_sets::project_id.eq(project_id))
            .filter(exemplar_sets::active_count.lt(slots_per_set))
            .filter(not(exists(
                assignments::table
                    .filter(assignments::set_id.eq(exemplar_sets::id))
                    .filter(assignments::worker_id.eq(worker_id)),
            )))
            .select(Candidate::as_select());
        if by_priority {
            query
                .order((
                    exemplar_sets::priority.desc(),
                    exemplar_sets::active_count.asc(),
                    exemplar_sets::id.asc(),
                ))
                .limit(limit)
                .load(c)
        } else {
            query
                .order((exemplar_sets::active_count.asc(), exemplar_sets::id.asc()))
                .limit(limit)
                .load(c)
        }
    })
}

/// What accept-next chooses a set by.
#[derive(Debug, Clone, Copy, PartialEq, Queryable, Selectable)]
#[diesel(table_name = exemplar_sets)]
pub struct Candidate {
    pub id: i64,
    pub active_count: i32,
    pub priority: f64,
}

/// The lowest slot of a set that no live, submitted or approved assignment holds.
pub fn free_slot(conn: &mut Db, set_id: i64) -> QueryResult<Option<i32>> {
    // One fixed list of three, so one cached statement.
    native!(conn, |c| Cached(
        slots::table
            .filter(slots::set_id.eq(set_id))
            .filter(not(exists(
                assignments::table
                    .filter(assignments::set_id.eq(slots::set_id))
                    .filter(assignments::slot.eq(slots::slot))
                    .filter(assignments::state.eq_any(["accepted", "submitted", "approved"])),
            )))
            .order(slots::slot.asc())
            .select(slots::slot)
            .limit(1),
    )
    .get_result(c)
    .optional())
}

pub fn add_counts(conn: &mut Db, set_id: i64, active: i32, approved: i32) -> QueryResult<()> {
    native!(conn, |c| update(
        exemplar_sets::table,
        exemplar_sets::id.eq(set_id),
        (
            exemplar_sets::active_count.eq(exemplar_sets::active_count + active),
            exemplar_sets::approved_count.eq(exemplar_sets::approved_count + approved),
        )
    )
    .execute(c))
    .map(|_| ())
}

/// Creates `n` empty sets (and their slots) in one statement each: for benchmarks and load tests
/// at sizes where one insert per row would dominate. Works on both backends (a recursive CTE).
pub fn bulk_sets(conn: &mut Db, project_id: i64, n: i64, slots_per_set: i32) -> QueryResult<()> {
    // Only integers are interpolated; nothing here comes from a user.
    diesel::sql_query(format!(
        "INSERT INTO exemplar_sets (project_id, model, layer, unit, exemplars, created_at) \
         WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {n}) \
         SELECT {project_id}, 'bench/synthetic', 'layer', i, '[]', 0 FROM seq"
    ))
    .execute(conn)?;
    diesel::sql_query(format!(
        "INSERT INTO slots (set_id, slot) \
         WITH RECURSIVE k(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM k WHERE k + 1 < {slots_per_set}) \
         SELECT s.id, k.k FROM exemplar_sets s, k WHERE s.project_id = {project_id}"
    ))
    .execute(conn)?;
    Ok(())
}

pub fn first_set(conn: &mut Db, project_id: i64) -> QueryResult<Option<SetRow>> {
    exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .order(exemplar_sets::id)
        .select(SetRow::as_select())
        .first(conn)
        .optional()
}

/// How many sets of the project still have a free slot that this worker never touched: what
/// accept-next could still hand them.
pub fn count_open_for(
    conn: &mut Db,
    project_id: i64,
    slots_per_set: i32,
    worker_id: Option<i64>,
) -> QueryResult<i64> {
    let query = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(exemplar_sets::active_count.lt(slots_per_set))
        .select(count_star());
    match worker_id {
        Some(worker_id) => {
            let touched = assignments::table
                .filter(assignments::set_id.eq(exemplar_sets::id))
                .filter(assignments::worker_id.eq(worker_id));
            query.filter(not(exists(touched))).first(conn)
        }
        None => query.first(conn),
    }
}

/// Sets of a project by model, layer and unit (each filter optional), in that order.
pub fn sets_matching(
    conn: &mut Db,
    project_id: i64,
    model: Option<&str>,
    layer: Option<&str>,
    unit: Option<i32>,
    limit: i64,
) -> QueryResult<Vec<SetRow>> {
    let mut query = exemplar_sets::table
        .filter(exemplar_sets::project_id.eq(project_id))
        .select(SetRow::as_select())
        .into_boxed();
    if let Some(model) = model {
        query = query.filter(exemplar_sets::model.eq(model));
    }
    if let Some(layer) = layer {
        query = query.filter(exemplar_sets::layer.eq(layer));
    }
    if let Some(unit) = unit {
        query = query.filter(exemplar_sets::unit.eq(unit));
    }
    query
        .order((
            exemplar_sets::model,
            exemplar_sets::layer,
            exemplar_sets::unit,
        ))
        .limit(limit)
        .load(conn)
}

/// Submitted (awaiting review) assignments per set of a project: (set id, count).
pub fn submitted_per_set(conn: &mut Db, project_id: i64) -> QueryResult<Vec<(i64, i64)>> {
    assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("submitted"))
        .group_by(assignments::set_id)
        .select((assignments::set_id, count_star()))
        .load(conn)
}

/// Sets of a project that have work waiting for review, oldest submission first.
pub fn sets_awaiting_review(conn: &mut Db, project_id: i64, limit: i64) -> QueryResult<Vec<i64>> {
    let rows: Vec<(i64, Option<i64>)> = assignments::table
        .inner_join(exemplar_sets::table)
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("submitted"))
        .group_by(assignments::set_id)
        .select((
            assignments::set_id,
            diesel::dsl::min(assignments::submitted_at),
        ))
        .order(diesel::dsl::min(assignments::submitted_at).asc())
        .limit(limit)
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}
