//! The runner's background duties besides running jobs:
//! - keep its claims on running jobs alive (so a dead worker's claims expire);
//! - stop the jobs that are no longer its own (cancelled, or taken over);
//! - announce which queues it serves (`peyk_workers`);
//! - sweep: put back jobs whose worker died, re-push waiting jobs that Redis
//!   lost (e.g. after a Redis restart without persistence), delete finished
//!   entries from Redis once they are old (results live in PostgreSQL), and
//!   move on pipelines whose step finished while nobody did.
//!
//! - apply the operators' controls stored in PostgreSQL (pauses, tenants'
//!   weights and caps on running jobs) to Redis, so that they hold after a
//!   Redis restart too.
//!
//! Every worker sweeps; the statements are safe to run concurrently.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use peyk_schema::queries::queue_controls as controls;
use peyk_schema::queries::worker::{self as q, WaitingJob};
use peyk_schema::DbPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::queue::{Enqueue, Queue, QueueError};
use crate::runner::Runner;
use crate::{Clients, Registry};

/// How often the sweeper runs, and what it leaves alone.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub interval: Duration,
    /// Waiting jobs younger than this are not re-pushed (their push may be
    /// under way).
    pub min_age: Duration,
    /// Finished entries stay in Redis this long.
    pub redis_retention: Duration,
}

/// Starts every duty for the queues `queues`; each ends when `stop` is cancelled.
pub fn spawn_all<C: Clients>(
    runner: &Arc<Runner<C>>,
    queues: Vec<String>,
    sweep: SweepSettings,
    control_sync: Duration,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(apply_controls(runner.clone(), control_sync, stop.clone())),
        tokio::spawn(keep_leases(runner.clone(), stop.clone())),
        tokio::spawn(stop_cancelled(runner.clone(), stop.clone())),
        tokio::spawn(announce(runner.clone(), queues, stop.clone())),
        tokio::spawn(self::sweep(runner.clone(), sweep, stop.clone())),
    ]
}

/// Waits `period`; false once `stop` is cancelled.
pub async fn every(period: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = stop.cancelled() => false,
    }
}

/// Every `period`: makes Redis hold the pauses, weights and caps PostgreSQL holds.
async fn apply_controls<C: Clients>(runner: Arc<Runner<C>>, period: Duration, stop: CancellationToken) {
    loop {
        if let Err(e) = apply_controls_once(&runner.queue, &runner.pool).await {
            tracing::debug!(error = %e, "could not apply queue controls; will try again");
        }
        if !every(period, &stop).await {
            return;
        }
    }
}

pub async fn apply_controls_once(queue: &Queue, pool: &DbPool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Redis is read before PostgreSQL, and only differences are written: the
    // admin API stores a pause in PostgreSQL and then in Redis, so a pause
    // made while this runs is either in both reads or newer in PostgreSQL.
    // Reading PostgreSQL first would see the old value, then Redis the new
    // one, and undo the pause until the next round.
    let names = queue.names();
    let mut in_redis = Vec::with_capacity(names.len());
    for job_type in &names {
        in_redis.push(queue.paused(job_type).await?);
    }
    let pauses = controls::pauses(pool).await?;
    let caps = controls::caps(pool, None).await?;
    for (job_type, (paused_now, tenants_now)) in names.into_iter().zip(in_redis) {
        queue.replace_caps(job_type, &controls::caps_of(&caps, job_type)).await?;
        let of_queue = pauses.iter().filter(|p| p.queue == job_type);
        let queue_paused = of_queue.clone().any(|p| p.tenant_id.is_none());
        let tenants_paused: HashSet<String> = of_queue.filter_map(|p| p.tenant_id.map(|t| t.to_string())).collect();
        if paused_now != queue_paused {
            queue.set_queue_paused(job_type, queue_paused).await?;
        }
        let tenants_now: HashSet<String> = tenants_now.into_iter().collect();
        for tenant in tenants_paused.symmetric_difference(&tenants_now) {
            queue.set_tenant_paused(job_type, tenant, tenants_paused.contains(tenant)).await?;
        }
    }
    let weights: Vec<(String, u32)> =
        controls::tenants(pool).await?.into_iter().filter(|t| t.weight != 1).map(|t| (t.id.to_string(), t.weight.max(1) as u32)).collect();
    queue.replace_weights(&weights).await?;
    Ok(())
}

