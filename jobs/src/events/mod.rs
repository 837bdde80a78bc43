//! Outbound events: a tenant registers webhook endpoints (URL, `whsec_`
//! secret, the event types it wants); each event is one message, delivered
//! by one `webhook_delivery` job per matching endpoint.
//!
//! A transactional outbox: the message is stored in the same transaction
//! as the outcome that causes it (a payment's, a job's), so no outcome is
//! recorded without its event, and none is announced that was not recorded.
//! [`dispatch`] then turns it into deliveries, once per endpoint whatever
//! crashes or retries happen (idempotency key (message, endpoint)); the
//! writer dispatches at once, and every worker's relay
//! ([`dispatch_stranded`]) picks up what a dead writer left.
//!
//! Every endpoint receives the same body, `{"type", "timestamp", "data"}`,
//! under the same `webhook-id` (the message id), on every retry and on a
//! replay, so receivers can deduplicate.
//!
//! - [`catalogue`]: the event types there are (endpoint filters are checked against it).
//! - [`settings`]: the retry schedule and the disable threshold.
//! - [`delivery`]: the `webhook_delivery` job: one attempt, its log row, the failure clock.
//! - [`finished`]: `job.*` and `transcription.completed` events of finished jobs.
//! - [`callback`]: the `job_callback` job: a finished job to its own `callback_url`.

pub mod callback;
pub mod catalogue;
pub mod delivery;
pub mod finished;
pub mod settings;

use chrono::{SecondsFormat, Utc};
use peyk_schema::queries::outbox::{self, Destination};
use peyk_schema::queries::webhook_endpoints as q;
use peyk_schema::{Batcher, DbPool, NewJob, TenantId, WebhookMessageRow};
use uuid::Uuid;

use crate::context::SharedClients;
use crate::{Job, JobError, JobKind};
use callback::JobCallbackJob;
use delivery::WebhookDeliveryJob;
use peyk_queue::queue::{Enqueue, Queue};
use peyk_queue::submit::{system_job, Inserter, Pusher};

/// A new message id: `msg_` and a UUIDv7 in hex, so ids sort by time.
pub fn new_message_id() -> String {
    format!("msg_{}", Uuid::now_v7().simple())
}

/// What a delivery's `message_id` must look like.
pub(crate) fn check_message_id(id: &str) -> Result<(), crate::ValidationErrors> {
    if id.starts_with("msg_") {
        Ok(())
    } else {
        Err(crate::ValidationErrors::single("message_id", "must be a message id (`msg_…`)"))
    }
}

/// The job type an event message is about (`transcription.completed`:
/// transcription; `job.*`: the job's `type`), for the https-only rule.
pub(crate) fn job_type_of(message: &WebhookMessageRow) -> Option<&str> {
    if message.event_type == catalogue::TRANSCRIPTION_COMPLETED {
        return Some(crate::transcription::TranscriptionJob::TYPE);
    }
    message.payload["data"]["type"].as_str().filter(|_| message.event_type.starts_with("job."))
}

/// Refuses, for good, to send `message` to a plain-http `url` when its
/// job type's events go over https only ([`settings::Settings::plain_http_refused`]).
pub(crate) fn check_transport(url: &str, message: &WebhookMessageRow) -> Result<(), JobError> {
    match job_type_of(message).and_then(|job_type| settings::get().plain_http_refused(job_type, url)) {
        Some(problem) => Err(JobError::permanent("insecure_endpoint", problem)),
        None => Ok(()),
    }
}

