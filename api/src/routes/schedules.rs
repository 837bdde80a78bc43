//! `/v1/schedules`: Celery beat over HTTP. A schedule submits a job (or a
//! pipeline) at each fire time of a cron expression or an interval, in a
//! time zone and optionally the Persian calendar; the workers fire them
//! (`peyk_queue::schedule`). Payloads are validated here exactly as
//! `POST /v1/jobs` and `POST /v1/pipelines` validate them.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use peyk_jobs::registry;
use peyk_queue::schedule::fire::{self, timing_of};
use peyk_queue::schedule::target::{submission, submission_usage, unstaged_usage, JobTemplate, PipelineTemplate, Target};
use peyk_queue::schedule::{Calendar, Timing, TimingSpec};
use peyk_queue::ValidationErrors;
use peyk_queue::{metadata, pipeline};
use peyk_schema::queries::schedules::{self as q, Edited};
use peyk_schema::{FireRow, ScheduleRow};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admission::Admission;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::{from_value, ValidJson};
use crate::quota;
use crate::routes::jobs::{build_job, check_files, decode_cursor, enqueue, url_pairs};
use crate::state::AppState;
use crate::views::{ErrorBody, JobView, SubmitJob};

const OVERLAPS: [&str; 3] = ["allow", "skip", "queue_one"];
const MISFIRES: [&str; 3] = ["skip", "run_once", "run_all"];
const MAX_NEXT_RUNS: usize = 100;

/// A schedule as created (`POST`) and as a `PATCH` is merged into.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique per tenant, 1–200 characters.
    #[schema(example = "morning-reminders")]
    pub name: String,
    /// 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
    /// seconds first; lists, ranges, steps, names (`MON`, `JAN`), `L` (last
    /// day of the month) and the `@daily`-style shorthands. Not with `every_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "0 9 * * *")]
    pub cron: Option<String>,
    /// Fire every this many seconds (≥ 1), counted from `start_at` (else
    /// from creation). Not with `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<i64>,
    /// IANA time zone the cron fields are read in. Default `Asia/Tehran`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// `gregorian` (default) or `persian`: with `persian`, the day-of-month
    /// and month fields count in the Solar Hijri calendar (`0 9 1 * *`:
    /// 09:00 on the 1st of every Persian month; `0 0 1 1 *`: Nowruz; `L`:
    /// the month's last day, Esfand 29 or 30).
    #[serde(default = "default_calendar")]
    pub calendar: String,
    /// No fire before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// No fire after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,
    /// The job each fire submits. Give `job` or `pipeline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobTemplate>,
    /// The pipeline each fire submits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineTemplate>,
    /// While the previous fire's job (or pipeline) is still queued or
    /// running: `allow` (default) submits anyway, `skip` records the fire
    /// as skipped, `queue_one` keeps one fire waiting until it ends.
    #[serde(default = "default_overlap")]
    pub overlap: String,
    /// Fire times more than `misfire_grace_seconds` late (no worker ran, or
    /// the schedule was paused): `skip` them, run the latest once
    /// (`run_once`, default), or run them all (`run_all`, the latest
    /// `misfire_cap`).
    #[serde(default = "default_misfire")]
    pub misfire: String,
    /// 1–1000, default 10.
    #[serde(default = "default_misfire_cap")]
    pub misfire_cap: i32,
    /// 1–86400, default 60.
    #[serde(default = "default_misfire_grace")]
    pub misfire_grace_seconds: i32,
    /// Create it paused.
    #[serde(default)]
    pub paused: bool,
}

fn default_timezone() -> String {
    "Asia/Tehran".into()
}
fn default_calendar() -> String {
    "gregorian".into()
}
fn default_overlap() -> String {
    "allow".into()
}
fn default_misfire() -> String {
    "run_once".into()
}
fn default_misfire_cap() -> i32 {
    10
}
fn default_misfire_grace() -> i32 {
    60
}

/// A fire time, in UTC and on the schedule's wall clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireTime {
    pub at: DateTime<Utc>,
    /// `at` in the schedule's time zone, e.g. `2027-03-21T09:00:00+03:30`.
    pub local: String,
    /// With `calendar: persian`: the local date in the Persian calendar, e.g. `1406-01-01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persian_date: Option<String>,
}

