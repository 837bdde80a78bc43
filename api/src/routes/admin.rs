//! `/v1/admin/*`: the operators' view of the shared queues, for admin keys
//! only (`peyk-api create-key --admin`). Each queue with what waits in it
//! per tenant; pausing a queue or one tenant in it; tenants' weights.
//! A change is stored in PostgreSQL first (workers re-apply it to Redis
//! every few seconds, so it survives a Redis restart), then applied to
//! Redis at once.

use axum::extract::{Path, State};
use axum::Json;
use peyk_queue::queue::QueueError;
use std::collections::BTreeMap;

use peyk_jobs::ValidationErrors;
use peyk_schema::queries::queue_controls::{self as q, LimitsChange, RunningCap, TenantLimits, MAX_RETENTION_DAYS, MAX_WEIGHT};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Admin, Caller};
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::state::AppState;
use crate::views::ErrorBody;
use serde_json::json;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantQueueView {
    pub tenant_id: String,
    /// The tenant's name (`null` for tasks queued before tasks carried their tenant).
    pub tenant: Option<String>,
    /// Tasks of this tenant waiting to be taken.
    pub waiting: u64,
    pub paused: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    pub queue: String,
    /// The whole queue is paused: workers take nothing from it.
    pub paused: bool,
    pub waiting: u64,
    /// Delayed or retrying, not due yet.
    pub scheduled: u64,
    pub in_flight: u64,
    /// Tenants with tasks waiting, or paused in this queue.
    pub tenants: Vec<TenantQueueView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub data: Vec<QueueView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    /// Share of each queue relative to the other tenants with work (1 to 1,000).
    pub weight: i32,
    /// API requests a second, and the burst; `null`: the server's defaults
    /// (`PEYK_TENANT_REQUESTS_PER_SECOND`, `PEYK_TENANT_BURST`).
    pub requests_per_second: Option<i32>,
    pub burst: Option<i32>,
    /// Most of its jobs of a queue that run at once, by queue (a queue not
    /// named: no cap).
    pub max_running: BTreeMap<String, i32>,
    /// Its own quotas (`null`: the server's default; 0: none).
    pub jobs_per_day: Option<i64>,
    pub sms_per_day: Option<i64>,
    pub audio_minutes_per_month: Option<i64>,
    pub llm_tokens_per_month: Option<i64>,
    pub emails_per_day: Option<i64>,
    /// The domains its email jobs may send from (`from`); empty: only the
    /// server's `PEYK_EMAIL_FROM`.
    pub sender_domains: Vec<String>,
    /// Its own retention (`null`: the server's default).
    pub retention: RetentionView,
}

/// Days a tenant's content is kept, where it has its own (`null`: the
/// server's default, `PEYK_RETENTION_*_DAYS`).
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionView {
    pub sensitive_days: Option<f64>,
    pub content_days: Option<f64>,
    pub upload_days: Option<f64>,
    pub trail_days: Option<f64>,
}

impl TenantView {
    fn of(t: TenantLimits, caps: &[RunningCap]) -> Self {
        let max_running = caps.iter().filter(|c| c.tenant_id == t.id).map(|c| (c.queue.clone(), c.max_running)).collect();
        Self {
            id: t.id,
            name: t.name,
            weight: t.weight,
            requests_per_second: t.requests_per_second,
            burst: t.burst,
            max_running,
            jobs_per_day: t.quotas.jobs_per_day,
            sms_per_day: t.quotas.sms_per_day,
            audio_minutes_per_month: t.quotas.audio_minutes_per_month,
            llm_tokens_per_month: t.quotas.llm_tokens_per_month,
            emails_per_day: t.quotas.emails_per_day,
            sender_domains: t.sender_domains,
            retention: RetentionView {
                sensitive_days: t.retention.sensitive,
                content_days: t.retention.content,
                upload_days: t.retention.uploads,
                trail_days: t.retention.trail,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    pub data: Vec<TenantView>,
}

/// What to change; what is absent stays as it is.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// 1 to 1,000; a tenant of weight 2 gets twice the turns of one of weight 1.
    #[serde(default)]
    pub weight: Option<i32>,
    /// API requests a second (0: back to the server's default).
    #[serde(default)]
    pub requests_per_second: Option<i32>,
    /// Requests at once above the rate (0: back to the server's default).
    #[serde(default)]
    pub burst: Option<i32>,
    /// Caps by queue, e.g. `{"transcription": 2}` (0 removes a cap). Taking
    /// counts from when a worker fetches a job until its outcome is recorded.
    #[serde(default)]
    pub max_running: Option<BTreeMap<String, i32>>,
    /// Quotas (Tehran days and months): a number sets one (0: none for this
    /// tenant), `null` returns it to the server's default.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>)]
    pub jobs_per_day: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>)]
    pub sms_per_day: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>)]
    pub audio_minutes_per_month: Option<Option<i64>>,
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>)]
    pub llm_tokens_per_month: Option<Option<i64>>,
    /// Email recipients (to, cc, bcc) a day.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<i64>)]
    pub emails_per_day: Option<Option<i64>>,
    /// The domains its email jobs may send from; replaces the list (`[]`:
    /// none, only the server's `PEYK_EMAIL_FROM`).
    #[serde(default)]
    pub sender_domains: Option<Vec<String>>,
    /// How long the tenant's content is kept (README, "Data kept").
    #[serde(default)]
    pub retention: Option<RetentionUpdate>,
}

