//! The API's queries on jobs. Every one is scoped to a tenant: a job of
//! another tenant is indistinguishable from a job that does not exist.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{JobRow, NewJob, TenantId};
use crate::prepared::prepared;
use crate::schema::jobs;
use crate::status::JobStatus;

/// Inserts a batch of jobs in one statement (and one commit). Rows whose
/// `(tenant_id, idempotency_key)` already exists are skipped: one answer per
/// job, in order, `None` for a skipped one.
///
/// The rows travel as one array per column (`unnest`): the statement is the
/// same whatever the batch's size, so PostgreSQL parses and plans 16
/// parameters, not a `VALUES` list of 16 per row (16,000 for a bulk
/// submission of 1,000, where parsing and planning took most of
/// PostgreSQL's time).
pub async fn insert_batch(pool: &DbPool, batch: Vec<NewJob>) -> Result<Vec<Option<JobRow>>, DbError> {
    let mut conn = pool.get().await?;
    insert_each(&mut conn, batch).await
}

/// [`insert_batch`] on a connection the caller holds (e.g. inside its own
/// transaction), answering only the rows inserted.
pub async fn insert_batch_on(conn: &mut AsyncPgConnection, batch: Vec<NewJob>) -> Result<Vec<JobRow>, DbError> {
    Ok(insert_each(conn, batch).await?.into_iter().flatten().collect())
}

/// The rows are built here from the jobs and the two columns PostgreSQL
/// fills (`created_at`, equal to `updated_at` in a new row), not sent back
/// whole: `RETURNING *` had PostgreSQL turn every payload back into JSON text
/// and the API parse it again, for values it already had (9,628 submissions/s
/// without it against 8,834–9,129 with it, 2026-12-06, `bench/run.sh`).
async fn insert_each(conn: &mut AsyncPgConnection, batch: Vec<NewJob>) -> Result<Vec<Option<JobRow>>, DbError> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        created_at: DateTime<Utc>,
    }
    let inserted: HashMap<Uuid, DateTime<Utc>> =
        insert_returning::<Inserted>(conn, &batch, "id, created_at").await?.into_iter().map(|row| (row.id, row.created_at)).collect();
    Ok(batch.into_iter().map(|job| inserted.get(&job.id).map(|created_at| job.stored_at(*created_at))).collect())
}

/// [`insert_batch`] answering only the ids of the rows inserted: for a
/// caller that still has the jobs (a bulk submission), rows sent back whole
/// cost PostgreSQL and the API more than the insert (every payload turned
/// back into JSON text and parsed again).
pub async fn insert_batch_ids(pool: &DbPool, batch: &[NewJob]) -> Result<Vec<Uuid>, DbError> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let mut conn = pool.get().await?;
    let rows: Vec<Inserted> = insert_returning(&mut conn, batch, "id").await?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}

/// The batch insert, `RETURNING` the given columns as `T`.
async fn insert_returning<T>(conn: &mut AsyncPgConnection, batch: &[NewJob], returning: &str) -> Result<Vec<T>, DbError>
where
    T: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    use diesel::sql_types::{Array, Bytea, Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    fn column<'a, T>(batch: &'a [NewJob], value: impl Fn(&'a NewJob) -> T) -> Vec<T> {
        batch.iter().map(value).collect()
    }
    // `returning` is one of two fixed lists: two prepared statements.
    Ok(prepared(
        diesel::sql_query(format!(
            "INSERT INTO jobs (id, tenant_id, job_type, status, payload, max_attempts, priority, idempotency_key,
                           request_hash, run_at, queue_task_id, pipeline_id, pipeline_step, schedule_id, metadata, callback)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::int4[], $7::int2[],
                              $8::text[], $9::bytea[], $10::timestamptz[], $11::text[], $12::uuid[], $13::int4[], $14::uuid[],
                              $15::jsonb[], $16::jsonb[])
         ON CONFLICT DO NOTHING
         RETURNING {returning}"
        ))
        .bind::<Array<SqlUuid>, _>(column(batch, |j| j.id))
        .bind::<Array<SqlUuid>, _>(column(batch, |j| j.tenant_id))
        .bind::<Array<Text>, _>(column(batch, |j| j.job_type.as_str()))
        .bind::<Array<Text>, _>(column(batch, |j| j.status.as_str()))
        .bind::<Array<Jsonb>, _>(column(batch, |j| &j.payload))
        .bind::<Array<Int4>, _>(column(batch, |j| j.max_attempts))
        .bind::<Array<Int2>, _>(column(batch, |j| j.priority))
        .bind::<Array<Nullable<Text>>, _>(column(batch, |j| j.idempotency_key.as_deref()))
        .bind::<Array<Nullable<Bytea>>, _>(column(batch, |j| j.request_hash.as_deref()))
        .bind::<Array<Timestamptz>, _>(column(batch, |j| j.run_at))
        .bind::<Array<Nullable<Text>>, _>(column(batch, |j| j.queue_task_id.as_deref()))
        .bind::<Array<Nullable<SqlUuid>>, _>(column(batch, |j| j.pipeline_id))
        .bind::<Array<Nullable<Int4>>, _>(column(batch, |j| j.pipeline_step))
        .bind::<Array<Nullable<SqlUuid>>, _>(column(batch, |j| j.schedule_id))
        .bind::<Array<Jsonb>, _>(column(batch, |j| &j.metadata))
        .bind::<Array<Nullable<Jsonb>>, _>(column(batch, |j| j.callback.as_ref())),
    )
    .load(conn)
    .await?)
}

