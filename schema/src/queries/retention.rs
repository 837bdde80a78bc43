//! Retention and erasure of tenants' content.
//!
//! Erasing keeps a row's bare record (ids, type, status, times, error code)
//! and empties what a person wrote or said: job payloads, results, error
//! messages and metadata; pipelines' step payloads; uploads' bytes, names
//! and hashes; event message bodies and receivers' answers; SMS texts;
//! attempt error messages; inbound callback bodies. The retention sweeper
//! (`peyk-worker`) calls the `erase_*` functions per tenant in bounded
//! batches; `DELETE /v1/jobs/{id}` calls [`erase_job`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{FileRow, JobRow, TenantId};

/// What a job's erasure emptied besides the job itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobErasure {
    pub attempts: usize,
    pub messages: usize,
    pub sms: usize,
    pub inbound_events: usize,
}

/// Why a job could not be erased.
#[derive(Debug)]
pub enum EraseError {
    /// Queued, scheduled or running: its payload is still needed.
    NotFinished(String),
    Db(DbError),
}

impl<E: Into<DbError>> From<E> for EraseError {
    fn from(e: E) -> Self {
        Self::Db(e.into())
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The uploads a job's payload names (`peyk_job_file_ids`, the SQL function
/// the upload sweeper's index is built on), and whether it has finished.
pub async fn job_files(pool: &DbPool, tenant: TenantId, job: Uuid) -> Result<Option<(Vec<Uuid>, bool)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<Array<diesel::sql_types::Nullable<SqlUuid>>>)]
        files: Option<Vec<Option<Uuid>>>,
        #[diesel(sql_type = Bool)]
        finished: bool,
    }
    let mut conn = pool.get().await?;
    let row: Option<Row> = diesel::sql_query(
        "SELECT peyk_job_file_ids(job_type, payload) AS files, finished_at IS NOT NULL AS finished
         FROM jobs WHERE tenant_id = $1 AND id = $2",
    )
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<SqlUuid, _>(job)
    .get_result(&mut conn)
    .await
    .optional()?;
    Ok(row.map(|row| (row.files.unwrap_or_default().into_iter().flatten().collect(), row.finished)))
}

/// A file no running pipeline's step and no schedule's job names (`f`).
const NOT_PLANNED: &str = "NOT EXISTS (SELECT 1 FROM pipelines p WHERE p.tenant_id = f.tenant_id AND p.finished_at IS NULL
                 AND strpos(p.steps::text, f.id::text) > 0)
           AND NOT EXISTS (SELECT 1 FROM schedules s WHERE s.tenant_id = f.tenant_id AND strpos(s.target::text, f.id::text) > 0)";

/// Of `ids`, the uploads that no unfinished job other than `except`, no
/// running pipeline and no schedule names (what may be erased without
/// failing another job).
pub async fn unneeded_files(pool: &DbPool, tenant: TenantId, ids: &[Uuid], except: Uuid) -> Result<Vec<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT f.id FROM files f WHERE f.tenant_id = $1 AND f.id = ANY($2) AND NOT EXISTS (
             SELECT 1 FROM jobs j WHERE j.job_type IN ('transcription', 'email') AND j.tenant_id = f.tenant_id
                 AND peyk_job_file_ids(j.job_type, j.payload) @> ARRAY[f.id] AND j.finished_at IS NULL AND j.id <> $3)
           AND {NOT_PLANNED}"
    ))
    .bind::<SqlUuid, _>(tenant.0)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<SqlUuid, _>(except)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Uploads of `tenant` older than `before` that no job needs any more: none
/// unfinished names them, none finished at or after `before` does, no
/// running pipeline's step and no schedule's job does. Oldest first.
pub async fn uploads_to_erase(pool: &DbPool, tenant: Uuid, before: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, DbError> {
    let mut conn = pool.get().await?;
    let rows: Vec<Id> = diesel::sql_query(format!(
        "SELECT f.id FROM files f
         WHERE f.tenant_id = $1 AND f.erased_at IS NULL AND f.created_at < $2
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_type IN ('transcription', 'email')
                 AND peyk_job_file_ids(j.job_type, j.payload) @> ARRAY[f.id] AND j.tenant_id = f.tenant_id
                 AND (j.finished_at IS NULL OR j.finished_at >= $2))
           AND {NOT_PLANNED}
         ORDER BY f.created_at LIMIT $3"
    ))
    .bind::<SqlUuid, _>(tenant)
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Marks an upload erased (its bytes gone from the store first): the record
/// keeps its id, size, length and times; name, type and hash go.
pub async fn mark_file_erased(pool: &DbPool, tenant: Uuid, id: Uuid) -> Result<Option<FileRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "UPDATE files SET filename = '', content_type = NULL, sha256 = '', erased_at = coalesce(erased_at, now())
         WHERE tenant_id = $1 AND id = $2 RETURNING *",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<SqlUuid, _>(id)
    .get_result(&mut conn)
    .await
    .optional()?)
}