/// One fire time acted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireView {
    pub fire_at: DateTime<Utc>,
    pub local: String,
    pub fired_at: DateTime<Utc>,
    /// submitted | skipped_overlap | buffered | missed | quota_exceeded | error
    pub outcome: String,
    /// `missed`: how many fire times this entry stands for, from `fire_at` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<i32>,
    /// Fired by `POST /v1/schedules/{id}/trigger`.
    pub manual: bool,
    pub job_id: Option<Uuid>,
    pub pipeline_id: Option<Uuid>,
    /// The job's status now (its outcome once it finished).
    pub job_status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// The next fire times (`?next_runs=N`, default 5, at most 100); empty
    /// when it will not fire again.
    pub next_runs: Vec<FireTime>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest fires, newest first (`GET /v1/schedules/{id}` only; all
    /// of them at `/v1/schedules/{id}/history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<FireView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    pub data: Vec<ScheduleView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FireList {
    pub data: Vec<FireView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    pub fire: FireView,
    pub job: JobView,
}

fn spec_of(row: &ScheduleRow) -> ScheduleSpec {
    let (job, pipeline) = match serde_json::from_value::<Target>(row.target.clone()) {
        Ok(Target::Job(mut job)) => {
            if let Some(kind) = registry::catalogue().get(&job.job_type) {
                kind.redact(&mut job.payload);
            }
            (Some(job), None)
        }
        Ok(Target::Pipeline(pipeline)) => (None, Some(pipeline)),
        Err(_) => (None, None),
    };
    ScheduleSpec {
        name: row.name.clone(),
        cron: row.cron.clone(),
        every_seconds: row.every_seconds.map(i64::from),
        timezone: row.timezone.clone(),
        calendar: row.calendar.clone(),
        start_at: row.start_at,
        end_at: row.end_at,
        job,
        pipeline,
        overlap: row.overlap.clone(),
        misfire: row.misfire.clone(),
        misfire_cap: row.misfire_cap,
        misfire_grace_seconds: row.misfire_grace_seconds,
        paused: row.paused,
    }
}

fn fire_time(timing: &Timing, at: DateTime<Utc>) -> FireTime {
    let persian_date = (timing.calendar == Calendar::Persian).then(|| timing.persian_date(at)).flatten();
    FireTime { at, local: timing.local(at), persian_date }
}

fn fire_view(timing: Option<&Timing>, fire: FireRow, job_status: Option<String>) -> FireView {
    FireView {
        local: timing.map_or_else(|| fire.fire_at.to_rfc3339(), |t| t.local(fire.fire_at)),
        fire_at: fire.fire_at,
        fired_at: fire.fired_at,
        outcome: fire.outcome,
        missed: fire.missed,
        manual: fire.manual,
        job_id: fire.job_id,
        pipeline_id: fire.pipeline_id,
        job_status,
    }
}

fn view(row: ScheduleRow, now: DateTime<Utc>, next_runs: usize, history: Option<Vec<q::FireWithStatus>>) -> ScheduleView {
    let timing = timing_of(&row).ok();
    let runs = match (&timing, row.next_fire_at) {
        (Some(timing), Some(_)) => timing.next_runs(now, next_runs).into_iter().map(|at| fire_time(timing, at)).collect(),
        _ => Vec::new(),
    };
    let history = history.map(|fires| fires.into_iter().map(|(fire, status)| fire_view(timing.as_ref(), fire, status)).collect());
    ScheduleView {
        id: row.id,
        spec: spec_of(&row),
        next_runs: runs,
        last_fire_at: row.last_fire_at,
        last_job_id: row.last_job_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        history,
    }
}

/// A checked spec: its timing and the target to store.
struct Checked {
    timing: Timing,
    target: Value,
}

/// Prefixes the fields an error names (`payload.url` → `job.payload.url`).
fn under(prefix: &str, mut error: ApiError) -> ApiError {
    if let Some(errors) = error.details.get_mut("errors").and_then(Value::as_array_mut) {
        for entry in errors {
            if let Some(field) = entry.get("field").and_then(Value::as_str) {
                entry["field"] = json!(format!("{prefix}.{field}"));
            }
        }
    }
    error.message = format!("{prefix}: {}", error.message);
    error
}