pub async fn find_by_idempotency_key(pool: &DbPool, tenant: TenantId, key: &str) -> Result<Option<JobRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::tenant_id.eq(tenant.0))
        .filter(jobs::idempotency_key.eq(key))
        .select(JobRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Whose job this is (an admin's console opens any tenant's job).
pub async fn tenant_of(pool: &DbPool, id: Uuid) -> Result<Option<TenantId>, DbError> {
    let mut conn = pool.get().await?;
    let tenant: Option<Uuid> = jobs::table.filter(jobs::id.eq(id)).select(jobs::tenant_id).first(&mut conn).await.optional()?;
    Ok(tenant.map(TenantId))
}

pub async fn get(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<JobRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::tenant_id.eq(tenant.0))
        .filter(jobs::id.eq(id))
        .select(JobRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub job_type: Option<String>,
    pub status: Option<JobStatus>,
    /// Only jobs this schedule's fires submitted.
    pub schedule_id: Option<Uuid>,
    /// Only jobs whose metadata holds every one of these keys and values.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Only jobs created at or after this time, and before that one (on the
    /// id index: a UUIDv7 id starts with its creation's millisecond).
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Only the job submitted with this idempotency key (its unique index).
    pub idempotency_key: Option<String>,
    /// Leave out jobs whose content was erased (the console's dead letters:
    /// a discarded dead job is an erased one).
    pub not_erased: bool,
    /// Only jobs older than this one (the cursor of the previous page).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// How far a job's id time may be from its `created_at` (the batching
/// inserter's wait, the clocks of the API's and the database's machines).
const ID_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The smallest UUIDv7 of `at`'s millisecond (random bits zero): every id
/// made at or after `at` sorts at or above it, as a value and as text.
pub fn first_id_at(at: DateTime<Utc>) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis().max(0) as u64, &[0; 10]).into_uuid()
}

/// How many jobs, newest first from the cursor, one page looks through
/// when its filter has no index of its own (a type, or a status other than
/// failed and dead): a filter that matches one job in ten thousand would
/// otherwise read every job of the tenant to fill a page.
pub const SCAN_WINDOW: i64 = 10_000;

/// A page of `list`.
pub struct JobPage {
    pub rows: Vec<JobRow>,
    /// Where the page stopped looking, short of the filter's end: the next
    /// page starts below this id, even when `rows` is short or empty.
    pub looked_to: Option<Uuid>,
}

/// Newest first. Ids are UUIDv7, so id order is creation order. `tenant`
/// `None`: every tenant's jobs (admins only).
pub async fn list(pool: &DbPool, tenant: Option<TenantId>, filter: &ListFilter) -> Result<JobPage, DbError> {
    let mut conn = pool.get().await?;
    let looked_to = if needs_window(filter) { window_end(&mut conn, tenant, filter).await? } else { None };
    let mut query = jobs::table.select(JobRow::as_select()).order(jobs::id.desc()).limit(filter.limit).into_boxed();
    if let Some(end) = looked_to {
        query = query.filter(jobs::id.ge(end));
    }
    Ok(JobPage { rows: filtered(query, tenant, filter).load(&mut conn).await?, looked_to })
}

/// Whether only a type or status narrows the list, which no index serves
/// (failed and dead have theirs; metadata, schedule and idempotency key
/// find their few rows by their own indexes).
fn needs_window(filter: &ListFilter) -> bool {
    let unindexed_status = filter.status.is_some_and(|s| !matches!(s, JobStatus::Failed | JobStatus::Dead));
    (filter.job_type.is_some() || unindexed_status)
        && filter.metadata.is_empty()
        && filter.schedule_id.is_none()
        && filter.idempotency_key.is_none()
}

/// The `SCAN_WINDOW`th job the filter's page would look through (its
/// tenant, time range and cursor, on the tenant's newest-first index), or
/// `None` when there are fewer.
async fn window_end(conn: &mut AsyncPgConnection, tenant: Option<TenantId>, filter: &ListFilter) -> Result<Option<Uuid>, DbError> {
    let unnarrowed = ListFilter { job_type: None, status: None, not_erased: false, ..filter.clone() };
    let query = jobs::table.select(jobs::id).order(jobs::id.desc()).offset(SCAN_WINDOW - 1).limit(1).into_boxed();
    Ok(filtered(query, tenant, &unnarrowed).first(conn).await.optional()?)
}