/// What erasing a job's content sets: the bare record stays.
const ERASE_JOB: &str =
    "payload = '{}', result = NULL, error_message = NULL, metadata = '{}', callback = NULL, erased_at = coalesce(erased_at, now())";

/// Erases the content of one finished job and of what it left behind: its
/// attempts' error messages, the bodies of its event messages (and the
/// receivers' answers), its SMS texts, the callbacks that concerned it.
/// Erasing an erased job again changes nothing.
pub async fn erase_job(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<(JobRow, JobErasure)>, EraseError> {
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<_, EraseError> {
        let status: Option<(String, Option<DateTime<Utc>>)> = crate::schema::jobs::table
            .filter(crate::schema::jobs::tenant_id.eq(tenant.0))
            .filter(crate::schema::jobs::id.eq(id))
            .select((crate::schema::jobs::status, crate::schema::jobs::finished_at))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let Some((status, finished_at)) = status else { return Ok(None) };
        if finished_at.is_none() {
            return Err(EraseError::NotFinished(status));
        }
        let job: JobRow = diesel::sql_query(format!("UPDATE jobs SET {ERASE_JOB} WHERE id = $1 RETURNING *"))
            .bind::<SqlUuid, _>(id)
            .get_result(conn)
            .await?;
        let attempts = diesel::sql_query("UPDATE job_attempts SET error_message = NULL WHERE job_id = $1 AND error_message IS NOT NULL")
            .bind::<SqlUuid, _>(id)
            .execute(conn)
            .await?;
        // A job's messages were written after it was created: ids
        // (`msg_` + UUIDv7) from its creation on.
        let since = format!("msg_{}", crate::queries::jobs::first_id_at(job.created_at - chrono::Duration::hours(1)).simple());
        let message_ids: Vec<MessageId> = diesel::sql_query(
            "SELECT id FROM webhook_messages WHERE tenant_id = $1 AND id >= $2 AND erased_at IS NULL
                       AND (callback_job_id = $3 OR payload -> 'data' ->> 'id' = $3::text)",
        )
        .bind::<SqlUuid, _>(tenant.0)
        .bind::<Text, _>(&since)
        .bind::<SqlUuid, _>(id)
        .load(conn)
        .await?;
        let message_ids: Vec<String> = message_ids.into_iter().map(|m| m.id).collect();
        let messages = erase_messages(conn, &message_ids).await?;
        let sms = diesel::sql_query(
            "UPDATE sms_outbox SET message = NULL, tokens = NULL WHERE job_id = $1 AND (message IS NOT NULL OR tokens IS NOT NULL)",
        )
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
        let inbound_events = diesel::sql_query("UPDATE inbound_events SET body = '', query = NULL WHERE job_id = $1 AND body <> ''")
            .bind::<SqlUuid, _>(id)
            .execute(conn)
            .await?;
        Ok(Some((job, JobErasure { attempts, messages, sms, inbound_events })))
    })
    .await
}

#[derive(QueryableByName)]
struct MessageId {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Empties event messages' bodies (keeping the event type, time and the
/// id of what the event was about) and the receivers' answers to them.
async fn erase_messages(conn: &mut diesel_async::AsyncPgConnection, ids: &[String]) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let erased = diesel::sql_query(
        "UPDATE webhook_messages SET erased_at = now(), payload = jsonb_build_object(
             'type', payload -> 'type', 'timestamp', payload -> 'timestamp',
             'data', jsonb_build_object('id', payload -> 'data' -> 'id', 'erased', true))
         WHERE id = ANY($1)",
    )
    .bind::<Array<Text>, _>(ids)
    .execute(conn)
    .await?;
    diesel::sql_query("UPDATE webhook_attempts SET response_excerpt = NULL WHERE message_id = ANY($1) AND response_excerpt IS NOT NULL")
        .bind::<Array<Text>, _>(ids)
        .execute(conn)
        .await?;
    Ok(erased)
}

