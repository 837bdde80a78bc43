//! Row types: what a query returns and what an insert takes.

use chrono::{DateTime, Utc};

use crate::sealed::{SealedJson, SealedText};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::{
    email_templates, files, inbound_events, job_attempts, jobs, payment_accounts, payments, pipelines, schedule_fires, schedules,
    sms_outbox, task_targets, webhook_attempts, webhook_endpoints, webhook_messages,
};
use crate::status::JobStatus;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = jobs)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct JobRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_type: String,
    pub status: String,
    pub payload: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub progress: Option<i16>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub run_at: DateTime<Utc>,
    pub queue_task_id: Option<String>,
    pub locked_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub pipeline_id: Option<Uuid>,
    pub pipeline_step: Option<i32>,
    pub schedule_id: Option<Uuid>,
    /// The client's own keys (string values), to find the job again.
    pub metadata: serde_json::Value,
    /// The job's own callback, `{"url", "secret"}`; see [`JobCallback`].
    pub callback: Option<serde_json::Value>,
    /// When its content (payload, result, error message, metadata) was
    /// erased, by `DELETE /v1/jobs/{id}` or retention.
    pub erased_at: Option<DateTime<Utc>>,
}

impl JobRow {
    pub fn status(&self) -> JobStatus {
        // The CHECK constraint guarantees one of the known values.
        self.status.parse().unwrap_or(JobStatus::Failed)
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_type: String,
    pub status: String,
    pub payload: serde_json::Value,
    pub max_attempts: i32,
    pub priority: i16,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub run_at: DateTime<Utc>,
    pub queue_task_id: Option<String>,
    pub pipeline_id: Option<Uuid>,
    pub pipeline_step: Option<i32>,
    /// The schedule whose fire submitted the job.
    pub schedule_id: Option<Uuid>,
    /// `{}` when the client gave none.
    pub metadata: serde_json::Value,
    /// Where the finished job is delivered ([`JobCallback`] as JSON).
    pub callback: Option<serde_json::Value>,
}

impl NewJob {
    /// The row PostgreSQL holds once this job is inserted at `created_at`
    /// (every column it does not name takes its default).
    pub fn stored_at(self, created_at: DateTime<Utc>) -> JobRow {
        JobRow {
            id: self.id,
            tenant_id: self.tenant_id,
            job_type: self.job_type,
            status: self.status,
            payload: self.payload,
            result: None,
            error_code: None,
            error_message: None,
            progress: None,
            attempts: 0,
            max_attempts: self.max_attempts,
            priority: self.priority,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            run_at: self.run_at,
            queue_task_id: self.queue_task_id,
            locked_by: None,
            lease_until: None,
            created_at,
            started_at: None,
            finished_at: None,
            updated_at: created_at,
            pipeline_id: self.pipeline_id,
            pipeline_step: self.pipeline_step,
            schedule_id: self.schedule_id,
            metadata: self.metadata,
            callback: self.callback,
            erased_at: None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = job_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub id: i64,
    pub job_id: Uuid,
    pub attempt: i32,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// A job claimed by a worker: the row as it is now, and the attempt row
/// opened for this run.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: JobRow,
    pub attempt_id: i64,
    /// Every attempt allowed was claimed already and each ended with its
    /// worker lost: this claim only records the job as dead (`worker_lost`),
    /// on the last attempt's row, without running it.
    pub exhausted: bool,
}

/// The tenant an API key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantId(pub Uuid);

/// An uploaded file's record (its bytes are in the file store).
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = files)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct FileRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
    /// When its bytes, name, type and hash were erased.
    pub erased_at: Option<DateTime<Utc>>,
}

/// A message kept in the development outbox instead of being sent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = sms_outbox)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct SmsOutboxRow {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub job_id: Uuid,
    pub mode: String,
    pub receptor: String,
    pub sender: Option<String>,
    pub message: Option<String>,
    pub template: Option<String>,
    pub tokens: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pipelines)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct PipelineRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// running | succeeded | failed | cancelled
    pub status: String,
    /// `[{type, payload, max_attempts?}]` as submitted.
    pub steps: serde_json::Value,
    pub current_step: i32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The client's own keys; each step's job carries them too.
    pub metadata: serde_json::Value,
    /// When the steps' payloads and the metadata were erased (retention).
    pub erased_at: Option<DateTime<Utc>>,
}

impl PipelineRow {
    /// A new pipeline of `steps` (as submitted), at its first step.
    pub fn started(tenant_id: Uuid, steps: serde_json::Value, metadata: serde_json::Value, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant_id,
            status: "running".into(),
            steps,
            current_step: 0,
            error_code: None,
            error_message: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
            metadata,
            erased_at: None,
        }
    }
}

/// A tenant's email template in one language (sources, not rendered).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_templates)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct EmailTemplateRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub language: String,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant's HTTP task target: where `task` jobs of that name are POSTed.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = task_targets)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct TaskTargetRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    /// `whsec_…`: signs every request (Standard Webhooks). Sealed at rest.
    pub secret: SealedText,
    pub timeout_seconds: i32,
    pub max_attempts: i32,
    pub min_backoff_seconds: i32,
    pub max_backoff_seconds: i32,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A job's own callback as stored in `jobs.callback`: the finished job is
