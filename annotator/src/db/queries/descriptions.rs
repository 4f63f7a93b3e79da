//! Descriptions: what workers submitted, and the feed of their events.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::prepared::native;
use crate::db::schema::{assignments, descriptions, events, exemplar_sets, workers};

use super::QueryResult;
use super::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = descriptions)]
pub struct DescriptionRow {
    pub id: i64,
    pub assignment_id: i64,
    pub set_id: i64,
    pub raw: String,
    pub cleaned: String,
    pub created_at: i64,
}

/// The description stored for an assignment, if it was submitted.
pub fn description_of(conn: &mut Db, assignment_id: i64) -> QueryResult<Option<DescriptionRow>> {
    descriptions::table
        .filter(descriptions::assignment_id.eq(assignment_id))
        .select(DescriptionRow::as_select())
        .first(conn)
        .optional()
}

/// The worker's last submitted description in a project, for the "not the same text twice" rule.
pub fn last_description_of(conn: &mut Db, worker_id: i64) -> QueryResult<Option<String>> {
    // Newest submission first, in the order of `assignments_worker_submitted`, so the search stops
    // at the first row instead of sorting the worker's whole history.
    native!(conn, |c| descriptions::table
        .inner_join(assignments::table)
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::submitted_at.is_not_null())
        .order((assignments::submitted_at.desc(), assignments::id.desc()))
        .select(descriptions::raw)
        .first(c)
        .optional())
}

pub fn insert_description(
    conn: &mut Db,
    assignment_id: i64,
    set_id: i64,
    raw: &str,
    cleaned: &str,
    now: i64,
) -> QueryResult<DescriptionRow> {
    native!(conn, |c| diesel::insert_into(descriptions::table)
        .values((
            descriptions::assignment_id.eq(assignment_id),
            descriptions::set_id.eq(set_id),
            descriptions::raw.eq(raw),
            descriptions::cleaned.eq(cleaned),
            descriptions::created_at.eq(now),
        ))
        .get_result::<DescriptionRow>(c))
}

/// A description with what the feed and the exports need to know about it.
#[derive(Debug, Clone, Queryable)]
pub struct FeedRow {
    /// The event's id: the feed's cursor.
    pub cursor: i64,
    /// `submitted`, `approved`, `auto_approved` or `rejected`.
    pub event: String,
    pub description: DescriptionRow,
    pub assignment_public_id: String,
    pub worker: String,
    pub model: String,
    pub layer: String,
    pub unit: i32,
}

/// A feed row as the query returns it.
type FeedTuple = (
    i64,
    String,
    DescriptionRow,
    String,
    String,
    String,
    String,
    i32,
);

/// Event kinds that change what a description counts for.
pub const FEED_EVENTS: &[&str] = &["submitted", "approved", "auto_approved", "rejected"];

/// Event kinds after which a description is approved (final: approved work is never rejected).
pub const APPROVAL_EVENTS: &[&str] = &["approved", "auto_approved"];

/// The description events of a project with event id > `after`, oldest first: each submission,
/// approval and rejection is one row, so a description approved long after it was written still
/// comes after every cursor handed out before its approval.
pub fn descriptions_after(
    conn: &mut Db,
    project_id: i64,
    after: i64,
    limit: i64,
    approved_only: bool,
) -> QueryResult<Vec<FeedRow>> {
    let kinds = if approved_only {
        APPROVAL_EVENTS
    } else {
        FEED_EVENTS
    };
    let rows: Vec<FeedTuple> = events::table
        .inner_join(assignments::table.on(events::assignment_id.eq(assignments::id.nullable())))
        .inner_join(descriptions::table.on(descriptions::assignment_id.eq(assignments::id)))
        .inner_join(workers::table.on(workers::id.eq(assignments::worker_id)))
        .inner_join(exemplar_sets::table.on(exemplar_sets::id.eq(assignments::set_id)))
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(events::id.gt(after))
        .filter(events::kind.eq_any(kinds))
        .order(events::id.asc())
        .limit(limit)
        .select((
            events::id,
            events::kind,
            DescriptionRow::as_select(),
            assignments::public_id,
            workers::external_id,
            exemplar_sets::model,
            exemplar_sets::layer,
            exemplar_sets::unit,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(cursor, event, description, assignment_public_id, worker, model, layer, unit)| {
                FeedRow {
                    cursor,
                    event,
                    description,
                    assignment_public_id,
                    worker,
                    model,
                    layer,
                    unit,
                }
            },
        )
        .collect())
}

/// (set id, cleaned text) of every approved description of a project.
pub fn approved_texts_of_project(
    conn: &mut Db,
    project_id: i64,
) -> QueryResult<Vec<(i64, String)>> {
    descriptions::table
        .inner_join(assignments::table.inner_join(exemplar_sets::table))
        .filter(exemplar_sets::project_id.eq(project_id))
        .filter(assignments::state.eq("approved"))
        .order(descriptions::id)
        .select((descriptions::set_id, descriptions::cleaned))
        .load(conn)
}

/// A worker's rejected work with the requester's feedback, newest first.
pub fn rejections_of(
    conn: &mut Db,
    worker_id: i64,
    limit: i64,
) -> QueryResult<Vec<(AssignmentRow, DescriptionRow)>> {
    assignments::table
        .inner_join(descriptions::table)
        .filter(assignments::worker_id.eq(worker_id))
        .filter(assignments::state.eq("rejected"))
        .order(assignments::reviewed_at.desc())
        .limit(limit)
        .select((AssignmentRow::as_select(), DescriptionRow::as_select()))
        .load(conn)
}