/// Validates a spec as `POST /v1/jobs` / `POST /v1/pipelines` would its
/// target, and its timing; `anchor`: where `every_seconds` counts from.
async fn check(
    state: &AppState,
    tenant: &Tenant,
    spec: &ScheduleSpec,
    anchor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Checked, ApiError> {
    let mut errors = ValidationErrors::new();
    if spec.name.trim().is_empty() || spec.name.chars().count() > 200 {
        errors.add("name", "must be 1 to 200 characters");
    }
    if !OVERLAPS.contains(&spec.overlap.as_str()) {
        errors.add("overlap", format!("must be one of {}", OVERLAPS.join(", ")));
    }
    if !MISFIRES.contains(&spec.misfire.as_str()) {
        errors.add("misfire", format!("must be one of {}", MISFIRES.join(", ")));
    }
    if !(1..=1000).contains(&spec.misfire_cap) {
        errors.add("misfire_cap", "must be between 1 and 1000");
    }
    if !(1..=86_400).contains(&spec.misfire_grace_seconds) {
        errors.add("misfire_grace_seconds", "must be between 1 and 86400");
    }
    if spec.every_seconds.is_some_and(|s| s > i64::from(i32::MAX)) {
        errors.add("every_seconds", format!("must be at most {}", i32::MAX));
    }
    let timing = Timing::parse(&TimingSpec {
        cron: spec.cron.as_deref(),
        every_seconds: spec.every_seconds,
        timezone: &spec.timezone,
        calendar: &spec.calendar,
        anchor_at: anchor,
        start_at: spec.start_at,
        end_at: spec.end_at,
    });
    let timing = match timing {
        Ok(timing) if timing.next_after(now).is_none() => {
            match spec.end_at {
                Some(end) if end <= now => errors.add("end_at", "is in the past: the schedule would never fire"),
                _ => errors.add("cron", "never fires (within ten years): an impossible date such as 31 February?"),
            }
            None
        }
        Ok(timing) => Some(timing),
        Err(invalid) => {
            errors.0.extend(invalid.0);
            None
        }
    };
    let target = match (&spec.job, &spec.pipeline) {
        (Some(_), Some(_)) | (None, None) => {
            errors.add("job", "give either `job` or `pipeline`");
            None
        }
        _ => Some(()),
    };
    errors.into_result().map_err(ApiError::validation)?;
    let (Some(timing), Some(())) = (timing, target) else { unreachable!("errors were returned above") };
    let target = match (&spec.job, &spec.pipeline) {
        (Some(job), _) => Target::Job(check_job(state, tenant, job).await?),
        (_, Some(pipeline)) => Target::Pipeline(check_pipeline(state, tenant, pipeline).await?),
        (None, None) => unreachable!("checked above"),
    };
    Ok(Checked { timing, target: serde_json::to_value(target).map_err(ApiError::internal)? })
}

/// The job template as `POST /v1/jobs` validates a submission; its payload
/// as that validation leaves it.
async fn check_job(state: &AppState, tenant: &Tenant, job: &JobTemplate) -> Result<JobTemplate, ApiError> {
    let submission = SubmitJob {
        job_type: job.job_type.clone(),
        payload: job.payload.clone(),
        idempotency_key: None,
        max_attempts: job.max_attempts,
        delay_seconds: None,
        run_at: None,
        priority: job.priority,
        metadata: job.metadata.clone(),
        callback_url: None,
        callback_secret: None,
    };
    let (built, files) = build_job(tenant, submission).map_err(|e| under("job", e))?;
    check_files(state, tenant, "job.payload", &files).await?;
    Admission::new(state, tenant).check_later("job.payload", &built.job_type, &built.payload).await?;
    Ok(JobTemplate { payload: built.payload, ..job.clone() })
}

async fn check_pipeline(state: &AppState, tenant: &Tenant, template: &PipelineTemplate) -> Result<PipelineTemplate, ApiError> {
    let registry = registry::catalogue();
    pipeline::validate_steps(&registry, &template.steps).map_err(|e| ApiError::validation(e.nested("pipeline")))?;
    if let Some(given) = &template.metadata {
        metadata::check("pipeline.metadata", given).map_err(ApiError::validation)?;
    }
    let first = &template.steps[0];
    if let Some(Ok(validated)) = registry.get(&first.job_type).map(|kind| kind.validate(&first.payload)) {
        check_files(state, tenant, "pipeline.steps[0].payload", &validated.files).await?;
    }
    Ok(template.clone())
}

fn name_taken(name: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "schedule_name_taken", format!("this tenant already has a schedule named `{name}`"))
        .with_details(json!({ "errors": [{ "field": "name", "problem": "already used by another schedule" }] }))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("schedule"))
}

