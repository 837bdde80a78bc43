//! `POST /v1/jobs/batch`: up to [`MAX_BATCH`] jobs in one request, each
//! checked on its own and answered on its own.
//!
//! Every item gets the answer `POST /v1/jobs` would have given it alone
//! (`202` new, `200` a replay of its idempotency key, `409` the key reused
//! with another body, `422` naming its fields), in order, with its index.
//! The valid items are stored in one INSERT (one commit) and
//! pushed to Redis in one round trip per queue; the answer comes after the
//! commit, so a `202` item is never lost.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use peyk_jobs::metrics;
use peyk_queue::queue::Enqueue;
use peyk_schema::queries::{files, jobs as q};
use peyk_schema::{JobRow, NewJob};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admission::Admission;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{from_raw, ValidJson};
use crate::quota::{self, Use};
use crate::routes::jobs::{audio_seconds, build_job, idempotency_conflict, missing_files, refused_unless_replayed, FileRefs};
use crate::state::AppState;
use crate::views::{ErrorBody, ErrorDetail, SubmitJob};

/// Jobs one batch may carry.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// 1–1,000 submissions, each as `POST /v1/jobs` takes it. Kept as
    /// text until each is read on its own (its own 422).
    #[schema(value_type = Vec<SubmitJob>)]
    pub jobs: Vec<Box<RawValue>>,
}

/// One item's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The item's position in `jobs`.
    pub index: usize,
    /// What `POST /v1/jobs` would have answered: 202, 200, 409, 422, 429 or 503.
    pub status: u16,
    /// The job (202: stored now; 200: stored before, same key and body);
    /// `GET /v1/jobs/{id}` reads it. Only its id is sent: an answer of a
    /// thousand whole jobs (payloads included) cost more than storing them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// The job's status then (`queued` or `scheduled` for 202).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// One per submitted item, in order.
    pub data: Vec<BatchItem>,
    /// Items stored now (202).
    pub accepted: usize,
    /// Items answered with an earlier job (200).
    pub replayed: usize,
    /// Items refused (409, 422).
    pub rejected: usize,
}

/// What an item's answer says of its job: one stored now, or the earlier
/// job its idempotency key names.
#[derive(Clone)]
struct KnownJob {
    id: Uuid,
    status: String,
    idempotency_key: Option<String>,
    request_hash: Option<Vec<u8>>,
}

impl From<NewJob> for KnownJob {
    fn from(job: NewJob) -> Self {
        Self { id: job.id, status: job.status, idempotency_key: job.idempotency_key, request_hash: job.request_hash }
    }
}

impl From<JobRow> for KnownJob {
    fn from(row: JobRow) -> Self {
        Self { id: row.id, status: row.status, idempotency_key: row.idempotency_key, request_hash: row.request_hash }
    }
}

impl BatchItem {
    fn job(index: usize, status: StatusCode, job: &KnownJob) -> Self {
        Self { index, status: status.as_u16(), id: Some(job.id), job_status: Some(job.status.clone()), error: None }
    }

    fn error(index: usize, error: ApiError) -> Self {
        let detail = ErrorDetail { code: error.code.to_string(), message: error.message, details: error.details };
        Self { index, status: error.status.as_u16(), id: None, job_status: None, error: Some(detail) }
    }
}

/// Submit up to 1,000 jobs.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = SubmitBatch,
    security(("api_key" = ["jobs:write"])),
    responses(
        (status = 200, description = "Every item's answer, in order: `202` stored, `200` replay, `409` key reused, `422` invalid (its fields named), `429` an SMS rate rule, `503` a provider no worker has", body = BatchAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over `PEYK_MAX_BATCH_BODY_BYTES`", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`jobs` missing, empty or longer than 1,000", body = ErrorBody),
        (status = 503, description = "Queue or database unreachable", body = ErrorBody),
    ))]
