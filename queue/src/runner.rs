//! Runs one queue entry: claim the job in PostgreSQL, run its handler, record
//! the outcome, schedule the retry. Reads top to bottom; everything that can
//! go wrong outside the handler leaves the row in a state the sweeper repairs.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::FutureExt;
use peyk_schema::queries::worker::{self as q, Finish, Outcome};
use peyk_schema::{Batcher, ClaimedJob, DbPool, JobStatus, WebhookMessageRow};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info_span, Instrument};
use uuid::Uuid;

use crate::queue::{Enqueue, Queue, QueueError, QueuedJob};
use crate::retry::Backoff;
use crate::{metrics, Clients, JobContext, JobError, JobKind, Registry, RetryHint};

/// Claims and outcomes go through batchers: under load, one statement
/// covers every job that is starting (or finishing) at the same moment.
pub type Claims = Batcher<(Uuid, String), Option<ClaimedJob>>;
pub type Finishes = Batcher<Arc<Finish>, bool>;
/// `(queue, consumer, task id)` of tasks done with.
pub type Acks = Batcher<(String, String, String), (), QueueError>;

fn start_acks(queue: &Queue) -> Acks {
    let queue = queue.clone();
    Batcher::start(256, 2, move |done: Vec<(String, String, String)>| {
        let queue = queue.clone();
        async move {
            let count = done.len();
            let mut by_queue: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
            for (queue_name, consumer, task_id) in done {
                by_queue.entry(queue_name).or_default().push((consumer, task_id));
            }
            for (queue_name, tasks) in by_queue {
                queue.ack(&queue_name, &tasks).await?;
            }
            Ok(vec![(); count])
        }
    })
}

/// Claim (and finish) statements run at once; see `start_batchers`.
const PARALLEL: usize = 1;

/// The connections the claim and finish batches need
/// (`RunnerSettings::batch_pool`): one for each statement at once.
pub const BATCH_CONNECTIONS: usize = 2 * PARALLEL;

fn start_batchers(pool: &DbPool, queue: &Queue, worker_id: &str, lease: Duration) -> (Claims, Finishes) {
    // One statement of each kind at once, each up to 256 jobs. With four of
    // up to 128, the worker's 256 running jobs made small batches whose
    // statements competed for the same index pages and the two cores
    // (2026-12-06: 3,000 deliveries/s where two gave 3,900-5,000). Two at
    // once made batches of 31-34 jobs; one makes them 52-55, and
    // PostgreSQL's share of each job (a statement's fixed cost, a commit)
    // fell from 64-77 to 50-69 us of CPU in five alternating pairs of
    // `bench/run.sh` runs (2026-12-07; deliveries 8,899 against 10,143 a
    // second at the median).
    const MAX_BATCH: usize = 256;
    let claims = {
        let (pool, worker_id) = (pool.clone(), worker_id.to_string());
        Batcher::start(MAX_BATCH, PARALLEL, move |wanted: Vec<(Uuid, String)>| {
            let (pool, worker_id) = (pool.clone(), worker_id.clone());
            async move { q::claim_batch(&pool, &worker_id, lease.as_secs_f64(), &wanted).await }
        })
    };
    let finishes = {
        let (pool, queue, worker_id) = (pool.clone(), queue.clone(), worker_id.to_string());
        Batcher::start(MAX_BATCH, PARALLEL, move |finishes: Vec<Arc<Finish>>| {
            let (pool, queue, worker_id) = (pool.clone(), queue.clone(), worker_id.clone());
            async move {
                let recorded = q::finish_batch(&pool, &worker_id, &finishes).await?;
                // Committed: whoever waits for these jobs (`?wait=`) may read them now.
                // Announced beside the batch's answer, not before it: the
                // outcomes' acks need not wait for the publish.
                let ended: Vec<Uuid> = finishes
                    .iter()
                    .zip(&recorded)
                    .filter(|(finish, recorded)| **recorded && finish.outcome.final_status().is_some())
                    .map(|(finish, _)| finish.job_id)
                    .collect();
                if !ended.is_empty() {
                    tokio::spawn(async move { queue.announce_finished(&ended).await });
                }
                Ok(recorded)
            }
        })
    };
    (claims, finishes)
}