async fn keep_leases<C: Clients>(runner: Arc<Runner<C>>, stop: CancellationToken) {
    let period = runner.lease / 3;
    while every(period, &stop).await {
        let ids: Vec<Uuid> = runner.in_flight.lock().unwrap().keys().copied().collect();
        if let Err(e) = q::renew_leases(&runner.pool, &runner.worker_id, &ids, runner.lease.as_secs_f64()).await {
            tracing::warn!(error = %e, "could not renew job claims");
        }
    }
}

/// Five times a second: stops the jobs that are no longer this worker's —
/// cancelled through the API, or taken over after its claim lapsed — so
/// that their work (a transcription's CPU) ends within a second instead of
/// running on to a result that would be discarded. Only jobs running for
/// more than half a second are looked at (one indexed query; none while
/// only short jobs run, such as webhook deliveries by the thousand).
async fn stop_cancelled<C: Clients>(runner: Arc<Runner<C>>, stop: CancellationToken) {
    const LONG_RUNNING: Duration = Duration::from_millis(500);
    while every(Duration::from_millis(200), &stop).await {
        if let Err(e) = runner.stop_lost_jobs(LONG_RUNNING).await {
            tracing::debug!(error = %e, "could not check running jobs for cancellation");
        }
    }
}

async fn announce<C: Clients>(runner: Arc<Runner<C>>, queues: Vec<String>, stop: CancellationToken) {
    loop {
        for queue in &queues {
            if let Err(e) = runner.queue.heartbeat(queue, &runner.worker_id).await {
                tracing::debug!(error = %e, "could not announce the worker");
            }
        }
        if !every(Duration::from_secs(5), &stop).await {
            break;
        }
    }
    for queue in &queues {
        let _ = runner.queue.leave(queue, &runner.worker_id).await;
    }
}

async fn sweep<C: Clients>(runner: Arc<Runner<C>>, settings: SweepSettings, stop: CancellationToken) {
    let mut cursor: Option<Uuid> = None;
    while every(settings.interval, &stop).await {
        if let Err(e) = sweep_once(&runner.registry, &runner.pool, &runner.queue, &mut cursor, &settings).await {
            tracing::warn!(error = %e, "sweep failed; will try again");
        }
    }
}

/// Pushes stored waiting jobs onto their queues.
pub async fn push_all(queue: &Queue, jobs: &[WaitingJob]) -> Result<(), QueueError> {
    let entries: Vec<Enqueue> = jobs.iter().map(Enqueue::for_waiting).collect();
    queue.enqueue_many(&entries).await
}

async fn sweep_once<C: Clients>(
    registry: &Arc<Registry<C>>,
    pool: &DbPool,
    queue: &Queue,
    cursor: &mut Option<Uuid>,
    settings: &SweepSettings,
) -> anyhow::Result<()> {
    let (min_age, retention) = (settings.min_age, settings.redis_retention);
    // 1. Claims that expired: their worker died.
    let expired = q::requeue_expired(pool, 0.0, 1000).await?;
    if !expired.is_empty() {
        tracing::warn!(count = expired.len(), "re-queued jobs whose worker stopped answering");
        push_all(queue, &expired).await?;
    }

    // 2. Waiting jobs Redis does not know: one page per sweep, round-robin.
    const PAGE: i64 = 2000;
    let page = q::waiting_page(pool, *cursor, min_age.as_secs_f64(), PAGE).await?;
    *cursor = if (page.len() as i64) < PAGE { None } else { page.last().map(|job| job.id) };
    for job_type in queue.names() {
        let of_type: Vec<WaitingJob> = page.iter().filter(|job| job.job_type == job_type).cloned().collect();
        let task_ids: Vec<String> = of_type.iter().map(|job| job.queue_task_id.clone()).collect();
        let present = queue.contains(job_type, &task_ids).await?;
        let missing: Vec<WaitingJob> = of_type.into_iter().zip(present).filter(|(_, present)| !present).map(|(job, _)| job).collect();
        if !missing.is_empty() {
            tracing::warn!(queue = job_type, count = missing.len(), "re-pushed waiting jobs missing from redis");
            push_all(queue, &missing).await?;
        }
        // 3. Finished entries past their retention.
        queue.expire_finished(job_type, retention, 1000).await?;
    }

    // 4. Pipelines whose current step finished while nobody moved them on
    //    (the worker that finished it died first): a page of the longest idle.
    let idle_since = chrono::Utc::now() - chrono::Duration::from_std(min_age.max(Duration::from_secs(2))).unwrap_or_default();
    for pipeline in peyk_schema::queries::pipelines::idle_running(pool, idle_since, 100).await? {
        crate::pipeline::advance(registry, pool, queue, pipeline).await?;
        peyk_schema::queries::pipelines::touch(pool, pipeline).await?;
    }
    Ok(())
}