pub async fn submit_batch(
    State(state): State<AppState>,
    tenant: Tenant,
    ValidJson(batch): ValidJson<SubmitBatch>,
) -> Result<Json<BatchAnswer>, ApiError> {
    if batch.jobs.is_empty() || batch.jobs.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("jobs", format!("must hold 1 to {MAX_BATCH} jobs")));
    }
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    let count = batch.jobs.len();
    let mut answers: Vec<Option<BatchItem>> = (0..count).map(|_| None).collect();
    let mut valid: Vec<(usize, NewJob, FileRefs)> = Vec::new();
    for (index, item) in batch.jobs.into_iter().enumerate() {
        match from_raw::<SubmitJob>(&item).and_then(|submission| build_job(&tenant, submission)) {
            Ok((job, refs)) => valid.push((index, job, refs)),
            Err(error) => answers[index] = Some(BatchItem::error(index, error)),
        }
    }
    let valid = drop_missing_files(&state, &tenant, valid, &mut answers).await?;
    let valid = admit(&state, &tenant, valid, &mut answers).await?;

    // An idempotency key repeated inside the batch: the first item is
    // stored, the later ones answered as replays of it (or 409).
    // The jobs to store travel on their own (into the storing task and
    // back); each one's item index and use stay here, in the same order.
    let mut keys_seen: HashSet<String> = HashSet::new();
    let (mut indexes, mut jobs, mut uses) = (Vec::new(), Vec::new(), Vec::new());
    let mut repeats: Vec<(usize, NewJob)> = Vec::new();
    // The batch is charged as a whole: past a quota, none of it is stored.
    let mut usage = Use::default();
    for (index, job, item) in valid {
        match &job.idempotency_key {
            Some(key) if !keys_seen.insert(key.clone()) => repeats.push((index, job)),
            _ => {
                usage.add(item);
                indexes.push(index);
                jobs.push(job);
                uses.push(item);
            }
        }
    }
    let charged = quota::charge(&state, tenant.0, usage).await?;
    let (jobs, stored) = match store_and_push(&state, jobs).await {
        Ok(done) => done,
        Err(e) => {
            quota::refund(&state, tenant.0, &charged).await;
            return Err(e);
        }
    };
    // Items not stored (replays of earlier jobs) give their share back.
    let mut unused = Use::default();
    for (job, item) in jobs.iter().zip(&uses) {
        if !stored.contains(&job.id) {
            unused.add(*item);
        }
    }
    if unused.jobs > 0 {
        quota::refund(&state, tenant.0, &quota::Charged::of(unused)).await;
    }
    let mut enqueued: HashMap<String, u64> = HashMap::new();
    let mut by_key: HashMap<String, KnownJob> = HashMap::new();
    for (index, job) in indexes.into_iter().zip(jobs).chain(repeats) {
        let answer = if stored.contains(&job.id) {
            *enqueued.entry(job.job_type.clone()).or_default() += 1;
            let known = KnownJob::from(job);
            let answer = BatchItem::job(index, StatusCode::ACCEPTED, &known);
            if let Some(key) = known.idempotency_key.clone() {
                by_key.insert(key, known);
            }
            answer
        } else {
            let key = job.idempotency_key.clone().expect("only keyed jobs are not stored");
            let existing = match by_key.get(&key) {
                Some(known) => Some(known.clone()),
                None => q::find_by_idempotency_key(&state.pool, tenant.0, &key).await?.map(KnownJob::from),
            };
            let existing = existing.ok_or_else(|| ApiError::internal("idempotency conflict without a row"))?;
            by_key.insert(key, existing.clone());
            if existing.request_hash == job.request_hash {
                BatchItem::job(index, StatusCode::OK, &existing)
            } else {
                BatchItem::error(index, idempotency_conflict(existing.id))
            }
        };
        answers[index] = Some(answer);
    }
    for (job_type, count) in enqueued {
        metrics::JOBS_ENQUEUED.with_label_values(&[&job_type]).inc_by(count);
    }

    let data: Vec<BatchItem> = answers.into_iter().map(|answer| answer.expect("every item is answered")).collect();
    let tally = |status: u16| data.iter().filter(|item| item.status == status).count();
    let (accepted, replayed) = (tally(202), tally(200));
    Ok(Json(BatchAnswer { accepted, replayed, rejected: count - accepted - replayed, data }))
}