/// A job this process is running.
pub struct InFlight {
    /// Cancelled to stop the job's handler.
    pub stop: CancellationToken,
    pub started: Instant,
}

/// What the runner knows of a finished job.
pub struct FinishedJob<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub job_type: &'a str,
    /// A type only Peyk queues: it announces nothing (which could loop).
    pub internal: bool,
    /// `succeeded`, `failed` or `dead`.
    pub status: JobStatus,
    pub outcome: &'a Outcome,
    /// The client's keys on the job (`{}` for none), so that a receiver
    /// finds its own record.
    pub metadata: &'a serde_json::Value,
    /// The attempts it took.
    pub attempts: i32,
    /// Its own callback (`jobs.callback`), if it was submitted with one.
    pub callback: Option<&'a serde_json::Value>,
}

/// What a job's end announces (Peyk's: `job.*` events to the tenant's
/// endpoints, `peyk_jobs::events::finished`). The messages are stored in
/// the same commit as the outcome (a transactional outbox: neither exists
/// without the other) and dispatched once it is committed.
pub trait Announcer: Send + Sync {
    /// The messages a finished job causes, to be stored with its outcome.
    fn messages_for<'a>(&'a self, job: FinishedJob<'a>) -> BoxFuture<'a, Vec<WebhookMessageRow>>;
    /// Sends messages stored with an outcome that has been committed.
    fn dispatch(&self, message_ids: Vec<String>);
}

/// Announces nothing (a runner of toy jobs).
pub struct Silent;

impl Announcer for Silent {
    fn messages_for<'a>(&'a self, _job: FinishedJob<'a>) -> BoxFuture<'a, Vec<WebhookMessageRow>> {
        futures::future::ready(Vec::new()).boxed()
    }

    fn dispatch(&self, _message_ids: Vec<String>) {}
}

/// Shared by every job this process runs.
pub struct Runner<C> {
    pub pool: DbPool,
    pub claims: Claims,
    pub finishes: Finishes,
    pub acks: Acks,
    pub queue: Queue,
    pub clients: Arc<C>,
    /// The job types this runner can run (each entry's type is looked up
    /// once, when it is claimed).
    pub registry: Arc<Registry<C>>,
    /// This process's identity, unique per process.
    pub worker_id: String,
    pub lease: Duration,
    pub backoff: Backoff,
    /// Announces finished jobs (Peyk's: `job.*` events to the tenant's endpoints).
    pub announcer: Arc<dyn Announcer>,
    /// Jobs this process holds a claim on, each with the token that stops
    /// it: the lease keeper renews them, the cancel watcher stops those that
    /// are no longer this worker's (cancelled, or taken over).
    pub in_flight: Mutex<HashMap<Uuid, InFlight>>,
    /// Set on SIGTERM/SIGINT: entries received from now on are handed back
    /// unstarted.
    pub shutting_down: AtomicBool,
}

/// How a runner keeps its claims and retries.
#[derive(Clone)]
pub struct RunnerSettings {
    /// This process's identity, unique per process.
    pub worker_id: String,
    /// How long a claim holds unless renewed.
    pub lease: Duration,
    pub backoff: Backoff,
    /// The connections of the claim and finish batches
    /// (`peyk_schema::connect_batch_pool` of [`BATCH_CONNECTIONS`]).
    pub batch_pool: DbPool,
}

impl<C: Clients> Runner<C> {
    /// A runner with its batchers started.
    pub fn start(clients: Arc<C>, registry: Arc<Registry<C>>, announcer: Arc<dyn Announcer>, settings: RunnerSettings) -> Arc<Self> {
        let RunnerSettings { worker_id, lease, backoff, batch_pool } = settings;
        let backbone = clients.backbone();
        let (claims, finishes) = start_batchers(&batch_pool, &backbone.queue, &worker_id, lease);
        Arc::new(Self {
            pool: backbone.pool.clone(),
            claims,
            finishes,
            acks: start_acks(&backbone.queue),
            queue: backbone.queue.clone(),
            announcer,
            clients,
            registry,
            worker_id,
            lease,
            backoff,
            in_flight: Default::default(),
            shutting_down: Default::default(),
        })
    }

