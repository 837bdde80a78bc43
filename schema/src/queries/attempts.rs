//! The history of a job's attempts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{AttemptRow, TenantId};
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
/// to `cap` (on the `job_attempts_errors` index: never more rows than that):
/// one tenant's (each joined to its job by the job's key), or every
/// tenant's.
pub async fn errors_since(pool: &DbPool, tenant: Option<TenantId>, since: chrono::DateTime<chrono::Utc>, cap: i64) -> Result<i64, DbError> {
    use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        errors: i64,
    }
    let mut conn = pool.get().await?;
    let Some(tenant) = tenant else {
        let ids: Vec<i64> = job_attempts::table
            .filter(job_attempts::error_message.is_not_null())
            .filter(job_attempts::started_at.gt(since))
            .select(job_attempts::id)
            .limit(cap)
            .load(&mut conn)
            .await?;
        return Ok(ids.len() as i64);
    };
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS errors FROM (SELECT 1 FROM job_attempts a JOIN jobs j ON j.id = a.job_id
          WHERE a.error_message IS NOT NULL AND a.started_at > $1 AND j.tenant_id = $2 LIMIT $3) s",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<BigInt, _>(cap)
    .get_result(&mut conn)
    .await?;
    Ok(count.errors)
}