/// Dead letters (dead, not erased) of each of `types`, each counted up to
/// `cap`: one tenant's, or every tenant's. Each count reads at most `cap`
/// entries of a partial index that holds only dead letters, without the
/// table (`jobs_dead_letters`), so it stays fast whatever the table holds.
pub async fn dead_by_type(pool: &DbPool, tenant: Option<TenantId>, types: &[String], cap: i64) -> Result<Vec<(String, i64)>, DbError> {
    use diesel::sql_types::{Array, BigInt, Text, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Text)]
        job_type: String,
        #[diesel(sql_type = BigInt)]
        dead: i64,
    }
    let statement = |of_tenant: &str| {
        format!(
            "SELECT t.job_type, (SELECT count(*) FROM (SELECT 1 FROM jobs j
                 WHERE j.status = 'dead' AND j.erased_at IS NULL AND j.job_type = t.job_type {of_tenant} LIMIT $2) s) AS dead
             FROM unnest($1::text[]) AS t(job_type)"
        )
    };
    let mut conn = pool.get().await?;
    let counts: Vec<Count> = match tenant {
        Some(tenant) => {
            diesel::sql_query(statement("AND j.tenant_id = $3"))
                .bind::<Array<Text>, _>(types)
                .bind::<BigInt, _>(cap)
                .bind::<SqlUuid, _>(tenant.0)
                .load(&mut conn)
                .await?
        }
        None => diesel::sql_query(statement("")).bind::<Array<Text>, _>(types).bind::<BigInt, _>(cap).load(&mut conn).await?,
    };
    Ok(counts.into_iter().map(|c| (c.job_type, c.dead)).collect())
}

/// The ids `list` would return with their tenants, newest first (the
/// console's bulk actions: `filter.limit` bounds how many, so nothing counts
/// the whole table).
pub async fn list_ids(pool: &DbPool, tenant: Option<TenantId>, filter: &ListFilter) -> Result<Vec<(Uuid, TenantId)>, DbError> {
    let mut conn = pool.get().await?;
    let query = jobs::table.select((jobs::id, jobs::tenant_id)).order(jobs::id.desc()).limit(filter.limit).into_boxed();
    let rows: Vec<(Uuid, Uuid)> = filtered(query, tenant, filter).load(&mut conn).await?;
    Ok(rows.into_iter().map(|(id, tenant)| (id, TenantId(tenant))).collect())
}

fn filtered<'a, ST: 'a>(
    mut query: jobs::BoxedQuery<'a, diesel::pg::Pg, ST>,
    tenant: Option<TenantId>,
    filter: &ListFilter,
) -> jobs::BoxedQuery<'a, diesel::pg::Pg, ST> {
    if let Some(tenant) = tenant {
        query = query.filter(jobs::tenant_id.eq(tenant.0));
    }
    if let Some(key) = &filter.idempotency_key {
        query = query.filter(jobs::idempotency_key.eq(key.clone()));
    }
    // An id is made when the API accepts the job, by the API's clock; the
    // row's `created_at` is the database's, a moment later (and another
    // machine's clock). The id bounds, widened by ID_CLOCK_SLACK, keep the
    // scan on the id index; `created_at` makes the bounds exact.
    if let Some(after) = filter.created_after {
        query = query.filter(jobs::id.ge(first_id_at(after - ID_CLOCK_SLACK))).filter(jobs::created_at.ge(after));
    }
    if let Some(before) = filter.created_before {
        query = query.filter(jobs::id.lt(first_id_at(before + ID_CLOCK_SLACK))).filter(jobs::created_at.lt(before));
    }
    if filter.not_erased {
        query = query.filter(jobs::erased_at.is_null());
    }
    if let Some(job_type) = &filter.job_type {
        query = query.filter(jobs::job_type.eq(job_type.clone()));
    }
    if let Some(status) = filter.status {
        query = query.filter(jobs::status.eq(status.as_str()));
    }
    if let Some(schedule) = filter.schedule_id {
        query = query.filter(jobs::schedule_id.eq(schedule));
    }
    if !filter.metadata.is_empty() {
        // `@>` on the GIN index (jobs_metadata): the ids of the rows holding
        // every pair, then the tenant and the page among those.
        query = query
            .filter(jobs::metadata.contains(serde_json::Value::Object(filter.metadata.clone())))
            // The index holds only jobs with metadata (a literal, so that the planner matches it).
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("jobs.metadata <> '{}'::jsonb"));
    }
    if let Some(before) = filter.before {
        query = query.filter(jobs::id.lt(before));
    }
    query
}

