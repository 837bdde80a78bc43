//! The retention sweeper: once per `PEYK_RETENTION_SWEEP_SECONDS`, one
//! worker of the fleet (whichever takes the lead) erases, tenant by tenant,
//! what has outlived the tenant's retention (its own, or the server's
//! defaults):
//! - payloads, results, error messages and metadata of finished jobs, and
//!   the step payloads of finished pipelines: sensitive types
//!   (`Job::SENSITIVE`: medical text, transcripts, messages) after
//!   `sensitive` days, the others after `content` days;
//! - uploads, `uploads` days after the last job that names them finished
//!   (bytes from the store first, then the record's name and hash);
//! - attempt error messages, event message bodies and receivers' answers,
//!   SMS texts: after `trail` days.
//!
//! Each statement touches at most `batch` rows, so that none holds locks
//! long; a tenant with more waits for the next round only when a round's
//! budget (`ROUNDS` batches per kind) is spent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use peyk_jobs::context::SharedClients;
use peyk_queue::maintenance::every;
use peyk_schema::queries::queue_controls::{self, RetentionDays};
use peyk_schema::queries::retention as q;
use peyk_schema::DbError;
use tokio_util::sync::CancellationToken;

type Runner = peyk_queue::runner::Runner<SharedClients>;

/// Batches of one kind per tenant per round at most.
const ROUNDS: usize = 100;

/// The server's retention (`PEYK_RETENTION_*_DAYS`) and how the sweeper runs.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    pub defaults: Days,
    pub every: Duration,
    pub batch: i64,
}

/// Days each kind of content is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Days {
    pub sensitive: f64,
    pub content: f64,
    pub uploads: f64,
    pub trail: f64,
}

impl Days {
    /// A tenant's own days where it has them, these elsewhere.
    pub fn for_tenant(&self, own: &RetentionDays) -> Days {
        Days {
            sensitive: own.sensitive.unwrap_or(self.sensitive),
            content: own.content.unwrap_or(self.content),
            uploads: own.uploads.unwrap_or(self.uploads),
            trail: own.trail.unwrap_or(self.trail),
        }
    }
}

fn cutoff(now: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    now - chrono::Duration::milliseconds((days * 86_400_000.0) as i64)
}

pub async fn run(runner: Arc<Runner>, settings: RetentionSettings, stop: CancellationToken) {
    while every(settings.every, &stop).await {
        match runner.queue.try_lead("retention", settings.every).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "could not take the retention lead");
                continue;
            }
        }
        if let Err(e) = sweep(&runner, &settings).await {
            tracing::warn!(error = %e, "retention sweep stopped; will go on next round");
        }
    }
}

async fn sweep(runner: &Runner, settings: &RetentionSettings) -> Result<(), DbError> {
    let sensitive = peyk_jobs::registry::catalogue().sensitive_names();
    let pool = &runner.pool;
    for tenant in queue_controls::tenants(pool).await? {
        let days = settings.defaults.for_tenant(&tenant.retention);
        let now = Utc::now();
        let id = tenant.id;
        let batch = settings.batch;
        let (sensitive_before, content_before) = (cutoff(now, days.sensitive), cutoff(now, days.content));
        let trail_before = cutoff(now, days.trail);
        repeat("job", || q::erase_finished_jobs(pool, id, &sensitive, true, sensitive_before, batch), batch).await?;
        repeat("job", || q::erase_finished_jobs(pool, id, &sensitive, false, content_before, batch), batch).await?;
        repeat("pipeline", || q::erase_finished_pipelines(pool, id, &sensitive, true, sensitive_before, batch), batch).await?;
        repeat("pipeline", || q::erase_finished_pipelines(pool, id, &sensitive, false, content_before, batch), batch).await?;
        repeat("attempt_error", || q::erase_attempt_errors(pool, id, trail_before, batch), batch).await?;
        repeat("message", || q::erase_message_bodies(pool, id, trail_before, batch), batch).await?;
        repeat("sms", || q::erase_sms_texts(pool, id, trail_before, batch), batch).await?;
        repeat("upload", || erase_uploads(runner, id, cutoff(now, days.uploads), batch), batch).await?;
    }
    Ok(())
}

/// Runs `erase` until it erases less than a batch (or `ROUNDS` times).
async fn repeat<F, Fut>(what: &'static str, mut erase: F, batch: i64) -> Result<(), DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, DbError>>,
{
    for _ in 0..ROUNDS {
        let erased = erase().await?;
        if erased > 0 {
            peyk_queue::metrics::RETENTION_ERASED.with_label_values(&[what]).inc_by(erased as u64);
            tracing::info!(what, erased, "erased past their retention");
        }
        if (erased as i64) < batch {
            break;
        }
    }
    Ok(())
}

/// Erases a batch of uploads no job needs any more: bytes first, then the
/// record (a record whose bytes could not go stays, and is tried again).
async fn erase_uploads(runner: &Runner, tenant: uuid::Uuid, before: DateTime<Utc>, batch: i64) -> Result<usize, DbError> {
    let mut erased = 0;
    for id in q::uploads_to_erase(&runner.pool, tenant, before, batch).await? {
        if let Err(e) = runner.clients.files.delete(tenant, id).await {
            tracing::warn!(file = %id, error = %e, "could not delete an upload past its retention; will try again");
            continue;
        }
        if q::mark_file_erased(&runner.pool, tenant, id).await?.is_some() {
            erased += 1;
        }
    }
    Ok(erased)
}
