//! What the API sends and receives, with their OpenAPI schemas.

use chrono::{DateTime, Utc};
use peyk_queue::metadata::{self, Metadata};
use peyk_schema::{AttemptRow, FileRow, JobRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/jobs` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The job type; see the `payload` schemas for each.
    #[serde(rename = "type")]
    #[schema(example = "webhook")]
    pub job_type: String,
    /// The job type's payload (one of the `*Job` schemas).
    pub payload: serde_json::Value,
    /// Submitting the same key again returns the first job (200) when the
    /// body is the same, and 409 when it is not. 1–255 characters.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Attempts before the job is `dead`, 1–25 (default per type).
    #[serde(default)]
    pub max_attempts: Option<i32>,
    /// Run no earlier than this many seconds from now (0 – 2,592,000).
    #[serde(default)]
    pub delay_seconds: Option<f64>,
    /// Run no earlier than this time (RFC 3339). Not with `delay_seconds`.
    #[serde(default)]
    pub run_at: Option<DateTime<Utc>>,
    /// 0–10, default 0. Jobs with priority above 0 go to the head of their
    /// queue, ahead of every job of priority 0.
    #[serde(default)]
    pub priority: Option<i16>,
    /// Your own keys, to find the job again (`GET /v1/jobs?metadata[appointment]=4242`):
    /// up to 20 keys of 1–64 characters (`A-Z a-z 0-9 _ - . :`), string values of
    /// up to 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!({"appointment": "4242"}))]
    pub metadata: Option<Metadata>,
    /// Where Peyk POSTs the job's record once it has succeeded, failed or
    /// died (`{"type": "job.succeeded"|"job.failed", "timestamp", "data"}`),
    /// retried on the webhook endpoints' schedule under one `webhook-id`.
    /// http or https, no credentials in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://clinic.example/peyk/done")]
    pub callback_url: Option<String>,
    /// Signs the callback (Standard Webhooks): `whsec_` + base64 of 24–64
    /// bytes. Without it the callback is sent unsigned. Never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobErrorView {
    pub code: String,
    pub message: String,
}

/// A job record.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    /// queued | scheduled | running | succeeded | failed | dead | cancelled
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    /// As submitted, with secrets masked.
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    /// The last failure, if any.
    pub error: Option<JobErrorView>,
    /// 0–100 where the job type reports progress.
    pub progress: Option<i16>,
    pub idempotency_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The pipeline this job is a step of, and which step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_step: Option<i32>,
    /// The schedule whose fire submitted the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<Uuid>,
    /// As submitted (`{}` when none; a pipeline's steps carry the pipeline's).
    pub metadata: Metadata,
    /// Where the finished job is delivered (its secret is never shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// When its content (payload, result, error message, metadata) was
    /// erased, by `DELETE /v1/jobs/{id}` or the tenant's retention; the
    /// bare record stays. `null`: not erased.
    pub erased_at: Option<DateTime<Utc>>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        let mut payload = row.payload;
        if let Some(kind) = peyk_jobs::registry::catalogue().get(&row.job_type) {
            kind.redact(&mut payload);
        }
        let error = match (row.error_code, row.error_message) {
            (Some(code), message) => Some(JobErrorView { code, message: message.unwrap_or_default() }),
            _ => None,
        };
        Self {
            id: row.id,
            job_type: row.job_type,
            status: row.status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            priority: row.priority,
            payload,
            result: row.result,
            error,
            progress: row.progress,
            idempotency_key: row.idempotency_key,
            run_at: row.run_at,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
            pipeline_id: row.pipeline_id,
            pipeline_step: row.pipeline_step,
            schedule_id: row.schedule_id,
            metadata: metadata::from_value(&row.metadata),
            callback_url: row.callback.as_ref().and_then(|c| c["url"].as_str()).map(str::to_owned),
            erased_at: row.erased_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    /// A page filtered by `type` or `status` (other than failed and dead)
    /// looks through at most 10,000 jobs, so it may hold fewer than `limit`
    /// jobs, or none, while `next_cursor` is set: follow it until null.
    pub next_cursor: Option<String>,
}

/// One attempt at running a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    /// The worker process that ran it.
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// null while running; succeeded | failed | retrying | dead | cancelled | discarded | interrupted | released
    pub outcome: Option<String>,
    pub error: Option<JobErrorView>,
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        let error = row.error_code.map(|code| JobErrorView { code, message: row.error_message.unwrap_or_default() });
        Self {
            attempt: row.attempt,
            worker: row.worker,
            started_at: row.started_at,
            finished_at: row.finished_at,
            outcome: row.outcome,
            error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    pub data: Vec<AttemptView>,
}

/// Every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, e.g. `validation_failed`, `unknown_job_type`, `not_found`.
    pub code: String,
    pub message: String,
    /// For field problems: `{"errors": [{"field": "payload.url", "problem": "..."}]}`.
    pub details: serde_json::Value,
}

/// An uploaded file's record.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub id: Uuid,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Seconds, when the file is audio.
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// When its bytes, name, type and hash were erased (`DELETE
    /// /v1/files/{id}` or the upload retention); `null`: not erased.
    pub erased_at: Option<DateTime<Utc>>,
}

impl From<FileRow> for FileView {
    fn from(row: FileRow) -> Self {
        Self {
            id: row.id,
            filename: row.filename,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            sha256: row.sha256.iter().map(|b| format!("{b:02x}")).collect(),
            duration_seconds: row.duration_seconds,
            created_at: row.created_at,
            erased_at: row.erased_at,
        }
    }
}