/// Days each kind of content is kept after it is done with (fractions
/// allowed; 0: erased when the retention sweeper next passes); `null`
/// returns one to the server's default (`PEYK_RETENTION_*_DAYS`).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionUpdate {
    /// Payloads and results of sensitive job types (medical_analysis,
    /// transcription, email, sms) after they finished; default 30.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<f64>)]
    pub sensitive_days: Option<Option<f64>>,
    /// Payloads and results of the other job types; default 90.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<f64>)]
    pub content_days: Option<Option<f64>>,
    /// Uploads, after the last job that names them finished; default 7.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<f64>)]
    pub upload_days: Option<Option<f64>>,
    /// Attempt errors, event message bodies, SMS texts; default 30.
    #[serde(default, deserialize_with = "set_or_null")]
    #[schema(value_type = Option<f64>)]
    pub trail_days: Option<Option<f64>>,
}

impl RetentionUpdate {
    fn fields(&self) -> [(&'static str, Option<Option<f64>>); 4] {
        [
            ("retention.sensitive_days", self.sensitive_days),
            ("retention.content_days", self.content_days),
            ("retention.upload_days", self.upload_days),
            ("retention.trail_days", self.trail_days),
        ]
    }
}

/// A field given as `null` (`Some(None)`), apart from one not given (`None`).
fn set_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

const MAX_RATE: i32 = 1_000_000;
const MAX_RUNNING: i32 = 100_000;

impl UpdateTenant {
    fn validate(&self, queues: &[&str]) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.weight.is_some_and(|w| !(1..=MAX_WEIGHT).contains(&w)) {
            errors.add("weight", format!("must be between 1 and {MAX_WEIGHT}"));
        }
        for (field, value) in [("requests_per_second", self.requests_per_second), ("burst", self.burst)] {
            if value.is_some_and(|v| !(0..=MAX_RATE).contains(&v)) {
                errors.add(field, format!("must be between 0 (the default) and {MAX_RATE}"));
            }
        }
        for (field, value) in self.quotas() {
            if value.is_some_and(|v| v < 0) {
                errors.add(field, "must be 0 (none) or more, or null (the default)");
            }
        }
        if let Some(Err(problem)) = self.sender_domains.as_deref().map(peyk_jobs::email::sender_domains) {
            errors.add("sender_domains", problem);
        }
        for (field, days) in self.retention.iter().flat_map(RetentionUpdate::fields) {
            if days.flatten().is_some_and(|d| !(0.0..=MAX_RETENTION_DAYS).contains(&d)) {
                errors.add(field, format!("must be between 0 and {MAX_RETENTION_DAYS} days, or null (the default)"));
            }
        }
        for (queue, cap) in self.max_running.iter().flatten() {
            if !queues.contains(&queue.as_str()) {
                errors.add(format!("max_running.{queue}"), "no such queue");
            } else if !(0..=MAX_RUNNING).contains(cap) {
                errors.add(format!("max_running.{queue}"), format!("must be between 0 (no cap) and {MAX_RUNNING}"));
            }
        }
        errors.into_result()
    }

