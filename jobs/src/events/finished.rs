//! Events of finished jobs: `job.succeeded`, `job.failed` (status `failed`
//! or `dead`), and `transcription.completed` for a succeeded transcription.
//! Never for internal types (a delivery's own outcome must not become an
//! event, which would loop).
//!
//! The runner asks [`FinishedJobEvents`] (its `Announcer`) for every finished
//! job, thousands a second under load, mostly for tenants without any
//! endpoint. So whether a tenant has an enabled endpoint is cached for
//! [`CACHE_TTL`]: a tenant known to have none costs one map lookup and
//! nothing else. The staleness this allows: an endpoint created for a
//! tenant that had none starts receiving job events up to `CACHE_TTL`
//! later. (Which endpoints receive an event is always decided afresh by
//! `publish`, so a disabled or deleted endpoint gets nothing.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use peyk_queue::runner::{Announcer, FinishedJob};
use peyk_schema::queries::webhook_endpoints as q;
use peyk_schema::queries::worker::Outcome;
use peyk_schema::{TenantId, WebhookMessageRow};
use serde_json::{json, Value};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::catalogue::{JOB_FAILED, JOB_SUCCEEDED, TRANSCRIPTION_COMPLETED};
use crate::context::SharedClients;
use crate::transcription::TranscriptionJob;
use crate::Job;

pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Expired entries are swept once the map holds this many tenants.
const CACHE_SWEEP_AT: usize = 10_000;

struct Entry {
    at: Instant,
    /// Filled by the first lookup; concurrent finishes of the same tenant
    /// wait for that one query instead of each running their own.
    has_endpoints: Arc<OnceCell<bool>>,
}

pub struct FinishedJobEvents {
    clients: Arc<SharedClients>,
    cache: Mutex<HashMap<Uuid, Entry>>,
}

impl FinishedJobEvents {
    pub fn new(clients: Arc<SharedClients>) -> Arc<Self> {
        Arc::new(Self { clients, cache: Mutex::new(HashMap::new()) })
    }

    /// The messages (`job.*`, `transcription.completed`) a finished job's
    /// outcome causes, to be stored with the outcome (the runner's
    /// `Finish`): none for internal types, for retries, or for tenants
    /// without endpoints.
    async fn messages(&self, job: FinishedJob<'_>) -> Vec<WebhookMessageRow> {
        if job.internal {
            return Vec::new();
        }
        let events = events_of(&job);
        let mut messages: Vec<WebhookMessageRow> = callback_message(&job, &events).into_iter().collect();
        if events.is_empty() || self.known_to_have_none(job.tenant_id) || !self.has_endpoints(job.tenant_id).await {
            return messages;
        }
        let data = event_data(&job);
        messages.extend(events.into_iter().map(|event| super::new_message(job.tenant_id, event, data.clone())));
        messages
    }

    fn known_to_have_none(&self, tenant: Uuid) -> bool {
        let cache = self.cache.lock().unwrap();
        cache.get(&tenant).is_some_and(|e| e.at.elapsed() < CACHE_TTL && e.has_endpoints.get() == Some(&false))
    }

    async fn has_endpoints(&self, tenant: Uuid) -> bool {
        let cell = {
            let mut cache = self.cache.lock().unwrap();
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, e| e.at.elapsed() < CACHE_TTL);
            }
            match cache.get(&tenant) {
                Some(entry) if entry.at.elapsed() < CACHE_TTL => entry.has_endpoints.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    cache.insert(tenant, Entry { at: Instant::now(), has_endpoints: cell.clone() });
                    cell
                }
            }
        };
        *cell
            .get_or_init(|| async {
                q::has_enabled(&self.clients.backbone.pool, TenantId(tenant)).await.unwrap_or_else(|e| {
                    // Unknown: let `publish` decide (it asks again).
                    tracing::warn!(error = %e, "could not check the tenant's webhook endpoints");
                    true
                })
            })
            .await
    }
}

impl Announcer for FinishedJobEvents {
    fn messages_for<'a>(&'a self, job: FinishedJob<'a>) -> BoxFuture<'a, Vec<WebhookMessageRow>> {
        self.messages(job).boxed()
    }

    /// Dispatches messages the runner stored with an outcome.
    fn dispatch(&self, message_ids: Vec<String>) {
        if !message_ids.is_empty() {
            super::dispatch_soon(&self.clients, message_ids);
        }
    }
}

fn events_of(job: &FinishedJob<'_>) -> Vec<&'static str> {
    match job.outcome {
        Outcome::Succeeded { .. } if job.job_type == TranscriptionJob::TYPE => vec![JOB_SUCCEEDED, TRANSCRIPTION_COMPLETED],
        Outcome::Succeeded { .. } => vec![JOB_SUCCEEDED],
        Outcome::Failed { .. } => vec![JOB_FAILED],
        Outcome::Retry { .. } => vec![],
    }
}

/// The message to the job's own callback, when it has one: the first of
/// its events (`job.succeeded` or `job.failed`) with the job's record.
fn callback_message(job: &FinishedJob<'_>, events: &[&'static str]) -> Option<WebhookMessageRow> {
    let (_, event) = job.callback.zip(events.first())?;
    let mut data = event_data(job);
    data["attempts"] = json!(job.attempts);
    let mut message = super::new_message(job.tenant_id, event, data);
    message.callback_job_id = Some(job.id);
    Some(message)
}

fn event_data(job: &FinishedJob<'_>) -> Value {
    let (error_code, error_message, result) = match job.outcome {
        Outcome::Succeeded { result } => (None, None, Some(result.clone())),
        Outcome::Failed { code, message, result, .. } => (Some(code.clone()), Some(message.clone()), result.clone()),
        Outcome::Retry { .. } => (None, None, None),
    };
    json!({
        "id": job.id,
        "type": job.job_type,
        "status": job.status,
        "error_code": error_code,
        "error_message": error_message,
        "result": result,
        "metadata": job.metadata,
    })
}

#[cfg(test)]
mod tests {
    use peyk_schema::JobStatus;

    use super::*;

    #[test]
    fn transcriptions_also_complete_and_failures_carry_their_error() {
        let ok = Outcome::Succeeded { result: json!({"text": "x"}) };
        let metadata = json!({"appointment": "4242"});
        let job = |job_type, outcome| FinishedJob {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            job_type,
            internal: false,
            status: JobStatus::Succeeded,
            outcome,
            metadata: &metadata,
            attempts: 1,
            callback: None,
        };
        assert_eq!(events_of(&job("transcription", &ok)), [JOB_SUCCEEDED, TRANSCRIPTION_COMPLETED]);
        assert_eq!(events_of(&job("webhook", &ok)), [JOB_SUCCEEDED]);
        let failed = Outcome::Failed { dead: true, code: "http_500".into(), message: "m".into(), result: None };
        let dead = FinishedJob { status: JobStatus::Dead, ..job("webhook", &failed) };
        assert_eq!(events_of(&dead), [JOB_FAILED]);
        let data = event_data(&dead);
        assert_eq!((data["status"].as_str(), data["error_code"].as_str()), (Some("dead"), Some("http_500")));
        assert_eq!(data["metadata"]["appointment"], "4242");
    }
}
