//! What a running job can reach: the clients built once per worker process
//! (shared by every job it runs) and a way to report progress.

use std::sync::Arc;

use tokio::sync::watch;
use uuid::Uuid;

use crate::webhook::client::WebhookClient;

/// Built once at worker start-up; cheap to clone into every job.
#[derive(Clone)]
pub struct SharedClients {
    pub webhook: WebhookClient,
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
}
