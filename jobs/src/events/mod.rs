//! Outbound events: a tenant registers webhook endpoints (URL, `whsec_`
//! secret, the event types it wants); [`publish`] stores one message per
//! event and queues one `webhook_delivery` job per matching endpoint.
//!
//! Every endpoint receives the same body, `{"type", "timestamp", "data"}`,
//! under the same `webhook-id` (the message id), on every retry and on a
//! replay, so receivers can deduplicate.
//!
//! - [`catalogue`]: the event types there are (endpoint filters are checked against it).
//! - [`settings`]: the retry schedule and the disable threshold.
//! - [`delivery`]: the `webhook_delivery` job: one attempt, its log row, the failure clock.
//! - [`finished`]: `job.*` and `transcription.completed` events of finished jobs.

pub mod catalogue;
pub mod delivery;
pub mod finished;
pub mod settings;

use chrono::{SecondsFormat, Utc};
use peyk_schema::queries::webhook_endpoints as q;
use peyk_schema::{TenantId, WebhookMessageRow};
use uuid::Uuid;

use crate::context::SharedClients;
use crate::queue::Enqueue;
use crate::submit::{system_job, Inserter, Pusher};
use crate::{Job, JobError};
use delivery::WebhookDeliveryJob;

/// A new message id: `msg_` and a UUIDv7 in hex, so ids sort by time.
pub fn new_message_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// The body every endpoint receives for one event.
pub fn message_body(event_type: &str, data: serde_json::Value, at: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({ "type": event_type, "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true), "data": data })
}

fn database(e: impl std::fmt::Display) -> JobError {
    JobError::retry("database_error", format!("webhook events: {e}"))
}

/// Publishes an event of the tenant: stores the message and queues a
/// delivery to every enabled endpoint that wants `event_type`. Returns the
/// message id, or `None` when no endpoint wants the event (nothing is
/// stored then). The message is durable before the deliveries are queued;
/// should queueing fail, the message can still be replayed.
pub async fn publish(clients: &SharedClients, tenant_id: Uuid, event_type: &str, data: serde_json::Value) -> Result<Option<String>, JobError> {
    if !catalogue::is_event_type(event_type) {
        return Err(JobError::permanent("unknown_event_type", format!("`{event_type}` is not in the event catalogue")));
    }
    let endpoints = q::subscribed(&clients.pool, TenantId(tenant_id), event_type).await.map_err(database)?;
    if endpoints.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let message = WebhookMessageRow {
        id: new_message_id(),
        tenant_id,
        event_type: event_type.to_string(),
        payload: message_body(event_type, data, now),
        created_at: now,
    };
    q::insert_message(&clients.pool, &message).await.map_err(database)?;
    queue_deliveries(&clients.inserter, &clients.pusher, tenant_id, &message.id, &endpoints).await?;
    Ok(Some(message.id))
}

/// Stores and queues one `webhook_delivery` job per endpoint, with as many
/// attempts as the retry schedule has entries; returns the job ids. Shared
/// by [`publish`] and the API's replay.
pub async fn queue_deliveries(
    inserter: &Inserter,
    pusher: &Pusher,
    tenant_id: Uuid,
    message_id: &str,
    endpoints: &[Uuid],
) -> Result<Vec<Uuid>, JobError> {
    let now = Utc::now();
    let mut ids = Vec::with_capacity(endpoints.len());
    for endpoint_id in endpoints {
        let payload = serde_json::to_value(WebhookDeliveryJob { endpoint_id: *endpoint_id, message_id: message_id.to_string() })
            .map_err(|e| JobError::permanent("invalid_payload", e.to_string()))?;
        let mut job = system_job(tenant_id, WebhookDeliveryJob::TYPE, payload, now);
        job.max_attempts = settings::get().max_attempts();
        let row = inserter.call(job).await.map_err(database)?.ok_or_else(|| database("no row inserted"))?;
        if let Some(entry) = Enqueue::for_row(&row) {
            if let Err(e) = pusher.call(entry).await {
                tracing::warn!(error = %e, job_id = %row.id, "delivery stored but not pushed; the sweeper will queue it");
            }
        }
        ids.push(row.id);
    }
    Ok(ids)
}