/// `?next_runs=N` (1–100, default 5).
fn next_runs_param(query: Option<&str>) -> Result<usize, ApiError> {
    let mut count = 5;
    for (name, value) in url_pairs(query.unwrap_or("")) {
        match name.as_str() {
            "next_runs" => {
                count = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_NEXT_RUNS).contains(n))
                    .ok_or_else(|| ApiError::bad_parameter("next_runs", format!("must be a whole number from 1 to {MAX_NEXT_RUNS}")))?;
            }
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: next_runs")),
        }
    }
    Ok(count)
}

/// Create a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = ScheduleSpec,
    security(("api_key" = ["jobs:write"])),
    responses(
        (status = 201, description = "Created; `next_runs` shows when it fires", body = ScheduleView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 409, description = "The tenant has a schedule of that name", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field: cron (naming the field of the expression), time zone, interval, an expression that never fires, end_at before start_at, the job's payload", body = ErrorBody),
        (status = 429, description = "Request rate over the tenant's limit", body = ErrorBody),
        (status = 503, description = "Database unreachable", body = ErrorBody),
    ))]
pub async fn create_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    ValidJson(spec): ValidJson<ScheduleSpec>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let now = q::now(&state.pool).await?;
    let anchor = spec.start_at.unwrap_or(now);
    let checked = check(&state, &tenant, &spec, anchor, now).await?;
    let row = ScheduleRow {
        id: Uuid::now_v7(),
        tenant_id: tenant.0 .0,
        name: spec.name.trim().to_string(),
        cron: spec.cron.clone(),
        every_seconds: spec.every_seconds.map(|s| s as i32),
        timezone: spec.timezone.clone(),
        calendar: spec.calendar.clone(),
        anchor_at: DateTime::from_timestamp(anchor.timestamp(), 0).unwrap_or(anchor),
        start_at: spec.start_at,
        end_at: spec.end_at,
        target: checked.target,
        overlap: spec.overlap.clone(),
        misfire: spec.misfire.clone(),
        misfire_cap: spec.misfire_cap,
        misfire_grace_seconds: spec.misfire_grace_seconds,
        paused: spec.paused,
        next_fire_at: checked.timing.next_after(now),
        buffered_fire_at: None,
        last_fire_at: None,
        last_job_id: None,
        last_pipeline_id: None,
        created_at: now,
        updated_at: now,
    };
    let row = q::create(&state.pool, &row).await?.ok_or_else(|| name_taken(&spec.name))?;
    Ok((StatusCode::CREATED, Json(view(row, now, 5, None))))
}

/// List schedules, newest first.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules", security(("api_key" = ["jobs:read"])),
    params(
        ("limit" = Option<i64>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, body = ScheduleList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_schedules(
    State(state): State<AppState>,
    tenant: Tenant,
    RawQuery(query): RawQuery,
) -> Result<Json<ScheduleList>, ApiError> {
    let (mut limit, mut before) = (50i64, None);
    for (name, value) in url_pairs(query.as_deref().unwrap_or("")) {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| ApiError::bad_parameter("limit", "must be a whole number from 1 to 200"))?;
            }
            "cursor" => before = Some(decode_cursor(&value)?),
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: limit, cursor")),
        }
    }
    let mut rows = q::list(&state.pool, tenant.0, before, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| URL_SAFE_NO_PAD.encode(row.id.as_bytes()))
    } else {
        None
    };
    let now = Utc::now();
    Ok(Json(ScheduleList { data: rows.into_iter().map(|row| view(row, now, 5, None)).collect(), next_cursor }))
}

/// Get a schedule, its next fire times and its latest fires.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules", security(("api_key" = ["jobs:read"])),
    params(("id" = String, Path, description = "Schedule id"),
        ("next_runs" = Option<usize>, Query, description = "How many next fire times to show, 1–100 (default 5)")),
    responses((status = 200, body = ScheduleView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = parse_id(&id)?;
    let count = next_runs_param(query.as_deref())?;
    let row = q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    let history = q::history(&state.pool, id, None, 20).await?;
    Ok(Json(view(row, Utc::now(), count, Some(history))))
}

/// Merges a JSON merge patch (RFC 7396) into `target`. Setting one of
/// `cron`/`every_seconds` (or `job`/`pipeline`) drops the other.
fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (one, other) in [("cron", "every_seconds"), ("every_seconds", "cron"), ("job", "pipeline"), ("pipeline", "job")] {
        if patch.get(one).is_some_and(|v| !v.is_null()) && !patch.contains_key(other) {
            target.remove(other);
        }
    }
    for (key, value) in patch {
        match (value, target.get_mut(&key)) {
            (Value::Null, _) => {
                target.remove(&key);
            }
            (Value::Object(inner), Some(Value::Object(existing))) => merge_patch(existing, inner),
            (value, _) => {
                target.insert(key, value);
            }
        }
    }
}