    fn change(&self) -> LimitsChange {
        LimitsChange {
            weight: self.weight,
            requests_per_second: LimitsChange::rate(self.requests_per_second),
            burst: LimitsChange::rate(self.burst),
            jobs_per_day: self.jobs_per_day,
            sms_per_day: self.sms_per_day,
            audio_minutes_per_month: self.audio_minutes_per_month,
            llm_tokens_per_month: self.llm_tokens_per_month,
            emails_per_day: self.emails_per_day,
            sender_domains: self.sender_domains.as_deref().map(peyk_jobs::email::sender_domains).and_then(Result::ok),
            sensitive_retention_days: self.retention.as_ref().and_then(|r| r.sensitive_days),
            content_retention_days: self.retention.as_ref().and_then(|r| r.content_days),
            upload_retention_days: self.retention.as_ref().and_then(|r| r.upload_days),
            trail_retention_days: self.retention.as_ref().and_then(|r| r.trail_days),
        }
    }

    fn quotas(&self) -> [(&'static str, Option<i64>); 5] {
        [
            ("jobs_per_day", self.jobs_per_day.flatten()),
            ("sms_per_day", self.sms_per_day.flatten()),
            ("audio_minutes_per_month", self.audio_minutes_per_month.flatten()),
            ("llm_tokens_per_month", self.llm_tokens_per_month.flatten()),
            ("emails_per_day", self.emails_per_day.flatten()),
        ]
    }
}

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::UnknownQueue(_) => ApiError::not_found("queue"),
        _ => ApiError::queue_unavailable(),
    }
}

fn known_queue(state: &AppState, queue: &str) -> Result<(), ApiError> {
    if state.queue.names().contains(&queue) {
        Ok(())
    } else {
        Err(ApiError::not_found("queue"))
    }
}

async fn tenant(state: &AppState, id: &str) -> Result<TenantLimits, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::not_found("tenant"))?;
    q::tenant(&state.pool, id).await?.ok_or_else(|| ApiError::not_found("tenant"))
}

async fn view(state: &AppState, queue: &str, names: &[TenantLimits]) -> Result<QueueView, ApiError> {
    let depth = state.queue.depth(queue).await.map_err(queue_error)?;
    let (paused, paused_tenants) = state.queue.paused(queue).await.map_err(queue_error)?;
    let mut tenants: Vec<TenantQueueView> = depth
        .tenants
        .into_iter()
        .map(|t| TenantQueueView { tenant_id: t.tenant, tenant: None, waiting: t.waiting, paused: t.paused })
        .collect();
    for id in paused_tenants {
        if !tenants.iter().any(|t| t.tenant_id == id) {
            tenants.push(TenantQueueView { tenant_id: id, tenant: None, waiting: 0, paused: true });
        }
    }
    for t in &mut tenants {
        t.tenant = names.iter().find(|n| n.id.to_string() == t.tenant_id).map(|n| n.name.clone());
    }
    tenants.sort_by(|a, b| b.waiting.cmp(&a.waiting).then_with(|| a.tenant_id.cmp(&b.tenant_id)));
    Ok(QueueView {
        queue: queue.to_string(),
        paused,
        waiting: depth.waiting,
        scheduled: depth.scheduled,
        in_flight: depth.in_flight,
        tenants,
    })
}

/// Every queue: whether it is paused, what waits in it, per tenant.
#[utoipa::path(get, path = "/v1/admin/queues", tag = "admin", security(("api_key" = ["admin"])),
    responses((status = 200, body = QueueList), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn list_queues(State(state): State<AppState>, _admin: Admin) -> Result<Json<QueueList>, ApiError> {
    Ok(Json(QueueList { data: queue_views(&state).await? }))
}

/// Every queue's view, by name (also the console's overview).
pub(crate) async fn queue_views(state: &AppState) -> Result<Vec<QueueView>, ApiError> {
    let names = q::tenants(&state.pool).await?;
    let mut queues = state.queue.names();
    queues.sort_unstable();
    let mut data = Vec::with_capacity(queues.len());
    for queue in queues {
        data.push(view(state, queue, &names).await?);
    }
    Ok(data)
}

fn pause_action(paused: bool) -> &'static str {
    if paused {
        "queue.paused"
    } else {
        "queue.resumed"
    }
}

async fn set_queue_paused(state: &AppState, caller: &Caller, queue: &str, paused: bool) -> Result<Json<QueueView>, ApiError> {
    known_queue(state, queue)?;
    q::set_paused(&state.pool, queue, None, paused).await?;
    state.queue.set_queue_paused(queue, paused).await.map_err(queue_error)?;
    caller.audit_for(state, None, pause_action(paused), queue, json!({})).await?;
    let names = q::tenants(&state.pool).await?;
    Ok(Json(view(state, queue, &names).await?))
}

