//! What a running job can reach: the clients built once per worker process
//! (shared by every job it runs) and a way to report progress.

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use crate::storage::FileStore;
use crate::transcription::engine::SpeechModels;
use crate::webhook::client::WebhookClient;

/// Built once at worker start-up; cheap to clone into every job.
#[derive(Clone)]
pub struct SharedClients {
    pub webhook: WebhookClient,
    pub files: FileStore,
    /// Loaded only by workers that serve the `transcription` queue.
    pub speech: Option<Arc<SpeechModels>>,
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
