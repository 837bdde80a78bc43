//! `/v1/pipelines`: submit a pipeline, follow its steps, cancel it. The
//! steps themselves are ordinary jobs (in `/v1/jobs`, with `pipeline_id`);
//! `peyk_queue::pipeline` has the rules.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_jobs::registry;
use peyk_queue::metadata::{self, Metadata};
use peyk_queue::pipeline::{self, StepSpec};
use peyk_schema::queries::pipelines as q;
use peyk_schema::{JobRow, NewJob, PipelineRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::admission::Admission;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::quota::{self, Use};
use crate::routes::jobs::{check_files, enqueue, read_when_ended, wait_param};
use crate::state::AppState;
use crate::views::{ErrorBody, JobErrorView};

/// `POST /v1/pipelines` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitPipeline {
    /// Run in order; each starts when the one before it succeeded.
    pub steps: Vec<StepSpec>,
    /// Your own keys, as on a job (`POST /v1/jobs`); every step's job carries them too.
    #[serde(default)]
    #[schema(example = json!({"appointment": "4242"}))]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineView {
    pub id: Uuid,
    /// running | succeeded | failed | cancelled
    pub status: String,
    pub current_step: i32,
    /// Why it failed or was cancelled.
    pub error: Option<JobErrorView>,
    pub steps: Vec<StepView>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// As submitted (`{}` when none).
    pub metadata: Metadata,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub index: usize,
    #[serde(rename = "type")]
    pub job_type: String,
    /// The step's job status; `pending` before it starts, `skipped` when
    /// the pipeline ended before it.
    pub status: String,
    pub job_id: Option<Uuid>,
    pub result: Option<serde_json::Value>,
    pub error: Option<JobErrorView>,
}

fn view(pipeline: PipelineRow, jobs: Vec<JobRow>) -> PipelineView {
    let specs: Vec<StepSpec> = serde_json::from_value(pipeline.steps).unwrap_or_default();
    let ended = pipeline.status != "running";
    let steps = specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| match jobs.iter().find(|j| j.pipeline_step == Some(index as i32)) {
            Some(job) => StepView {
                index,
                job_type: spec.job_type,
                status: job.status.clone(),
                job_id: Some(job.id),
                result: job.result.clone(),
                error: job.error_code.clone().map(|code| JobErrorView { code, message: job.error_message.clone().unwrap_or_default() }),
            },
            None => StepView {
                index,
                job_type: spec.job_type,
                status: if ended { "skipped" } else { "pending" }.into(),
                job_id: None,
                result: None,
                error: None,
            },
        })
        .collect();
    PipelineView {
        id: pipeline.id,
        status: pipeline.status,
        current_step: pipeline.current_step,
        error: pipeline.error_code.map(|code| JobErrorView { code, message: pipeline.error_message.unwrap_or_default() }),
        steps,
        created_at: pipeline.created_at,
        finished_at: pipeline.finished_at,
        metadata: metadata::from_value(&pipeline.metadata),
    }
}

