//! Peyk's own background duties, beside the queue's
//! (`peyk_queue::maintenance`: leases, cancellation, heartbeats, the sweeper):
//! - relay event messages whose writer died before dispatching them;
//! - queue payment reconciliation (one worker of the fleet at a time), and
//!   prune inbound events past their retention;
//! - erase content past its retention (`crate::retention`, one worker of
//!   the fleet at a time);
//! - fire due schedules (`peyk_queue::schedule::fire`; every worker, sharing
//!   the due schedules);
//! - report which providers this worker has (`peyk_jobs::providers`), for
//!   `/readyz?providers=1` and the API's checks at submission.

use std::sync::Arc;
use std::time::Duration;

use peyk_jobs::context::SharedClients;
use peyk_jobs::payments::reconcile::PaymentReconcileJob;
use peyk_jobs::JobKind;
use peyk_queue::maintenance::{every, SweepSettings};
use peyk_queue::queue::Enqueue;
use peyk_schema::DbPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

type Runner = peyk_queue::runner::Runner<SharedClients>;

/// Starts the queue's duties and Peyk's; each ends when `stop` is cancelled.
pub fn spawn_all(runner: &Arc<Runner>, config: &Config, stop: &CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let queues: Vec<String> = config.queues.keys().cloned().collect();
    let sweep = SweepSettings { interval: config.sweep_interval, min_age: config.sweep_min_age, redis_retention: config.redis_retention };
    let mut tasks = peyk_queue::maintenance::spawn_all(runner, queues.clone(), sweep, config.control_sync, stop);
    tasks.push(tokio::spawn(relay_events(runner.clone(), stop.clone())));
    tasks.push(tokio::spawn(report_providers(runner.clone(), queues, config.redis_prefix.clone(), stop.clone())));
    tasks.push(tokio::spawn(reconcile_payments(runner.clone(), config.inbound_retention, stop.clone())));
    tasks.push(tokio::spawn(crate::retention::run(runner.clone(), config.retention.clone(), stop.clone())));
    if let Some(settings) = &config.scheduler {
        tasks.push(tokio::spawn(peyk_queue::schedule::fire::run(runner.clone(), settings.clone(), stop.clone())));
    }
    tasks
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

/// Every `REPORT_EVERY`: which providers this worker has for its queues,
/// and whether they answer; withdrawn when the worker stops.
async fn report_providers(runner: Arc<Runner>, queues: Vec<String>, prefix: String, stop: CancellationToken) {
    use peyk_jobs::providers;
    let mut redis = runner.queue.redis();
    // What is configured is known at once; the checks may take seconds.
    let configured = providers::configured(&runner.clients, &queues);
    if let Err(e) = providers::publish(&mut redis, &prefix, &runner.worker_id, configured).await {
        tracing::debug!(error = %e, "could not report the providers");
    }
    loop {
        let report = providers::check(&runner.clients, providers::configured(&runner.clients, &queues)).await;
        if let Err(e) = providers::publish(&mut redis, &prefix, &runner.worker_id, report).await {
            tracing::debug!(error = %e, "could not report the providers");
        }
        if !every(providers::REPORT_EVERY, &stop).await {
            break;
        }
    }
    let _ = providers::withdraw(&mut redis, &prefix, &runner.worker_id).await;
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
        let job = peyk_queue::submit::system_job(tenant, &JobKind::described::<PaymentReconcileJob>(), payload, chrono::Utc::now());
        let Some(row) = runner.clients.backbone.inserter.call(job).await? else { continue };
        if let Some(entry) = Enqueue::for_row(&row) {
            if let Err(e) = runner.clients.backbone.pusher.call(entry).await {
                tracing::warn!(error = %e, "reconcile job stored but not pushed; the sweeper will queue it");
            }
        }
    }
    Ok(())
}
