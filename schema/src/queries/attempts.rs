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