/// Submit a pipeline.
#[utoipa::path(post, path = "/v1/pipelines", tag = "pipelines", request_body = SubmitPipeline,
    security(("api_key" = ["jobs:write"])),
    responses(
        (status = 202, description = "Stored; the first step is queued", body = PipelineView),
        (status = 422, description = "Unknown step type, invalid step payload, a reference to a step or field that does not exist, or a step refused at admission (`unknown_task`, `no_gateway_account`, `unknown_template`)", body = ErrorBody),
        (status = 429, description = "The first step is an SMS that a rate rule refuses now (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "Queue or database unreachable, or no worker has a step's provider configured (`provider_not_configured`)", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    tenant: Tenant,
    ValidJson(submission): ValidJson<SubmitPipeline>,
) -> Result<Response, ApiError> {
    let registry = registry::catalogue();
    pipeline::validate_steps(&registry, &submission.steps).map_err(ApiError::validation)?;
    if let Some(given) = &submission.metadata {
        metadata::check("metadata", given).map_err(ApiError::validation)?;
    }
    let first_step = &submission.steps[0];
    let mut audio = 0.0;
    if let Some(Ok(first)) = registry.get(&first_step.job_type).map(|kind| kind.validate(&first_step.payload)) {
        audio = check_files(&state, &tenant, "steps[0].payload", &first.files).await?;
    }
    if !state.redis_is_up() {
        return Err(ApiError::queue_unavailable());
    }
    // Every step is a job; what the first uses is known now, the later steps' inputs only as they run.
    let mut usage = Use::of(&first_step.job_type, &first_step.payload, audio);
    usage.jobs = submission.steps.len() as i64;
    let charged = quota::charge(&state, tenant.0, usage).await?;
    let now = Utc::now();
    let steps = serde_json::to_value(&submission.steps).map_err(ApiError::internal)?;
    let row = PipelineRow::started(tenant.0 .0, steps, metadata::to_value(submission.metadata.as_ref()), now);
    let mut first = pipeline::step_job(&registry, &row, 0, &[]).map_err(|(_, message)| ApiError::internal(message))?;
    if let Err(refused) = admit_steps(&state, &tenant, &submission.steps, &mut first).await {
        quota::refund(&state, tenant.0, &charged).await;
        return Err(refused);
    }
    let job = match q::create(&state.pool, &row, &first).await {
        Ok(job) => job,
        Err(e) => {
            quota::refund(&state, tenant.0, &charged).await;
            return Err(e.into());
        }
    };
    enqueue(&state, &job).await;
    Ok((StatusCode::ACCEPTED, Json(view(row, vec![job]))).into_response())
}

/// What admission answers for the steps (see `crate::admission`): the
/// first as a job that runs now, the later ones as far as their payloads
/// are known before the earlier steps run.
async fn admit_steps(state: &AppState, tenant: &Tenant, steps: &[StepSpec], first: &mut NewJob) -> Result<(), ApiError> {
    let mut admission = Admission::new(state, tenant);
    admission.check("steps[0].payload", first).await?;
    for (index, step) in steps.iter().enumerate().skip(1) {
        admission.check_later(&format!("steps[{index}].payload"), &step.job_type, &step.payload).await?;
    }
    Ok(())
}

/// A pipeline with every step's status.
#[utoipa::path(get, path = "/v1/pipelines/{id}", tag = "pipelines", security(("api_key" = ["jobs:read"])),
    params(("id" = String, Path, description = "Pipeline id"),
        ("wait" = Option<f64>, Query, description = "Hold the request up to this many seconds (0–60) until the pipeline ends; it answers the pipeline as it is then")),
    responses((status = 200, body = PipelineView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_pipeline(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<PipelineView>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("pipeline"))?;
    let wait = wait_param(query.as_deref())?;
    let (pool, tenant_id) = (state.pool.clone(), tenant.0);
    let read = move || {
        let pool = pool.clone();
        async move { q::get(&pool, tenant_id, id).await }
    };
    let row = read_when_ended(&state, id, wait, read, |row: &PipelineRow| row.status != "running")
        .await?
        .ok_or_else(|| ApiError::not_found("pipeline"))?;
    let jobs = q::step_jobs(&state.pool, id).await?;
    Ok(Json(view(row, jobs)))
}

/// Cancel a pipeline: steps not started never start; a queued or running
/// step is cancelled. `409` when the pipeline already ended.
#[utoipa::path(post, path = "/v1/pipelines/{id}/cancel", tag = "pipelines", security(("api_key" = ["jobs:write"])),
    params(("id" = String, Path, description = "Pipeline id")),
    responses((status = 200, body = PipelineView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_pipeline(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<Json<PipelineView>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("pipeline"))?;
    let before = q::get(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("pipeline"))?;
    if before.status != "running" {
        return Err(ApiError::new(StatusCode::CONFLICT, "not_cancellable", format!("the pipeline already ended ({})", before.status)));
    }
    let row = q::cancel(&state.pool, tenant.0, id).await?.ok_or_else(|| ApiError::not_found("pipeline"))?;
    // The pipeline and the steps cancelled here, announced together to their waiters.
    let mut ended = vec![id];
    for job in q::step_jobs(&state.pool, id).await? {
        if !job.status().is_terminal() {
            peyk_schema::queries::jobs::cancel(&state.pool, tenant.0, job.id).await?;
            ended.push(job.id);
        }
    }
    state.queue.announce_finished(&ended).await;
    let jobs = q::step_jobs(&state.pool, id).await?;
    Ok(Json(view(row, jobs)))
}
