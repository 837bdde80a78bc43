//! The workers' queries: claiming a job, recording its outcome, keeping the
//! claim alive, and the sweeper's look at what Redis may have lost.
//!
//! A worker may only run a job it has claimed in one statement that checks
//! the job is still waiting (or its previous claim expired) *and* that the
//! Redis task it holds is the one the row names. That single check is what
//! makes duplicate or stale Redis tasks harmless.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{ClaimedJob, JobRow};
use crate::prepared::prepared;
use crate::schema::jobs;
use crate::status::JobStatus;

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(embed)]
    job: JobRow,
    #[diesel(sql_type = BigInt)]
    attempt_id: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exhausted: bool,
}

// Batches lock their job rows in id order first (`locked`), so that two
// batches touching the same rows cannot deadlock.

/// Claims jobs for `worker`, each if the task given for it is still the task
/// that stands for it and nobody else holds it; opens an attempt row for
/// each claimed job, all in one statement. Answers in the order asked.
pub async fn claim_batch(
    pool: &DbPool,
    worker: &str,
    lease_seconds: f64,
    wanted: &[(Uuid, String)],
) -> Result<Vec<Option<ClaimedJob>>, DbError> {
    let ids: Vec<Uuid> = wanted.iter().map(|(id, _)| *id).collect();
    let task_ids: Vec<&str> = wanted.iter().map(|(_, task)| task.as_str()).collect();
    let mut conn = pool.get().await?;
    let rows: Vec<ClaimRow> = prepared(
        diesel::sql_query(
            // Every later step reads `locked` (one row per job, decided under
            // the row lock) and nothing joins two of these steps' results: a
            // join of two CTEs is planned as a nested loop (their sizes are
            // unknown), which made a batch cost the square of its size.
            "WITH locked AS (
            SELECT jobs.id,
                   -- Still the task that stands for it, and nobody holds it.
                   jobs.queue_task_id = input.task_id
                     AND (jobs.status IN ('queued', 'scheduled') OR (jobs.status = 'running' AND jobs.lease_until < now()))
                     AS claimable,
                   -- An attempt counts when it is claimed. A job whose every allowed
                   -- attempt was claimed before, the last one lost with its worker
                   -- (not handed back at a shutdown), is exhausted.
                   -- CASE, so that the attempt lookup runs only for the rare job at its limit.
                   CASE WHEN jobs.attempts >= jobs.max_attempts
                        THEN coalesce((SELECT a.outcome IS NULL OR a.outcome = 'interrupted' FROM job_attempts a
                                        WHERE a.job_id = jobs.id ORDER BY a.id DESC LIMIT 1), false)
                        ELSE false END AS exhausted,
                   -- The attempt a lost worker left open, closed below as
                   -- interrupted. Looked up per job, newest first, through
                   -- the (job_id, id) index: a join on job_id was planned as a
                   -- scan of every attempt ever made once the table was large.
                   CASE WHEN jobs.attempts > 0
                        THEN (SELECT a.id FROM job_attempts a
                               WHERE a.job_id = jobs.id AND a.outcome IS NULL ORDER BY a.id DESC LIMIT 1) END AS open_attempt
              FROM unnest($1::uuid[], $2::text[]) AS input(id, task_id)
              JOIN jobs ON jobs.id = input.id
             ORDER BY jobs.id FOR UPDATE OF jobs
         ), claimed AS (
            UPDATE jobs SET status = 'running', attempts = CASE WHEN locked.exhausted THEN jobs.attempts ELSE jobs.attempts + 1 END,
                   started_at = coalesce(jobs.started_at, now()), locked_by = $3,
                   lease_until = now() + make_interval(secs => $4), updated_at = now()
              FROM locked
             WHERE jobs.id = locked.id AND locked.claimable
            -- The new attempt's id is taken here, so that the attempt row
            -- needs no join back; an exhausted job answers its last attempt.
            RETURNING jobs.*, locked.exhausted, locked.open_attempt,
                      CASE WHEN locked.exhausted
                           THEN (SELECT a.id FROM job_attempts a WHERE a.job_id = jobs.id ORDER BY a.id DESC LIMIT 1)
                           ELSE nextval('job_attempts_id_seq') END AS attempt_id
         ), interrupted AS (
            UPDATE job_attempts SET finished_at = now(), outcome = 'interrupted',
                   error_code = 'worker_lost', error_message = 'the worker running this attempt stopped answering'
             WHERE id = ANY(ARRAY(SELECT open_attempt FROM claimed WHERE open_attempt IS NOT NULL))
         ), attempt AS (
            INSERT INTO job_attempts (id, job_id, attempt, worker)
            SELECT attempt_id, id, attempts, $3 FROM claimed WHERE NOT exhausted
         )
         SELECT * FROM claimed WHERE attempt_id IS NOT NULL",
        )
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(&ids)
        .bind::<diesel::sql_types::Array<Text>, _>(&task_ids)
        .bind::<Text, _>(worker)
        .bind::<Double, _>(lease_seconds),
    )
    .load(&mut conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, ClaimedJob> =
        rows.into_iter().map(|r| (r.job.id, ClaimedJob { job: r.job, attempt_id: r.attempt_id, exhausted: r.exhausted })).collect();
    Ok(ids.iter().map(|id| by_id.remove(id)).collect())
}

