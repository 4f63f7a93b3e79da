//! Keeping the worker loop's statements prepared. Two costs of diesel 2.3 that the loop's profile
//! showed inside the one SQLite writer (docs/performance.md, "Where the time goes"):
//!
//! - **`MultiConnection` renders SQL on every pass.** Its query wrapper writes the whole SQL text
//!   each time diesel walks a query — to ask whether it may be cached, for the cache's key, to
//!   collect the binds — so even a statement found in the cache costs two or three renderings.
//!   [`native!`] runs a query on the backend's own connection instead: a query whose type fixes
//!   its SQL is then found in the cache by its type, with no SQL written at all.
//! - **Some statements are never cached.** diesel prepares every `UPDATE`, every `IN (…)` list
//!   and every `sql_query` again on each call, since in general their text can vary with the
//!   values. [`update`] and [`Sql`] write an `UPDATE` and a fixed statement that diesel keeps;
//!   [`Cached`] keeps a query that loads rows (an `IN` list). All three are keyed in the cache by
//!   their SQL text (with the bind types), never by their Rust type, so a statement whose text
//!   varies gets one entry per text, which is still right. Use them only for statements with a
//!   few texts at most (not text built from data), or the cache grows with every call.

use diesel::backend::Backend;
use diesel::query_builder::{AsChangeset, AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl, Table};

/// A query that loads rows, kept prepared although diesel would not keep it by itself. diesel
/// asks the query itself only when it is passed by value, as `load`, `get_result` and `first` do;
/// `execute` passes it by reference and then asks the statement inside, so an `UPDATE` wrapped
/// here is still prepared every time: use [`update`] or [`Sql`] for those (tested below).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

// Never a static id: the key must be the SQL text, which the type of an `IN` list does not fix.
impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, DB> QueryFragment<DB> for Cached<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Conn> RunQueryDsl<Conn> for Cached<Q> {}

/// `UPDATE table SET values WHERE filter`, kept prepared. diesel's own `UPDATE` (which this
/// writes the same way) marks itself uncacheable because an optional field of a changeset struct
/// drops its column; here the cache key is the text, so that is harmless. `filter` is not checked
/// at compile time to name only `table`'s columns as diesel's `filter` is: a wrong one fails when
/// it runs (every use is run by the tests).
pub fn update<T, W, V>(table: T, filter: W, values: V) -> Update<T::FromClause, W, V::Changeset>
where
    T: Table,
    V: AsChangeset<Target = T>,
{
    Update {
        from: table.from_clause(),
        filter,
        values: values.as_changeset(),
    }
}

/// What [`update`] makes.
#[derive(Debug, Clone, Copy)]
pub struct Update<F, W, V> {
    from: F,
    filter: W,
    values: V,
}

impl<F, W, V> QueryId for Update<F, W, V> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, W, V, DB> QueryFragment<DB> for Update<F, W, V>
where
    DB: Backend,
    F: QueryFragment<DB>,
    W: QueryFragment<DB>,
    V: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.from.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.values.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<F, W, V, Conn> RunQueryDsl<Conn> for Update<F, W, V> {}

