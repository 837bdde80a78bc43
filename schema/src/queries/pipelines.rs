//! Pipelines and the jobs of their steps.
//!
//! Moving a pipeline on (`advance`) happens in one transaction that holds
//! the pipeline's row lock: the decision (start the next step, finish, or
//! wait) is made on the rows as they are, and two workers (or a worker and
//! the sweeper) advancing the same pipeline at once cannot both start the
//! next step — a step's job is also unique per (pipeline, step).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{JobRow, NewJob, PipelineRow, TenantId};
use crate::schema::{jobs, pipelines};

/// What `advance` should do with a pipeline, decided from its row and its
/// steps' jobs.
#[derive(Debug, Clone)]
pub enum Advance {
    /// The current step has not finished.
    Wait,
    /// Store and start the next step's job (and move `current_step` to it).
    Start(Box<NewJob>),
    /// The pipeline is over: `succeeded`, `failed` or `cancelled`, with the
    /// reason when it did not succeed.
    Finish { status: &'static str, error: Option<(String, String)> },
}

/// Stores a pipeline and its first step's job together.
pub async fn create(pool: &DbPool, pipeline: &PipelineRow, first: &NewJob) -> Result<JobRow, DbError> {
    let mut conn = pool.get().await?;
    let (pipeline, first) = (pipeline.clone(), first.clone());
    conn.transaction(async move |conn| -> Result<JobRow, DbError> {
        diesel::insert_into(pipelines::table).values(&pipeline).execute(conn).await?;
        Ok(diesel::insert_into(jobs::table).values(&first).returning(JobRow::as_returning()).get_result(conn).await?)
    })
    .await
}

pub async fn get(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<PipelineRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(pipelines::table
        .filter(pipelines::tenant_id.eq(tenant.0))
        .filter(pipelines::id.eq(id))
        .select(PipelineRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// The jobs of a pipeline's steps so far, in step order.
pub async fn step_jobs(pool: &DbPool, pipeline: Uuid) -> Result<Vec<JobRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::pipeline_id.eq(pipeline))
        .order(jobs::pipeline_step.asc())
        .select(JobRow::as_select())
        .load(&mut conn)
        .await?)
}

/// Locks the pipeline, lets `decide` look at it and its steps' jobs, and
/// applies the decision. Returns the job it started, for the caller to push.
pub async fn advance<F>(pool: &DbPool, id: Uuid, decide: F) -> Result<Option<JobRow>, DbError>
where
    F: FnOnce(&PipelineRow, &[JobRow]) -> Advance + Send + 'static,
{
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Option<JobRow>, DbError> {
        let Some(pipeline) =
            pipelines::table.filter(pipelines::id.eq(id)).select(PipelineRow::as_select()).for_update().first(conn).await.optional()?
        else {
            return Ok(None);
        };
        if pipeline.status != "running" {
            return Ok(None);
        }
        let steps: Vec<JobRow> =
            jobs::table.filter(jobs::pipeline_id.eq(id)).order(jobs::pipeline_step.asc()).select(JobRow::as_select()).load(conn).await?;
        let now = Utc::now();
        match decide(&pipeline, &steps) {
            Advance::Wait => Ok(None),
            Advance::Start(job) => {
                let step = job.pipeline_step.unwrap_or(pipeline.current_step + 1);
                let row = diesel::insert_into(jobs::table).values(&*job).returning(JobRow::as_returning()).get_result(conn).await?;
                diesel::update(pipelines::table.filter(pipelines::id.eq(id)))
                    .set((pipelines::current_step.eq(step), pipelines::updated_at.eq(now)))
                    .execute(conn)
                    .await?;
                Ok(Some(row))
            }
            Advance::Finish { status, error } => {
                let (code, message) = error.unzip();
                diesel::update(pipelines::table.filter(pipelines::id.eq(id)))
                    .set((
                        pipelines::status.eq(status),
                        pipelines::error_code.eq(code),
                        pipelines::error_message.eq(message),
                        pipelines::updated_at.eq(now),
                        pipelines::finished_at.eq(Some(now)),
                    ))
                    .execute(conn)
                    .await?;
                Ok(None)
            }
        }
    })
    .await
}

/// Marks a running pipeline cancelled; its steps not yet started never
/// will. Returns the pipeline as it is now (`None`: no such pipeline).
pub async fn cancel(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<PipelineRow>, DbError> {
    let mut conn = pool.get().await?;
    let now = Utc::now();
    diesel::update(
        pipelines::table.filter(pipelines::tenant_id.eq(tenant.0)).filter(pipelines::id.eq(id)).filter(pipelines::status.eq("running")),
    )
    .set((
        pipelines::status.eq("cancelled"),
        pipelines::error_code.eq("cancelled"),
        pipelines::error_message.eq("cancelled by the client"),
        pipelines::updated_at.eq(now),
        pipelines::finished_at.eq(Some(now)),
    ))
    .execute(&mut conn)
    .await?;
    drop(conn);
    get(pool, tenant, id).await
}

/// Running pipelines not touched since `before`: the sweeper advances them
/// in case the worker that finished their current step died before it did.
pub async fn idle_running(pool: &DbPool, before: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    Ok(pipelines::table
        .filter(pipelines::status.eq("running"))
        .filter(pipelines::updated_at.lt(before))
        .order(pipelines::updated_at.asc())
        .limit(limit)
        .select(pipelines::id)
        .load(&mut conn)
        .await?)
}

/// Marks a pipeline as looked at (so the sweeper's page moves on).
pub async fn touch(pool: &DbPool, id: Uuid) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(pipelines::table.filter(pipelines::id.eq(id))).set(pipelines::updated_at.eq(Utc::now())).execute(&mut conn).await?;
    Ok(())
}