/// How an attempt ended, as the worker records it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        result: serde_json::Value,
    },
    /// Failed permanently (`failed`) or out of attempts (`dead`).
    Failed {
        dead: bool,
        code: String,
        message: String,
        result: Option<serde_json::Value>,
    },
    /// Will run again at `run_at` as Redis task `next_task_id`.
    Retry {
        code: String,
        message: String,
        run_at: DateTime<Utc>,
        next_task_id: String,
        result: Option<serde_json::Value>,
    },
}

impl Outcome {
    /// The job's status once this outcome is recorded, if it is a final one.
    pub fn final_status(&self) -> Option<JobStatus> {
        match self {
            Outcome::Succeeded { .. } => Some(JobStatus::Succeeded),
            Outcome::Failed { dead: true, .. } => Some(JobStatus::Dead),
            Outcome::Failed { .. } => Some(JobStatus::Failed),
            Outcome::Retry { .. } => None,
        }
    }
}

/// One outcome to record: the job, its open attempt, how it ended, and the
/// events (`job.*` messages) it causes — stored with it, or not at all.
#[derive(Debug)]
pub struct Finish {
    pub job_id: Uuid,
    pub attempt_id: i64,
    pub outcome: Outcome,
    pub events: Vec<crate::models::WebhookMessageRow>,
}