async fn set_tenant_paused(
    state: &AppState,
    caller: &Caller,
    queue: &str,
    tenant_id: &str,
    paused: bool,
) -> Result<Json<QueueView>, ApiError> {
    known_queue(state, queue)?;
    let tenant = tenant(state, tenant_id).await?;
    q::set_paused(&state.pool, queue, Some(tenant.id), paused).await?;
    state.queue.set_tenant_paused(queue, &tenant.id.to_string(), paused).await.map_err(queue_error)?;
    caller.audit_for(state, Some(tenant.id), pause_action(paused), queue, json!({})).await?;
    let names = q::tenants(&state.pool).await?;
    Ok(Json(view(state, queue, &names).await?))
}

/// Pause a queue for every tenant: workers take nothing from it; what
/// waits keeps its order, and new jobs are still accepted.
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/pause", tag = "admin", security(("api_key" = ["admin"])),
    params(("queue" = String, Path, description = "Queue (job type)")),
    responses((status = 200, body = QueueView), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn pause_queue(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(queue): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    set_queue_paused(&state, &caller, &queue, true).await
}

/// Resume a paused queue; it continues in order.
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/resume", tag = "admin", security(("api_key" = ["admin"])),
    params(("queue" = String, Path, description = "Queue (job type)")),
    responses((status = 200, body = QueueView), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn resume_queue(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(queue): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    set_queue_paused(&state, &caller, &queue, false).await
}

/// Pause one tenant in a queue; other tenants go on.
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/tenants/{tenant_id}/pause", tag = "admin", security(("api_key" = ["admin"])),
    params(("queue" = String, Path, description = "Queue (job type)"), ("tenant_id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = QueueView), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn pause_tenant(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((queue, tenant_id)): Path<(String, String)>,
) -> Result<Json<QueueView>, ApiError> {
    set_tenant_paused(&state, &caller, &queue, &tenant_id, true).await
}

/// Resume one tenant in a queue; its jobs continue in order.
#[utoipa::path(post, path = "/v1/admin/queues/{queue}/tenants/{tenant_id}/resume", tag = "admin", security(("api_key" = ["admin"])),
    params(("queue" = String, Path, description = "Queue (job type)"), ("tenant_id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = QueueView), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn resume_tenant(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path((queue, tenant_id)): Path<(String, String)>,
) -> Result<Json<QueueView>, ApiError> {
    set_tenant_paused(&state, &caller, &queue, &tenant_id, false).await
}

/// Every tenant, with its weight and limits.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin", security(("api_key" = ["admin"])),
    responses((status = 200, body = TenantList), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn list_tenants(State(state): State<AppState>, _admin: Admin) -> Result<Json<TenantList>, ApiError> {
    let caps = q::caps(&state.pool, None).await?;
    Ok(Json(TenantList { data: q::tenants(&state.pool).await?.into_iter().map(|t| TenantView::of(t, &caps)).collect() }))
}

/// Change a tenant's weight, request rate or caps on running jobs; each
/// applies at once, in every API process.
#[utoipa::path(patch, path = "/v1/admin/tenants/{tenant_id}", tag = "admin", security(("api_key" = ["admin"])),
    params(("tenant_id" = String, Path, description = "Tenant id")), request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(tenant_id): Path<String>,
    ValidJson(body): ValidJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = tenant(&state, &tenant_id).await?;
    body.validate(&state.queue.names()).map_err(ApiError::validation)?;
    let updated = q::change_limits(&state.pool, tenant.id, &body.change()).await?.ok_or_else(|| ApiError::not_found("tenant"))?;
    for (queue, cap) in body.max_running.iter().flatten() {
        q::set_cap(&state.pool, tenant.id, queue, (*cap > 0).then_some(*cap)).await?;
    }
    // Then Redis, at once (every worker would apply the same within seconds).
    let caps = q::caps(&state.pool, None).await?;
    for queue in body.max_running.iter().flatten().map(|(queue, _)| queue) {
        state.queue.replace_caps(queue, &q::caps_of(&caps, queue)).await.map_err(queue_error)?;
    }
    let weight = (updated.weight != 1).then_some(updated.weight as u32);
    state.queue.set_weight(&updated.id.to_string(), weight).await.map_err(queue_error)?;
    // Request rates travel with the cached keys: every process drops them.
    crate::auth::announce_key_change(&state).await;
    caller
        .audit_for(&state, Some(updated.id), "tenant.limits_changed", updated.id, serde_json::to_value(&body).unwrap_or_default())
        .await?;
    Ok(Json(TenantView::of(updated, &caps)))
}
