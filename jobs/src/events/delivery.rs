//! `webhook_delivery`: one event message to one endpoint. Queued only by
//! Peyk ([`super::publish`], replays). Each attempt signs with the
//! endpoint's current secret (and, during a rotation's grace period, the
//! previous one too), POSTs through the same code as `webhook` jobs, logs
//! the attempt, and keeps the endpoint's failure clock: a success stops it;
//! an endpoint that has failed for longer than the threshold is disabled and
//! an `endpoint.disabled` event is published.

use std::time::Duration;

use chrono::Utc;
use peyk_schema::queries::webhook_endpoints as q;
use peyk_schema::{NewWebhookAttempt, TenantId, WebhookEndpointRow};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{catalogue, settings};
use crate::webhook::signing::SigningSecret;
use crate::webhook::{deliver, Delivery, RESPONSE_EXCERPT_BYTES};
use crate::{Job, JobContext, JobError, RetryHint, ValidationErrors};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Payload of a `webhook_delivery` job (queued by Peyk, never submitted).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDeliveryJob {
    pub endpoint_id: Uuid,
    /// `msg_…`: the event message to deliver.
    pub message_id: String,
}

fn database(e: impl std::fmt::Display) -> JobError {
    JobError::retry("database_error", format!("webhook delivery: {e}"))
}

impl Job for WebhookDeliveryJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "webhook_delivery";
    /// Replaced by the schedule's length when queued.
    const DEFAULT_MAX_ATTEMPTS: i32 = 8;
    const INTERNAL: bool = true;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(TIMEOUT.as_secs() + 10);
    const RESULT_FIELDS: &'static [&'static str] =
        &["status_code", "latency_ms", "response_excerpt", "message_id", "endpoint_id", "skipped"];

    fn validate(&self) -> Result<(), ValidationErrors> {
        super::check_message_id(&self.message_id)
    }

    fn retry_delay(attempt: u32, provider_asked: Option<Duration>) -> Option<Duration> {
        Some(settings::get().delay(attempt, provider_asked))
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let pool = &ctx.clients.backbone.pool;
        let tenant = TenantId(ctx.tenant_id);
        // Deleted or disabled since the event: nothing to deliver, and
        // nothing the tenant needs to retry.
        let Some(endpoint) = q::get_endpoint(pool, tenant, self.endpoint_id).await.map_err(database)? else {
            return Ok(json!({ "skipped": "endpoint_deleted", "endpoint_id": self.endpoint_id, "message_id": self.message_id }));
        };
        if !endpoint.enabled {
            return Ok(json!({ "skipped": "endpoint_disabled", "endpoint_id": self.endpoint_id, "message_id": self.message_id }));
        }
        let message = q::get_message(pool, tenant, &self.message_id)
            .await
            .map_err(database)?
            .ok_or_else(|| JobError::permanent("message_not_found", format!("no message {}", self.message_id)))?;

        super::check_transport(&endpoint.url, &message)?;
        let delivery = Delivery {
            url: &endpoint.url,
            msg_id: &message.id,
            body: serde_json::to_vec(&message.payload).map_err(|e| JobError::permanent("invalid_body", e.to_string()))?,
            headers: HeaderMap::new(),
            secrets: signing_secrets(&endpoint)?,
            event_type: Some(&message.event_type),
            timeout: TIMEOUT,
            answer_limit: RESPONSE_EXCERPT_BYTES,
        };
        let result = deliver(&ctx.clients.webhook, delivery).await;
        log_attempt(ctx, &self, &result).await;

        match result {
            Ok(mut outcome) => {
                q::record_success(pool, endpoint.id).await.map_err(database)?;
                outcome["endpoint_id"] = json!(endpoint.id);
                Ok(outcome)
            }
            Err(error) => Err(self.failed(ctx, &endpoint, retry_client_errors(error)).await),
        }
    }
}

impl WebhookDeliveryJob {
    /// Runs the failure clock; returns the job's error (permanent once the
    /// endpoint is disabled: its remaining retries would only be skipped).
    async fn failed(&self, ctx: &JobContext, endpoint: &WebhookEndpointRow, error: JobError) -> JobError {
        let disable_after = settings::get().disable_after;
        let reason = format!("every delivery failed for more than {} s; last error: {}", disable_after.as_secs(), error.code);
        let disabled = match q::record_failure(&ctx.clients.backbone.pool, endpoint.id, disable_after, &reason).await {
            Ok(disabled) => disabled,
            Err(e) => {
                tracing::warn!(endpoint_id = %endpoint.id, error = %e, "could not record the endpoint's failure");
                None
            }
        };
        let Some(disabled) = disabled else { return error };
        tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint disabled after failing for too long");
        let data = json!({
            "endpoint_id": disabled.id,
            "url": disabled.url,
            "reason": reason,
            "failing_since": disabled.failing_since,
        });
        // The disabled endpoint is no longer subscribed: only the others hear of it.
        if let Err(e) = super::publish(&ctx.clients, ctx.tenant_id, catalogue::ENDPOINT_DISABLED, data).await {
            tracing::warn!(endpoint_id = %endpoint.id, error = %e, "could not publish endpoint.disabled");
        }
        let mut disabled_error = JobError::permanent("endpoint_disabled", format!("{}; the endpoint is now disabled", error.message));
        disabled_error.details = error.details;
        disabled_error
    }
}