#[derive(QueryableByName)]
struct FinishedRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Records outcomes of jobs `worker` claimed, in one statement. For each,
/// `false` means the job was no longer this worker's to finish (cancelled
/// while running, or its claim expired and another worker took it): the
/// result is then discarded and the attempt marked `cancelled` or `discarded`.
pub async fn finish_batch(pool: &DbPool, worker: &str, finishes: &[std::sync::Arc<Finish>]) -> Result<Vec<bool>, DbError> {
    let n = finishes.len();
    let (mut ids, mut statuses, mut results, mut codes, mut messages) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut run_ats, mut next_tasks, mut attempt_outcomes, mut attempt_ids) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut event_jobs, mut event_ids, mut event_types, mut event_payloads) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut event_callbacks: Vec<Option<Uuid>> = Vec::new();
    for finish in finishes {
        for event in &finish.events {
            event_jobs.push(finish.job_id);
            event_ids.push(event.id.as_str());
            event_types.push(event.event_type.as_str());
            event_payloads.push(&event.payload);
            event_callbacks.push(event.callback_job_id);
        }
        // Bound by reference: a result is not copied on its way to the statement.
        let (status, attempt_outcome, result, code, message, run_at, next_task) = match &finish.outcome {
            Outcome::Succeeded { result } => ("succeeded", "succeeded", Some(result), None, None, None, None),
            Outcome::Failed { dead, code, message, result } => {
                let status = if *dead { "dead" } else { "failed" };
                (status, status, result.as_ref(), Some(code.as_str()), Some(message.as_str()), None, None)
            }
            Outcome::Retry { code, message, run_at, next_task_id, result } => (
                "scheduled",
                "retrying",
                result.as_ref(),
                Some(code.as_str()),
                Some(message.as_str()),
                Some(*run_at),
                Some(next_task_id.as_str()),
            ),
        };
        ids.push(finish.job_id);
        statuses.push(status);
        results.push(result);
        codes.push(code);
        messages.push(message);
        run_ats.push(run_at);
        next_tasks.push(next_task);
        attempt_outcomes.push(attempt_outcome);
        attempt_ids.push(finish.attempt_id);
    }
    let mut conn = pool.get().await?;
    let done: Vec<FinishedRow> = prepared(
        diesel::sql_query(
            // As in `claim_batch`: each step reads `locked`, decided under the
            // row lock, and no two steps' results are joined.
            "WITH locked AS (
            SELECT input.*, jobs.tenant_id, jobs.status AS was,
                   jobs.status = 'running' AND jobs.locked_by IS NOT DISTINCT FROM $10 AS ours
              FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::text[],
                          $6::timestamptz[], $7::text[], $8::text[], $9::bigint[])
                   AS input(id, status, result, code, message, run_at, next_task, attempt_outcome, attempt_id)
              JOIN jobs ON jobs.id = input.id
             ORDER BY jobs.id FOR UPDATE OF jobs
         ), done AS (
            UPDATE jobs SET status = locked.status, result = locked.result, error_code = locked.code,
                   error_message = locked.message, run_at = coalesce(locked.run_at, jobs.run_at),
                   queue_task_id = coalesce(locked.next_task, jobs.queue_task_id),
                   finished_at = CASE WHEN locked.status IN ('succeeded', 'failed', 'dead') THEN now() END,
                   progress = CASE WHEN locked.status = 'succeeded' THEN 100 ELSE jobs.progress END,
                   locked_by = NULL, lease_until = NULL, updated_at = now()
              FROM locked
             WHERE jobs.id = locked.id AND locked.ours
            RETURNING jobs.id
         ), events AS (
            -- The outbox: a finished job's events, only if it did finish here.
            INSERT INTO webhook_messages (id, tenant_id, event_type, payload, created_at, callback_job_id)
            SELECT e.id, locked.tenant_id, e.event_type, e.payload, now(), e.callback_job_id
              FROM unnest($11::uuid[], $12::text[], $13::text[], $14::jsonb[], $15::uuid[])
                   AS e(job_id, id, event_type, payload, callback_job_id)
              JOIN locked ON locked.id = e.job_id AND locked.ours
            ON CONFLICT (id) DO NOTHING
         ), attempt AS (
            UPDATE job_attempts SET finished_at = now(), error_code = locked.code, error_message = locked.message,
                   outcome = CASE WHEN locked.ours THEN locked.attempt_outcome
                                  WHEN locked.was = 'cancelled' THEN 'cancelled' ELSE 'discarded' END
              FROM locked
             WHERE job_attempts.id = locked.attempt_id
         )
         SELECT id FROM done",
        )
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(&ids)
        .bind::<diesel::sql_types::Array<Text>, _>(&statuses)
        .bind::<diesel::sql_types::Array<Nullable<Jsonb>>, _>(&results)
        .bind::<diesel::sql_types::Array<Nullable<Text>>, _>(&codes)
        .bind::<diesel::sql_types::Array<Nullable<Text>>, _>(&messages)
        .bind::<diesel::sql_types::Array<Nullable<Timestamptz>>, _>(&run_ats)
        .bind::<diesel::sql_types::Array<Nullable<Text>>, _>(&next_tasks)
        .bind::<diesel::sql_types::Array<Text>, _>(&attempt_outcomes)
        .bind::<diesel::sql_types::Array<BigInt>, _>(&attempt_ids)
        .bind::<Text, _>(worker)
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(&event_jobs)
        .bind::<diesel::sql_types::Array<Text>, _>(&event_ids)
        .bind::<diesel::sql_types::Array<Text>, _>(&event_types)
        .bind::<diesel::sql_types::Array<Jsonb>, _>(&event_payloads)
        .bind::<diesel::sql_types::Array<Nullable<SqlUuid>>, _>(&event_callbacks),
    )
    .load(&mut conn)
    .await?;
    let done: std::collections::HashSet<Uuid> = done.into_iter().map(|row| row.id).collect();
    Ok(ids.iter().map(|id| done.contains(id)).collect())
}

/// Job progress, 0–100, while it runs.
pub async fn set_progress(pool: &DbPool, job_id: Uuid, worker: &str, progress: i16) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    diesel::update(jobs::table.filter(jobs::id.eq(job_id)).filter(jobs::status.eq("running")).filter(jobs::locked_by.eq(worker)))
        .set((jobs::progress.eq(progress.clamp(0, 100)), jobs::updated_at.eq(diesel::dsl::now)))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Extends this worker's claims on the jobs it is still running.
pub async fn renew_leases(pool: &DbPool, worker: &str, job_ids: &[Uuid], lease_seconds: f64) -> Result<usize, DbError> {
    if job_ids.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.get().await?;
    // Rows locked in id order first, like every batch here: renewing in
    // another order deadlocks with outcome batches.
    Ok(diesel::sql_query(
        "WITH locked AS (
            SELECT id FROM jobs WHERE id = ANY($2) AND status = 'running' AND locked_by = $1 ORDER BY id FOR UPDATE
         )
         UPDATE jobs SET lease_until = now() + make_interval(secs => $3) FROM locked WHERE jobs.id = locked.id",
    )
    .bind::<Text, _>(worker)
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(job_ids)
    .bind::<Double, _>(lease_seconds)
    .execute(&mut conn)
    .await?)
}

/// A job whose row says it waits in Redis as `task_id`.
#[derive(Debug, Clone, QueryableByName)]
pub struct WaitingJob {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    pub job_type: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub queue_task_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub run_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::SmallInt)]
    pub priority: i16,
}