/// Erases the content of up to `limit` of `tenant`'s jobs that finished
/// before `before`: of the types in `types` when `among` is true, of the
/// other types when it is false. Answers how many.
pub async fn erase_finished_jobs(
    pool: &DbPool,
    tenant: Uuid,
    types: &[&str],
    among: bool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(format!(
        "UPDATE jobs SET {ERASE_JOB} WHERE id IN (
             SELECT id FROM jobs WHERE tenant_id = $1 AND erased_at IS NULL AND finished_at IS NOT NULL
               AND finished_at < $2 AND (job_type = ANY($3)) = $4 LIMIT $5)"
    ))
    .bind::<SqlUuid, _>(tenant)
    .bind::<Timestamptz, _>(before)
    .bind::<Array<Text>, _>(types)
    .bind::<Bool, _>(among)
    .bind::<BigInt, _>(limit)
    .execute(&mut conn)
    .await?)
}

/// Erases the step payloads and metadata of up to `limit` of `tenant`'s
/// pipelines that finished before `before`: those with a step of a type in
/// `types` when `among` is true, the others when it is false.
pub async fn erase_finished_pipelines(
    pool: &DbPool,
    tenant: Uuid,
    types: &[&str],
    among: bool,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "UPDATE pipelines SET erased_at = now(), metadata = '{}',
             steps = (SELECT coalesce(jsonb_agg(step || '{\"payload\": {}}'), '[]') FROM jsonb_array_elements(steps) AS step)
         WHERE id IN (
             SELECT id FROM pipelines p WHERE tenant_id = $1 AND erased_at IS NULL AND finished_at IS NOT NULL AND finished_at < $2
               AND EXISTS (SELECT 1 FROM jsonb_array_elements(p.steps) AS step WHERE step ->> 'type' = ANY($3)) = $4
             LIMIT $5)",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<Timestamptz, _>(before)
    .bind::<Array<Text>, _>(types)
    .bind::<Bool, _>(among)
    .bind::<BigInt, _>(limit)
    .execute(&mut conn)
    .await?)
}

/// Empties the error messages of up to `limit` of `tenant`'s attempts
/// that started before `before`.
pub async fn erase_attempt_errors(pool: &DbPool, tenant: Uuid, before: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    erase_batch(
        pool,
        "UPDATE job_attempts SET error_message = NULL WHERE id IN (
             SELECT a.id FROM job_attempts a JOIN jobs j ON j.id = a.job_id
             WHERE a.error_message IS NOT NULL AND a.started_at < $2 AND j.tenant_id = $1 LIMIT $3)",
        (tenant, before, limit),
    )
    .await
}

/// Runs one erasing statement over `$1` tenant, `$2` before, `$3` limit.
async fn erase_batch(pool: &DbPool, statement: &str, (tenant, before, limit): (Uuid, DateTime<Utc>, i64)) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(statement)
        .bind::<SqlUuid, _>(tenant)
        .bind::<Timestamptz, _>(before)
        .bind::<BigInt, _>(limit)
        .execute(&mut conn)
        .await?)
}

/// Empties the bodies of up to `limit` of `tenant`'s event messages
/// created before `before`, and the receivers' answers to them.
pub async fn erase_message_bodies(pool: &DbPool, tenant: Uuid, before: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    let ids: Vec<MessageId> = diesel::sql_query(
        "SELECT id FROM webhook_messages WHERE tenant_id = $1 AND erased_at IS NULL AND created_at < $2 ORDER BY created_at LIMIT $3",
    )
    .bind::<SqlUuid, _>(tenant)
    .bind::<Timestamptz, _>(before)
    .bind::<BigInt, _>(limit)
    .load(&mut conn)
    .await?;
    let ids: Vec<String> = ids.into_iter().map(|m| m.id).collect();
    erase_messages(&mut conn, &ids).await
}

/// Empties the texts (message, template tokens) of up to `limit` of
/// `tenant`'s SMS outbox rows created before `before`; the recipient and
/// the times stay (they are the exactly-once record).
pub async fn erase_sms_texts(pool: &DbPool, tenant: Uuid, before: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    erase_batch(
        pool,
        "UPDATE sms_outbox SET message = NULL, tokens = NULL WHERE id IN (
             SELECT id FROM sms_outbox WHERE tenant_id = $1 AND (message IS NOT NULL OR tokens IS NOT NULL) AND created_at < $2 LIMIT $3)",
        (tenant, before, limit),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_of_a_millisecond_sorts_before_its_ids() {
        let at = Utc::now();
        let floor = crate::queries::jobs::first_id_at(at);
        assert_eq!(floor.get_version_num(), 7);
        let made = Uuid::now_v7();
        assert!(floor.simple().to_string() <= made.simple().to_string());
        assert!(crate::queries::jobs::first_id_at(at + chrono::Duration::seconds(1)).simple().to_string() > made.simple().to_string());
    }
}