/// The current secret, and the previous one while its grace period lasts.
fn signing_secrets(endpoint: &WebhookEndpointRow) -> Result<Vec<SigningSecret>, JobError> {
    let parse = |s: &str| SigningSecret::parse(s).map_err(|p| JobError::permanent("invalid_secret", p));
    let mut secrets = vec![parse(&endpoint.secret)?];
    if let Some(previous) = endpoint.previous_secret_at(Utc::now()) {
        secrets.push(parse(previous)?);
    }
    Ok(secrets)
}

/// Unlike a one-off `webhook` job, an endpoint's 4xx is retried on the
/// schedule (as Svix does): a receiver that answers 401 while it rotates
/// its own configuration should not lose events. 410 Gone, redirects and
/// refused addresses stay permanent.
pub(super) fn retry_client_errors(mut error: JobError) -> JobError {
    let client_error = error.code.starts_with("http_4") && error.code != "http_410";
    if error.hint == RetryHint::Permanent && client_error {
        error.hint = RetryHint::Retry { after: None };
    }
    error
}

/// One `webhook_attempts` row per attempt, whatever its outcome. A failure
/// to write it is logged, not fatal: the delivery itself happened.
async fn log_attempt(ctx: &JobContext, job: &WebhookDeliveryJob, result: &Result<serde_json::Value, JobError>) {
    let (seen, error_code) = match result {
        Ok(outcome) => (Some(outcome), None),
        Err(error) => (error.details.as_ref(), Some(error.code.clone())),
    };
    let field = |name: &str| seen.and_then(|v| v.get(name));
    let attempt = NewWebhookAttempt {
        message_id: job.message_id.clone(),
        endpoint_id: job.endpoint_id,
        job_id: ctx.job_id,
        attempt: ctx.attempt,
        status_code: field("status_code").and_then(|v| v.as_i64()).map(|n| n as i32),
        latency_ms: field("latency_ms").and_then(|v| v.as_f64()).unwrap_or(0.0),
        response_excerpt: field("response_excerpt").and_then(|v| v.as_str()).map(str::to_owned),
        error_code,
    };
    if let Err(e) = q::insert_attempt(&ctx.clients.backbone.pool, &attempt).await {
        tracing::warn!(error = %e, "could not log the webhook attempt");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(secret: &str, previous: Option<(&str, i64)>) -> WebhookEndpointRow {
        let now = Utc::now();
        WebhookEndpointRow {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            url: "https://example.com".into(),
            description: None,
            event_types: vec![],
            enabled: true,
            secret: secret.into(),
            previous_secret: previous.map(|(s, _)| s.into()),
            previous_secret_expires_at: previous.map(|(_, seconds)| now + chrono::Duration::seconds(seconds)),
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn rotation_signs_with_both_secrets_until_the_grace_ends() {
        let (new, old) = (SigningSecret::generate(), SigningSecret::generate());
        assert_eq!(signing_secrets(&endpoint(&new, None)).unwrap().len(), 1);
        let both = signing_secrets(&endpoint(&new, Some((&old, 60)))).unwrap();
        let expected: Vec<String> = [&new, &old].iter().map(|s| SigningSecret::parse(s).unwrap().sign("msg_1", 1, b"{}")).collect();
        assert_eq!(both.iter().map(|s| s.sign("msg_1", 1, b"{}")).collect::<Vec<_>>(), expected);
        assert_eq!(signing_secrets(&endpoint(&new, Some((&old, -1)))).unwrap().len(), 1, "expired previous secret");
    }

    #[test]
    fn client_errors_are_retried_except_gone() {
        let retried = retry_client_errors(JobError::permanent("http_401", "x"));
        assert!(!retried.is_permanent());
        assert!(retry_client_errors(JobError::permanent("http_410", "x")).is_permanent());
        assert!(retry_client_errors(JobError::permanent("http_302", "x")).is_permanent());
        assert!(retry_client_errors(JobError::permanent("blocked_address", "x")).is_permanent());
    }
}