/// Change a schedule.
///
/// The body is a JSON merge patch (RFC 7396) of the schedule's fields:
/// what it names changes, `null` removes an optional field; setting `cron`
/// drops `every_seconds` and the other way round, as do `job` and
/// `pipeline`. The result is validated as a new schedule is. A change of
/// timing takes effect from now: the next fire time is computed afresh.
#[utoipa::path(patch, path = "/v1/schedules/{id}", tag = "schedules", request_body = ScheduleSpec,
    security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Schedule id")),
    responses(
        (status = 200, body = ScheduleView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn update_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    ValidJson(patch): ValidJson<Map<String, Value>>,
) -> Result<Json<ScheduleView>, ApiError> {
    let id = parse_id(&id)?;
    let current = q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    // The stored target, not the redacted view of it, is what the patch applies to.
    let mut merged = serde_json::to_value(ScheduleSpec { job: None, pipeline: None, ..spec_of(&current) }).map_err(ApiError::internal)?;
    let merged_map = merged.as_object_mut().expect("a struct serializes to an object");
    if let Ok(target) = serde_json::from_value::<Map<String, Value>>(current.target.clone()) {
        merged_map.extend(target);
    }
    merge_patch(merged_map, patch);
    let spec: ScheduleSpec = from_value(merged)?;
    let now = q::now(&state.pool).await?;
    let anchor = spec.start_at.unwrap_or(current.anchor_at);
    let checked = check(&state, &tenant, &spec, anchor, now).await?;
    let edited = q::edit(&state.pool, tenant.0, id, move |mut row: ScheduleRow, now: DateTime<Utc>| -> Result<ScheduleRow, ApiError> {
        let timing_changed = row.cron != spec.cron
            || row.every_seconds.map(i64::from) != spec.every_seconds
            || row.timezone != spec.timezone
            || row.calendar != spec.calendar
            || row.start_at != spec.start_at
            || row.end_at != spec.end_at;
        let resumed = row.paused && !spec.paused;
        row.name = spec.name.trim().to_string();
        row.cron = spec.cron;
        row.every_seconds = spec.every_seconds.map(|s| s as i32);
        row.timezone = spec.timezone;
        row.calendar = spec.calendar;
        row.anchor_at = DateTime::from_timestamp(anchor.timestamp(), 0).unwrap_or(anchor);
        row.start_at = spec.start_at;
        row.end_at = spec.end_at;
        row.target = checked.target;
        row.overlap = spec.overlap;
        row.misfire = spec.misfire;
        row.misfire_cap = spec.misfire_cap;
        row.misfire_grace_seconds = spec.misfire_grace_seconds;
        row.paused = spec.paused;
        if timing_changed || (resumed && row.misfire == "skip") {
            row.next_fire_at = checked.timing.next_after(now);
        }
        Ok(row)
    })
    .await?;
    saved(&state, &tenant, edited).await
}

async fn saved(state: &AppState, tenant: &Tenant, edited: Edited<ApiError>) -> Result<Json<ScheduleView>, ApiError> {
    match edited {
        Edited::Saved(row, unstaged) => {
            quota::refund_usage(state, tenant.0, unstaged_usage(&unstaged)).await;
            Ok(Json(view(*row, Utc::now(), 5, None)))
        }
        Edited::NotFound => Err(ApiError::not_found("schedule")),
        Edited::Refused(error) => Err(error),
        Edited::NameTaken => {
            Err(ApiError::new(StatusCode::CONFLICT, "schedule_name_taken", "another schedule of this tenant has that name")
                .with_details(json!({ "errors": [{ "field": "name", "problem": "already used by another schedule" }] })))
        }
    }
}

/// Delete a schedule and its history. Jobs it submitted stay.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete_schedule(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let unstaged = q::delete(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    quota::refund_usage(&state, tenant.0, unstaged_usage(&unstaged)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(post, path = "/v1/schedules/{id}/pause", tag = "schedules", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn pause_schedule(State(state): State<AppState>, tenant: Tenant, Path(id): Path<String>) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &tenant, &id, true).await
}

