//! `/v1/jobs`: submit, read, list, cancel, retry, attempts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use peyk_jobs::registry;
use peyk_jobs::webhook::check_url;
use peyk_jobs::webhook::signing::SigningSecret;
use peyk_jobs::{metrics, ValidationErrors};
use peyk_queue::metadata;
use peyk_queue::queue::{Enqueue, MAX_PRIORITY};
use peyk_schema::models::TenantId;
use peyk_schema::queries::{attempts, files, jobs};
use peyk_schema::{JobCallback, JobRow, JobStatus, NewJob};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admission::Admission;
use crate::auth::{Caller, Tenant};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::quota::{self, Use};
use crate::state::AppState;
use crate::views::{AttemptList, ErrorBody, JobList, JobView, SubmitJob};

const MAX_DELAY_SECONDS: f64 = 30.0 * 24.0 * 3600.0;
const MAX_ATTEMPTS_LIMIT: i32 = 25;

/// Uploaded files a payload names: (field, file id).
pub(crate) type FileRefs = Vec<(&'static str, Uuid)>;

/// Checks a submission and builds the row to insert, with the uploaded
/// files it refers to (checked against the database by the caller).
pub(crate) fn build_job(tenant: &Tenant, submission: SubmitJob) -> Result<(NewJob, FileRefs), ApiError> {
    let registry = registry::catalogue();
    let Some(kind) = registry.get(&submission.job_type) else {
        let valid = registry.submittable_names();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_job_type",
            format!("unknown job type `{}`; valid types: {}", submission.job_type, valid.join(", ")),
        )
        .with_details(json!({ "errors": [{ "field": "type", "problem": "unknown job type" }], "valid_types": valid })));
    };
    if kind.internal {
        return Err(ApiError::invalid_field("type", "is queued by Peyk itself"));
    }
    let mut errors = ValidationErrors::new();
    let validated = match kind.validate(&submission.payload) {
        Ok(validated) => Some(validated),
        Err(invalid) => {
            errors.0.extend(invalid.nested("payload").0);
            None
        }
    };
    if let Some(key) = &submission.idempotency_key {
        if key.is_empty() || key.len() > 255 {
            errors.add("idempotency_key", "must be 1 to 255 characters");
        }
    }
    if let Some(max) = submission.max_attempts {
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max) {
            errors.add("max_attempts", format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"));
        }
    }
    if let Some(priority) = submission.priority {
        if !(0..=MAX_PRIORITY).contains(&priority) {
            errors.add("priority", format!("must be between 0 and {MAX_PRIORITY}"));
        }
    }
    if let Some(Err(invalid)) = submission.metadata.as_ref().map(|m| metadata::check("metadata", m)) {
        errors.0.extend(invalid.0);
    }
    let callback = check_callback(&submission, &mut errors);
    let now = Utc::now();
    let run_at = match (submission.delay_seconds, submission.run_at) {
        (Some(_), Some(_)) => {
            errors.add("delay_seconds", "give either `delay_seconds` or `run_at`, not both");
            now
        }
        (Some(delay), None) if !(0.0..=MAX_DELAY_SECONDS).contains(&delay) => {
            errors.add("delay_seconds", format!("must be between 0 and {MAX_DELAY_SECONDS}"));
            now
        }
        (Some(delay), None) => now + chrono::Duration::milliseconds((delay * 1000.0).round() as i64),
        (None, Some(at)) if at > now + chrono::Duration::seconds(MAX_DELAY_SECONDS as i64) => {
            errors.add("run_at", "must be at most 30 days ahead");
            now
        }
        (None, Some(at)) => at.max(now),
        (None, None) => now,
    };
    errors.into_result().map_err(ApiError::validation)?;

    // The hash covers what the client sent, so that the same body repeated
    // (even with a relative delay) matches, and anything else does not.
    // Written straight into the hasher: no copy of the body in between.
    let mut hasher = Sha256::new();
    serde_json::to_writer(&mut hasher, &submission).map_err(ApiError::internal)?;
    let request_hash = hasher.finalize().to_vec();
    let status = if run_at > now { JobStatus::Scheduled } else { JobStatus::Queued };
    let validated = validated.expect("valid when there are no errors");
    let job = NewJob {
        id: Uuid::now_v7(),
        tenant_id: tenant.0 .0,
        max_attempts: submission.max_attempts.unwrap_or(kind.default_max_attempts),
        job_type: submission.job_type,
        status: status.as_str().to_string(),
        payload: validated.payload,
        priority: submission.priority.unwrap_or(0),
        idempotency_key: submission.idempotency_key,
        request_hash: Some(request_hash),
        run_at,
        queue_task_id: Some(ulid::Ulid::new().to_string()),
        pipeline_id: None,
        pipeline_step: None,
        schedule_id: None,
        metadata: metadata::to_value(submission.metadata.as_ref()),
        callback,
    };
    Ok((job, validated.files))
}

