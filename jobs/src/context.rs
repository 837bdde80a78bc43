//! What a running job can reach: the clients built once per worker process
//! (shared by every job it runs) and a way to report progress.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use peyk_schema::DbPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::email::transport::EmailClient;
use crate::medical::llm::LlmClient;
use crate::payments::PaymentsClient;
use crate::queue::{Enqueue, Queue};
use crate::sms::SmsClient;
use crate::storage::FileStore;
use crate::submit::{Inserter, Pusher};
use crate::transcription::engine::SpeechEngine;
use crate::webhook::client::{AddressPolicy, WebhookClient};

/// Built once at worker start-up; cheap to clone into every job.
#[derive(Clone)]
pub struct SharedClients {
    /// The jobs database: for job types that keep records of their own
    /// (outboxes, templates) and for follow-up jobs.
    pub pool: DbPool,
    /// The queues, and through them Redis (rate limits).
    pub queue: Queue,
    /// Follow-up jobs are stored and pushed in batches (one commit for
    /// many), as the API's submissions are.
    pub inserter: Inserter,
    pub pusher: Pusher,
    /// Stored event messages are dispatched in batches too.
    pub dispatcher: crate::events::Dispatcher,
    pub webhook: WebhookClient,
    pub files: FileStore,
    pub sms: SmsClient,
    /// SMTP (one pooled transport per worker), for `email` jobs.
    pub email: EmailClient,
    /// The OpenAI-compatible chat API of `medical_analysis` jobs.
    pub llm: LlmClient,
    /// The payment gateways, for `payment_verification` and reconcile.
    pub payments: PaymentsClient,
    /// Loaded only by workers that serve the `transcription` queue.
    pub speech: Option<Arc<dyn SpeechEngine>>,
}

impl SharedClients {
    /// The clients as the environment configures them (each provider's
    /// `PEYK_*` settings), over the given database and queues.
    pub fn from_env(
        pool: DbPool,
        queue: Queue,
        redis_prefix: &str,
        webhook_policy: AddressPolicy,
        speech: Option<Arc<dyn SpeechEngine>>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            inserter: crate::submit::start_inserter(pool.clone()),
            pusher: crate::submit::start_pusher(queue.clone()),
            dispatcher: crate::events::start_dispatcher(pool.clone(), queue.clone()),
            webhook: WebhookClient::new(webhook_policy)?,
            files: FileStore::from_env()?,
            sms: SmsClient::from_env(redis_prefix)?,
            email: EmailClient::from_env()?,
            llm: LlmClient::from_env()?,
            payments: PaymentsClient::from_env()?,
            speech,
            pool,
            queue,
        })
    }
}

pub struct JobContext {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    /// 1-based number of this attempt.
    pub attempt: i32,
    pub clients: Arc<SharedClients>,
    progress: Option<watch::Sender<i16>>,
}

impl JobContext {
    pub fn new(job_id: Uuid, tenant_id: Uuid, attempt: i32, clients: Arc<SharedClients>, progress: Option<watch::Sender<i16>>) -> Self {
        Self { job_id, tenant_id, attempt, clients, progress }
    }

    /// Reports progress (0–100). Cheap: the runner writes only the latest
    /// value to the job record, at most once a second.
    pub fn report_progress(&self, percent: i16) {
        if let Some(progress) = &self.progress {
            progress.send_replace(percent.clamp(0, 100));
        }
    }

    /// Stores and queues a follow-up job of this job's tenant (e.g. a
    /// delivery-status check), to run at `run_at`. It is an ordinary job:
    /// durable once this returns, retried, visible in `/v1/jobs`. Should the
    /// push to Redis fail, the sweeper queues the stored row.
    pub async fn enqueue_follow_up(
        &self,
        kind: &crate::registry::JobKind,
        payload: serde_json::Value,
        run_at: DateTime<Utc>,
    ) -> Result<Uuid, crate::JobError> {
        let retry = |e: &dyn std::fmt::Display| crate::JobError::retry("follow_up_failed", format!("could not store a follow-up job: {e}"));
        let job = crate::submit::system_job(self.tenant_id, kind, payload, run_at);
        let row = self.clients.inserter.call(job).await.map_err(|e| retry(&e))?.ok_or_else(|| retry(&"no row inserted"))?;
        if let Some(entry) = Enqueue::for_row(&row) {
            if let Err(e) = self.clients.pusher.call(entry).await {
                tracing::warn!(error = %e, follow_up = %row.id, "follow-up job stored but not pushed; the sweeper will queue it");
            }
        }
        Ok(row.id)
    }

    /// The same, as an owned function for work moved to another thread
    /// (e.g. a `spawn_blocking` transcription).
    pub fn progress_reporter(&self) -> impl Fn(i16) + Send + Sync + 'static {
        let progress = self.progress.clone();
        move |percent| {
            if let Some(progress) = &progress {
                progress.send_replace(percent.clamp(0, 100));
            }
        }
    }
}