/// Resume a paused schedule. It continues from its next fire time; fire
/// times that passed while it was paused follow `misfire` (`skip`: none of
/// them; `run_once`: the latest; `run_all`: up to `misfire_cap`).
#[utoipa::path(post, path = "/v1/schedules/{id}/resume", tag = "schedules", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, body = ScheduleView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn resume_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    set_paused(&state, &tenant, &id, false).await
}

async fn set_paused(state: &AppState, tenant: &Tenant, id: &str, paused: bool) -> Result<Json<ScheduleView>, ApiError> {
    let id = parse_id(id)?;
    let edited = q::edit(&state.pool, tenant.0, id, move |mut row: ScheduleRow, now: DateTime<Utc>| -> Result<ScheduleRow, ApiError> {
        if row.paused && !paused && row.misfire == "skip" {
            // Skipping what passed while paused: on from the next fire time.
            let timing = timing_of(&row).map_err(ApiError::validation)?;
            row.next_fire_at = timing.next_after(now);
        }
        row.paused = paused;
        Ok(row)
    })
    .await?;
    saved(state, tenant, edited).await
}

/// Fire a schedule now, once (whatever its timing, pause or overlap).
#[utoipa::path(post, path = "/v1/schedules/{id}/trigger", tag = "schedules", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Schedule id")),
    responses(
        (status = 202, description = "The job (or the pipeline's first step) is queued", body = TriggerView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Request rate or a quota of the tenant passed", body = ErrorBody),
        (status = 503, description = "Queue or database unreachable", body = ErrorBody),
    ))]
pub async fn trigger_schedule(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TriggerView>), ApiError> {
    let id = parse_id(&id)?;
    let row = q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    let registry = registry::catalogue();
    let now = Utc::now();
    // What the fire will use, for the quotas: the job as it would be built now.
    let usage = submission(&registry, &row, now, now).map(|s| submission_usage(&s.job, s.pipeline.as_ref())).unwrap_or_default();
    let charged = quota::charge(&state, tenant.0, usage).await?;
    let fired = fire::trigger(&state.pool, registry, tenant.0 .0, id).await;
    let refused = match fired {
        Ok(Some(Ok((fire, job)))) => {
            enqueue(&state, &job).await;
            let timing = timing_of(&row).ok();
            let fire = fire_view(timing.as_ref(), fire, Some(job.status.clone()));
            return Ok((StatusCode::ACCEPTED, Json(TriggerView { fire, job: job.into() })));
        }
        Ok(None) => ApiError::not_found("schedule"),
        Ok(Some(Err(problem))) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "schedule_target_invalid", problem),
        Err(e) => e.into(),
    };
    quota::refund(&state, tenant.0, &charged).await;
    Err(refused)
}

/// A schedule's fires, newest first.
#[utoipa::path(get, path = "/v1/schedules/{id}/history", tag = "schedules", security(("api_key" = ["jobs:read"])),
    params(("id" = String, Path, description = "Schedule id"),
        ("limit" = Option<i64>, Query, description = "1–200, default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, body = FireList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn schedule_history(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<FireList>, ApiError> {
    let id = parse_id(&id)?;
    let (mut limit, mut before) = (50i64, None);
    for (name, value) in url_pairs(query.as_deref().unwrap_or("")) {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| ApiError::bad_parameter("limit", "must be a whole number from 1 to 200"))?;
            }
            "cursor" => {
                let micros = URL_SAFE_NO_PAD
                    .decode(&value)
                    .ok()
                    .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                    .map(i64::from_be_bytes)
                    .and_then(DateTime::from_timestamp_micros)
                    .ok_or_else(|| ApiError::bad_parameter("cursor", "is not a cursor this API returned"))?;
                before = Some(micros);
            }
            other => return Err(ApiError::bad_parameter(other, "unknown parameter; known: limit, cursor")),
        }
    }
    let row = q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("schedule"))?;
    let mut fires = q::history(&state.pool, id, before, limit + 1).await?;
    let next_cursor = if fires.len() as i64 > limit {
        fires.truncate(limit as usize);
        fires.last().map(|(fire, _)| URL_SAFE_NO_PAD.encode(fire.fire_at.timestamp_micros().to_be_bytes()))
    } else {
        None
    };
    let timing = timing_of(&row).ok();
    Ok(Json(FireList { data: fires.into_iter().map(|(fire, status)| fire_view(timing.as_ref(), fire, status)).collect(), next_cursor }))
}
