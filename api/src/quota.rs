//! Quotas per tenant and period: jobs a day, SMS messages a day, minutes of
//! audio a month, LLM tokens a month (Tehran days and months). A job is
//! charged before it is stored (`Queue::charge`, all kinds at once in
//! Redis, shared by every API process) and refunded when it is not stored
//! after all (an idempotent replay). Past a quota: `429` `quota_exceeded`
//! naming it, with `Retry-After` until the period ends. LLM tokens are
//! known only once a job ran: the worker adds them, and a tenant whose
//! month is used up gets no more `medical_analysis` jobs.

use std::time::Duration;

use axum::http::StatusCode;
pub use peyk_queue::queue::Use;
use peyk_queue::queue::{usage_charges, Charge, OverQuota, UsageKind};
use peyk_schema::queries::queue_controls::{self as q, Quotas};
use peyk_schema::TenantId;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Each tenant's quotas (from PostgreSQL), for `PEYK_KEY_CACHE_SECONDS`.
pub type QuotaCache = crate::cache::TtlCache<uuid::Uuid, Quotas>;

/// The charges made for a submission, to refund if it is not stored.
#[derive(Debug, Clone, Default)]
pub struct Charged(Vec<Charge>);

impl Charged {
    /// The charges `usage` made (limits play no part in a refund).
    pub fn of(usage: Use) -> Self {
        Self(usage_charges(usage, &Quotas::default()).into_iter().filter(|c| c.amount > 0).collect())
    }
}

/// The quotas that apply to `tenant`: its own, else the server's defaults (0: none).
pub async fn effective(state: &AppState, tenant: TenantId) -> Result<Quotas, ApiError> {
    let own = quotas(state, tenant).await?;
    let defaults = &state.limits.quotas;
    Ok(own.or(defaults))
}

async fn quotas(state: &AppState, tenant: TenantId) -> Result<Quotas, ApiError> {
    if let Some(quotas) = state.quotas.get(&tenant.0) {
        return Ok(quotas);
    }
    let quotas = q::tenant(&state.pool, tenant.0).await?.map(|t| t.quotas).unwrap_or_default();
    state.quotas.put(tenant.0, quotas);
    Ok(quotas)
}

/// Charges `usage` to `tenant`, or answers which quota it would pass.
pub async fn charge(state: &AppState, tenant: TenantId, usage: Use) -> Result<Charged, ApiError> {
    let charges = usage_charges(usage, &effective(state, tenant).await?);
    if charges.is_empty() {
        return Ok(Charged::default());
    }
    if charges.iter().all(|c| c.limit == 0) {
        // Nothing to refuse: counted without waiting for Redis.
        state.tally.add(&tenant.0.to_string(), &charges);
        return Ok(Charged(charges));
    }
    match state.charger.call((tenant.0.to_string(), charges.clone())).await {
        Ok(Ok(())) => Ok(Charged(charges.into_iter().filter(|c| c.amount > 0).collect())),
        Ok(Err(over)) => Err(exceeded(&over)),
        Err(e) => {
            tracing::warn!(error = %e, "quota not charged: redis did not answer");
            Err(ApiError::queue_unavailable())
        }
    }
}

/// Gives back what `charge` took for a submission that was not stored.
pub async fn refund(state: &AppState, tenant: TenantId, charged: &Charged) {
    if charged.0.is_empty() {
        return;
    }
    if charged.0.iter().all(|c| c.limit == 0) {
        let back: Vec<Charge> = charged.0.iter().map(Charge::undone).collect();
        state.tally.add(&tenant.0.to_string(), &back);
        return;
    }
    if let Err(e) = state.queue.refund(&tenant.0.to_string(), &charged.0).await {
        tracing::warn!(error = %e, "quota charge not refunded");
    }
}

/// Gives back the charge of submissions undone after they were stored (a
/// schedule's fires stored ahead of their time, undone by an edit).
pub async fn refund_usage(state: &AppState, tenant: TenantId, usage: Use) {
    match effective(state, tenant).await {
        Ok(quotas) => {
            let charges = usage_charges(usage, &quotas).into_iter().filter(|c| c.amount > 0).collect();
            refund(state, tenant, &Charged(charges)).await;
        }
        Err(_) => tracing::warn!("quota charge of undone fires not refunded: the tenant's quotas could not be read"),
    }
}

fn quota_name(kind: UsageKind) -> &'static str {
    match kind {
        UsageKind::Jobs => "jobs_per_day",
        UsageKind::Sms => "sms_per_day",
        UsageKind::AudioSeconds => "audio_minutes_per_month",
        UsageKind::LlmTokens => "llm_tokens_per_month",
        UsageKind::Emails => "emails_per_day",
    }
}

fn exceeded(over: &OverQuota) -> ApiError {
    let name = quota_name(over.kind);
    let (limit, used) = match over.kind {
        UsageKind::AudioSeconds => (over.limit / 60, over.used as f64 / 60.0),
        _ => (over.limit, over.used as f64),
    };
    let wait = (over.resets_at - chrono::Utc::now()).to_std().unwrap_or(Duration::from_secs(1));
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
        format!("this tenant's quota {name} ({limit}) would be passed; it resets at {}", over.resets_at.to_rfc3339()),
    )
    .with_details(json!({
        "quota": name,
        "limit": limit,
        "used": used,
        "resets_at": over.resets_at,
        "retry_after_seconds": wait.as_secs().max(1),
    }))
}