/// `callback_url` and `callback_secret` as stored (`jobs.callback`), or the
/// problems with them.
fn check_callback(submission: &SubmitJob, errors: &mut ValidationErrors) -> Option<serde_json::Value> {
    let url = submission.callback_url.as_ref();
    if let Some(Err(problem)) = url.map(|url| check_url(url)) {
        errors.add("callback_url", problem);
    }
    if url.is_some_and(|url| url.len() > 2048) {
        errors.add("callback_url", "must be at most 2048 bytes");
    }
    if let Some(problem) = url.and_then(|url| peyk_jobs::events::settings::get().plain_http_refused(&submission.job_type, url)) {
        errors.add("callback_url", problem);
    }
    if let Some(secret) = &submission.callback_secret {
        if url.is_none() {
            errors.add("callback_secret", "needs `callback_url`");
        } else if let Err(problem) = SigningSecret::parse(secret) {
            errors.add("callback_secret", problem);
        }
    }
    let callback = JobCallback { url: url?.clone(), secret: submission.callback_secret.clone() };
    serde_json::to_value(callback).ok()
}

/// Checks that the tenant has every file `refs` names; returns the seconds
/// of audio they hold (for the audio quota).
pub(crate) async fn check_files(state: &AppState, tenant: &Tenant, prefix: &str, refs: &[(&'static str, Uuid)]) -> Result<f64, ApiError> {
    if refs.is_empty() {
        return Ok(0.0);
    }
    let ids: Vec<Uuid> = refs.iter().map(|(_, id)| *id).collect();
    let existing: HashMap<Uuid, Option<f64>> = files::existing(&state.pool, tenant.0, &ids).await?.into_iter().collect();
    missing_files(prefix, refs, &existing).map_err(ApiError::validation)?;
    Ok(audio_seconds(refs, &existing))
}

/// The seconds of audio the files `refs` names hold.
pub(crate) fn audio_seconds(refs: &[(&'static str, Uuid)], files: &HashMap<Uuid, Option<f64>>) -> f64 {
    refs.iter().filter_map(|(_, id)| files.get(id).copied().flatten()).sum()
}

/// The referenced files not among `existing`, each named by its field.
pub(crate) fn missing_files(
    prefix: &str,
    refs: &[(&'static str, Uuid)],
    existing: &HashMap<Uuid, Option<f64>>,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    for (field, id) in refs.iter().filter(|(_, id)| !existing.contains_key(id)) {
        errors.add(format!("{prefix}.{field}"), format!("no file {id}; upload it with POST /v1/files first"));
    }
    errors.into_result()
}

/// Submit a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = SubmitJob,
    security(("api_key" = ["jobs:write"])),
    responses(
        (status = 202, description = "Accepted and queued", body = JobView),
        (status = 200, description = "Same idempotency key and body as an earlier submission: that job", body = JobView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "Idempotency key reused with a different body", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown type or invalid fields; a `task` without a target (`unknown_task`), a payment verification without a gateway account (`no_gateway_account`), an SMS template Kavenegar does not have (`unknown_template`); each names its field", body = ErrorBody),
        (status = 429, description = "An SMS rate rule refuses the message now (`rate_limited`; `Retry-After`, the rule in `details`); no job is created", body = ErrorBody),
        (status = 503, description = "Queue or database unreachable, or no worker has the job's provider configured (`provider_not_configured`, the setting in `details`); `Retry-After`", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    tenant: Tenant,
    ValidJson(submission): ValidJson<SubmitJob>,
) -> Result<Response, ApiError> {
    let (status, row) = create_job(&state, &tenant, submission).await?;
    Ok((status, Json(JobView::from(row))).into_response())
}

/// Validates, stores and queues a submission: `202` and the new job, or
/// `200` and the earlier job of the same idempotency key and body.
pub async fn create_job(state: &AppState, tenant: &Tenant, submission: SubmitJob) -> Result<(StatusCode, JobRow), ApiError> {
    let (mut job, file_refs) = build_job(tenant, submission)?;
    let audio = check_files(state, tenant, "payload", &file_refs).await?;
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    if let Err(refused) = Admission::new(state, tenant).check("payload", &mut job).await {
        return refused_unless_replayed(state, tenant, &job, refused).await;
    }
    let charged = match quota::charge(state, tenant.0, Use::of(&job.job_type, &job.payload, audio)).await {
        Ok(charged) => charged,
        // A replay of a job stored earlier is answered even when the quota is used up.
        Err(refused) => match &job.idempotency_key {
            Some(key) => return replay(state, tenant, key, &job.request_hash).await?.ok_or(refused),
            None => return Err(refused),
        },
    };
    let idempotency_key = job.idempotency_key.clone();
    let request_hash = job.request_hash.clone();
    // Stored and pushed in a task of its own: a client that hangs up must not
    // leave a committed job unpushed. The answer goes out once the row is
    // committed and its push is in line (pushes run in the order they line
    // up, so a client's jobs keep their order), not after Redis took it:
    // PostgreSQL is the truth, and a push that fails is the sweeper's.
    let (answer, stored) = tokio::sync::oneshot::channel();
    tokio::spawn({
        let state = state.clone();
        async move {
            let row = state.inserter.call(job).await.map_err(ApiError::from);
            let push = match row.as_ref().ok().and_then(Option::as_ref).and_then(Enqueue::for_row) {
                Some(entry) => Some((entry.job_id, state.pusher.send(entry).await)),
                None => None,
            };
            let _ = answer.send(row);
            if let Some((job_id, push)) = push {
                pushed(&state, job_id, push.outcome().await);
            }
        }
    });
    let stored = stored.await.map_err(ApiError::internal)?;
    if !matches!(stored, Ok(Some(_))) {
        quota::refund(state, tenant.0, &charged).await;
    }
    let Some(row) = stored? else {
        let key = idempotency_key.expect("only keyed jobs conflict");
        return replay(state, tenant, &key, &request_hash).await?.ok_or_else(|| ApiError::internal("idempotency conflict without a row"));
    };
    metrics::JOBS_ENQUEUED.with_label_values(&[&row.job_type]).inc();
    Ok((StatusCode::ACCEPTED, row))
}

/// A submission refused at admission: the refusal, unless its idempotency
/// key names a job stored earlier with the same body (a client retrying a
/// submission that went through gets that job, not a 429).
pub(crate) async fn refused_unless_replayed(
    state: &AppState,
    tenant: &Tenant,
    job: &NewJob,
    refused: ApiError,
) -> Result<(StatusCode, JobRow), ApiError> {
    match &job.idempotency_key {
        Some(key) => replay(state, tenant, key, &job.request_hash).await?.ok_or(refused),
        None => Err(refused),
    }
}

/// The job stored earlier under `key`: `200` and it when submitted with the
/// same body, `409` when with another; `None` when there is none.
async fn replay(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    request_hash: &Option<Vec<u8>>,
) -> Result<Option<(StatusCode, JobRow)>, ApiError> {
    match jobs::find_by_idempotency_key(&state.pool, tenant.0, key).await? {
        Some(existing) if &existing.request_hash == request_hash => Ok(Some((StatusCode::OK, existing))),
        Some(existing) => Err(idempotency_conflict(existing.id)),
        None => Ok(None),
    }
}

/// 409: the key names `existing`, submitted with another body.
pub(crate) fn idempotency_conflict(existing: Uuid) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", "this idempotency_key was used for a different request").with_details(
        json!({ "errors": [{ "field": "idempotency_key", "problem": "already used with a different body" }], "job_id": existing }),
    )
}

/// Pushes a stored job onto its queue. A failure is not the client's
/// problem: the row is committed, and the sweeper pushes it later.
pub(crate) async fn enqueue(state: &AppState, row: &JobRow) {
    if let Some(entry) = Enqueue::for_row(row) {
        push(state, entry).await;
    }
}

pub(crate) async fn push(state: &AppState, entry: Enqueue) {
    let job_id = entry.job_id;
    pushed(state, job_id, state.pusher.call(entry).await);
}

/// Notes a push that failed; the row is committed, so nothing is lost.
fn pushed<E: std::fmt::Display>(state: &AppState, job_id: Uuid, outcome: Result<(), E>) {
    if let Err(e) = outcome {
        tracing::warn!(%job_id, error = %e, "stored job not pushed to redis; the sweeper will push it");
        state.mark_redis(false);
    }
}

pub(crate) fn parse_job_id(id: &str) -> Result<Uuid, ApiError> {
    // Any string that is not one of our ids cannot name a job: 404, not 400,
    // so that ids reveal nothing.
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("job"))
}

/// Get a job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("api_key" = ["jobs:read"])),
    params(("id" = String, Path, description = "Job id"),
        ("wait" = Option<f64>, Query, description = "Hold the request up to this many seconds (0–60) until the job ends (succeeded, failed, dead, cancelled); it answers the job as it is then, ended or not (Celery's `AsyncResult.get(timeout=…)`)")),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_job_id(&id)?;
    let wait = wait_param(query.as_deref())?;
    let row = read_when_finished(&state, &tenant, id, wait).await?.ok_or_else(|| ApiError::not_found("job"))?;
    Ok(Json(row.into()))
}

/// The most `?wait=` holds a request.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// `?wait=SECONDS` (0–60, fractions allowed); no other parameter.
pub(crate) fn wait_param(query: Option<&str>) -> Result<Duration, ApiError> {
    let mut wait = Duration::ZERO;
    for (name, value) in url_pairs(query.unwrap_or("")) {
        match name.as_str() {
            "wait" => {
                wait = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=MAX_WAIT.as_secs_f64()).contains(s))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| ApiError::bad_parameter("wait", "must be a number of seconds from 0 to 60"))?;
            }
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: wait")),
        }
    }
    Ok(wait)
}

/// The job, once it has ended or `limit` has passed.
pub(crate) async fn read_when_finished(state: &AppState, tenant: &Tenant, id: Uuid, limit: Duration) -> Result<Option<JobRow>, ApiError> {
    let (pool, tenant) = (state.pool.clone(), tenant.0);
    let read = move || {
        let pool = pool.clone();
        async move { jobs::get(&pool, tenant, id).await }
    };
    read_when_ended(state, id, limit, read, |row: &JobRow| row.status().is_terminal()).await
}

/// What `read` answers for `id` once `ended` says so or `limit` has
/// passed. Woken by the workers' announcement (`peyk_queue::finished`):
/// two reads per waiter however long it waits; once a second while
/// announcements are down.
pub(crate) async fn read_when_ended<T, Read, Reading>(
    state: &AppState,
    id: Uuid,
    limit: Duration,
    read: Read,
    ended: impl Fn(&T) -> bool,
) -> Result<Option<T>, ApiError>
where
    Read: Fn() -> Reading,
    Reading: std::future::Future<Output = Result<Option<T>, peyk_schema::DbError>> + Send,
{
    let deadline = Instant::now() + limit;
    let watch = state.waiters.watch(id);
    loop {
        // Armed before the read: an announcement between the two is kept.
        let notified = watch.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(row) = read().await? else { return Ok(None) };
        let left = deadline.saturating_duration_since(Instant::now());
        if ended(&row) || left.is_zero() {
            return Ok(Some(row));
        }
        let step = if state.waiters.is_live() { left } else { left.min(Duration::from_secs(1)) };
        let _ = tokio::time::timeout(step, notified).await;
    }
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("api_key" = ["jobs:read"])),
    params(
        ("type" = Option<String>, Query, description = "Only this job type"),
        ("status" = Option<String>, Query, description = "Only this status"),
        ("schedule_id" = Option<String>, Query, description = "Only jobs this schedule submitted"),
        ("metadata" = Option<HashMap<String, String>>, Query, style = DeepObject, explode,
            description = "Only jobs whose metadata holds each given key with that value: `metadata[appointment]=4242` (several: all of them)"),
        ("created_after" = Option<String>, Query, description = "Only jobs created at or after this time (RFC 3339)"),
        ("created_before" = Option<String>, Query, description = "Only jobs created before this time (RFC 3339)"),
        ("idempotency_key" = Option<String>, Query, description = "Only the job submitted with this idempotency key"),
        ("limit" = Option<i64>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = JobList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_jobs(State(state): State<AppState>, tenant: Tenant, RawQuery(query): RawQuery) -> Result<Json<JobList>, ApiError> {
    let filter = list_filter(query.as_deref().unwrap_or(""))?;
    Ok(Json(list_page(&state, Some(tenant.0), filter).await?.0))
}

/// One page of jobs, newest first, and each job's tenant; `tenant` `None`:
/// every tenant's (the console, for admins).
pub(crate) async fn list_page(
    state: &AppState,
    tenant: Option<TenantId>,
    mut filter: jobs::ListFilter,
) -> Result<(JobList, Vec<TenantId>), ApiError> {
    let limit = filter.limit;
    filter.limit += 1; // one more tells whether there is a next page
    let jobs::JobPage { mut rows, looked_to } = jobs::list(&state.pool, tenant, &filter).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.id)
    } else {
        looked_to
    };
    let next_cursor = next_cursor.map(|id| URL_SAFE_NO_PAD.encode(id.as_bytes()));
    let tenants = rows.iter().map(|row| TenantId(row.tenant_id)).collect();
    Ok((JobList { data: rows.into_iter().map(JobView::from).collect(), next_cursor }, tenants))
}

/// The filter of `GET /v1/jobs`'s query string.
pub(crate) fn list_filter(query: &str) -> Result<jobs::ListFilter, ApiError> {
    let time = |name: &str, value: &str| {
        value
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map_err(|_| ApiError::bad_parameter(name, "must be a time in RFC 3339, e.g. 2026-12-05T08:00:00Z"))
    };
    let mut filter = jobs::ListFilter { limit: 50, ..Default::default() };
    for (name, value) in url_pairs(query) {
        match name.as_str() {
            "type" if registry::catalogue().get(&value).is_some() => filter.job_type = Some(value),
            "type" => {
                let valid = registry::catalogue().names().join(", ");
                return Err(ApiError::bad_parameter("type", format!("unknown job type; valid types: {valid}")));
            }
            "status" => {
                let status = value.parse::<JobStatus>().map_err(|_| {
                    let valid: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::bad_parameter("status", format!("must be one of {}", valid.join(", ")))
                })?;
                filter.status = Some(status);
            }
            "limit" => {
                filter.limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| ApiError::bad_parameter("limit", "must be a whole number from 1 to 200"))?;
            }
            "schedule_id" => {
                filter.schedule_id =
                    Some(Uuid::parse_str(&value).map_err(|_| ApiError::bad_parameter("schedule_id", "is not a schedule id"))?);
            }
            "created_after" => filter.created_after = Some(time("created_after", &value)?),
            "created_before" => filter.created_before = Some(time("created_before", &value)?),
            "idempotency_key" => filter.idempotency_key = Some(value),
            "cursor" => filter.before = Some(decode_cursor(&value)?),
            other => match other.strip_prefix("metadata[").and_then(|rest| rest.strip_suffix(']')) {
                Some(key) => {
                    metadata::check_key(key).map_err(|problem| ApiError::bad_parameter(other, problem))?;
                    filter.metadata.insert(key.to_string(), value.into());
                }
                None => {
                    return Err(ApiError::bad_parameter(
                        other,
                        "unknown parameter; known: type, status, schedule_id, metadata[KEY], created_after, created_before, \
                         idempotency_key, limit, cursor",
                    ))
                }
            },
        }
    }
    Ok(filter)
}

