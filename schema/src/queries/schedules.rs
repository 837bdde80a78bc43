//! Schedules and their fires: the API's reads and edits (scoped to a
//! tenant), and what the workers' scheduler runs in its one transaction per
//! batch of due schedules.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Nullable, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::{DbError, DbPool};
use crate::models::{FireRow, JobRow, NewJob, PipelineRow, ScheduleRow, TenantId};
use crate::schema::{jobs, pipelines, schedule_fires, schedules};

/// The database's clock (not the transaction's start): every decision about
/// what is due uses it, so workers' clocks play no part.
pub async fn clock(conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, DbError> {
    Ok(diesel::select(sql::<Timestamptz>("clock_timestamp()")).get_result(conn).await?)
}

/// The database's clock, from the pool.
pub async fn now(pool: &DbPool) -> Result<DateTime<Utc>, DbError> {
    let mut conn = pool.get().await?;
    clock(&mut conn).await
}

/// Stores a new schedule; `Ok(None)` when the tenant has one of that name.
pub async fn create(pool: &DbPool, row: &ScheduleRow) -> Result<Option<ScheduleRow>, DbError> {
    let mut conn = pool.get().await?;
    match diesel::insert_into(schedules::table).values(row).returning(ScheduleRow::as_returning()).get_result(&mut conn).await {
        Ok(row) => Ok(Some(row)),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<ScheduleRow>, DbError> {
    let mut conn = pool.get().await?;
    Ok(schedules::table
        .filter(schedules::tenant_id.eq(tenant.0))
        .filter(schedules::id.eq(id))
        .select(ScheduleRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// Newest first; `before`: the cursor (an id) of the previous page.
pub async fn list(pool: &DbPool, tenant: TenantId, before: Option<Uuid>, limit: i64) -> Result<Vec<ScheduleRow>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = schedules::table
        .filter(schedules::tenant_id.eq(tenant.0))
        .select(ScheduleRow::as_select())
        .order(schedules::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(schedules::id.lt(before));
    }
    Ok(query.load(&mut conn).await?)
}

/// Locks one of the tenant's schedules for the rest of the transaction.
async fn lock(conn: &mut AsyncPgConnection, tenant: Uuid, id: Uuid) -> Result<Option<ScheduleRow>, DbError> {
    Ok(schedules::table
        .filter(schedules::tenant_id.eq(tenant))
        .filter(schedules::id.eq(id))
        .select(ScheduleRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// How an edit of a schedule went.
#[derive(Debug)]
pub enum Edited<E> {
    /// With the fires that had been stored ahead of their time, undone so
    /// that the schedule fires them as it now stands.
    Saved(Box<ScheduleRow>, Vec<Unstaged>),
    NotFound,
    /// The edit refused the row (e.g. invalid fields).
    Refused(E),
    /// Another schedule of the tenant has the new name.
    NameTaken,
}

/// Locks the schedule (waiting for a scheduler that is firing it), undoes
/// its fires stored ahead of their time (see [`unstage`]), lets `edit`
/// change it with the database's clock at hand, and saves it.
pub async fn edit<E, F>(pool: &DbPool, tenant: TenantId, id: Uuid, edit: F) -> Result<Edited<E>, DbError>
where
    E: Send + 'static,
    F: FnOnce(ScheduleRow, DateTime<Utc>) -> Result<ScheduleRow, E> + Send + 'static,
{
    let mut conn = pool.get().await?;
    let outcome = conn
        .transaction(async move |conn| -> Result<Edited<E>, DieselError> {
            let Some(row) = schedules::table
                .filter(schedules::tenant_id.eq(tenant.0))
                .filter(schedules::id.eq(id))
                .select(ScheduleRow::as_select())
                .for_update()
                .first(conn)
                .await
                .optional()?
            else {
                return Ok(Edited::NotFound);
            };
            let now = diesel::select(sql::<Timestamptz>("clock_timestamp()")).get_result(conn).await?;
            let (earliest, unstaged) = unstage(conn, id, now).await?;
            let row = ScheduleRow { next_fire_at: earliest.into_iter().chain(row.next_fire_at).min(), ..row };
            let changed = match edit(row, now) {
                Ok(changed) => changed,
                Err(refused) => return Ok(Edited::Refused(refused)),
            };
            let saved = diesel::update(schedules::table.filter(schedules::id.eq(id)))
                .set((
                    schedules::name.eq(&changed.name),
                    schedules::cron.eq(&changed.cron),
                    schedules::every_seconds.eq(changed.every_seconds),
                    schedules::timezone.eq(&changed.timezone),
                    schedules::calendar.eq(&changed.calendar),
                    schedules::anchor_at.eq(changed.anchor_at),
                    schedules::start_at.eq(changed.start_at),
                    schedules::end_at.eq(changed.end_at),
                    schedules::target.eq(&changed.target),
                    schedules::overlap.eq(&changed.overlap),
                    schedules::misfire.eq(&changed.misfire),
                    schedules::misfire_cap.eq(changed.misfire_cap),
                    schedules::misfire_grace_seconds.eq(changed.misfire_grace_seconds),
                    schedules::paused.eq(changed.paused),
                    schedules::next_fire_at.eq(changed.next_fire_at),
                    schedules::buffered_fire_at.eq(changed.buffered_fire_at),
                    schedules::updated_at.eq(now),
                ))
                .returning(ScheduleRow::as_returning())
                .get_result(conn)
                .await?;
            Ok(Edited::Saved(Box::new(saved), unstaged))
        })
        .await;
    match outcome {
        Ok(edited) => Ok(edited),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(Edited::NameTaken),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a schedule and its history (the jobs of its past fires stay;
/// those of fires stored ahead of their time go); `None` when there is none.
pub async fn delete(pool: &DbPool, tenant: TenantId, id: Uuid) -> Result<Option<Vec<Unstaged>>, DbError> {
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Option<Vec<Unstaged>>, DbError> {
        if lock(conn, tenant.0, id).await?.is_none() {
            return Ok(None);
        }
        let now = clock(conn).await?;
        let (_, unstaged) = unstage(conn, id, now).await?;
        diesel::delete(schedules::table.filter(schedules::id.eq(id))).execute(conn).await?;
        Ok(Some(unstaged))
    })
    .await
}

/// A job of a fire stored ahead of its time, deleted unrun: what its
/// submission was charged (for the quota refund).
#[derive(Debug, Clone, QueryableByName)]
pub struct Unstaged {
    #[diesel(sql_type = Timestamptz)]
    pub fire_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    pub job_type: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Jsonb>)]
    pub payload: Option<serde_json::Value>,
    /// The pipeline's steps when the fire submitted a pipeline.
    #[diesel(sql_type = Nullable<diesel::sql_types::Int4>)]
    pub pipeline_steps: Option<i32>,
}

/// Undoes the fires of `schedule` recorded for times after `now`: a
/// scheduler stores a fire and its job up to its lookahead early (the job
/// waits as `scheduled`; see [`fire_due`]). Their jobs (not started: they
/// may not start before their time) and pipelines are deleted with them;
/// an entry already pushed for such a job finds no job and is dropped.
/// Answers the earliest fire time undone (where the schedule goes on
/// from) and what each fire had submitted.
async fn unstage(
    conn: &mut AsyncPgConnection,
    schedule: Uuid,
    now: DateTime<Utc>,
) -> Result<(Option<DateTime<Utc>>, Vec<Unstaged>), DieselError> {
    let unstaged: Vec<Unstaged> = diesel::sql_query(
        "WITH ahead AS (
            SELECT fire_at, job_id FROM schedule_fires WHERE schedule_id = $1 AND fire_at > $2 AND NOT manual
         ), jobs_gone AS (
            DELETE FROM jobs j USING ahead a WHERE j.id = a.job_id AND j.status = 'scheduled'
            RETURNING j.id, j.job_type, j.payload, j.pipeline_id
         ), attempts_gone AS (
            -- None: such a job has not run (attempts name no foreign key).
            DELETE FROM job_attempts t USING jobs_gone g WHERE t.job_id = g.id
         ), pipelines_gone AS (
            DELETE FROM pipelines p USING jobs_gone g WHERE p.id = g.pipeline_id
            RETURNING p.id, jsonb_array_length(p.steps) AS steps
         ), fires_gone AS (
            DELETE FROM schedule_fires f USING ahead a
             WHERE f.schedule_id = $1 AND f.fire_at = a.fire_at AND (a.job_id IS NULL OR a.job_id IN (SELECT id FROM jobs_gone))
            RETURNING f.fire_at, f.job_id
         )
         SELECT f.fire_at, g.job_type, g.payload, p.steps AS pipeline_steps
           FROM fires_gone f LEFT JOIN jobs_gone g ON g.id = f.job_id LEFT JOIN pipelines_gone p ON p.id = g.pipeline_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(schedule)
    .bind::<Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok((unstaged.iter().map(|u| u.fire_at).min(), unstaged))
}

/// A fire and the status its job has now.
pub type FireWithStatus = (FireRow, Option<String>);

/// A schedule's fires, newest first; `before`: the fire time the previous
/// page ended with.
pub async fn history(pool: &DbPool, schedule: Uuid, before: Option<DateTime<Utc>>, limit: i64) -> Result<Vec<FireWithStatus>, DbError> {
    let mut conn = pool.get().await?;
    let mut query = schedule_fires::table
        .left_join(jobs::table.on(jobs::id.nullable().eq(schedule_fires::job_id)))
        .filter(schedule_fires::schedule_id.eq(schedule))
        .select((FireRow::as_select(), jobs::status.nullable()))
        .order(schedule_fires::fire_at.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(schedule_fires::fire_at.lt(before));
    }
    Ok(query.load(&mut conn).await?)
}

/// Seconds until a scheduler has something to do (negative: overdue), by
/// the database's clock: `lookahead` before the earliest fire of an
/// `overlap: allow` schedule (stored ahead), at the earliest fire of any
/// other; `None` when no schedule will fire. (A fire waiting for its
/// previous run, `queue_one`, is looked at on every pass.)
pub async fn due_in(pool: &DbPool, lookahead: chrono::Duration) -> Result<Option<f64>, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "SELECT EXTRACT(EPOCH FROM (LEAST(
                    (SELECT min(next_fire_at) FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL AND overlap = 'allow')
                        - make_interval(secs => $1),
                    (SELECT min(next_fire_at) FROM schedules WHERE NOT paused AND next_fire_at IS NOT NULL AND overlap <> 'allow'))
                - clock_timestamp()))::float8 AS seconds",
    )
    .bind::<diesel::sql_types::Double, _>(lookahead.as_seconds_f64())
    .get_result::<DueIn>(&mut conn)
    .await?
    .seconds)
}

#[derive(QueryableByName)]
struct DueIn {
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    seconds: Option<f64>,
}

/// Schedules that will fire again (not paused, not past their end).
pub async fn active_count(pool: &DbPool) -> Result<i64, DbError> {
    let mut conn = pool.get().await?;
    Ok(schedules::table
        .filter(schedules::paused.eq(false))
        .filter(schedules::next_fire_at.is_not_null())
        .count()
        .get_result(&mut conn)
        .await?)
}

/// Deletes fires recorded before `before`, `limit` at a time; answers how
/// many it deleted.
pub async fn prune_fires(pool: &DbPool, before: DateTime<Utc>, limit: i64) -> Result<usize, DbError> {
    let mut conn = pool.get().await?;
    Ok(diesel::sql_query(
        "DELETE FROM schedule_fires WHERE ctid = ANY (ARRAY(SELECT ctid FROM schedule_fires WHERE fired_at < $1 LIMIT $2))",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(&mut conn)
    .await?)
}

// ---- The scheduler's transaction -------------------------------------------

/// One fire as the scheduler decided it, with what it submits.
#[derive(Debug, Clone)]
pub struct PlannedFire {
    pub fire: FireRow,
    pub job: Option<NewJob>,
    pub pipeline: Option<PipelineRow>,
}

/// What the scheduler decided for one locked schedule.
#[derive(Debug, Clone)]
pub struct PlannedSchedule {
    pub id: Uuid,
    pub fires: Vec<PlannedFire>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub buffered_fire_at: Option<DateTime<Utc>>,
}

/// What a committed batch did.
#[derive(Debug, Clone, Default)]
pub struct Fired {
    /// The database's clock when the batch began.
    pub now: Option<DateTime<Utc>>,
    /// Schedules locked with a fire time due (not only a fire waiting for
    /// its previous run): a full batch of them means more may be due.
    pub due: usize,
    /// The fires recorded (only those: a fire time recorded before is never acted on again).
    pub recorded: Vec<FireRow>,
    /// The jobs stored, to push.
    pub jobs: Vec<JobRow>,
}

/// One scheduler batch, in one transaction: locks up to `limit` schedules
/// with something to do within `lookahead` (see [`Horizon`]), hands them to
/// `decide` (with the database's clock and which of their last runs have
/// not finished), records the fires it planned, stores the jobs of those
/// recorded now and saves each schedule's progress. A fire stored ahead
/// has its job wait as `scheduled` until its time; an edit of the schedule
/// before then undoes it ([`unstage`]).
pub async fn fire_due<F, Fut>(pool: &DbPool, limit: i64, lookahead: chrono::Duration, decide: F) -> Result<Fired, DbError>
where
    F: FnOnce(Horizon, Vec<ScheduleRow>, HashSet<Uuid>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<PlannedSchedule>> + Send,
{
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Fired, DbError> {
        let now = clock(conn).await?;
        let horizon = Horizon { now, ahead: now + lookahead };
        let rows = lock_due(conn, horizon, limit).await?;
        if rows.is_empty() {
            return Ok(Fired { now: Some(now), ..Fired::default() });
        }
        let waiting = rows.iter().filter(|r| r.overlap != "allow");
        let job_ids: Vec<Uuid> = waiting.clone().filter_map(|r| r.last_job_id).collect();
        let pipeline_ids: Vec<Uuid> = waiting.filter_map(|r| r.last_pipeline_id).collect();
        let open = unfinished(conn, &job_ids, &pipeline_ids).await?;
        let before: HashMap<Uuid, ScheduleRow> = rows.iter().map(|r| (r.id, r.clone())).collect();
        let due = rows.iter().filter(|r| r.next_fire_at.is_some_and(|at| horizon.reaches(r, at))).count();
        let planned = decide(horizon, rows, open).await;
        let mut fired = store_planned(conn, &before, planned).await?;
        fired.now = Some(now);
        fired.due = due;
        Ok(fired)
    })
    .await
}

async fn store_planned(
    conn: &mut AsyncPgConnection,
    before: &HashMap<Uuid, ScheduleRow>,
    planned: Vec<PlannedSchedule>,
) -> Result<Fired, DbError> {
    let fires: Vec<FireRow> = planned.iter().flat_map(|s| s.fires.iter().map(|f| f.fire.clone())).collect();
    let recorded = record_fires(conn, &fires).await?;
    let mut fired = Fired::default();
    let (mut jobs, mut pipelines, mut progress) = (Vec::new(), Vec::new(), Vec::new());
    for schedule in planned {
        let Some(row) = before.get(&schedule.id) else { continue };
        let mut step = Progress {
            id: row.id,
            next_fire_at: schedule.next_fire_at,
            buffered_fire_at: schedule.buffered_fire_at,
            last_fire_at: row.last_fire_at,
            last_job_id: row.last_job_id,
            last_pipeline_id: row.last_pipeline_id,
        };
        for planned in schedule.fires {
            if !recorded.contains(&(planned.fire.schedule_id, planned.fire.fire_at)) {
                continue;
            }
            if let Some(job) = planned.job {
                step.last_fire_at = Some(planned.fire.fire_at);
                step.last_job_id = Some(job.id);
                step.last_pipeline_id = planned.pipeline.as_ref().map(|p| p.id);
                jobs.push(job);
                pipelines.extend(planned.pipeline);
            }
            fired.recorded.push(planned.fire);
        }
        progress.push(step);
    }
    insert_pipelines(conn, &pipelines).await?;
    if !jobs.is_empty() {
        fired.jobs = crate::queries::jobs::insert_batch_on(conn, jobs).await?;
    }
    save_progress(conn, &progress).await?;
    Ok(fired)
}

/// A manual fire and its stored job, or why its job could not be built.
pub type Triggered<E> = Option<Result<(FireRow, JobRow), E>>;

/// Fires one of the tenant's schedules now (a manual trigger): `build`
/// makes the job (and pipeline) from the locked row and the database's
/// clock. Answers the fire and the stored job; `Ok(None)`: no such schedule.
pub async fn trigger<F, E>(pool: &DbPool, tenant: Uuid, id: Uuid, build: F) -> Result<Triggered<E>, DbError>
where
    F: FnOnce(&ScheduleRow, DateTime<Utc>) -> Result<(NewJob, Option<PipelineRow>), E> + Send + 'static,
    E: Send + 'static,
{
    let mut conn = pool.get().await?;
    conn.transaction(async move |conn| -> Result<Triggered<E>, DbError> {
        let Some(row) = lock(conn, tenant, id).await? else { return Ok(None) };
        let now = clock(conn).await?;
        let (job, pipeline) = match build(&row, now) {
            Ok(built) => built,
            Err(e) => return Ok(Some(Err(e))),
        };
        let fire = FireRow {
            schedule_id: row.id,
            fire_at: now,
            fired_at: now,
            outcome: "submitted".into(),
            missed: None,
            manual: true,
            job_id: Some(job.id),
            pipeline_id: pipeline.as_ref().map(|p| p.id),
        };
        let before = HashMap::from([(row.id, row.clone())]);
        let planned = PlannedSchedule {
            id: row.id,
            fires: vec![PlannedFire { fire: fire.clone(), job: Some(job), pipeline }],
            next_fire_at: row.next_fire_at,
            buffered_fire_at: row.buffered_fire_at,
        };
        let mut fired = store_planned(conn, &before, vec![planned]).await?;
        let job = fired.jobs.pop().ok_or(DbError::Query(DieselError::NotFound))?;
        Ok(Some(Ok((fire, job))))
    })
    .await
}

/// How far a scheduler's batch reaches: the fire times due at `now`, and
/// those of `overlap: allow` schedules up to `ahead`, stored ahead of their
/// time so that their jobs are waiting (delayed) when the time comes.
/// Whether a run overlaps can only be told at the fire time, so the other
/// schedules fire when they are due.
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub now: DateTime<Utc>,
    pub ahead: DateTime<Utc>,
}

impl Horizon {
    /// Whether `schedule`'s fire time `at` is within this batch's reach.
    pub fn reaches(&self, schedule: &ScheduleRow, at: DateTime<Utc>) -> bool {
        at <= self.now || (schedule.overlap == "allow" && at <= self.ahead)
    }
}

/// Locks up to `limit` schedules with something to do within `horizon`: a
/// fire time it reaches, or a fire waiting for its previous run. Rows
/// another scheduler holds are skipped, so workers share the due schedules.
async fn lock_due(conn: &mut AsyncPgConnection, horizon: Horizon, limit: i64) -> Result<Vec<ScheduleRow>, DbError> {
    Ok(schedules::table
        .filter(schedules::paused.eq(false))
        .filter(
            schedules::next_fire_at
                .le(horizon.now)
                .or(schedules::next_fire_at.le(horizon.ahead).and(schedules::overlap.eq("allow")))
                .or(schedules::buffered_fire_at.is_not_null()),
        )
        .order(schedules::next_fire_at.asc())
        .limit(limit)
        .select(ScheduleRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await?)
}

/// Which of these jobs and pipelines have not finished yet.
async fn unfinished(conn: &mut AsyncPgConnection, job_ids: &[Uuid], pipeline_ids: &[Uuid]) -> Result<HashSet<Uuid>, DbError> {
    let mut open: HashSet<Uuid> = HashSet::new();
    if !job_ids.is_empty() {
        let ids: Vec<Uuid> = jobs::table
            .filter(jobs::id.eq_any(job_ids))
            .filter(jobs::status.eq_any(["queued", "scheduled", "running"]))
            .select(jobs::id)
            .load(conn)
            .await?;
        open.extend(ids);
    }
    if !pipeline_ids.is_empty() {
        let ids: Vec<Uuid> = pipelines::table
            .filter(pipelines::id.eq_any(pipeline_ids))
            .filter(pipelines::status.eq("running"))
            .select(pipelines::id)
            .load(conn)
            .await?;
        open.extend(ids);
    }
    Ok(open)
}

/// Records fires, each with the database's clock as it is recorded (its
/// `fired_at`: the lateness of a fire counts the planning before it). A
/// fire time already recorded is left alone — that is what makes a second
/// firing impossible — except that a `buffered` fire may become
/// `submitted` once. Answers the (schedule, fire time) pairs recorded or
/// upgraded now: only those may submit their job.
async fn record_fires(conn: &mut AsyncPgConnection, fires: &[FireRow]) -> Result<HashSet<(Uuid, DateTime<Utc>)>, DbError> {
    use diesel::sql_types::{Array, Bool, Int4, Text, Uuid as SqlUuid};
    if fires.is_empty() {
        return Ok(HashSet::new());
    }
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = SqlUuid)]
        schedule_id: Uuid,
        #[diesel(sql_type = Timestamptz)]
        fire_at: DateTime<Utc>,
    }
    fn column<'a, T>(fires: &'a [FireRow], value: impl Fn(&'a FireRow) -> T) -> Vec<T> {
        fires.iter().map(value).collect()
    }
    let recorded: Vec<Key> = diesel::sql_query(
        "INSERT INTO schedule_fires (schedule_id, fire_at, fired_at, outcome, missed, manual, job_id, pipeline_id)
         SELECT schedule_id, fire_at, clock_timestamp(), outcome, missed, manual, job_id, pipeline_id
           FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::int4[], $5::bool[], $6::uuid[], $7::uuid[])
                AS f (schedule_id, fire_at, outcome, missed, manual, job_id, pipeline_id)
         ON CONFLICT (schedule_id, fire_at) DO UPDATE
            SET outcome = EXCLUDED.outcome, fired_at = EXCLUDED.fired_at, job_id = EXCLUDED.job_id, pipeline_id = EXCLUDED.pipeline_id
            WHERE schedule_fires.outcome = 'buffered' AND EXCLUDED.outcome = 'submitted'
         RETURNING schedule_id, fire_at",
    )
    .bind::<Array<SqlUuid>, _>(column(fires, |f| f.schedule_id))
    .bind::<Array<Timestamptz>, _>(column(fires, |f| f.fire_at))
    .bind::<Array<Text>, _>(column(fires, |f| f.outcome.as_str()))
    .bind::<Array<Nullable<Int4>>, _>(column(fires, |f| f.missed))
    .bind::<Array<Bool>, _>(column(fires, |f| f.manual))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(fires, |f| f.job_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(fires, |f| f.pipeline_id))
    .load(conn)
    .await?;
    Ok(recorded.into_iter().map(|k| (k.schedule_id, k.fire_at)).collect())
}

