//! Connection pool and embedded migrations.

use std::sync::Arc;

use diesel_async::pooled_connection::deadpool::{BuildError, Hook, HookError, Pool, PoolError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::kept_plans::LargeTables;

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
/// `job_attempts` are large enough ([`crate::kept_plans`]). Planning those
/// two statements on every run was a quarter of PostgreSQL's time while a
/// worker drained a backlog (2026-12-06, `bench/run.sh` under `perf`).
pub fn connect_batch_pool(database_url: &str, max_size: usize) -> Result<DbPool, DbError> {
    pool_planning(database_url, max_size, Planning::KeptOnceLarge)
}

/// How a pool's connections plan the statements they keep prepared.
#[derive(Clone, Copy)]
enum Planning {
    /// Anew on every run (`force_custom_plan`), for the tables as they are.
    PerRun,
    /// Once per connection, kept (`force_generic_plan`).
    Kept,
    /// `Kept` once the tables are large, `PerRun` before ([`LargeTables`]).
    KeptOnceLarge,
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
    let mode = match planning {
        Planning::Kept => "force_generic_plan",
        Planning::PerRun | Planning::KeptOnceLarge => "force_custom_plan",
    };
    manager_config.custom_setup = Box::new(move |url| {
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.batch_execute(&format!("SET plan_cache_mode = {mode}; SET jit = off"))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, manager_config);
    let mut builder = Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1);
    if let Planning::KeptOnceLarge = planning {
        let large = Arc::new(LargeTables::default());
        let on_create = large.clone();
        builder = builder
            .post_create(Hook::<AsyncPgConnection>::async_fn(move |conn, metrics| {
                let large = on_create.clone();
                Box::pin(async move {
                    large.on_new_connection(conn, metrics.created).await;
                    Ok(())
                })
            }))
            .pre_recycle(Hook::<AsyncPgConnection>::sync_fn(move |_, metrics| match large.outlived(metrics.created) {
                true => Err(HookError::Message("replaced to look at the tables' sizes again".into())),
                false => Ok(()),
            }));
    }
    Ok(builder.build()?)
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