/// A fixed statement without parameters (`SAVEPOINT request`), kept prepared: `batch_execute`
/// and `sql_query` parse it again on every call.
#[derive(Debug, Clone, Copy)]
pub struct Sql(pub &'static str);

impl QueryId for Sql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> QueryFragment<DB> for Sql {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for Sql {}

/// `native!(conn, |c| body)` runs `body` with `c` bound to the backend's own connection of `conn`
/// (a `&mut Db`), so that the query in it skips `MultiConnection`'s wrapper. The body is compiled
/// once per backend, so build the query inside it.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Db::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::Db::Pg($c) => $body,
        }
    };
}
pub(crate) use native;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;

    use super::Cached;
    use crate::db::Db;

    diesel::table! {
        things (id) {
            id -> BigInt,
            n -> Integer,
            note -> Nullable<Text>,
        }
    }

    #[derive(Insertable)]
    #[diesel(table_name = things)]
    struct NewThing<'a> {
        id: i64,
        n: i32,
        note: Option<&'a str>,
    }

    /// A connection to an in-memory database with `things`, and the SQL of every statement it
    /// put into its cache.
    fn connection() -> (Db, Arc<Mutex<Vec<String>>>) {
        let mut conn = Db::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        conn.batch_execute(
            "CREATE TABLE things (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, note TEXT)",
        )
        .unwrap();
        let cached = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&cached);
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        (conn, cached)
    }

    /// The statements cached since the last call.
    fn taken(cached: &Mutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *cached.lock().unwrap())
    }

    fn n_of(conn: &mut Db, id: i64) -> i32 {
        native!(conn, |c| things::table.find(id).select(things::n).first(c)).unwrap()
    }

    #[test]
    fn updates_and_fixed_statements_are_prepared_once_and_diesels_every_time() {
        let (mut conn, cached) = connection();
        let conn = &mut conn;
        native!(conn, |c| diesel::insert_into(things::table)
            .values((things::id.eq(1), things::n.eq(0)))
            .execute(c))
        .unwrap();
        taken(&cached);
        for _ in 0..3 {
            native!(conn, |c| diesel::update(things::table.find(1))
                .set(things::n.eq(things::n + 1))
                .execute(c))
            .unwrap();
        }
        assert_eq!(
            taken(&cached),
            Vec::<String>::new(),
            "diesel caches no UPDATE"
        );
        // `execute` asks the statement inside `Cached`, which says no (see `Cached`).
        native!(conn, |c| Cached(
            diesel::update(things::table.find(1)).set(things::n.eq(things::n + 1))
        )
        .execute(c))
        .unwrap();
        assert_eq!(taken(&cached), Vec::<String>::new());
        for _ in 0..3 {
            native!(conn, |c| super::update(
                things::table,
                things::id.eq(1),
                things::n.eq(things::n + 1)
            )
            .execute(c))
            .unwrap();
        }
        assert_eq!(
            taken(&cached),
            [r#"UPDATE `things` SET `n` = (`things`.`n` + ?) WHERE (`things`.`id` = ?)"#]
        );
        assert_eq!(n_of(conn, 1), 7, "every run of every update ran");
        taken(&cached);
        for _ in 0..2 {
            for sql in ["SAVEPOINT a", "RELEASE a"] {
                native!(conn, |c| super::Sql(sql).execute(c)).unwrap();
            }
        }
        assert_eq!(taken(&cached), ["SAVEPOINT a", "RELEASE a"]);
    }

    #[test]
    fn statements_whose_text_varies_get_one_entry_per_text_and_stay_right() {
        let (mut conn, cached) = connection();
        let conn = &mut conn;
        // An optional column present or absent: two texts of one Rust type.
        for (id, note) in [(1, Some("a")), (2, None), (3, Some("c")), (4, None)] {
            let thing = NewThing {
                id,
                n: id as i32,
                note,
            };
            native!(conn, |c| Cached(
                diesel::insert_into(things::table).values(&thing)
            )
            .execute(c))
            .unwrap();
        }
        assert_eq!(taken(&cached).len(), 2);
        let notes: Vec<Option<String>> = native!(conn, |c| things::table
            .order(things::id)
            .select(things::note)
            .load(c))
        .unwrap();
        assert_eq!(notes, [Some("a".into()), None, Some("c".into()), None]);
        taken(&cached);
        // IN lists of different lengths: each its own statement, each answering its own list.
        for ids in [vec![1_i64, 2], vec![3], vec![1, 2], vec![2, 3, 4]] {
            let found: Vec<i64> = native!(conn, |c| Cached(
                things::table
                    .filter(things::id.eq_any(&ids))
                    .order(things::id)
                    .select(things::id)
            )
            .load(c))
            .unwrap();
            assert_eq!(found, ids);
        }
        assert_eq!(taken(&cached).len(), 3, "one statement per list length");
    }
}