/// Gives this worker's running jobs back to the queue (graceful shutdown past
/// its grace period): each gets a new task id, which the caller pushes.
pub async fn release_running(pool: &DbPool, worker: &str) -> Result<Vec<WaitingJob>, DbError> {
    let mut conn = pool.get().await?;
    let ids: Vec<Uuid> =
        jobs::table.filter(jobs::status.eq("running")).filter(jobs::locked_by.eq(worker)).select(jobs::id).load(&mut conn).await?;
    drop(conn);
    requeue(pool, &ids, "released", "the worker shut down before the attempt finished").await
}

/// Of `job_ids`, those `worker` no longer holds: cancelled, finished, or
/// claimed by another worker after this one's claim lapsed.
pub async fn not_held_by(pool: &DbPool, worker: &str, job_ids: &[Uuid]) -> Result<Vec<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::id.eq_any(job_ids))
        .filter(jobs::status.ne("running").or(jobs::locked_by.is_distinct_from(worker)))
        .select(jobs::id)
        .load(&mut conn)
        .await?)
}

/// Jobs whose worker stopped renewing its claim more than `grace_seconds`
/// ago: they are put back as queued with a new task id, which the caller pushes.
pub async fn requeue_expired(pool: &DbPool, grace_seconds: f64, limit: i64) -> Result<Vec<WaitingJob>, DbError> {
    let mut conn = pool.get().await?;
    let ids: Vec<Uuid> = jobs::table
        .filter(jobs::status.eq("running"))
        .filter(jobs::lease_until.lt(Utc::now() - chrono::Duration::milliseconds((grace_seconds * 1000.0) as i64)))
        .select(jobs::id)
        .limit(limit)
        .load(&mut conn)
        .await?;
    drop(conn);
    requeue(pool, &ids, "interrupted", "the worker running this attempt stopped answering").await
}

/// Puts running jobs back as queued, each under a new apalis task id, and
/// closes their open attempt. The `status = 'running'` re-check makes a job
/// that finished in the meantime stay as it is.
async fn requeue(pool: &DbPool, ids: &[Uuid], attempt_outcome: &str, message: &str) -> Result<Vec<WaitingJob>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let task_ids: Vec<String> = ids.iter().map(|_| ulid::Ulid::new().to_string()).collect();
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "WITH fresh AS (
            SELECT unnest($1::uuid[]) AS id, unnest($2::text[]) AS task_id
         ), requeued AS (
            UPDATE jobs SET status = 'queued', run_at = now(), locked_by = NULL, lease_until = NULL,
                   queue_task_id = fresh.task_id, updated_at = now()
              FROM fresh
             WHERE jobs.id = fresh.id AND jobs.status = 'running'
            RETURNING jobs.id, jobs.tenant_id, jobs.job_type, jobs.status, jobs.queue_task_id, jobs.run_at, jobs.priority
         ), closed AS (
            UPDATE job_attempts SET finished_at = now(), outcome = $3, error_code = 'worker_lost', error_message = $4
             WHERE job_id IN (SELECT id FROM requeued) AND outcome IS NULL
         )
         SELECT * FROM requeued",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(ids)
    .bind::<diesel::sql_types::Array<Text>, _>(&task_ids)
    .bind::<Text, _>(attempt_outcome)
    .bind::<Text, _>(message)
    .load(&mut conn)
    .await?)
}

/// One page of waiting jobs, in id order after `after`, for the sweeper to
/// check against Redis.
pub async fn waiting_page(pool: &DbPool, after: Option<Uuid>, older_than_seconds: f64, limit: i64) -> Result<Vec<WaitingJob>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "SELECT id, tenant_id, job_type, status, queue_task_id, run_at, priority FROM jobs
          WHERE status IN ('queued', 'scheduled') AND queue_task_id IS NOT NULL
            AND id > coalesce($1, '00000000-0000-0000-0000-000000000000'::uuid)
            AND updated_at < now() - make_interval(secs => $2)
          ORDER BY id LIMIT $3",
    )
    .bind::<Nullable<SqlUuid>, _>(after)
    .bind::<Double, _>(older_than_seconds)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?)
}

/// Moves a waiting job to a new Redis task (a worker that is shutting down
/// received the old one but will not start it). Returns the job as it waits,
/// or `None` when the old task no longer stands for a waiting job.
pub async fn move_to_new_task(pool: &DbPool, job_id: Uuid, old_task_id: &str, new_task_id: &str) -> Result<Option<WaitingJob>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "UPDATE jobs SET queue_task_id = $3, updated_at = now()
          WHERE id = $1 AND queue_task_id = $2 AND status IN ('queued', 'scheduled')
         RETURNING id, tenant_id, job_type, status, queue_task_id, run_at, priority",
    )
    .bind::<SqlUuid, _>(job_id)
    .bind::<Text, _>(old_task_id)
    .bind::<Text, _>(new_task_id)
    .get_result(&mut conn)
    .await
    .optional()?)
}