pub(crate) fn url_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).filter(|(_, v)| !v.is_empty()).collect()
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<Uuid, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::bad_parameter("cursor", "is not a cursor this API returned"))
}

/// Cancel a job that has not finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled. A queued or scheduled job never runs; a running one finishes but its result is discarded.", body = JobView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody)))]
pub async fn cancel_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let tenant = Tenant(caller.tenant());
    let id = parse_job_id(&id)?;
    let row = jobs::cancel(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    if row.status() != JobStatus::Cancelled {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_cancellable", format!("the job has already finished ({})", row.status))
            .with_details(json!({ "status": row.status })));
    }
    state.queue.announce_finished(&[id]).await;
    caller.audit(&state, "job.cancelled", id, json!({ "type": row.job_type })).await?;
    // A cancelled step ends its pipeline.
    if let Some(pipeline) = row.pipeline_id {
        if let Err(e) = peyk_queue::pipeline::advance(&registry::catalogue(), &state.pool, &state.queue, pipeline).await {
            tracing::warn!(%pipeline, error = %e, "could not end the pipeline of a cancelled step; the sweeper will");
        }
    }
    Ok(Json(row.into()))
}

/// What `DELETE /v1/jobs/{id}` erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobErasureView {
    /// The bare record that stays: id, type, status, attempts, times.
    pub job: JobView,
    /// Uploads the job named that were erased with it.
    pub files_erased: Vec<Uuid>,
    /// Uploads the job named that another unfinished job still needs: kept
    /// (erase them with `DELETE /v1/files/{id}` once it has finished).
    pub files_kept: Vec<Uuid>,
    /// Event messages about the job whose bodies were emptied.
    pub messages_erased: usize,
    /// Attempts whose error messages were emptied.
    pub attempts_erased: usize,
}

