//! The worker's background duties besides running jobs:
//! - keep its claims on running jobs alive (so a dead worker's claims expire);
//! - announce which queues it serves (`peyk_workers`);
//! - sweep: put back jobs whose worker died, re-push waiting jobs that Redis
//!   lost (e.g. after a Redis restart without persistence), and delete
//!   finished entries from Redis once they are old (results live in PostgreSQL).
//!
//! Every worker sweeps; the statements are safe to run concurrently.

use std::sync::Arc;
use std::time::Duration;

use peyk_jobs::payments::reconcile::PaymentReconcileJob;
use peyk_jobs::queue::{Enqueue, Queue};
use peyk_jobs::JobKind;
use peyk_schema::queries::worker::{self as q, WaitingJob};
use peyk_schema::DbPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;
use peyk_worker::runner::Runner;

pub fn spawn_all(runner: Arc<Runner>, config: &Config, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let queues: Vec<String> = config.queues.keys().cloned().collect();
    vec![
        tokio::spawn(keep_leases(runner.clone(), stop.clone())),
        tokio::spawn(stop_cancelled(runner.clone(), stop.clone())),
        tokio::spawn(relay_events(runner.clone(), stop.clone())),
        tokio::spawn(announce(runner.clone(), queues, stop.clone())),
        tokio::spawn(sweep(runner.clone(), config.sweep_interval, config.sweep_min_age, config.redis_retention, stop.clone())),
        tokio::spawn(reconcile_payments(runner, config.inbound_retention, stop)),
    ]
}

async fn every(period: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => true,
        _ = stop.cancelled() => false,
    }
}

async fn keep_leases(runner: Arc<Runner>, stop: CancellationToken) {
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
async fn stop_cancelled(runner: Arc<Runner>, stop: CancellationToken) {
    const LONG_RUNNING: Duration = Duration::from_millis(500);
    while every(Duration::from_millis(200), &stop).await {
        if let Err(e) = runner.stop_lost_jobs(LONG_RUNNING).await {
            tracing::debug!(error = %e, "could not check running jobs for cancellation");
        }
    }
}

/// Every second: dispatches event messages their writer stored but did not
/// dispatch (it died or lost the database between the two). Five seconds
/// of grace leave the writer's own dispatch to run first.
async fn relay_events(runner: Arc<Runner>, stop: CancellationToken) {
    while every(Duration::from_secs(1), &stop).await {
        if let Err(e) = peyk_jobs::events::dispatch_stranded(&runner.pool, &runner.queue, Duration::from_secs(5)).await {
            tracing::warn!(error = %e, "could not relay stranded events; will try again");
        }
    }
}

async fn announce(runner: Arc<Runner>, queues: Vec<String>, stop: CancellationToken) {
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

async fn sweep(runner: Arc<Runner>, period: Duration, min_age: Duration, retention: Duration, stop: CancellationToken) {
    let mut cursor: Option<Uuid> = None;
    while every(period, &stop).await {
        if let Err(e) = sweep_once(&runner.pool, &runner.queue, &mut cursor, min_age, retention).await {
            tracing::warn!(error = %e, "sweep failed; will try again");
        }
    }
}

/// Once per period across the fleet (whichever worker takes the lead),
/// queues a `payment_reconcile` job for every (tenant, gateway) with a
/// payment left pending: what finds payments whose callback got lost. The
/// same leader deletes inbound events older than `PEYK_INBOUND_RETENTION_DAYS`.
async fn reconcile_payments(runner: Arc<Runner>, inbound_retention: Duration, stop: CancellationToken) {
    let settings = &runner.clients.payments;
    while every(settings.reconcile_every, &stop).await {
        match runner.queue.try_lead("payments-reconcile", settings.reconcile_every).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "could not take the reconcile lead");
                continue;
            }
        }
        if let Err(e) = queue_reconciles(&runner).await {
            tracing::warn!(error = %e, "could not queue payment reconciliation; will try again");
        }
        if let Err(e) = prune_inbound_events(&runner.pool, inbound_retention).await {
            tracing::warn!(error = %e, "could not prune old inbound events; will try again");
        }
    }
}

/// Deletes inbound events (callbacks, provider webhooks) past their
/// retention, 1,000 per statement so that no statement holds locks long.
async fn prune_inbound_events(pool: &DbPool, retention: Duration) -> anyhow::Result<()> {
    const BATCH: i64 = 1000;
    let before = chrono::Utc::now() - chrono::Duration::from_std(retention)?;
    let mut pruned = 0;
    loop {
        let deleted = peyk_schema::queries::payments::prune_events(pool, before, BATCH).await?;
        pruned += deleted;
        if deleted < BATCH as usize {
            break;
        }
    }
    if pruned > 0 {
        tracing::info!(pruned, "deleted inbound events past their retention");
    }
    Ok(())
}

async fn queue_reconciles(runner: &Runner) -> anyhow::Result<()> {
    let waited = chrono::Duration::from_std(runner.clients.payments.reconcile_after)?;
    for (tenant, gateway) in peyk_schema::queries::payments::accounts_with_pending(&runner.pool, chrono::Utc::now() - waited).await? {
        let payload = serde_json::json!({ "gateway": gateway });
        let job = peyk_jobs::submit::system_job(tenant, &JobKind::of::<PaymentReconcileJob>(), payload, chrono::Utc::now());
        let Some(row) = runner.clients.inserter.call(job).await? else { continue };
        if let Some(entry) = Enqueue::for_row(&row) {
            if let Err(e) = runner.clients.pusher.call(entry).await {
                tracing::warn!(error = %e, "reconcile job stored but not pushed; the sweeper will queue it");
            }
        }
    }
    Ok(())
}

pub async fn push_all(queue: &Queue, jobs: &[WaitingJob]) -> Result<(), peyk_jobs::queue::QueueError> {
    let entries: Vec<Enqueue> = jobs
        .iter()
        .map(|job| Enqueue {
            job_type: job.job_type.clone(),
            job_id: job.id,
            task_id: job.queue_task_id.clone(),
            run_at: job.run_at,
            priority: job.priority,
        })
        .collect();
    queue.enqueue_many(&entries).await
}

async fn sweep_once(pool: &DbPool, queue: &Queue, cursor: &mut Option<Uuid>, min_age: Duration, retention: Duration) -> anyhow::Result<()> {
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
        peyk_jobs::pipeline::advance(pool, queue, pipeline).await?;
        peyk_schema::queries::pipelines::touch(pool, pipeline).await?;
    }
    Ok(())
}
