//! When the worker's claim and finish connections ([`crate::connect_batch_pool`])
//! may keep their plans.
//!
//! A kept (generic) plan is made without the run's values, from the
//! tables' sizes when it is made, and never remade. Made on a small table,
//! it scans that table whole (a hash join on a sequential scan), and would
//! keep doing so once the table had grown. Measured with `EXPLAIN` of the
//! generic plans (PostgreSQL 15, 2026-12-06): every step of both statements
//! is a lookup by key from 2.3 MB of `jobs` (10,000 rows) and 400 KB of
//! attempts; the attempts were still scanned at 250 KB, and `jobs` at
//! 700 KB. Again on 2026-12-07, with `job_attempts` at its fillfactor of 70:
//! scanned at 270 KB of attempts, looked up by key from 540 KB.
//!
//! So a new connection keeps its plans only past [`KEEP_PLANS_FROM`]: seven
//! times the size of `jobs` that gave lookups, twice that of the attempts
//! (four times the largest still scanned). Before, it plans every run, and
//! makes way for a new one that looks again after [`PLANNING_RECHECK`], or
//! as soon as another connection of the pool found the tables large. From
//! then on every new connection keeps its plans: a plan of key lookups stays
//! right if the tables shrink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

/// The sizes of `jobs` and `job_attempts` (bytes) from which a new
/// connection keeps its plans.
///
/// The attempts' size is what a drain waits for: the table starts empty, and
/// until it passes this size every claim and finish is planned again
/// (a quarter less throughput). 1 MB is 4,000-5,000 attempts (40 MB held
/// 204,000 in a drain), under a second of the benchmark's drain; 2 MB made
/// the first 4 s of it slower.
pub const KEEP_PLANS_FROM: (i64, i64) = (16 << 20, 1 << 20);

/// How long a connection that plans every run lives before a new one looks
/// at the tables' sizes again.
///
/// A new connection costs PostgreSQL a few milliseconds: a few of them a
/// second is little beside what per-run planning costs.
pub const PLANNING_RECHECK: Duration = Duration::from_secs(1);

/// What the connections of one pool know of the tables' sizes.
#[derive(Default)]
pub(crate) struct LargeTables {
    /// A connection of the pool found the tables large.
    found: AtomicBool,
    /// When each connection that plans every run was made (deadpool's
    /// `Metrics::created`, which names a connection to the pool's hooks).
    planning_per_run: Mutex<Vec<Instant>>,
}

/// More connections than a pool ever holds: entries of connections dropped
/// for another reason (broken) are forgotten past it.
const REMEMBERED: usize = 64;

impl LargeTables {
    /// For a new connection, which plans every run: it keeps its plans from
    /// now on if the tables are large (or another connection found them so).
    pub(crate) async fn on_new_connection(&self, conn: &mut AsyncPgConnection, created: Instant) {
        if self.found.load(Ordering::Acquire) || tables_past(conn, KEEP_PLANS_FROM).await {
            match conn.batch_execute("SET plan_cache_mode = force_generic_plan").await {
                Ok(()) => {
                    self.found.store(true, Ordering::Release);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not keep plans; this connection plans every run"),
            }
        }
        let mut per_run = self.planning_per_run.lock().expect("never poisoned");
        if per_run.len() >= REMEMBERED {
            per_run.remove(0);
        }
        per_run.push(created);
    }

    /// Whether the connection made at `created` should make way for a new
    /// one: it plans every run, and the tables were found large since, or it
    /// has lived [`PLANNING_RECHECK`].
    pub(crate) fn outlived(&self, created: Instant) -> bool {
        let mut per_run = self.planning_per_run.lock().expect("never poisoned");
        let Some(at) = per_run.iter().position(|made| *made == created) else {
            return false;
        };
        let outlived = self.found.load(Ordering::Acquire) || created.elapsed() > PLANNING_RECHECK;
        if outlived {
            per_run.swap_remove(at);
        }
        outlived
    }
}

/// Whether `jobs` and `job_attempts` are at least `(jobs, attempts)` bytes
/// (no when that cannot be read).
async fn tables_past(conn: &mut AsyncPgConnection, (jobs, attempts): (i64, i64)) -> bool {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Past {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        past: bool,
    }
    diesel::sql_query("SELECT pg_relation_size('jobs') >= $1 AND pg_relation_size('job_attempts') >= $2 AS past")
        .bind::<diesel::sql_types::BigInt, _>(jobs)
        .bind::<diesel::sql_types::BigInt, _>(attempts)
        .get_result::<Past>(conn)
        .await
        .is_ok_and(|row| row.past)
}
