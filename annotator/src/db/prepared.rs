//! Keeping the worker loop's statements prepared. Two costs of diesel 2.3 that the loop's profile
//! showed inside the one SQLite writer (docs/performance.md, "Where the time goes"):
//!
//! - **`MultiConnection` renders SQL on every pass.** Its query wrapper writes the whole SQL text
//!   each time diesel walks a query — to ask whether it may be cached, for the cache's key, to
//!   collect the binds — so even a statement found in the cache costs two or three renderings.
//!   [`native!`] runs a query on the backend's own connection instead: a query whose type fixes
//!   its SQL is then found in the cache by its type, with no SQL written at all.
//! - **Some statements are never cached.** diesel prepares every `UPDATE`, every `IN (…)` list,
//!   every insert with an optional column and every `sql_query` again on each call, since in
//!   general their text can vary with the values. [`Cached`] keeps them: its cache key is the
//!   rendered SQL text (with the bind types), never the Rust type, so a statement whose text does
//!   vary gets one cache entry per text, which is still right. Only wrap statements with a few
//!   texts at most (not text built from data), or the cache grows with every call.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// A statement diesel keeps prepared although it would not by itself (see the module's notes).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

// Never a static id: the key must be the SQL text, which a type like `UPDATE`'s does not fix.
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

/// `native!(conn, |c| body)` runs `body` with `c` bound to the backend's own connection of `conn`
/// (a `&mut Db`), so that the query in it skips `MultiConnection`'s wrapper. The body is compiled
/// once per backend, so build the query inside it.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Db::Sqlite($c) => $body,
            $crate::db::Db::Pg($c) => $body,
        }
    };
}
pub(crate) use native;