/// POSTed to `url`, signed with `secret` when there is one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCallback {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A tenant's account at a payment gateway.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = payment_accounts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct PaymentAccountRow {
    pub tenant_id: Uuid,
    pub gateway: String,
    /// Secret: never shown by the API, never logged, sealed at rest.
    pub credentials: SealedJson,
    pub sandbox: bool,
    pub return_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A payment Peyk verifies, and its outcome once there is one.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = payments)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct PaymentRow {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub gateway: String,
    pub reference: String,
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
    /// pending | verified | already_verified | amount_mismatch | failed | needs_review
    pub status: String,
    pub trans_id: Option<String>,
    pub gateway_code: Option<String>,
    pub ref_id: Option<String>,
    pub card_mask: Option<String>,
    pub fee: Option<i64>,
    pub paid_amount: Option<i64>,
    pub reason: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub announced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// BitPay trans_ids callbacks brought, newest first (none trusted).
    #[serde(skip)]
    pub trans_id_candidates: Vec<String>,
    /// The verification a callback queued last (one in flight at a time).
    #[serde(skip)]
    pub verification_job_id: Option<Uuid>,
    #[serde(skip)]
    pub verifications_window_start: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub verifications_in_window: i32,
    /// `failed` when a gateway said paid after Peyk had recorded unpaid.
    pub reversed_from: Option<String>,
    /// A callback came while a verification ran: it asks once more.
    #[serde(skip)]
    pub recheck_requested: bool,
    /// Callbacks stored for it (bounded).
    #[serde(skip)]
    pub callbacks_stored: i32,
    #[serde(skip)]
    pub verification_queued_at: Option<DateTime<Utc>>,
}

/// A tenant's webhook endpoint (outbound events).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebhookEndpointRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Sealed at rest, as the previous one.
    pub secret: SealedText,
    pub previous_secret: Option<SealedText>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PaymentRow {
    /// Whether the outcome is recorded (nothing may change it any more).
    pub fn is_final(&self) -> bool {
        self.status != "pending"
    }

    /// Whether a payment status counts as paid.
    pub fn is_paid_status(status: &str) -> bool {
        matches!(status, "verified" | "already_verified")
    }

    /// Whether a verification may still change the outcome: pending, or
    /// recorded unpaid (a gateway that later says paid wins).
    pub fn may_change(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "failed")
    }
}

/// An inbound event as it arrived (a gateway callback, a provider webhook).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = inbound_events)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct InboundEventRow {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub source: String,
    pub dedupe_key: String,
    pub event_type: Option<String>,
    pub method: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
    pub payment_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
}

impl WebhookEndpointRow {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }

    /// The secret before the last rotation while its grace period lasts.
    pub fn previous_secret_at(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(secret), Some(until)) if until > now => Some(secret),
            _ => None,
        }
    }
}

/// One published event (the same body for every endpoint and retry).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_messages)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebhookMessageRow {
    pub id: String,
    pub tenant_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Set for a message to one job's callback (not to the endpoints).
    pub callback_job_id: Option<Uuid>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_attempts)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct WebhookAttemptRow {
    pub id: i64,
    pub message_id: String,
    pub endpoint_id: Uuid,
    pub job_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: f64,
    pub response_excerpt: Option<String>,
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct NewWebhookAttempt {
    pub message_id: String,
    pub endpoint_id: Uuid,
    pub job_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub latency_ms: f64,
    pub response_excerpt: Option<String>,
    pub error_code: Option<String>,
}

/// A schedule: what it submits and when (see `peyk_queue::schedule`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedules)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct ScheduleRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub cron: Option<String>,
    pub every_seconds: Option<i32>,
    pub timezone: String,
    /// gregorian | persian
    pub calendar: String,
    pub anchor_at: DateTime<Utc>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    /// `{"job": {...}}` or `{"pipeline": {"steps": [...]}}`.
    pub target: serde_json::Value,
    /// allow | skip | queue_one
    pub overlap: String,
    /// skip | run_once | run_all
    pub misfire: String,
    pub misfire_cap: i32,
    pub misfire_grace_seconds: i32,
    pub paused: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub buffered_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_job_id: Option<Uuid>,
    pub last_pipeline_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What happened at one fire time of a schedule.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedule_fires)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct FireRow {
    pub schedule_id: Uuid,
    pub fire_at: DateTime<Utc>,
    pub fired_at: DateTime<Utc>,
    /// submitted | skipped_overlap | buffered | missed | quota_exceeded
    pub outcome: String,
    /// `missed`: how many fire times the row stands for.
    pub missed: Option<i32>,
    /// Fired by `POST /v1/schedules/{id}/trigger`, not by the clock.
    pub manual: bool,
    pub job_id: Option<Uuid>,
    pub pipeline_id: Option<Uuid>,
}