/// Erase a finished job's content: payload, result, error message,
/// metadata and callback, its attempts' error messages, its event
/// messages' bodies, its SMS texts, and the uploads it named (unless another
/// unfinished job needs them). The bare record stays (id, type, status,
/// attempts, times, error code) with `erased_at`; erasing again changes
/// nothing. A job not finished yet must be cancelled first.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Erased; what stays and what went", body = JobErasureView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not finished (`job_not_finished`): cancel it first", body = ErrorBody),
        (status = 503, description = "Database or file store unreachable; `Retry-After`", body = ErrorBody)))]
pub async fn erase_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<JobErasureView>, ApiError> {
    use peyk_schema::queries::retention::{self, EraseError};
    let tenant = Tenant(caller.tenant());
    let id = parse_job_id(&id)?;
    let (named, finished) = retention::job_files(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    // Files first: if the erasure stops half-way, the payload still names
    // them, so that erasing again finds them.
    let mut files_erased = Vec::new();
    let mut files_kept = Vec::new();
    if finished && !named.is_empty() {
        let unneeded = retention::unneeded_files(&state.pool, tenant.0, &named, id).await?;
        for file in named {
            if unneeded.contains(&file) {
                super::files::erase(&state, tenant.0 .0, file).await?;
                files_erased.push(file);
            } else {
                files_kept.push(file);
            }
        }
    }
    let (row, erased) = match retention::erase_job(&state.pool, tenant.0, id).await {
        Ok(Some(erased)) => erased,
        Ok(None) => return Err(ApiError::not_found("job")),
        Err(EraseError::NotFinished(status)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_not_finished",
                format!("the job is {status}; cancel it (POST /v1/jobs/{id}/cancel), then erase it once it has stopped"),
            )
            .with_details(json!({ "status": status })))
        }
        Err(EraseError::Db(e)) => return Err(e.into()),
    };
    // What it published as it ran (a transcript's segments) goes too; should
    // Redis not answer, that stream ends by itself within minutes of the job.
    if let Err(e) = state.queue.drop_live(id).await {
        tracing::warn!(job = %id, error = %e, "could not drop the erased job's live stream; it expires by itself");
    }
    caller.audit(&state, "job.erased", id, json!({ "type": row.job_type, "files": files_erased, "messages": erased.messages })).await?;
    Ok(Json(JobErasureView {
        job: row.into(),
        files_erased,
        files_kept,
        messages_erased: erased.messages,
        attempts_erased: erased.attempts,
    }))
}

