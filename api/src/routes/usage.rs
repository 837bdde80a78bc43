//! What tenants used in the current Tehran day and month, against their
//! quotas: `GET /v1/usage` (the caller's own) and `GET /v1/admin/usage`
//! (every tenant's, admin keys only).

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use peyk_queue::queue::{Period, QueueError, UsageKind};
use peyk_schema::queries::queue_controls as q;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Admin, Tenant};
use crate::error::ApiError;
use crate::quota;
use crate::state::AppState;
use crate::views::ErrorBody;

/// Amounts used in the current periods.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Used {
    /// Jobs accepted today.
    pub jobs: i64,
    /// SMS messages (one per number) accepted today.
    pub sms: i64,
    /// Seconds of audio submitted for transcription this month.
    pub audio_seconds: i64,
    /// LLM tokens used this month.
    pub llm_tokens: i64,
    /// Email recipients (to, cc, bcc) accepted today.
    pub emails: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Periods {
    /// The Tehran day counted, e.g. `2026-12-02`, and when it ends.
    pub day: String,
    pub day_ends_at: DateTime<Utc>,
    /// The month counted, e.g. `2026-12`, and when it ends.
    pub month: String,
    pub month_ends_at: DateTime<Utc>,
}

impl Periods {
    fn now() -> Self {
        let now = Utc::now();
        let (day, day_ends_at) = Period::Day.at(now);
        let (month, month_ends_at) = Period::Month.at(now);
        Self { day, day_ends_at, month, month_ends_at }
    }
}

/// The quotas that apply (own or the server's default; `null`: none).
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    pub jobs_per_day: Option<i64>,
    pub sms_per_day: Option<i64>,
    pub audio_minutes_per_month: Option<i64>,
    pub llm_tokens_per_month: Option<i64>,
    pub emails_per_day: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnUsage {
    pub periods: Periods,
    pub used: Used,
    pub quotas: QuotaView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub tenant: Option<String>,
    #[serde(flatten)]
    pub used: Used,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageList {
    pub periods: Periods,
    /// Tenants that used anything in these periods, most jobs first.
    pub data: Vec<TenantUsage>,
}

/// Every tenant's use of every kind in the current periods.
async fn all_used(state: &AppState) -> Result<HashMap<String, Used>, QueueError> {
    let mut by_tenant: HashMap<String, Used> = HashMap::new();
    for kind in UsageKind::ALL {
        for (tenant, amount) in state.queue.usage(kind).await? {
            let used = by_tenant.entry(tenant).or_default();
            match kind {
                UsageKind::Jobs => used.jobs = amount,
                UsageKind::Sms => used.sms = amount,
                UsageKind::AudioSeconds => used.audio_seconds = amount,
                UsageKind::LlmTokens => used.llm_tokens = amount,
                UsageKind::Emails => used.emails = amount,
            }
        }
    }
    Ok(by_tenant)
}

/// The caller's use in the current Tehran day and month, and its quotas.
#[utoipa::path(get, path = "/v1/usage", tag = "jobs", security(("api_key" = ["jobs:read"])),
    responses((status = 200, body = OwnUsage), (status = 503, body = ErrorBody)))]
pub async fn own_usage(State(state): State<AppState>, tenant: Tenant) -> Result<Json<OwnUsage>, ApiError> {
    let used = all_used(&state).await.map_err(|_| ApiError::queue_unavailable())?.remove(&tenant.0 .0.to_string()).unwrap_or_default();
    let quotas = quota::effective(&state, tenant.0).await?;
    let none_if_zero = |v: i64| (v > 0).then_some(v);
    Ok(Json(OwnUsage {
        periods: Periods::now(),
        used,
        quotas: QuotaView {
            jobs_per_day: none_if_zero(quotas.jobs_per_day.unwrap_or(0)),
            sms_per_day: none_if_zero(quotas.sms_per_day.unwrap_or(0)),
            audio_minutes_per_month: none_if_zero(quotas.audio_minutes_per_month.unwrap_or(0)),
            llm_tokens_per_month: none_if_zero(quotas.llm_tokens_per_month.unwrap_or(0)),
            emails_per_day: none_if_zero(quotas.emails_per_day.unwrap_or(0)),
        },
    }))
}

/// Every tenant's use in the current Tehran day and month.
#[utoipa::path(get, path = "/v1/admin/usage", tag = "admin", security(("api_key" = ["admin"])),
    responses((status = 200, body = UsageList), (status = 403, description = "Not an admin key", body = ErrorBody)))]
pub async fn all_usage(State(state): State<AppState>, _admin: Admin) -> Result<Json<UsageList>, ApiError> {
    let used = all_used(&state).await.map_err(|_| ApiError::queue_unavailable())?;
    let names = q::tenants(&state.pool).await?;
    let mut data: Vec<TenantUsage> = used
        .into_iter()
        .map(|(tenant_id, used)| TenantUsage {
            tenant: names.iter().find(|n| n.id.to_string() == tenant_id).map(|n| n.name.clone()),
            tenant_id,
            used,
        })
        .collect();
    data.sort_by(|a, b| b.used.jobs.cmp(&a.used.jobs).then_with(|| a.tenant_id.cmp(&b.tenant_id)));
    Ok(Json(UsageList { periods: Periods::now(), data }))
}