/// Answers the items that admission refuses ([`Admission`]: 422, 429,
/// 503 as `POST /v1/jobs` would, or 200 where a refused item's key names
/// an earlier job of the same body) and returns the others.
async fn admit(
    state: &AppState,
    tenant: &Tenant,
    valid: Vec<(usize, NewJob, Use)>,
    answers: &mut [Option<BatchItem>],
) -> Result<Vec<(usize, NewJob, Use)>, ApiError> {
    let mut admission = Admission::new(state, tenant);
    let mut admitted = Vec::with_capacity(valid.len());
    for (index, mut job, usage) in valid {
        let Err(refused) = admission.check("payload", &mut job).await else {
            admitted.push((index, job, usage));
            continue;
        };
        answers[index] = Some(match refused_unless_replayed(state, tenant, &job, refused).await {
            Ok((status, row)) => BatchItem::job(index, status, &KnownJob::from(row)),
            // The database or Redis being down fails the whole batch.
            Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE && error.code != "provider_not_configured" => return Err(error),
            Err(error) => BatchItem::error(index, error),
        });
    }
    Ok(admitted)
}

/// Answers 422 for the items that name files the tenant does not have
/// (one query for the whole batch) and returns the others, each with what
/// it will use (for the quotas).
async fn drop_missing_files(
    state: &AppState,
    tenant: &Tenant,
    valid: Vec<(usize, NewJob, FileRefs)>,
    answers: &mut [Option<BatchItem>],
) -> Result<Vec<(usize, NewJob, Use)>, ApiError> {
    let ids: Vec<Uuid> = valid.iter().flat_map(|(_, _, refs)| refs.iter().map(|(_, id)| *id)).collect();
    let existing: HashMap<Uuid, Option<f64>> =
        if ids.is_empty() { HashMap::new() } else { files::existing(&state.pool, tenant.0, &ids).await?.into_iter().collect() };
    let mut kept = Vec::with_capacity(valid.len());
    for (index, job, refs) in valid {
        match missing_files("payload", &refs, &existing) {
            Ok(()) => {
                let usage = Use::of(&job.job_type, &job.payload, audio_seconds(&refs, &existing));
                kept.push((index, job, usage));
            }
            Err(errors) => answers[index] = Some(BatchItem::error(index, ApiError::validation(errors))),
        }
    }
    Ok(kept)
}

/// Stores the jobs in one INSERT and pushes the stored ones, in a task of
/// its own: a client that hangs up must not leave committed jobs unpushed.
/// Answers the jobs back with the ids of those stored (a job whose
/// idempotency key exists is not).
async fn store_and_push(state: &AppState, jobs: Vec<NewJob>) -> Result<(Vec<NewJob>, HashSet<Uuid>), ApiError> {
    if jobs.is_empty() {
        return Ok((jobs, HashSet::new()));
    }
    let state = state.clone();
    tokio::spawn(async move {
        let stored: HashSet<Uuid> = q::insert_batch_ids(&state.pool, &jobs).await?.into_iter().collect();
        let entries: Vec<Enqueue> = jobs.iter().filter(|job| stored.contains(&job.id)).filter_map(Enqueue::for_new).collect();
        if let Err(e) = state.queue.enqueue_many(&entries).await {
            tracing::warn!(jobs = entries.len(), error = %e, "stored jobs not pushed to redis; the sweeper will push them");
            state.mark_redis(false);
        }
        Ok::<_, ApiError>((jobs, stored))
    })
    .await
    .map_err(ApiError::internal)?
}
