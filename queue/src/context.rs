//! What a running job can reach: the clients of its job types (built once
//! per worker process, shared by every job it runs), the queue's own
//! handles, and a way to report progress.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use peyk_schema::DbPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::queue::{Enqueue, Queue};
use crate::registry::JobKind;
use crate::submit::{Inserter, Pusher};

/// The queue's handles: the jobs database, the Redis queues, and the
/// batchers that store and push new jobs (one commit, one round trip, for
/// many). Cheap to clone.
#[derive(Clone)]
pub struct Backbone {
    pub pool: DbPool,
    /// The queues, and through them Redis.
    pub queue: Queue,
    pub inserter: Inserter,
    pub pusher: Pusher,
}

impl Backbone {
    /// Starts the batchers over `pool` and `queue`.
    pub fn start(pool: DbPool, queue: Queue) -> Self {
        Self { inserter: crate::submit::start_inserter(pool.clone()), pusher: crate::submit::start_pusher(queue.clone()), pool, queue }
    }
}

/// What the job types of a registry share (Peyk's is `peyk_jobs`'
/// `SharedClients`: HTTP, SMTP, gateways, file store): anything, as long as
/// it carries the [`Backbone`] that follow-up jobs are queued through.
pub trait Clients: Send + Sync + 'static {
    fn backbone(&self) -> &Backbone;
}

/// The clients of a registry that needs nothing but the queue (tests' toy jobs).
impl Clients for Backbone {
    fn backbone(&self) -> &Backbone {
        self
    }
}

pub struct JobContext<C> {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    /// 1-based number of this attempt.
    pub attempt: i32,
    /// The job's own limit: after this attempt, a retryable error ends it as `dead`.
    pub max_attempts: i32,
    pub clients: Arc<C>,
    progress: Option<watch::Sender<i16>>,
}

impl<C: Clients> JobContext<C> {
    pub fn new(
        job_id: Uuid,
        tenant_id: Uuid,
        (attempt, max_attempts): (i32, i32),
        clients: Arc<C>,
        progress: Option<watch::Sender<i16>>,
    ) -> Self {
        Self { job_id, tenant_id, attempt, max_attempts, clients, progress }
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
    pub async fn enqueue_follow_up<K>(
        &self,
        kind: &JobKind<K>,
        payload: serde_json::Value,
        run_at: DateTime<Utc>,
    ) -> Result<Uuid, crate::JobError> {
        let retry = |e: &dyn std::fmt::Display| crate::JobError::retry("follow_up_failed", format!("could not store a follow-up job: {e}"));
        let backbone = self.clients.backbone();
        let job = crate::submit::system_job(self.tenant_id, kind, payload, run_at);
        let row = backbone.inserter.call(job).await.map_err(|e| retry(&e))?.ok_or_else(|| retry(&"no row inserted"))?;
        if let Some(entry) = Enqueue::for_row(&row) {
            if let Err(e) = backbone.pusher.call(entry).await {
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
