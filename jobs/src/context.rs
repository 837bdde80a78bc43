//! What Peyk's job types reach while they run: the provider clients, built
//! once per worker process and shared by every job it runs, over the
//! queue's [`Backbone`].

use std::sync::Arc;

use peyk_queue::queue::Queue;
use peyk_queue::{Backbone, Clients};
use peyk_schema::DbPool;

use crate::email::transport::EmailClient;
use crate::medical::llm::LlmClient;
use crate::payments::PaymentsClient;
use crate::sms::SmsClient;
use crate::storage::FileStore;
use crate::transcription::engine::SpeechEngine;
use crate::webhook::client::{AddressPolicy, WebhookClient};

/// The context Peyk's job types run with.
pub type JobContext = peyk_queue::JobContext<SharedClients>;

/// Built once at worker start-up; cheap to clone into every job.
#[derive(Clone)]
pub struct SharedClients {
    /// The jobs database (for job types that keep records of their own:
    /// outboxes, templates), the queues (and through them Redis, for rate
    /// limits), and the batchers that store and push follow-up jobs.
    pub backbone: Backbone,
    /// Stored event messages are dispatched in batches.
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

impl Clients for SharedClients {
    fn backbone(&self) -> &Backbone {
        &self.backbone
    }
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
            dispatcher: crate::events::start_dispatcher(pool.clone(), queue.clone()),
            webhook: WebhookClient::new(webhook_policy)?,
            files: FileStore::from_env()?,
            sms: SmsClient::from_env(redis_prefix)?,
            email: EmailClient::from_env()?,
            llm: LlmClient::from_env()?,
            payments: PaymentsClient::from_env()?,
            speech,
            backbone: Backbone::start(pool, queue),
        })
    }
}
