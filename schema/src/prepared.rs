//! Hand-written statements that run many times a second, kept prepared on
//! each connection.
//!
//! diesel never caches a `sql_query` (it cannot know that the text is the
//! same every time), so each run of one costs PostgreSQL a parse, a
//! round trip to describe it and a fresh plan. For the batch statements of
//! the hot paths (storing submissions, claiming and finishing jobs) that was
//! a third of PostgreSQL's time while the worker drained a backlog. Wrapped
//! in [`prepared`], a statement whose text is fixed is prepared once per
//! connection (diesel's statement cache, keyed by the text). Each run is
//! still planned for the tables as they are (`plan_cache_mode`, set on every
//! connection in `db::connect_pool`).
//!
//! Only for text that never changes from call to call: the cache keeps one
//! statement per distinct text for the connection's lifetime.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// A query that diesel keeps prepared; see the module documentation.
#[derive(Debug, Clone)]
pub struct Prepared<Q>(Q);

/// Keeps `query` (a `sql_query` with fixed text, and its binds) prepared.
pub fn prepared<Q>(query: Q) -> Prepared<Q> {
    Prepared(query)
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    // `sql_query` says it is unsafe to cache because its text could be built
    // at run time; the caller of `prepared` vouches that it is not.
    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

// No static id: the statement cache then keys the statement by its text
// and bind types.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
