//! Payments: rewards and bonuses, each once.

use diesel::prelude::*;

use crate::db::Db;
use crate::db::schema::ledger;

use super::QueryResult;

/// One payment: a reward (one per assignment) or a bonus (with the requester's idempotency key).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ledger)]
pub struct NewPayment<'a> {
    pub worker_id: i64,
    pub assignment_id: Option<i64>,
    pub kind: &'a str,
    pub cents: i64,
    pub note: &'a str,
    pub created_at: i64,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

pub fn insert_ledger(conn: &mut Db, payment: &NewPayment) -> QueryResult<()> {
    diesel::insert_into(ledger::table)
        .values(payment)
        .execute(conn)
        .map(|_| ())
}

/// The request hash of the payment made with this idempotency key, if any.
pub fn payment_by_key(conn: &mut Db, key: &str) -> QueryResult<Option<Option<String>>> {
    ledger::table
        .filter(ledger::idempotency_key.eq(key))
        .select(ledger::request_hash)
        .first(conn)
        .optional()
}

/// Adds cents in i128, so that no number of ledger rows can overflow a total.
pub fn sum_cents(values: impl IntoIterator<Item = i64>) -> i64 {
    let total: i128 = values.into_iter().map(i128::from).sum();
    total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// (reward cents, bonus cents) paid to a worker.
pub fn earnings(conn: &mut Db, worker_id: i64) -> QueryResult<(i64, i64)> {
    let rows: Vec<(String, i64)> = ledger::table
        .filter(ledger::worker_id.eq(worker_id))
        .select((ledger::kind, ledger::cents))
        .load(conn)?;
    let of = |k: &str| sum_cents(rows.iter().filter(|(kind, _)| kind == k).map(|(_, c)| *c));
    Ok((of("reward"), of("bonus")))
}

/// Ledger totals per worker: (worker id, kind, cents).
pub fn ledger_totals(conn: &mut Db) -> QueryResult<Vec<(i64, String, i64)>> {
    ledger::table
        .select((ledger::worker_id, ledger::kind, ledger::cents))
        .load(conn)
}