/// Run a `failed` or `dead` job again, with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued again", body = JobView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Only failed or dead jobs can be retried, and not once erased (`not_retryable`)", body = ErrorBody)))]
pub async fn retry_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tenant = Tenant(caller.tenant());
    let id = parse_job_id(&id)?;
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    let task_id = ulid::Ulid::new().to_string();
    let (row, retried) = jobs::retry(&state.pool, tenant.0, id, &task_id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    if !retried {
        let problem = match row.erased_at {
            Some(_) => "its content was erased".to_string(),
            None => format!("only failed or dead jobs can be retried; this one is {}", row.status),
        };
        return Err(ApiError::new(StatusCode::CONFLICT, "not_retryable", problem).with_details(json!({ "status": row.status })));
    }
    enqueue(&state, &row).await;
    caller.audit(&state, "job.retried", id, json!({ "type": row.job_type })).await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from(row))).into_response())
}

/// The attempts of a job, oldest first.
#[utoipa::path(get, path = "/v1/jobs/{id}/attempts", tag = "jobs", security(("api_key" = ["jobs:read"])),
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = AttemptList), (status = 404, body = ErrorBody)))]
pub async fn list_attempts(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<Json<AttemptList>, ApiError> {
    let id = parse_job_id(&id)?;
    // The job lookup is what scopes the attempts to the tenant.
    jobs::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("job"))?;
    let rows = attempts::list_for_job(&state.pool, id).await?;
    Ok(Json(AttemptList { data: rows.into_iter().map(Into::into).collect() }))
}
