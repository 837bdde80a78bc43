//! The history of a job's attempts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::AttemptRow;
use crate::schema::job_attempts;

pub async fn list_for_job(pool: &DbPool, job_id: Uuid) -> Result<Vec<AttemptRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(job_attempts::table
        .filter(job_attempts::job_id.eq(job_id))
        .order(job_attempts::id.asc())
        .select(AttemptRow::as_select())
        .load(&mut conn)
        .await?)
}

/// Attempts that ended with an error and started after `since`, counted up
/// to `cap` (on the `job_attempts_errors` index: never more rows than that).
pub async fn errors_since(pool: &DbPool, since: chrono::DateTime<chrono::Utc>, cap: i64) -> Result<i64, DbError> {
    let mut conn = pool.get().await?;
    let ids: Vec<i64> = job_attempts::table
        .filter(job_attempts::error_message.is_not_null())
        .filter(job_attempts::started_at.gt(since))
        .select(job_attempts::id)
        .limit(cap)
        .load(&mut conn)
        .await?;
    Ok(ids.len() as i64)
}
