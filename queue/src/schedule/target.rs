//! What a schedule submits at each fire: one job, or a pipeline. Stored as
//! `{"job": {...}}` or `{"pipeline": {"steps": [...]}}`; the payloads were
//! validated when the schedule was created or changed, exactly as
//! `POST /v1/jobs` and `POST /v1/pipelines` validate them.

use chrono::{DateTime, SecondsFormat, Utc};
use peyk_schema::queries::schedules::Unstaged;
use peyk_schema::{NewJob, PipelineRow, ScheduleRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::metadata::{self, Metadata};
use crate::pipeline::{self, StepSpec};
use crate::queue::Use;
use crate::registry::Registry;
use crate::Clients;

/// The job each fire submits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobTemplate {
    /// The job type, e.g. `webhook`, `sms`, `email`.
    #[serde(rename = "type")]
    pub job_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// 0–10, within the tenant's share (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i16>,
    /// Default: the type's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
    /// Put on each fire's job (see `metadata` on `POST /v1/jobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// The pipeline each fire submits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineTemplate {
    pub steps: Vec<StepSpec>,
    /// Put on each fire's pipeline and its steps' jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Job(JobTemplate),
    Pipeline(PipelineTemplate),
}

/// What one fire stores: a job, and the pipeline it is the first step of.
#[derive(Debug, Clone)]
pub struct Submission {
    pub job: NewJob,
    pub pipeline: Option<PipelineRow>,
}

/// What a fire's job (and pipeline) counts against the tenant's quotas:
/// every step of a pipeline is a job.
pub fn submission_usage(job: &NewJob, pipeline: Option<&PipelineRow>) -> Use {
    usage_of(&job.job_type, &job.payload, pipeline.and_then(|p| p.steps.as_array()).map(Vec::len))
}

/// What the fires undone by an edit had been charged (to refund).
pub fn unstaged_usage(unstaged: &[Unstaged]) -> Use {
    let mut usage = Use::default();
    for fire in unstaged {
        if let (Some(job_type), Some(payload)) = (&fire.job_type, &fire.payload) {
            usage.add(usage_of(job_type, payload, fire.pipeline_steps.map(|n| n.max(0) as usize)));
        }
    }
    usage
}

fn usage_of(job_type: &str, payload: &Value, pipeline_steps: Option<usize>) -> Use {
    let mut usage = Use::of(job_type, payload, 0.0);
    if let Some(steps) = pipeline_steps {
        usage.jobs = steps as i64;
    }
    usage
}

/// The idempotency key of a fire's job: the fire time names it, so that a
/// fire can never submit twice.
pub fn idempotency_key(schedule: Uuid, fire_at: DateTime<Utc>) -> String {
    format!("schedule:{schedule}:{}", fire_at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The job (and pipeline) for `schedule`'s fire at `fire_at`, stored at
/// `now`: it runs at its fire time, or at once when that has passed.
/// Fails only when the stored target no longer fits the job types this
/// process knows.
pub fn submission<C: Clients>(
    registry: &Registry<C>,
    schedule: &ScheduleRow,
    fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Submission, String> {
    let target: Target = serde_json::from_value(schedule.target.clone()).map_err(|e| format!("stored target unreadable: {e}"))?;
    let keyed = |job: NewJob| NewJob {
        idempotency_key: Some(idempotency_key(schedule.id, fire_at)),
        schedule_id: Some(schedule.id),
        run_at: fire_at.max(now),
        status: if fire_at > now { "scheduled" } else { "queued" }.into(),
        ..job
    };
    match target {
        Target::Job(template) => {
            let kind = registry.get(&template.job_type).ok_or_else(|| format!("unknown job type `{}`", template.job_type))?;
            let job = crate::submit::system_job(schedule.tenant_id, kind, template.payload, now);
            let job = NewJob {
                priority: template.priority.unwrap_or(0),
                max_attempts: template.max_attempts.unwrap_or(job.max_attempts),
                metadata: metadata::to_value(template.metadata.as_ref()),
                ..job
            };
            Ok(Submission { job: keyed(job), pipeline: None })
        }
        Target::Pipeline(template) => {
            let steps = serde_json::to_value(&template.steps).map_err(|e| e.to_string())?;
            let row = PipelineRow::started(schedule.tenant_id, steps, metadata::to_value(template.metadata.as_ref()), now);
            let first = pipeline::step_job(registry, &row, 0, &[]).map_err(|(_, message)| message)?;
            Ok(Submission { job: keyed(first), pipeline: Some(row) })
        }
    }
}