/// A schedule's state after a scheduler acted on it.
#[derive(Debug, Clone)]
pub struct Progress {
    pub id: Uuid,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub buffered_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub last_pipeline_id: Option<Uuid>,
}

/// Saves every schedule's progress in one statement.
async fn save_progress(conn: &mut AsyncPgConnection, progress: &[Progress]) -> Result<(), DbError> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    if progress.is_empty() {
        return Ok(());
    }
    fn column<'a, T>(rows: &'a [Progress], value: impl Fn(&'a Progress) -> T) -> Vec<T> {
        rows.iter().map(value).collect()
    }
    diesel::sql_query(
        "UPDATE schedules s
            SET next_fire_at = p.next_fire_at, buffered_fire_at = p.buffered_fire_at, last_fire_at = p.last_fire_at,
                last_job_id = p.last_job_id, last_pipeline_id = p.last_pipeline_id
           FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::uuid[], $6::uuid[])
                AS p (id, next_fire_at, buffered_fire_at, last_fire_at, last_job_id, last_pipeline_id)
          WHERE s.id = p.id",
    )
    .bind::<Array<SqlUuid>, _>(column(progress, |p| p.id))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(progress, |p| p.next_fire_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(progress, |p| p.buffered_fire_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(column(progress, |p| p.last_fire_at))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(progress, |p| p.last_job_id))
    .bind::<Array<Nullable<SqlUuid>>, _>(column(progress, |p| p.last_pipeline_id))
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores pipelines (their first step's job goes with the other jobs).
async fn insert_pipelines(conn: &mut AsyncPgConnection, rows: &[PipelineRow]) -> Result<(), DbError> {
    if !rows.is_empty() {
        diesel::insert_into(pipelines::table).values(rows).execute(conn).await?;
    }
    Ok(())
}
