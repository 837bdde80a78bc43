//! Connection pool and embedded migrations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use diesel_async::pooled_connection::deadpool::{BuildError, Hook, HookError, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type DbPool = Pool<AsyncPgConnection>;

/// The SQL files under `migrations/`, compiled into every binary so that
/// `peyk-api migrate` needs nothing beside the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] PoolError),
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database pool configuration: {0}")]
    Build(#[from] BuildError),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("stored secrets: {0}")]
    Sealed(#[from] crate::sealed::SealError),
    #[error("stored secrets: {0}")]
    SealedJson(#[from] serde_json::Error),
}

impl DbError {
    /// True when the database could not be reached at all (as opposed to a
    /// query that was refused), so callers can answer 503 rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Pool(_))
    }
}

pub fn connect_pool(database_url: &str, max_size: usize) -> Result<DbPool, DbError> {
    pool_planning(database_url, max_size, Planning::PerRun)
}

/// A pool for the submissions' inserts alone (`submit::start_inserter`),
/// whose plans are kept: their one statement (`INSERT … SELECT FROM
/// unnest(…)`) reads no table, so a plan made once fits every run, where a
/// plan per run was a sixth of PostgreSQL's time per submission
/// (2026-12-06, `bench/run.sh` under `perf`).
pub fn connect_insert_pool(database_url: &str, max_size: usize) -> Result<DbPool, DbError> {
    pool_planning(database_url, max_size, Planning::Kept)
}

/// A pool for the worker's claim and finish batches alone
/// (`runner::start_batchers`), whose plans are kept once `jobs` and
/// `job_attempts` are large enough. Planning those two statements on every
/// run was a quarter of PostgreSQL's time while a worker drained a backlog
/// (2026-12-06, `bench/run.sh` under `perf`).
///
/// A kept (generic) plan is made without the run's values, from the
/// tables' sizes when it is made, and never remade. Made on a small table,
/// it scans that table whole (hash joins on sequential scans, or an index
/// read end to end), and would keep doing so once the table had grown. At
/// 10,000 rows each (2.3 MB of `jobs`, 1 MB of attempts) every step of both
/// statements is already a lookup by key; at 3,000 rows the attempts
/// were still scanned. So a connection keeps its plans only when the tables
/// are past [`KEEP_PLANS_FROM`] (about eight times that); before, it plans
/// every run, and is replaced after [`PLANNING_RECHECK`] to look again.
/// Once a connection of the pool has found them large, every later one
/// keeps its plans: a plan of key lookups stays right if the tables shrink.
pub fn connect_batch_pool(database_url: &str, max_size: usize) -> Result<DbPool, DbError> {
    pool_planning(database_url, max_size, Planning::KeptOnceLarge(Arc::new(AtomicBool::new(false))))
}

/// The sizes of `jobs` and `job_attempts` (bytes) from which a connection
/// of [`connect_batch_pool`] keeps its plans.
pub const KEEP_PLANS_FROM: (i64, i64) = (16 << 20, 8 << 20);
/// How long a connection of [`connect_batch_pool`] that plans every run
/// lives before a new one looks at the tables' sizes again.
pub const PLANNING_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// How a pool's connections plan the statements they keep prepared.
#[derive(Clone)]
enum Planning {
    /// Anew on every run (`force_custom_plan`), for the tables as they are.
    PerRun,
    /// Once per connection, kept (`force_generic_plan`).
    Kept,
    /// `Kept` once the tables are large (see [`connect_batch_pool`]); the
    /// flag says that a connection of the pool found them so.
    KeptOnceLarge(Arc<AtomicBool>),
}

impl Planning {
    async fn mode(&self, conn: &mut AsyncPgConnection) -> &'static str {
        let keep = match self {
            Planning::PerRun => false,
            Planning::Kept => true,
            Planning::KeptOnceLarge(found_large) => {
                found_large.load(Ordering::Acquire) || {
                    let large = tables_past(conn, KEEP_PLANS_FROM).await;
                    found_large.fetch_or(large, Ordering::AcqRel);
                    large
                }
            }
        };
        if keep {
            "force_generic_plan"
        } else {
            "force_custom_plan"
        }
    }

    /// Whether a connection made `age` ago should make way for a new one.
    fn outlived(&self, age: std::time::Duration) -> bool {
        match self {
            Planning::KeptOnceLarge(found_large) => !found_large.load(Ordering::Acquire) && age > PLANNING_RECHECK,
            Planning::PerRun | Planning::Kept => false,
        }
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

fn pool_planning(database_url: &str, max_size: usize, planning: Planning) -> Result<DbPool, DbError> {
    // `Fast`: do not run `SELECT 1` on every checkout (the default), which
    // doubled the statements of the hot paths; broken connections are still
    // detected and dropped.
    let mut manager_config = ManagerConfig::default();
    manager_config.recycling_method = RecyclingMethod::Fast;
    // Statements are kept prepared (diesel's cache, `prepared`), and
    // PostgreSQL would switch such a statement to a generic plan after five
    // runs and keep it: a plan made while a table was small (a new
    // database) scanned `job_attempts` whole on every claim once it had
    // grown. So each pool says how its connections plan (`Planning`).
    // JIT off: a claim of a few hundred jobs is estimated dear enough
    // (each job's attempt lookups) for PostgreSQL to compile it, 100–200 ms
    // of a core for a statement that runs in a few milliseconds.
    let setup_planning = planning.clone();
    manager_config.custom_setup = Box::new(move |url| {
        let planning = setup_planning.clone();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            let mode = planning.mode(&mut conn).await;
            conn.batch_execute(&format!("SET plan_cache_mode = {mode}; SET jit = off"))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, manager_config);
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .pre_recycle(Hook::<AsyncPgConnection>::sync_fn(move |_, metrics| match planning.outlived(metrics.age()) {
            true => Err(HookError::Message("replaced to look at the tables' sizes again".into())),
            false => Ok(()),
        }))
        .build()?)
}

/// Applies every pending migration; returns the versions it applied.
pub async fn run_migrations(pool: &DbPool) -> Result<Vec<String>, DbError> {
    let conn = pool.get().await?;
    // The harness drives diesel's sync migration code through
    // `block_in_place`, which needs the multi-threaded runtime (our binaries use it).
    let mut harness = AsyncMigrationHarness::new(conn);
    let applied = harness.run_pending_migrations(MIGRATIONS).map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

#[cfg(test)]
mod migration_tests {
    /// Diesel keys migrations by the part of the folder name before the
    /// first `_`: two folders with the same prefix make one of them never
    /// run (this happened when two branches each added `2026-11-22-000001_…`).
    #[test]
    fn migration_versions_are_unique() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut versions: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().split('_').next().unwrap().to_string())
            .collect();
        let count = versions.len();
        versions.sort();
        versions.dedup();
        assert_eq!(versions.len(), count, "two migrations share a version: {versions:?}");
    }
}