    /// Stops the handlers of jobs running longer than `older_than` that are
    /// no longer this worker's: cancelled through the API, or taken over
    /// after their claim lapsed. Returns how many it stopped.
    pub async fn stop_lost_jobs(&self, older_than: Duration) -> Result<usize, peyk_schema::DbError> {
        let ids: Vec<Uuid> =
            self.in_flight.lock().unwrap().iter().filter(|(_, job)| job.started.elapsed() > older_than).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let gone = q::not_held_by(&self.pool, &self.worker_id, &ids).await?;
        let in_flight = self.in_flight.lock().unwrap();
        let mut stopped = 0;
        for id in gone {
            if let Some(job) = in_flight.get(&id) {
                tracing::info!(job_id = %id, "job cancelled or taken over while running; stopping it");
                job.stop.cancel();
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// Runs one task of `queue` fetched by apalis consumer `consumer`, and
    /// acknowledges it once its outcome is recorded (or it needs no run).
    pub async fn handle(&self, queue: &str, consumer: &str, entry: QueuedJob, task_id: String) {
        if self.process(entry, &task_id).await {
            if let Err(e) = self.acks.call((queue.to_string(), consumer.to_string(), task_id)).await {
                // Left in flight: handed back at shutdown, or recovered by apalis
                // if this process dies; the claim check makes a second run harmless.
                tracing::warn!(error = %e, "could not acknowledge a task");
            }
        } else {
            // Could not even claim (PostgreSQL unreachable): give the task back
            // to the queue after a pause rather than spin on it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.queue.release(queue, consumer, &task_id).await {
                tracing::warn!(error = %e, "could not release a task");
            }
        }
    }

    /// False when the task must be tried again later.
    async fn process(&self, entry: QueuedJob, task_id: &str) -> bool {
        if self.shutting_down.load(Ordering::Acquire) {
            self.hand_off(entry.job_id, task_id).await;
            return true;
        }
        if let Some(not_before) = entry.not_before_ms {
            let wait_ms = not_before - Utc::now().timestamp_millis();
            if wait_ms > 0 {
                tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
            }
        }
        let claimed = match self.claims.call((entry.job_id, task_id.to_string())).await {
            Ok(Some(claimed)) => claimed,
            // Cancelled, finished, or a stale duplicate entry: nothing to do.
            Ok(None) => return true,
            Err(e) => {
                tracing::error!(job_id = %entry.job_id, error = %e, "could not claim job");
                return false;
            }
        };
        let job = &claimed.job;
        let span = info_span!("job", job_id = %job.id, job_type = %job.job_type, tenant_id = %job.tenant_id, attempt = job.attempts);
        self.run_claimed(claimed).instrument(span).await;
        true
    }

    async fn run_claimed(&self, claimed: ClaimedJob) {
        let job = &claimed.job;
        let job_type = job.job_type.as_str();
        let kind = self.registry.get(job_type);
        let stop = CancellationToken::new();
        self.in_flight.lock().unwrap().insert(job.id, InFlight { stop: stop.clone(), started: Instant::now() });
        if job.attempts == 1 {
            let waited = (Utc::now() - job.run_at.max(job.created_at)).to_std().unwrap_or_default();
            metrics::JOB_QUEUE_WAIT.with_label_values(&[job_type, &job.priority.to_string()]).observe(waited.as_secs_f64());
        }

        let (progress_tx, progress_rx) = watch::channel(job.progress.unwrap_or(0));
        let ctx = JobContext::new(job.id, job.tenant_id, (job.attempts, job.max_attempts), self.clients.clone(), Some(progress_tx));

        let started = Instant::now();
        // Every attempt allowed was claimed and none reported: each ended with
        // its worker gone (killed, out of memory, a native crash). Such a job
        // is not run again: it would take down the next worker too.
        let result = if claimed.exhausted {
            None
        } else {
            // Dropping the handler's future when the job is cancelled stops
            // its work (a transcription's whisper.cpp aborts at its next step).
            // The progress it reports is written beside it, in this task
            // (not a task of its own for each job: most never report any).
            Some(tokio::select! {
                result = run_guarded(kind, job_type, job.payload.clone(), &ctx) => result,
                () = stop.cancelled() => Err(JobError::permanent("stopped", "the job was cancelled or taken over while it ran")),
                never = write_progress(&self.pool, job.id, &self.worker_id, progress_rx) => match never {},
            })
        };
        let elapsed = started.elapsed();
        drop(ctx);
        metrics::JOB_DURATION.with_label_values(&[job_type]).observe(elapsed.as_secs_f64());

        let outcome = match result {
            Some(result) => self.outcome_of(kind, &claimed, result),
            None => Outcome::Failed {
                dead: true,
                code: "worker_lost".into(),
                message: format!(
                    "gave up after {} attempts: each ended with its worker lost (killed, out of memory or crashed)",
                    job.attempts
                ),
                result: None,
            },
        };
        // Its events are stored with the outcome (the outbox), then dispatched.
        let events = match outcome.final_status() {
            Some(status) => {
                let internal = kind.is_some_and(|kind| kind.internal);
                let finished = FinishedJob {
                    id: job.id,
                    tenant_id: job.tenant_id,
                    job_type,
                    internal,
                    status,
                    outcome: &outcome,
                    metadata: &job.metadata,
                    attempts: job.attempts,
                    callback: job.callback.as_ref(),
                };
                self.announcer.messages_for(finished).await
            }
            None => Vec::new(),
        };
        let event_ids: Vec<String> = events.iter().map(|message| message.id.clone()).collect();
        // Shared, not copied, with the batch that records it (and each retry).
        let finish = Arc::new(Finish { job_id: job.id, attempt_id: claimed.attempt_id, outcome, events });
        let recorded = self.record(&finish).await;
        self.in_flight.lock().unwrap().remove(&job.id);
        let outcome = &finish.outcome;

        // `None`: discarded (cancelled or taken over while it ran).
        let status = match (outcome, recorded) {
            (_, Some(false)) => None,
            (_, None) => return, // the claim expires; the sweeper runs the job again
            (Outcome::Retry { code, run_at, next_task_id, .. }, _) => {
                metrics::JOB_RETRIES.with_label_values(&[job_type, code]).inc();
                let entry = Enqueue {
                    job_type: job_type.to_string(),
                    job_id: job.id,
                    tenant_id: job.tenant_id,
                    task_id: next_task_id.clone(),
                    run_at: *run_at,
                    priority: job.priority,
                    front: false,
                };
                if let Err(e) = self.queue.enqueue(&entry).await {
                    // Recorded as scheduled in PostgreSQL: the sweeper pushes it.
                    tracing::warn!(error = %e, "could not schedule the retry in redis");
                }
                tracing::info!(code = %code, retry_at = %run_at, "attempt failed; retry scheduled");
                return;
            }
            (outcome, _) => outcome.final_status(),
        };
        let label = status.map_or("discarded", JobStatus::as_str);
        if let Outcome::Failed { code, message, dead, .. } = outcome {
            if *dead {
                metrics::JOBS_DEAD.with_label_values(&[job_type, code]).inc();
            }
            tracing::warn!(status = label, code = %code, message = %message, "job did not succeed");
        } else {
            tracing::debug!(status = label, "job finished");
        }
        metrics::JOBS_FINISHED.with_label_values(&[job_type, label]).inc();
        if status.is_some() {
            self.announcer.dispatch(event_ids);
        }
        // A finished step moves its pipeline on (the next step, or the end).
        if let Some(pipeline) = job.pipeline_id.filter(|_| status.is_some()) {
            if let Err(e) = crate::pipeline::advance(&self.registry, &self.pool, &self.queue, pipeline).await {
                tracing::warn!(%pipeline, error = %e, "could not advance the pipeline; the sweeper will");
            }
        }
    }

    fn outcome_of(&self, kind: Option<&JobKind<C>>, claimed: &ClaimedJob, result: Result<serde_json::Value, JobError>) -> Outcome {
        let job = &claimed.job;
        match result {
            Ok(result) => Outcome::Succeeded { result },
            Err(error) => {
                let details = error.details.clone();
                match error.hint {
                    RetryHint::Permanent => Outcome::Failed { dead: false, code: error.code, message: error.message, result: details },
                    RetryHint::Retry { .. } if job.attempts >= job.max_attempts => Outcome::Failed {
                        dead: true,
                        code: error.code,
                        message: format!("{} (gave up after {} attempts)", error.message, job.attempts),
                        result: details,
                    },
                    RetryHint::Retry { after } => {
                        // A type's own schedule (webhook deliveries), else the global backoff.
                        let attempt = job.attempts as u32;
                        let delay =
                            kind.and_then(|kind| kind.retry_delay(attempt, after)).unwrap_or_else(|| self.backoff.delay(attempt, after));
                        Outcome::Retry {
                            code: error.code,
                            message: error.message,
                            run_at: Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
                            next_task_id: ulid::Ulid::new().to_string(),
                            result: details,
                        }
                    }
                }
            }
        }
    }

    /// Writes the outcome, retrying while PostgreSQL is unreachable for a
    /// few seconds. `Some(true)`: recorded; `Some(false)`: the job was not
    /// ours any more (cancelled, or taken over); `None`: gave up.
    async fn record(&self, finish: &Arc<Finish>) -> Option<bool> {
        for delay_ms in [0u64, 200, 1000, 3000] {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            match self.finishes.call(finish.clone()).await {
                Ok(recorded) => return Some(recorded),
                Err(e) => tracing::warn!(error = %e, "could not record the job's outcome; retrying"),
            }
        }
        tracing::error!("gave up recording the outcome; the job will run again when its claim expires");
        None
    }

    /// Gives an entry received during shutdown back to the queue under a
    /// new task id, unstarted.
    async fn hand_off(&self, job_id: Uuid, task_id: &str) {
        let new_task_id = ulid::Ulid::new().to_string();
        match q::move_to_new_task(&self.pool, job_id, task_id, &new_task_id).await {
            Ok(Some(waiting)) => {
                // It had its turn already: back at the front of its tenant's level.
                let entry = Enqueue { front: true, ..Enqueue::for_waiting(&waiting) };
                if let Err(e) = self.queue.enqueue(&entry).await {
                    tracing::warn!(%job_id, error = %e, "could not hand the job back; the sweeper will");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%job_id, error = %e, "could not hand the job back; the sweeper will"),
        }
    }
}

/// Runs the handler with the type's time limit; a panic becomes a
/// retryable failure instead of taking the worker down.
async fn run_guarded<C: Clients>(
    kind: Option<&JobKind<C>>,
    job_type: &str,
    payload: serde_json::Value,
    ctx: &JobContext<C>,
) -> Result<serde_json::Value, JobError> {
    let Some(kind) = kind else {
        return Err(JobError::permanent("unknown_type", format!("no job type `{job_type}` in this worker")));
    };
    let limit = kind.attempt_timeout;
    let run = AssertUnwindSafe(kind.run(payload, ctx)).catch_unwind();
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(JobError::retry("panic", format!("the handler panicked: {what}")))
        }
        Err(_) => Err(JobError::retry("attempt_timeout", format!("the attempt ran longer than {limit:?}"))),
    }
}

/// Writes progress reports at most once a second, and only when they change.
async fn write_progress(pool: &DbPool, job_id: Uuid, worker: &str, mut progress: watch::Receiver<i16>) -> std::convert::Infallible {
    // Until the job's context (the sender) goes: then there is nothing more to write.
    while progress.changed().await.is_ok() {
        let value = *progress.borrow_and_update();
        if let Err(e) = q::set_progress(pool, job_id, worker, value).await {
            tracing::debug!(error = %e, "could not record progress");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    std::future::pending().await
}
