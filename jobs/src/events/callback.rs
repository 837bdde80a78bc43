//! `job_callback`: one finished job delivered to the `callback_url` it was
//! submitted with (Celery's `link`/`link_error`, over HTTP). The message is
//! stored with the job's outcome like every event ([`super::finished`]), so
//! a crash can neither lose it nor send it for an outcome that was not
//! recorded; dispatch turns it into exactly one `job_callback` job (its
//! idempotency key is the message), retried on the endpoints' schedule
//! under the same `webhook-id`, so a receiver that saw it already can tell.

use std::time::Duration;

use peyk_schema::queries::{jobs, webhook_endpoints as q};
use peyk_schema::{JobCallback, TenantId};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::delivery::retry_client_errors;
use super::settings;
use crate::webhook::signing::SigningSecret;
use crate::webhook::{deliver, Delivery, RESPONSE_EXCERPT_BYTES};
use crate::{Job, JobContext, JobError, ValidationErrors};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Payload of a `job_callback` job (queued by Peyk, never submitted).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCallbackJob {
    /// The finished job whose callback this is.
    pub job_id: Uuid,
    /// `msg_…`: the stored body, the same on every retry.
    pub message_id: String,
}

fn database(e: impl std::fmt::Display) -> JobError {
    JobError::retry("database_error", format!("job callback: {e}"))
}

impl Job for JobCallbackJob {
    type Clients = crate::SharedClients;
    const TYPE: &'static str = "job_callback";
    /// Replaced by the schedule's length when queued.
    const DEFAULT_MAX_ATTEMPTS: i32 = 8;
    const INTERNAL: bool = true;
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(TIMEOUT.as_secs() + 10);
    const RESULT_FIELDS: &'static [&'static str] = &["status_code", "latency_ms", "response_excerpt", "message_id"];

    fn validate(&self) -> Result<(), ValidationErrors> {
        super::check_message_id(&self.message_id)
    }

    fn retry_delay(attempt: u32, provider_asked: Option<Duration>) -> Option<Duration> {
        Some(settings::get().delay(attempt, provider_asked))
    }

    async fn run(self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let pool = &ctx.clients.backbone.pool;
        let tenant = TenantId(ctx.tenant_id);
        let callback = jobs::callback_of(pool, tenant, self.job_id).await.map_err(database)?;
        let Some(callback) = callback.and_then(|value| serde_json::from_value::<JobCallback>(value).ok()) else {
            // The job was deleted (retention) since it finished.
            return Ok(serde_json::json!({ "skipped": "job_deleted", "message_id": self.message_id }));
        };
        let message = q::get_message(pool, tenant, &self.message_id)
            .await
            .map_err(database)?
            .ok_or_else(|| JobError::permanent("message_not_found", format!("no message {}", self.message_id)))?;
        let secrets = match &callback.secret {
            Some(secret) => vec![SigningSecret::parse(secret).map_err(|p| JobError::permanent("invalid_secret", p))?],
            None => Vec::new(),
        };
        super::check_transport(&callback.url, &message)?;
        let delivery = Delivery {
            url: &callback.url,
            msg_id: &message.id,
            body: serde_json::to_vec(&message.payload).map_err(|e| JobError::permanent("invalid_body", e.to_string()))?,
            headers: HeaderMap::new(),
            secrets,
            event_type: Some(&message.event_type),
            timeout: TIMEOUT,
            answer_limit: RESPONSE_EXCERPT_BYTES,
        };
        // A 4xx is retried as for endpoints (a receiver being deployed may
        // answer 404 for a minute).
        deliver(&ctx.clients.webhook, delivery).await.map_err(retry_client_errors)
    }
}