/// Cancels a job that has not finished. A queued or scheduled job will never
/// run (the worker's claim only takes queued/scheduled rows); a running job is
/// marked, and the worker discards its result when it finishes.
/// `Ok(None)`: no such job; `Err`-free `Some(row)` with a terminal status
/// other than cancelled: it had already finished.
pub async fn cancel(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<JobRow>, DbError> {
    let mut conn = pool.get().await?;
    let updated = diesel::update(jobs::table.filter(jobs::tenant_id.eq(tenant.0)).filter(jobs::id.eq(id)).filter(jobs::status.eq_any([
        "queued",
        "scheduled",
        "running",
    ])))
    .set((
        jobs::status.eq("cancelled"),
        jobs::finished_at.eq(diesel::dsl::now),
        jobs::updated_at.eq(diesel::dsl::now),
        jobs::lease_until.eq(None::<DateTime<Utc>>),
    ))
    .returning(JobRow::as_returning())
    .get_result(&mut conn)
    .await
    .optional()?;
    match updated {
        Some(row) => Ok(Some(row)),
        None => get(pool, tenant, id).await,
    }
}

/// Puts a `failed` or `dead` job back in its queue with a fresh attempt
/// budget. Returns the updated row, or the unchanged row when its status does
/// not allow a retry, or `None` when there is no such job.
pub async fn retry(pool: &DbPool, tenant: TenantId, id: Uuid, queue_task_id: &str) -> Result<Option<(JobRow, bool)>, DbError> {
    let mut conn = pool.get().await?;
    let updated = diesel::update(
        jobs::table
            .filter(jobs::tenant_id.eq(tenant.0))
            .filter(jobs::id.eq(id))
            .filter(jobs::status.eq_any(["failed", "dead"]))
            // An erased job has nothing left to run.
            .filter(jobs::erased_at.is_null()),
    )
    .set((
        jobs::status.eq("queued"),
        jobs::attempts.eq(0),
        jobs::run_at.eq(diesel::dsl::now),
        jobs::queue_task_id.eq(queue_task_id),
        jobs::finished_at.eq(None::<DateTime<Utc>>),
        jobs::progress.eq(None::<i16>),
        jobs::updated_at.eq(diesel::dsl::now),
    ))
    .returning(JobRow::as_returning())
    .get_result(&mut conn)
    .await
    .optional()?;
    match updated {
        Some(row) => Ok(Some((row, true))),
        None => Ok(get(pool, tenant, id).await?.map(|row| (row, false))),
    }
}

/// Dead jobs per type, across tenants (for metrics).
pub async fn dead_counts(pool: &DbPool) -> Result<Vec<(String, i64)>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::status.eq("dead"))
        .group_by(jobs::job_type)
        .select((jobs::job_type, diesel::dsl::count_star()))
        .load(&mut conn)
        .await?)
}

/// How long the oldest queued job of `job_type` has been due, in seconds
/// (None when none waits). Walks the partial index of waiting jobs from the
/// oldest id, so it stays cheap under a large backlog.
pub async fn oldest_waiting_seconds(pool: &DbPool, job_type: &str) -> Result<Option<f64>, DbError> {
    let mut conn = pool.get().await?;
    let run_at: Option<DateTime<Utc>> = jobs::table
        .filter(jobs::status.eq("queued"))
        .filter(jobs::job_type.eq(job_type))
        .order(jobs::id.asc())
        .select(jobs::run_at)
        .first(&mut conn)
        .await
        .optional()?;
    Ok(run_at.map(|at| (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0))
}

/// The job's own callback (`jobs.callback`), if it has one.
pub async fn callback_of(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<serde_json::Value>, DbError> {
    let mut conn = pool.get().await?;
    Ok(jobs::table
        .filter(jobs::tenant_id.eq(tenant.0))
        .filter(jobs::id.eq(id))
        .select(jobs::callback)
        .first::<Option<serde_json::Value>>(&mut conn)
        .await
        .optional()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::first_id_at;
    use chrono::{Duration, TimeZone, Utc};
    use uuid::{NoContext, Timestamp, Uuid};

    /// An id made in a millisecond sorts at or after that millisecond's
    /// first id and before the next one's.
    #[test]
    fn the_first_id_of_a_millisecond_bounds_the_ids_made_in_it() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 30, 0).unwrap() + Duration::milliseconds(123);
        let millis = at.timestamp_millis() as u64;
        for _ in 0..100 {
            let id = Uuid::new_v7(Timestamp::from_unix(NoContext, millis / 1000, (millis % 1000) as u32 * 1_000_000));
            assert!(first_id_at(at) <= id);
            assert!(id < first_id_at(at + Duration::milliseconds(1)));
        }
        assert_eq!(first_id_at(at).get_version_num(), 7);
    }
}