/// The body every endpoint receives for one event.
pub fn message_body(event_type: &str, data: serde_json::Value, at: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({ "type": event_type, "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true), "data": data })
}

fn database(e: impl std::fmt::Display) -> JobError {
    JobError::retry("database_error", format!("webhook events: {e}"))
}

/// A new message for an event of the tenant, to be stored in the outbox.
pub fn new_message(tenant_id: Uuid, event_type: &str, data: serde_json::Value) -> WebhookMessageRow {
    let now = Utc::now();
    WebhookMessageRow {
        id: new_message_id(),
        tenant_id,
        event_type: event_type.to_string(),
        payload: message_body(event_type, data, now),
        created_at: now,
        callback_job_id: None,
    }
}

/// Whether the tenant has an enabled endpoint that wants `event_type`: a
/// message nobody wants is not stored.
pub async fn is_wanted(clients: &SharedClients, tenant_id: Uuid, event_type: &str) -> Result<bool, JobError> {
    if !catalogue::is_event_type(event_type) {
        return Err(JobError::permanent("unknown_event_type", format!("`{event_type}` is not in the event catalogue")));
    }
    Ok(!q::subscribed(&clients.backbone.pool, TenantId(tenant_id), event_type).await.map_err(database)?.is_empty())
}

/// Publishes an event that no other write depends on (e.g.
/// `endpoint.disabled`): stores the message, then dispatches it. Returns
/// the message id, or `None` when no endpoint wants the event. Outcomes
/// that cause events store them in their own transaction instead (see
/// `payments` and the runner) and only dispatch here.
pub async fn publish(
    clients: &SharedClients,
    tenant_id: Uuid,
    event_type: &str,
    data: serde_json::Value,
) -> Result<Option<String>, JobError> {
    if !is_wanted(clients, tenant_id, event_type).await? {
        return Ok(None);
    }
    let message = new_message(tenant_id, event_type, data);
    q::insert_message(&clients.backbone.pool, &message).await.map_err(database)?;
    dispatch_soon(clients, vec![message.id.clone()]);
    Ok(Some(message.id))
}

/// Dispatches stored messages, many per statement: what the writers of
/// outcomes hand their messages to.
pub type Dispatcher = Batcher<String, (), JobError>;

pub fn start_dispatcher(pool: DbPool, queue: Queue) -> Dispatcher {
    Batcher::start(256, 2, move |message_ids: Vec<String>| {
        let (pool, queue) = (pool.clone(), queue.clone());
        async move {
            dispatch(&pool, &queue, &message_ids).await?;
            Ok(vec![(); message_ids.len()])
        }
    })
}

/// Dispatches stored messages in the background: the caller's outcome is
/// committed with them, so if this fails (or the process dies first) the
/// relay ([`dispatch_stranded`]) dispatches them later.
pub fn dispatch_soon(clients: &SharedClients, message_ids: Vec<String>) {
    let dispatcher = clients.dispatcher.clone();
    tokio::spawn(async move {
        for id in message_ids {
            if let Err(e) = dispatcher.call(id).await {
                tracing::warn!(error = %e, "could not dispatch an event now; the relay will");
            }
        }
    });
}

/// Turns stored messages into one `webhook_delivery` job per endpoint that
/// wants them, once: a delivery's idempotency key is (message, endpoint),
/// so a second dispatch of a message (a relay racing the writer, a retry
/// after a crash) stores nothing more. Every retry of a delivery, and a
/// replay, sends the same `webhook-id` (the message id). Answers how many
/// deliveries were stored.
pub async fn dispatch(pool: &DbPool, queue: &Queue, message_ids: &[String]) -> Result<usize, JobError> {
    if message_ids.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut deliveries = Vec::new();
    for target in outbox::targets(pool, message_ids).await.map_err(database)? {
        let job = match target.to {
            Destination::Endpoint(endpoint_id) => {
                let mut job = delivery_job(target.tenant_id, &target.message_id, endpoint_id, now)?;
                job.idempotency_key = Some(format!("delivery:{}:{endpoint_id}", target.message_id));
                job
            }
            Destination::Callback(job_id) => {
                let mut job = callback_job(target.tenant_id, &target.message_id, job_id, now)?;
                job.idempotency_key = Some(format!("callback:{}", target.message_id));
                job
            }
        };
        deliveries.push(job);
    }
    let stored = outbox::store_deliveries(pool, &deliveries, message_ids).await.map_err(database)?;
    // One round trip for the whole batch (it is one already).
    let entries: Vec<Enqueue> = stored.iter().filter_map(Enqueue::for_row).collect();
    if let Err(e) = queue.enqueue_many(&entries).await {
        tracing::warn!(error = %e, count = entries.len(), "deliveries stored but not pushed; the sweeper will queue them");
    }
    Ok(stored.len())
}

/// The `job_callback` job of one finished job's message, with as many
/// attempts as the retry schedule has entries.
fn callback_job(tenant_id: Uuid, message_id: &str, job_id: Uuid, now: chrono::DateTime<Utc>) -> Result<NewJob, JobError> {
    let payload = serde_json::to_value(JobCallbackJob { job_id, message_id: message_id.to_string() })
        .map_err(|e| JobError::permanent("invalid_payload", e.to_string()))?;
    let mut job = system_job(tenant_id, &JobKind::described::<JobCallbackJob>(), payload, now);
    job.max_attempts = settings::get().max_attempts();
    Ok(job)
}

/// The `webhook_delivery` job of one message to one endpoint, with as many
/// attempts as the retry schedule has entries.
fn delivery_job(tenant_id: Uuid, message_id: &str, endpoint_id: Uuid, now: chrono::DateTime<Utc>) -> Result<NewJob, JobError> {
    let payload = serde_json::to_value(WebhookDeliveryJob { endpoint_id, message_id: message_id.to_string() })
        .map_err(|e| JobError::permanent("invalid_payload", e.to_string()))?;
    let mut job = system_job(tenant_id, &JobKind::described::<WebhookDeliveryJob>(), payload, now);
    job.max_attempts = settings::get().max_attempts();
    Ok(job)
}

/// The relay: dispatches messages stored more than `grace` ago and still
/// undispatched — their writer stopped between its commit and its dispatch.
/// Every worker runs it; dispatching twice is harmless (see [`dispatch`]).
pub async fn dispatch_stranded(pool: &DbPool, queue: &Queue, grace: std::time::Duration) -> Result<usize, JobError> {
    let before = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let stranded = outbox::undispatched(pool, before, 500).await.map_err(database)?;
    if stranded.is_empty() {
        return Ok(0);
    }
    tracing::info!(count = stranded.len(), "dispatching events whose writer stopped before dispatching them");
    dispatch(pool, queue, &stranded).await
}

/// Stores and queues a new `webhook_delivery` job per endpoint for a stored
/// message (the API's replay: deliberately a delivery again, under the same
/// `webhook-id`); returns the job ids.
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
        let job = delivery_job(tenant_id, message_id, *endpoint_id, now)?;
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
